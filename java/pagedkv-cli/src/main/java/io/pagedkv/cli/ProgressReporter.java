package io.pagedkv.cli;

import io.pagedkv.replay.Replay;
import java.io.PrintStream;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Shows a replay's progress on stderr. On a terminal: a one-line bar redrawn in place (carriage
 * returns), also between the scheduler's steps, so its clock keeps moving through a long prefill,
 * and erased when a phase ends so the report starts on a clean line. Elsewhere (a log, a pipe): a
 * plain line every {@code plainEvery}, so a long run is never silent and short runs print nothing.
 * Thread-safe: the scheduler's thread reports, a daemon thread redraws.
 */
final class ProgressReporter implements Replay.Listener, AutoCloseable {
    private static final int WIDTH = 30;
    private static final long REDRAW_NANOS = 100_000_000L;
    /** How often the terminal bar is redrawn without news (its clock moves). */
    private static final long TICK_MILLIS = 500;

    private final PrintStream err;
    private final boolean terminal;
    private final ScheduledExecutorService ticker;
    private String phase;
    private long phaseStart;
    private long lastDraw;
    private int lastLength;
    private int finished;
    private int total;
    private long tokens;

    /** A bar redrawn in place ({@code terminal}), or a plain line every {@code plainEveryMillis}. */
    ProgressReporter(PrintStream err, boolean terminal, long plainEveryMillis) {
        this.err = err;
        this.terminal = terminal;
        this.ticker = Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread thread = new Thread(runnable, "pagedkv-progress");
            thread.setDaemon(true);
            return thread;
        });
        long every = terminal ? TICK_MILLIS : plainEveryMillis;
        ticker.scheduleAtFixedRate(this::tick, every, every, TimeUnit.MILLISECONDS);
    }

    @Override
    public synchronized void phase(String name) {
        phase = name;
        phaseStart = System.nanoTime();
        lastDraw = 0;
        finished = 0;
        total = 0;
        tokens = 0;
    }

    @Override
    public synchronized void update(int finishedRequests, int totalRequests, long tokensSoFar) {
        finished = finishedRequests;
        total = totalRequests;
        tokens = tokensSoFar;
        long now = System.nanoTime();
        if (!terminal || (now - lastDraw < REDRAW_NANOS && finished < total)) return;
        lastDraw = now;
        draw(barLine(now));
    }

    @Override
    public synchronized void phaseDone() {
        if (terminal) draw("");
        phase = null;
    }

    @Override
    public void close() {
        ticker.shutdownNow();
    }

    private synchronized void tick() {
        if (phase == null) return;
        long now = System.nanoTime();
        if (terminal) {
            lastDraw = now;
            draw(barLine(now));
        } else {
            err.println("pagedkv: " + plainLine(now));
            err.flush();
        }
    }

    private String barLine(long now) {
        int filled = total == 0 ? 0 : (int) ((long) WIDTH * finished / total);
        return String.format(Locale.ROOT, "%-9s [%s%s] %s", phase, "#".repeat(filled), ".".repeat(WIDTH - filled),
                counts(now));
    }

    private String plainLine(long now) {
        return phase + ": " + counts(now);
    }

    private String counts(long now) {
        return String.format(Locale.ROOT, "%d/%d requests, %d tokens, %.1f s", finished, total, tokens,
                (now - phaseStart) / 1e9);
    }

    private void draw(String line) {
        StringBuilder sb = new StringBuilder("\r").append(line);
        if (line.length() < lastLength) sb.append(" ".repeat(lastLength - line.length())).append('\r').append(line);
        lastLength = line.length();
        err.print(sb);
        err.flush();
    }
}
