package io.pagedkv.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufFile;
import io.pagedkv.model.tensor.Parallel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Java engine on pagedkv (f32 KV) against llama.cpp on the same random-weight GGUF files, for
 * both architectures and every weight type: logits at every computed prompt position and every
 * decode step (fed llama.cpp's greedy token, so one near-tie cannot cascade) within 1e-4, and the
 * same greedy token wherever llama.cpp's top-1 margin exceeds that tolerance. The second prompt of
 * each model shares a prefix with the first, so its first pages come from pagedkv's cache. The
 * replay's built-in model is compared the same way. Offline, llama.cpp's outputs come from the
 * committed golden files ({@link LlamaCppReference}).
 *
 * <p>Where GGML rounds the activations before a product (F16, BF16, and the Q8_0/Q8_K quantization
 * that Q8_0, Q4_0 and the K-quants are multiplied with), this engine rounds them the same way, but a
 * value lying within float rounding of a rounding boundary can still go the other way (the two
 * engines sum dot products in different orders), and one such flip moves later logits by up to a
 * few 1e-2. For those types most rows must still be within 1e-4 and every row within
 * {@link #FLIP_BOUND}; greedy tokens must agree wherever the margin exceeds the row's bound.
 * F16's rounding step is so fine that flips happen in nearly every row of a model whose every
 * matrix is F16 (with a single F16 matrix, rows are either within 2e-6 or off by one flip's
 * effect), so for F16 only the bound and the greedy tokens are required.
 */
class TransformerVsLlamaCppTest {
    static final float TOLERANCE = 1e-4f;
    static final int DECODE_STEPS = 5;
    static final int PAGE_SIZE = 4;
    /** Largest logit difference one activation-rounding flip has been seen to cause, with headroom. */
    static final float FLIP_BOUND = 0.25f;
    /** Share of rows that must be within {@link #TOLERANCE} for types that round activations. */
    static final double MIN_EXACT_SHARE = 0.6;

    static double minExactShare(GgmlType type) {
        return switch (type) {
            case F32 -> 1.0;
            case F16 -> 0.0;
            // Measured: qwen2's Q5_1 model has one flip at prompt position 9 of 13 (rows before it are
            // within 1.6e-5); it sits in the K/V every later row attends to, and the second prompt reuses
            // those positions, so all 22 later rows carry it (each within 0.09).
            case Q5_1 -> 0.3;
            default -> MIN_EXACT_SHARE;
        };
    }

    @TempDir
    Path dir;

    static Stream<Arguments> models() {
        // llama: GQA 4 q / 2 kv heads of 64; qwen2: 2 q / 1 kv head of 128, biases, NEOX rotary.
        ModelShape llama = new ModelShape(Architecture.LLAMA, 2, 256, 4, 2, 64, 512, 300, 256, 1e-5f, 10000f, 1f, 64);
        ModelShape qwen2 = new ModelShape(Architecture.QWEN2, 2, 256, 2, 1, 128, 512, 300, 256, 1e-6f, 1000000f, 1f, 128);
        return Stream.of(GgmlType.values()).flatMap(t -> Stream.of(
                Arguments.of("llama", llama, t, t.ordinal() % 2 == 0),
                Arguments.of("qwen2", qwen2, t, t.ordinal() % 2 == 1)));
    }

    @ParameterizedTest(name = "{0} {2} tied={3}")
    @MethodSource("models")
    void logitsMatchLlamaCpp(String label, ModelShape shape, GgmlType type, boolean tied) throws Exception {
        long seed = 1000L * shape.architecture().ordinal() + type.ordinal();
        Path file = dir.resolve("model.gguf");
        new RandomModelWriter(shape, type, tied, 3f, seed).write(file);
        compareWithLlamaCpp(label + "-" + type, file, shape, type, seed);
    }

    /** The replay's built-in model, as its GGUF is written and loaded: every row within 1e-4 of llama.cpp. */
    @Test
    void theBuiltinModelMatchesLlamaCpp() throws Exception {
        Path file = dir.resolve("builtin.gguf");
        BuiltinModel.write(file);
        compareWithLlamaCpp("builtin", file, BuiltinModel.SHAPE, GgmlType.F32, 11);
    }

    /**
     * Two prompts from {@code seed} (the second shares its first 10 tokens with the first, so pagedkv
     * reuses them), prefilled and decoded by both engines.
     */
    private void compareWithLlamaCpp(String label, Path file, ModelShape shape, GgmlType type, long seed) throws Exception {
        LlamaCppReference llamaCpp = LlamaCppReference.get();
        SplittableRandom rng = new SplittableRandom(seed);
        int[] first = randomTokens(rng, 13, shape.vocab());
        int[] second = randomTokens(rng, 21, shape.vocab());
        System.arraycopy(first, 0, second, 0, 10); // shares 10 tokens (two full pages of 4 and half a page)
        second[10] = first[10] == 3 ? 4 : 3;
        List<LlamaCppOracle.Run> expected = llamaCpp.logits("transformer-" + label, file, DECODE_STEPS, 0, first, second);

        try (GgufFile gguf = GgufFile.open(file);
             Parallel parallel = new Parallel(2);
             PagedKvCache cache = PagedKvCache.builder().layers(shape.layers()).kvHeads(shape.kvHeads())
                     .headDim(shape.headDim()).pageSize(PAGE_SIZE).pages(64).kvDtype(KvDtype.F32).build();
             SequenceRunner runner = new SequenceRunner(new Transformer(gguf, parallel), cache)) {
            Agreement agreement = new Agreement(type == GgmlType.F32 ? TOLERANCE : FLIP_BOUND);
            compare(runner, first, expected.get(0), 0, "first prompt", agreement);
            compare(runner, second, expected.get(1), 10, "second prompt (prefix reused)", agreement);
            double share = agreement.exactShare();
            System.out.printf("%s %s (%s): %d rows, %.0f%% within %.0e, worst %.2e%n", label, type,
                    llamaCpp.live() ? "llama.cpp" : "golden outputs", agreement.rows, 100 * share, TOLERANCE, agreement.worst);
            assertTrue(share >= minExactShare(type), () -> String.format("only %.0f%% of logit rows within %.0e", 100 * share, TOLERANCE));
        }
    }

    /** Counts rows within the tolerance; fails at once on a row past the bound. */
    private static final class Agreement {
        final float bound;
        int rows, exact;
        float worst;

        Agreement(float bound) {
            this.bound = bound;
        }

        void check(float[] want, float[] got, String where) {
            float diff = assertClose(want, got, bound, where);
            rows++;
            if (diff <= TOLERANCE) exact++;
            worst = Math.max(worst, diff);
        }

        double exactShare() {
            return (double) exact / rows;
        }
    }

    private static void compare(SequenceRunner runner, int[] prompt, LlamaCppOracle.Run expected, int expectReused, String what, Agreement agreement) {
        SequenceRunner.Prefill prefill = runner.prefill(prompt, true);
        try (var seq = prefill.sequence()) {
            assertEquals(expectReused, prefill.reused(), what + ": positions reused from the cache");
            for (int i = 0; i < prefill.logits().length; i++) {
                int position = prefill.reused() + i;
                agreement.check(expected.logits()[position], prefill.logits()[i], what + " position " + position);
            }
            for (int step = 0; step < expected.greedy().length; step++) {
                int token = expected.greedy()[step];
                float[] before = step == 0 ? prefill.last() : null;
                if (before != null) assertGreedy(expected.logits()[prompt.length - 1], before, token, agreement.bound, what + " first token");
                float[] logits = runner.decode(seq, token);
                float[] want = expected.logits()[prompt.length + step];
                agreement.check(want, logits, what + " decode step " + step);
                if (step + 1 < expected.greedy().length) assertGreedy(want, logits, expected.greedy()[step + 1], agreement.bound, what + " token " + (step + 1));
            }
        }
    }

    /** Fails past {@code bound}; returns the largest difference. */
    private static float assertClose(float[] want, float[] got, float bound, String where) {
        float worst = 0;
        int at = -1;
        for (int i = 0; i < want.length; i++) {
            float diff = Math.abs(want[i] - got[i]);
            if (!(diff <= worst)) {
                worst = diff;
                at = i;
            }
        }
        float shown = worst;
        int index = at;
        assertTrue(worst <= bound, () -> where + ": logit " + index + " differs by " + shown + " (llama.cpp " + want[index] + ", pagedkv " + got[index] + ")");
        return worst;
    }

    /** Our argmax equals llama.cpp's greedy token unless its top-two margin is within the bound. */
    private static void assertGreedy(float[] want, float[] got, int wantToken, float bound, String where) {
        int best = argmax(got);
        if (best == wantToken) return;
        float margin = want[wantToken] - want[best];
        assertTrue(margin <= bound, () -> where + ": pagedkv picked " + best + ", llama.cpp " + wantToken + " with margin " + margin);
    }

    static int argmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    static int[] randomTokens(SplittableRandom rng, int n, int vocab) {
        int[] t = new int[n];
        t[0] = 1; // BOS
        for (int i = 1; i < n; i++) t[i] = 3 + rng.nextInt(vocab - 3);
        return t;
    }
}
