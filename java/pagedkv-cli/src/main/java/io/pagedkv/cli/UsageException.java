package io.pagedkv.cli;

/** A bad command line: shown with a pointer to {@code --help}, exit status 2. */
final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    UsageException(String message) {
        super(message);
    }
}
