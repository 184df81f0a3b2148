package io.pagedkv.replay;

/**
 * Bad input in a workload: the message names the source, the line and the problem, and is meant
 * to be shown to the user as is (no stack trace needed).
 */
public final class TraceException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int line;

    public TraceException(String source, int line, String problem) {
        super(line > 0 ? source + ":" + line + ": " + problem : source + ": " + problem);
        this.line = line;
    }

    /** The 1-based line at fault, or 0 when the problem is not tied to a line. */
    public int line() {
        return line;
    }
}
