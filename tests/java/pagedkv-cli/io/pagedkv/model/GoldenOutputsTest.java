package io.pagedkv.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The golden-output store: files read back what was written (runs with leading rows left out, token
 * lists), the staleness check notices one changed logit or token, and every committed file parses.
 * That the committed files equal llama.cpp's output is checked by each comparison while llama.cpp
 * runs ({@link LlamaCppReference}).
 */
class GoldenOutputsTest {
    @TempDir
    Path dir;

    @Test
    void runsAndTokensRoundTripAndAChangeIsNoticed() throws Exception {
        GoldenOutputs store = new GoldenOutputs(dir);
        SplittableRandom rng = new SplittableRandom(3);
        for (int first : new int[] {0, 4}) {
            float[][] rows = new float[9][];
            for (int r = first; r < rows.length; r++) {
                rows[r] = new float[50];
                for (int v = 0; v < 50; v++) rows[r][v] = (float) (10 * rng.nextGaussian());
            }
            List<LlamaCppOracle.Run> runs = List.of(new LlamaCppOracle.Run(6, rows, new int[] {7, 8, 9}));
            Path file = store.file("test", "run" + first);
            store.writeRuns(file, runs);
            List<LlamaCppOracle.Run> back = store.readRuns(file);
            assertNull(GoldenOutputs.difference(back, runs));
            for (int r = 0; r < first; r++) assertNull(back.get(0).logits()[r]);
            assertArrayEquals(rows[8], back.get(0).logits()[8]);

            float[][] changed = rows.clone();
            changed[first + 1] = rows[first + 1].clone();
            changed[first + 1][17] += 2 * GoldenOutputs.SAME_LOGITS;
            assertNotNull(GoldenOutputs.difference(back, List.of(new LlamaCppOracle.Run(6, changed, new int[] {7, 8, 9}))));
            assertNotNull(GoldenOutputs.difference(back, List.of(new LlamaCppOracle.Run(6, rows, new int[] {7, 8, 10}))));
        }
        List<int[]> tokens = List.of(new int[] {1, 2, 3}, new int[0], new int[] {258});
        Path file = store.file("tokens", "t");
        store.writeTokens(file, tokens);
        List<int[]> back = store.readTokens(file);
        assertEquals(tokens.size(), back.size());
        for (int i = 0; i < tokens.size(); i++) assertArrayEquals(tokens.get(i), back.get(i));
    }

    @Test
    void everyCommittedFileParses() throws Exception {
        GoldenOutputs store = GoldenOutputs.committed();
        Path committed = store.file("x", "y").getParent();
        List<Path> files;
        try (Stream<Path> s = Files.list(committed)) {
            files = s.toList();
        }
        assertTrue(files.size() >= 20, "golden files under " + committed + ": " + files.size());
        for (Path f : files) {
            String name = f.getFileName().toString();
            assertTrue(name.endsWith(".bin.gz"), name);
            if (name.startsWith("tokenize-")) {
                assertTrue(!store.readTokens(f).isEmpty(), name);
            } else {
                for (LlamaCppOracle.Run run : store.readRuns(f)) assertNotNull(run.logits()[run.logits().length - 1], name);
            }
        }
    }
}
