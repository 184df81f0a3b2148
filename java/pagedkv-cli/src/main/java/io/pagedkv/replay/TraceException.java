package io.pagedkv.replay;

/**
 * Bad input in a workload: the message names the source, the line, the column where known, and the
 * problem ({@code trace.jsonl:3:17: unknown key "prompt" (allowed: ...)}), and is meant to be shown
 * to the user as is (no stack trace needed).
 */
public final class TraceException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int line;
    private final int column;

    /** A problem with a whole line ({@code line} > 0) or the whole source ({@code line} 0). */
    public TraceException(String source, int line, String problem) {
        this(source, line, 0, problem);
    }

    /** A problem at a 1-based column of a line ({@code column} 0: not tied to a column). */
    public TraceException(String source, int line, int column, String problem) {
        super(source + (line > 0 ? ":" + line + (column > 0 ? ":" + column : "") : "") + ": " + problem);
        this.line = line;
        this.column = column;
    }

    /** The 1-based line at fault, or 0 when the problem is not tied to a line. */
    public int line() {
        return line;
    }

    /** The 1-based column at fault, or 0 when the problem is not tied to a column. */
    public int column() {
        return column;
    }
}
