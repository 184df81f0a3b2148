package io.pagedkv.replay;

import io.pagedkv.model.Model;
import io.pagedkv.model.PagedKvAttention;

import io.pagedkv.Batch;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.util.Arrays;
import java.util.List;

/**
 * The perplexity-style figure of a KV format: the mean negative log-likelihood of a fixed token
 * stream, teacher-forced (at each position the log-probability the model gives the stream's next
 * token), with the stream's KV in the format under test, and the same stream with f32 KV beside it
 * for |Δlogit| and top-1 agreement.
 *
 * <p>The stream is fed as {@link #REQUESTS} requests, each the stream up to a further point, in one
 * cache with reuse: a request reuses the pages its predecessors committed (full and partial pages)
 * and computes only the rest in one prefill, so scored positions attend over reused quantized
 * pages as a served prompt does. Each position is scored once, in the request that computed it.
 *
 * <p>Not thread-safe; builds and closes its own caches.
 */
public final class TokenScorer {
    /** Requests the stream is split into. */
    public static final int REQUESTS = 8;

    /** Seed of the stream's tokens. */
    public static final long STREAM_SEED = 0x5C0BE5L;

    /**
     * The outcome.
     *
     * @param positions       positions scored (the stream's length - 1)
     * @param reusedPositions positions the requests took from the cache instead of computing
     * @param meanNll         mean -log p(next token) with the format under test, in nats
     * @param meanNllF32      the same with f32 KV
     * @param maxAbsDiff      largest |logit difference| vs f32 KV over every scored position
     * @param meanAbsDiff     mean |logit difference| over every logit of every scored position
     * @param top1Matches     positions whose largest logit is the same token on both sides
     */
    public record Result(long positions, long reusedPositions, double meanNll, double meanNllF32, double maxAbsDiff,
                         double meanAbsDiff, long top1Matches) {
        /** Fraction of positions whose top-1 token agrees with f32 KV. */
        public double top1Agreement() {
            return positions == 0 ? 1.0 : (double) top1Matches / positions;
        }
    }

    private TokenScorer() {}

    /** The fixed stream: {@code length} tokens drawn uniformly from {@code [0, vocab)} by SplitMix64. */
    public static int[] stream(int length, int vocab) {
        SplitMix64 rng = new SplitMix64(STREAM_SEED);
        int[] tokens = new int[length];
        for (int i = 0; i < length; i++) tokens[i] = (int) ((rng.nextLong() >>> 1) % vocab);
        return tokens;
    }

    /**
     * Scores {@code stream} with KV stored as {@code cache} says (its tiers are not used) and with
     * f32 KV.
     *
     * @throws IllegalArgumentException if the stream is shorter than 2 tokens or longer than the
     *                                  cache holds
     */
    public static Result score(Model model, CacheOptions cache, int[] stream) {
        if (stream.length < 2) throw new IllegalArgumentException("a scored stream needs at least 2 tokens");
        long capacity = (long) cache.pages() * cache.pageSize();
        if (stream.length > capacity) {
            throw new IllegalArgumentException("a stream of " + stream.length + " tokens does not fit the cache's "
                    + capacity + " tokens (--pages x --page-size)");
        }
        CacheOptions tested = new CacheOptions(cache.pageSize(), cache.pages(), cache.kvDtype(), cache.device(),
                cache.hadamard());
        CacheOptions reference = tested.withKvDtype(KvDtype.F32);
        double nll = 0, nllF32 = 0, sumDiff = 0, maxDiff = 0;
        long logits = 0, top1 = 0, reused = 0;
        int scoredUpTo = 0;  // positions below this one are scored
        try (PagedKvCache a = tested.build(model, true); PagedKvCache b = reference.build(model, true);
             PagedKvAttention attendA = new PagedKvAttention(a, model.heads());
             PagedKvAttention attendB = new PagedKvAttention(b, model.heads())) {
            for (int r = 1; r <= REQUESTS; r++) {
                int end = (int) ((long) stream.length * r / REQUESTS);
                if (end <= scoredUpTo) continue;
                int[] prompt = Arrays.copyOf(stream, end);
                try (Sequence seqA = a.createSequence(prompt); Sequence seqB = b.createSequence(prompt)) {
                    reused += seqA.numComputed();
                    float[][] rowsA = compute(model, a, attendA, seqA, prompt);
                    float[][] rowsB = compute(model, b, attendB, seqB, prompt);
                    // A request reuses at most its predecessors' positions, all scored already.
                    for (int p = scoredUpTo; p < end && p + 1 < stream.length; p++) {
                        float[] x = rowsA[p];
                        float[] y = rowsB[p];
                        if (x == null || y == null) throw new IllegalStateException("position " + p + " was reused before it was scored");
                        int next = stream[p + 1];
                        nll += negativeLogLikelihood(x, next);
                        nllF32 += negativeLogLikelihood(y, next);
                        if (argmax(x) == argmax(y)) top1++;
                        for (int i = 0; i < x.length; i++) {
                            double d = Math.abs((double) x[i] - y[i]);
                            sumDiff += d;
                            if (d > maxDiff || Double.isNaN(d)) maxDiff = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
                        }
                        logits += x.length;
                        scoredUpTo = p + 1;
                    }
                }
            }
        }
        long positions = stream.length - 1;
        if (scoredUpTo != positions) throw new IllegalStateException("scored " + scoredUpTo + " of " + positions + " positions");
        return new Result(positions, reused, nll / positions, nllF32 / positions, maxDiff, sumDiff / logits, top1);
    }

    /** -log softmax(logits)[target], in double. */
    public static double negativeLogLikelihood(float[] logits, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) max = Math.max(max, v);
        double sum = 0;
        for (float v : logits) sum += Math.exp(v - max);
        return max + Math.log(sum) - logits[target];
    }

    private static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /**
     * Computes what {@code seq} did not reuse of {@code prompt} in one prefill and commits it; row
     * p holds the next-token logits after position p, null for reused positions.
     */
    private static float[][] compute(Model model, PagedKvCache cache, PagedKvAttention attention, Sequence seq,
                                     int[] prompt) {
        int computed = (int) seq.numComputed();
        int n = prompt.length - computed;
        int[] tokens = Arrays.copyOfRange(prompt, computed, prompt.length);
        int[] positions = new int[n];
        int[] rows = new int[n];
        for (int i = 0; i < n; i++) {
            positions[i] = computed + i;
            rows[i] = i;
        }
        float[][] logits;
        try (Batch batch = cache.batch(List.of(seq))) {
            attention.bind(batch, PagedKvAttention.Kernel.PREFILL);
            try {
                logits = model.forward(tokens, positions, rows, attention);
            } finally {
                attention.unbind();
            }
            batch.commit();
        }
        float[][] out = new float[prompt.length][];
        System.arraycopy(logits, 0, out, computed, n);
        return out;
    }
}
