package io.pagedkv.cli;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** Progress on stderr: plain periodic lines without a terminal, a bar redrawn in place on one. */
class ProgressReporterTest {
    private static String run(boolean terminal) throws InterruptedException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream err = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        try (ProgressReporter progress = new ProgressReporter(err, terminal, 20)) {
            progress.phase("reuse on");
            progress.update(1, 4, 123);
            Thread.sleep(terminal ? 1200 : 200); // a long prefill: no update, the clock moves
            progress.phaseDone();
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void withoutATerminalPlainLinesComeWhileAStepRuns() throws InterruptedException {
        String err = run(false);
        assertTrue(err.startsWith("pagedkv: reuse on: 1/4 requests, 123 tokens, "), err);
        assertTrue(err.lines().count() >= 2, "periodic, also without news: " + err);
        assertFalse(err.contains("\r"), "no redrawing into a log: " + err);
    }

    @Test
    void onATerminalTheBarIsRedrawnAndErasedAtTheEnd() throws InterruptedException {
        String err = run(true);
        assertTrue(err.contains("\rreuse on  [#######.......................] 1/4 requests, 123 tokens, "), err);
        assertTrue(err.indexOf('\r', err.indexOf("1/4") + 1) > 0, "redrawn while the step runs: " + err);
        assertTrue(err.endsWith("\r"), "erased when the phase ends: " + err);
        assertFalse(err.contains("\n"), err);
    }
}
