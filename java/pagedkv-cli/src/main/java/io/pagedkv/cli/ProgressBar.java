package io.pagedkv.cli;

import io.pagedkv.replay.Replay;
import java.io.PrintStream;

/**
 * A one-line progress bar redrawn in place with carriage returns; only used when stderr is a
 * terminal, and erased when a phase ends so the report starts on a clean line. Redraws at most
 * ten times a second. Not thread-safe.
 */
final class ProgressBar implements Replay.Listener {
    private static final int WIDTH = 30;
    private static final long REDRAW_NANOS = 100_000_000L;

    private final PrintStream err;
    private String phase = "";
    private long phaseStart;
    private long lastDraw;
    private int lastLength;

    ProgressBar(PrintStream err) {
        this.err = err;
    }

    @Override
    public void phase(String name) {
        phase = name;
        phaseStart = System.nanoTime();
        lastDraw = 0;
    }

    @Override
    public void update(int finished, int total, long tokens) {
        long now = System.nanoTime();
        if (now - lastDraw < REDRAW_NANOS && finished < total) return;
        lastDraw = now;
        int filled = total == 0 ? WIDTH : (int) ((long) WIDTH * finished / total);
        double seconds = (now - phaseStart) / 1e9;
        String line = String.format("%-9s [%s%s] %d/%d requests, %d tokens, %.1f s",
                phase, "#".repeat(filled), ".".repeat(WIDTH - filled), finished, total, tokens, seconds);
        draw(line);
    }

    @Override
    public void phaseDone() {
        draw("");
    }

    private void draw(String line) {
        StringBuilder sb = new StringBuilder("\r").append(line);
        if (line.length() < lastLength) sb.append(" ".repeat(lastLength - line.length())).append('\r').append(line);
        lastLength = line.length();
        err.print(sb);
        err.flush();
    }
}
