package io.pagedkv.replay;

import io.pagedkv.model.PagedKvAttention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.Batch;
import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.util.List;
import org.junit.jupiter.api.Test;

class TinyLlamaTest {
    private static final ModelConfig CFG = ModelConfig.DEFAULT;
    private static final TinyLlama MODEL = new TinyLlama(CFG);

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

    @Test
    void weightsAreTheSameForTheSameSeed() {
        int[] p = prompt(20, 1);
        float[] a = new TinyLlama(CFG).forward(p, range(0, 20), new int[] {19}, new ReferenceAttention(CFG))[0];
        float[] b = MODEL.forward(p, range(0, 20), new int[] {19}, new ReferenceAttention(CFG))[0];
        assertArrayEquals(a, b);
    }

    @Test
    void logitsAreSpreadButNotFlat() {
        int[] p = prompt(64, 2);
        float[][] logits = MODEL.forward(p, range(0, 64), range(0, 64), new ReferenceAttention(CFG));
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
        float[] full = MODEL.forward(p, range(0, n), new int[] {n - 1}, new ReferenceAttention(CFG))[0];
        ReferenceAttention cache = new ReferenceAttention(CFG);
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
        ReferenceAttention oracle = new ReferenceAttention(CFG);
        float[][] expected = MODEL.forward(p, range(0, n + 5), range(n - 1, n + 5), oracle);
        try (PagedKvCache cache = new CacheOptions(16, 64, KvDtype.F32, Device.cpu()).build(MODEL, true);
             PagedKvAttention attention = new PagedKvAttention(cache, CFG.qHeads());
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
