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
        int[] stream = TokenScorer.stream(length, MODEL.vocab());
        TokenScorer.Result r = TokenScorer.score(MODEL, CacheOptions.defaults(pageSize, KvDtype.F32, Device.cpu()), stream);
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
    void theStreamIsFixedAndCoversTheVocabulary() {
        int[] a = TokenScorer.stream(2000, MODEL.vocab());
        int[] b = TokenScorer.stream(2000, MODEL.vocab());
        assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b));
        long distinct = java.util.Arrays.stream(a).distinct().count();
        assertTrue(distinct > MODEL.vocab() * 0.9, "distinct tokens " + distinct);
        for (int t : a) assertTrue(t >= 0 && t < MODEL.vocab());
    }

    @Test
    void quantizedFormatsStayNearF32AndQ8BeatsQ4() {
        int[] stream = TokenScorer.stream(1200, MODEL.vocab());
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
        assertThrows(IllegalArgumentException.class, () -> TokenScorer.score(MODEL, small, TokenScorer.stream(65, MODEL.vocab())));
        assertEquals(63, TokenScorer.score(MODEL, small, TokenScorer.stream(64, MODEL.vocab())).positions());
        assertThrows(IllegalArgumentException.class, () -> new Replay.Options(small, 1, SamplingOptions.GREEDY, MODEL,
                Replay.Mode.COMPARE, false, Double.NaN, SchedulePolicy.FCFS, 0, null, 1));
    }
}
