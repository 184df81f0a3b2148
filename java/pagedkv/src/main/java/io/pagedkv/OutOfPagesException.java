package io.pagedkv;

/**
 * Not enough free or evictable pages for an operation; nothing was changed (allocation is
 * all-or-nothing), so the caller may release sequences and retry.
 */
public final class OutOfPagesException extends PagedKvException {
    private static final long serialVersionUID = 1L;

    OutOfPagesException(int status, String message) {
        super(status, message);
    }
}
