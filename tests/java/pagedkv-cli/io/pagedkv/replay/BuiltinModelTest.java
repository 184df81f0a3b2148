package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.Batch;
import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import io.pagedkv.model.BuiltinModel;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.PagedKvAttention;
import io.pagedkv.model.Transformer;
import io.pagedkv.model.chat.ChatFormat;
import io.pagedkv.model.chat.GgufPrompts;
import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufFile;
import io.pagedkv.model.tensor.Dequantizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The built-in demonstration model: written as a GGUF by the project's writer, read back by the
 * GGUF reader and run by the {@link Transformer}, it computes what its weights computed in plain
 * Java ({@link TinyLlama}: x·W products, rotate-half rotary positions) does; its vocabulary encodes
 * traces exactly as the replay's byte tokenizer does; and the paged path matches the reference.
 */
class BuiltinModelTest {
    private static final ModelShape CFG = BuiltinModel.SHAPE;
    private static final Transformer MODEL = BuiltinModels.transformer();
    /** Float rounding between the two paths (summation orders, RoPE angles built by repeated multiplication). */
    private static final float SAME_MODEL = 2e-4f;

    @TempDir
    Path dir;

    private static int[] prompt(int n, long seed) {
        SplitMix64 rng = new SplitMix64(seed);
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = (int) ((rng.nextLong() >>> 1) % CFG.vocab());
        return p;
    }

    private static int[] range(int from, int to) {
        int[] r = new int[to - from];
        for (int i = 0; i < r.length; i++) r[i] = from + i;
        return r;
    }

    private static float maxAbsDiff(float[] a, float[] b) {
        float m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }

    /** Prefill at several lengths, then decode steps: every logit row of the GGUF path equals the plain-Java one. */
    @Test
    void theGgufComputesWhatItsWeightsComputeInPlainJava() {
        TinyLlama plain = new TinyLlama();
        for (int n : new int[] {1, 7, 33, 100}) {
            int[] p = prompt(n + 4, 10 + n);
            ReferenceAttention plainCache = new ReferenceAttention(plain);
            ReferenceAttention ggufCache = new ReferenceAttention(MODEL);
            int[] prefix = java.util.Arrays.copyOf(p, n);
            float[][] expected = plain.forward(prefix, range(0, n), range(0, n), plainCache);
            float[][] got = MODEL.forward(prefix, range(0, n), range(0, n), ggufCache);
            for (int i = 0; i < n; i++) {
                float diff = maxAbsDiff(expected[i], got[i]);
                assertTrue(diff < SAME_MODEL, "prompt of " + n + ", position " + i + ": max diff " + diff);
            }
            for (int i = n; i < n + 4; i++) {
                float[] e = plain.forward(new int[] {p[i]}, new int[] {i}, new int[] {0}, plainCache)[0];
                float[] g = MODEL.forward(new int[] {p[i]}, new int[] {i}, new int[] {0}, ggufCache)[0];
                assertTrue(maxAbsDiff(e, g) < SAME_MODEL, "decode position " + i + ": max diff " + maxAbsDiff(e, g));
            }
        }
    }

    /** The file holds the shape and the weights as drawn (the token embedding exactly), every tensor F32. */
    @Test
    void theFileRoundTripsThroughTheReader() throws Exception {
        Path a = dir.resolve("a.gguf"), b = dir.resolve("b.gguf");
        BuiltinModel.write(a);
        BuiltinModel.write(b);
        assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), "the same seed writes the same file");
        BuiltinModel.Weights w = BuiltinModel.weights();
        try (GgufFile file = GgufFile.open(a)) {
            assertEquals(CFG, ModelShape.of(file));
            assertEquals(BuiltinModel.NAME, file.string("general.name"));
            float[] embedding = Dequantizer.all(file.tensor("token_embd.weight"));
            for (int t = 0; t < CFG.vocab(); t++) {
                assertArrayEquals(w.embedding()[t], java.util.Arrays.copyOfRange(embedding, t * CFG.hidden(), (t + 1) * CFG.hidden()));
            }
            float[] down = Dequantizer.all(file.tensor("blk.1.ffn_down.weight"));
            for (int o = 0; o < CFG.hidden(); o += 37) {
                for (int i = 0; i < CFG.intermediate(); i += 11) assertEquals(w.layers()[1].down()[i][o], down[o * CFG.intermediate() + i]);
            }
            for (var tensor : file.tensors().values()) assertEquals(GgmlType.F32, tensor.type(), tensor.name());
        }
    }

    /** Random texts and conversations: the GGUF vocabulary gives the byte tokenizer's ids, and decodes back. */
    @Test
    void theVocabularyIsTheReplaysByteEncoding() {
        var builtin = BuiltinModels.model();
        GgufPrompts prompts = new GgufPrompts(builtin.tokenizer(), ChatFormat.of(builtin.chatTemplate()));
        assertEquals(Tokenizer.VOCAB_SIZE, prompts.vocab());
        SplittableRandom random = new SplittableRandom(7);
        String[] alphabet = {"a", "Z", " ", "  ", "\n", "\t", "é", "中文", "🙂", "<|im_end|>", "<|im_start|>", "<|endoftext|>", "'s", "123", "\u0000"};
        for (int round = 0; round < 200; round++) {
            StringBuilder sb = new StringBuilder();
            for (int i = random.nextInt(12); i > 0; i--) sb.append(alphabet[random.nextInt(alphabet.length)]);
            String text = sb.toString();
            assertArrayEquals(Tokenizer.encode(text), prompts.text(text), text);
            assertEquals(text, builtin.tokenizer().decode(prompts.text(text)));
            // In messages, marker text is a marker (as llama.cpp renders templates); the byte template has none to compare.
            String content = text.replace("<|", "<");
            List<ChatTemplate.Message> messages = new ArrayList<>();
            for (int m = 1 + random.nextInt(3); m > 0; m--) messages.add(new ChatTemplate.Message(m % 2 == 0 ? "user" : "system", content + m));
            assertArrayEquals(ChatTemplate.render(messages), prompts.chat(messages), text);
        }
    }

    @Test
    void logitsAreSpreadButNotFlat() {
        int[] p = prompt(64, 2);
        float[][] logits = MODEL.forward(p, range(0, 64), range(0, 64), new ReferenceAttention(MODEL));
        double topMass = 0;
        for (float[] row : logits) {
            double max = Double.NEGATIVE_INFINITY;
            for (float v : row) max = Math.max(max, v);
            double sum = 0;
            for (float v : row) sum += Math.exp(v - max);
            topMass += 1 / sum;
        }
        topMass /= logits.length;
        assertTrue(topMass > 0.03 && topMass < 0.9, "mean probability of the top token: " + topMass);
        // Different contexts give different predictions.
        assertTrue(maxAbsDiff(logits[10], logits[11]) > 0.5);
    }

    @Test
    void incrementalStepsEqualOneFullPass() {
        int n = 40;
        int[] p = prompt(n, 3);
        float[] full = MODEL.forward(p, range(0, n), new int[] {n - 1}, new ReferenceAttention(MODEL))[0];
        ReferenceAttention cache = new ReferenceAttention(MODEL);
        MODEL.forward(java.util.Arrays.copyOf(p, 25), range(0, 25), new int[0], cache);
        float[] last = null;
        for (int i = 25; i < n; i++) last = MODEL.forward(new int[] {p[i]}, new int[] {i}, new int[] {0}, cache)[0];
        assertTrue(maxAbsDiff(full, last) < 1e-4, "max diff " + maxAbsDiff(full, last));
    }

    /** The paged path (writeKv + pagedkv kernels) against the plain-Java oracle, prefill then decode. */
    @Test
    void pagedAttentionMatchesTheReference() {
        int n = 100;
        int[] p = prompt(n + 5, 4);
        ReferenceAttention oracle = new ReferenceAttention(MODEL);
        float[][] expected = MODEL.forward(p, range(0, n + 5), range(n - 1, n + 5), oracle);
        try (PagedKvCache cache = new CacheOptions(16, 64, KvDtype.F32, Device.cpu()).build(MODEL, true);
             PagedKvAttention attention = new PagedKvAttention(cache, CFG.heads());
             Sequence seq = cache.createSequence(java.util.Arrays.copyOf(p, n), "")) {
            float[] got;
            try (Batch batch = cache.batch(List.of(seq))) {
                attention.bind(batch, PagedKvAttention.Kernel.PREFILL);
                got = MODEL.forward(java.util.Arrays.copyOf(p, n), range(0, n), new int[] {n - 1}, attention)[0];
                batch.commit();
            }
            assertTrue(maxAbsDiff(expected[0], got) < 1e-3, "prefill: max diff " + maxAbsDiff(expected[0], got));
            for (int i = n; i < n + 5; i++) {
                seq.append(p[i]);
                try (Batch batch = cache.batch(List.of(seq))) {
                    attention.bind(batch, PagedKvAttention.Kernel.DECODE);
                    got = MODEL.forward(new int[] {p[i]}, new int[] {i}, new int[] {0}, attention)[0];
                    batch.commit();
                }
                float diff = maxAbsDiff(expected[i - n + 1], got);
                assertTrue(diff < 1e-3, "decode position " + i + ": max diff " + diff);
            }
            assertEquals(n + 5, seq.numComputed());
        }
    }
}
