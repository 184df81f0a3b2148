package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.Batch;
import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import io.pagedkv.model.Model;
import io.pagedkv.model.PagedKvAttention;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TokenScorerTest {
    private static final Model MODEL = BuiltinModels.transformer();

    /**
     * The reference: the whole stream in one prefill of a cache without reuse, and each position's
     * NLL as -log(exp(l_t) / sum_j exp(l_j)) with the sum taken over exp(l - l_t) (another route
     * than the scorer's max-shifted log-sum-exp).
     */
    private static double referenceMeanNll(int[] stream, int pageSize) {
        CacheOptions f32 = new CacheOptions(pageSize, (stream.length + pageSize - 1) / pageSize, KvDtype.F32, Device.cpu());
        int n = stream.length;
        int[] positions = new int[n];
        for (int i = 0; i < n; i++) positions[i] = i;
        int[] rows = new int[n - 1];
        for (int i = 0; i < n - 1; i++) rows[i] = i;
        float[][] logits;
        try (PagedKvCache cache = f32.build(MODEL, false);
             PagedKvAttention attention = new PagedKvAttention(cache, MODEL.heads());
             Sequence seq = cache.createSequence(stream);
             Batch batch = cache.batch(List.of(seq))) {
            attention.bind(batch, PagedKvAttention.Kernel.PREFILL);
            logits = MODEL.forward(stream, positions, rows, attention);
            attention.unbind();
        }
        double sum = 0;
        for (int p = 0; p < n - 1; p++) {
            float[] l = logits[p];
            double target = l[stream[p + 1]];
            double z = 0;
            for (float v : l) z += Math.exp(v - target);
            sum += Math.log(z);
        }
        return sum / (n - 1);
    }

    @ParameterizedTest(name = "{0} tokens, page size {1}")
    @CsvSource({"2, 16", "37, 16", "300, 7", "1000, 16"})
    void f32ScoringEqualsAnIndependentRecomputeAndMatchesItself(int length, int pageSize) {
        CacheOptions f32 = CacheOptions.defaults(pageSize, KvDtype.F32, Device.cpu());
        int[] stream = TokenScorer.sample(MODEL, f32, length);
        TokenScorer.Result r = TokenScorer.score(MODEL, f32, stream);
        assertEquals(length - 1, r.positions());
        double reference = referenceMeanNll(stream, pageSize);
        assertEquals(reference, r.meanNllF32(), 1e-4);
        assertEquals(reference, r.meanNll(), 1e-4);
        // Both sides are f32 KV over the same pages: the same logits up to summation order.
        assertTrue(r.maxAbsDiff() < 1e-3, "max diff " + r.maxAbsDiff());
        assertEquals(1.0, r.top1Agreement(), 0.0);
        // Later requests reuse what earlier ones stored (a stream of 2 is one request's worth).
        if (length >= 300) assertTrue(r.reusedPositions() >= length / 2, "reused " + r.reusedPositions());
    }

    @Test
    void theSampledStreamIsFixedAndTheModelFindsItLikely() {
        CacheOptions f32 = CacheOptions.defaults(16, KvDtype.F32, Device.cpu());
        int[] a = TokenScorer.sample(MODEL, f32, 600);
        int[] b = TokenScorer.sample(MODEL, f32, 600);
        assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b));
        for (int t : a) assertTrue(t >= 0 && t < MODEL.vocab());
        // Drawn from the model's own softmax, the stream costs the model its entropy, well under
        // guessing (ln vocab); a uniformly random stream costs more than guessing.
        double sampled = TokenScorer.score(MODEL, f32, a).meanNllF32();
        int[] uniform = new int[a.length];
        SplitMix64 rng = new SplitMix64(1);
        for (int i = 0; i < uniform.length; i++) uniform[i] = (int) ((rng.nextLong() >>> 1) % MODEL.vocab());
        double random = TokenScorer.score(MODEL, f32, uniform).meanNllF32();
        assertTrue(sampled < Math.log(MODEL.vocab()), "sampled " + sampled + " vs ln vocab " + Math.log(MODEL.vocab()));
        assertTrue(sampled < random - 1, "sampled " + sampled + " vs uniform " + random);
    }

    @Test
    void drawingFollowsTheSoftmax() {
        float[] logits = {0f, (float) Math.log(3), Float.NEGATIVE_INFINITY, 0f};  // p = 0.2, 0.6, 0, 0.2
        assertEquals(0, TokenScorer.drawFromSoftmax(logits, 0.0));
        assertEquals(0, TokenScorer.drawFromSoftmax(logits, 0.199));
        assertEquals(1, TokenScorer.drawFromSoftmax(logits, 0.201));
        assertEquals(1, TokenScorer.drawFromSoftmax(logits, 0.799));
        assertEquals(3, TokenScorer.drawFromSoftmax(logits, 0.801));
        assertEquals(3, TokenScorer.drawFromSoftmax(logits, Math.nextDown(1.0)));
    }

    @Test
    void quantizedFormatsStayNearF32AndQ8BeatsQ4() {
        int[] stream = TokenScorer.sample(MODEL, CacheOptions.defaults(16, KvDtype.F32, Device.cpu()), 1200);
        TokenScorer.Result q8 = TokenScorer.score(MODEL, CacheOptions.defaults(16, KvDtype.Q8, Device.cpu()), stream);
        TokenScorer.Result q4 = TokenScorer.score(MODEL, CacheOptions.defaults(16, KvDtype.Q4, Device.cpu()), stream);
        TokenScorer.Result fp8 = TokenScorer.score(MODEL, CacheOptions.defaults(16, KvDtype.FP8_E4M3, Device.cpu()), stream);
        // The f32 side is the same computation each time.
        assertEquals(q8.meanNllF32(), q4.meanNllF32(), 1e-9);
        // Tolerances: several times the differences measured at 2000 tokens (README, "Quantized KV pages").
        assertEquals(q8.meanNllF32(), q8.meanNll(), 0.002);
        assertEquals(fp8.meanNllF32(), fp8.meanNll(), 0.01);
        assertEquals(q4.meanNllF32(), q4.meanNll(), 0.03);
        assertTrue(q8.meanAbsDiff() < q4.meanAbsDiff(), q8 + " vs " + q4);
        assertTrue(q8.maxAbsDiff() < q4.maxAbsDiff(), q8 + " vs " + q4);
        assertTrue(q8.top1Agreement() >= q4.top1Agreement(), q8 + " vs " + q4);
        assertTrue(q4.maxAbsDiff() > 0, "q4 must differ from f32 KV");
    }

    @Test
    void misuseIsRefused() {
        CacheOptions small = new CacheOptions(16, 4, KvDtype.F32, Device.cpu());
        assertThrows(IllegalArgumentException.class, () -> TokenScorer.score(MODEL, small, new int[] {1}));
        assertThrows(IllegalArgumentException.class, () -> TokenScorer.sample(MODEL, small, 65));
        assertThrows(IllegalArgumentException.class, () -> TokenScorer.score(MODEL, small, new int[65]));
        assertThrows(IllegalArgumentException.class, () -> TokenScorer.sample(MODEL, small, 0));
        assertEquals(63, TokenScorer.score(MODEL, small, TokenScorer.sample(MODEL, small, 64)).positions());
        assertThrows(IllegalArgumentException.class, () -> new Replay.Options(small, 1, SamplingOptions.GREEDY, MODEL,
                Replay.Mode.COMPARE, false, Double.NaN, SchedulePolicy.FCFS, 0, null, 1));
    }
}
