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

    /**
     * The fixed stream: {@code length} tokens the model writes itself with f32 KV, each drawn from
     * its softmax at temperature 1 by SplitMix64 from {@link #STREAM_SEED} (the first uniformly).
     * Text the model finds likely, as real text is for a trained model: its mean NLL is the model's
     * own entropy, and a KV format's excess over f32 is what the format costs. (A uniformly random
     * stream would score worse than guessing under any format and hide the differences.)
     *
     * @throws IllegalArgumentException if {@code length} is not positive or exceeds the cache's
     *                                  capacity in tokens
     */
    public static int[] sample(Model model, CacheOptions cache, int length) {
        if (length < 1) throw new IllegalArgumentException("a sampled stream needs at least 1 token");
        requireFits(cache, length);
        SplitMix64 rng = new SplitMix64(STREAM_SEED);
        int[] tokens = new int[length];
        tokens[0] = (int) ((rng.nextLong() >>> 1) % model.vocab());
        CacheOptions f32 = new CacheOptions(cache.pageSize(), cache.pages(), KvDtype.F32, cache.device(), false);
        try (PagedKvCache kv = f32.build(model, false);
             PagedKvAttention attention = new PagedKvAttention(kv, model.heads());
             Sequence seq = kv.createSequence(new int[] {tokens[0]})) {
            float[] logits = step(model, kv, attention, seq, new int[] {tokens[0]}, 0,
                    PagedKvAttention.Kernel.PREFILL)[0];
            for (int i = 1; i < length; i++) {
                tokens[i] = drawFromSoftmax(logits, rng.nextDouble());
                if (i + 1 == length) break;
                seq.append(tokens[i]);
                logits = step(model, kv, attention, seq, new int[] {tokens[i]}, i, PagedKvAttention.Kernel.DECODE)[0];
            }
        }
        return tokens;
    }

    /** The token whose cumulative softmax probability first exceeds {@code u} in [0, 1). */
    static int drawFromSoftmax(float[] logits, double u) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) max = Math.max(max, v);
        double sum = 0;
        for (float v : logits) sum += Math.exp(v - max);
        double target = u * sum, cumulative = 0;
        for (int t = 0; t < logits.length; t++) {
            cumulative += Math.exp(logits[t] - max);
            if (cumulative > target) return t;
        }
        return logits.length - 1;  // u * sum rounded up past the last cumulative sum
    }

    private static void requireFits(CacheOptions cache, int length) {
        long capacity = (long) cache.pages() * cache.pageSize();
        if (length > capacity) {
            throw new IllegalArgumentException("a stream of " + length + " tokens does not fit the cache's "
                    + capacity + " tokens (--pages x --page-size)");
        }
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
        requireFits(cache, stream.length);
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
        float[][] logits = step(model, cache, attention, seq, tokens, computed, PagedKvAttention.Kernel.PREFILL);
        float[][] out = new float[prompt.length][];
        System.arraycopy(logits, 0, out, computed, n);
        return out;
    }

    /**
     * Runs {@code tokens} at positions {@code first..} of {@code seq} (already appended) in one
     * batch with {@code kernel}, commits, and returns the logits after each of them.
     */
    private static float[][] step(Model model, PagedKvCache cache, PagedKvAttention attention, Sequence seq,
                                  int[] tokens, int first, PagedKvAttention.Kernel kernel) {
        int n = tokens.length;
        int[] positions = new int[n];
        int[] rows = new int[n];
        for (int i = 0; i < n; i++) {
            positions[i] = first + i;
            rows[i] = i;
        }
        try (Batch batch = cache.batch(List.of(seq))) {
            float[][] logits = attention.forward(model, batch, kernel, tokens, positions, rows);
            batch.commit();
            return logits;
        }
    }
}
