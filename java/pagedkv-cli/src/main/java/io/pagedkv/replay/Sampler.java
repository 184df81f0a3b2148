package io.pagedkv.replay;

import java.util.Arrays;

/**
 * Picks the next token from logits: disallowed tokens removed, repetition penalty, then argmax
 * (greedy) or a draw from softmax(logits / temperature) restricted by top-k and top-p. Ties go to
 * the lower token id, so results are reproducible. Thread-safe (immutable; the random stream is
 * passed in).
 */
public final class Sampler {
    private final SamplingOptions options;
    private final int vocab;
    private final boolean[] disallowed;

    public Sampler(SamplingOptions options, int vocab) {
        this.options = options;
        this.vocab = vocab;
        this.disallowed = new boolean[vocab];
        for (int id : options.disallowed()) {
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("disallowed token " + id + " outside the vocabulary [0, " + vocab + ")");
            disallowed[id] = true;
        }
        int allowed = 0;
        for (boolean d : disallowed) if (!d) allowed++;
        if (allowed == 0) throw new IllegalArgumentException("every token is disallowed");
    }

    public SamplingOptions options() {
        return options;
    }

    /** A random stream for request number {@code index}. */
    public SplitMix64 streamFor(long index) {
        return SplitMix64.forStream(options.seed(), index);
    }

    /**
     * Chooses the next token.
     *
     * @param logits     next-token logits (not modified)
     * @param history    tokens so far (prompt and output), for the repetition penalty
     * @param historyLen how many entries of history are valid
     * @param rng        the request's stream (unused when greedy)
     */
    public int sample(float[] logits, int[] history, int historyLen, SplitMix64 rng) {
        float[] adjusted = adjustedLogits(logits, history, historyLen);
        if (options.greedy()) return argmax(adjusted);
        double[] p = distribution(adjusted);
        double u = rng.nextDouble();
        double cumulative = 0;
        int lastNonZero = -1;
        for (int id = 0; id < vocab; id++) {
            if (p[id] == 0) continue;
            cumulative += p[id];
            lastNonZero = id;
            if (u < cumulative) return id;
        }
        return lastNonZero; // rounding left u just above the total
    }

    /**
     * The distribution {@link #sample} draws from (one-hot at the argmax when greedy), after the
     * disallowed tokens, repetition penalty, temperature, top-k and top-p.
     */
    public double[] probabilities(float[] logits, int[] history, int historyLen) {
        float[] adjusted = adjustedLogits(logits, history, historyLen);
        if (options.greedy()) {
            double[] p = new double[vocab];
            p[argmax(adjusted)] = 1;
            return p;
        }
        return distribution(adjusted);
    }

    private float[] adjustedLogits(float[] logits, int[] history, int historyLen) {
        if (logits.length != vocab) throw new IllegalArgumentException("expected " + vocab + " logits, got " + logits.length);
        float[] a = logits.clone();
        if (options.repetitionPenalty() != 1f) {
            boolean[] seen = new boolean[vocab];
            for (int i = 0; i < historyLen; i++) {
                int id = history[i];
                if (id >= 0 && id < vocab && !seen[id]) {
                    seen[id] = true;
                    a[id] = a[id] > 0 ? a[id] / options.repetitionPenalty() : a[id] * options.repetitionPenalty();
                }
            }
        }
        for (int id = 0; id < vocab; id++) if (disallowed[id]) a[id] = Float.NEGATIVE_INFINITY;
        return a;
    }

    private double[] distribution(float[] adjusted) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : adjusted) max = Math.max(max, v);
        double[] p = new double[vocab];
        double sum = 0;
        for (int id = 0; id < vocab; id++) {
            if (adjusted[id] == Float.NEGATIVE_INFINITY) continue;
            p[id] = Math.exp((adjusted[id] - max) / options.temperature());
            sum += p[id];
        }
        for (int id = 0; id < vocab; id++) p[id] /= sum;
        // Keep the most likely tokens: by probability, ties to the lower id.
        Integer[] order = new Integer[vocab];
        for (int i = 0; i < vocab; i++) order[i] = i;
        Arrays.sort(order, (x, y) -> p[x] != p[y] ? Double.compare(p[y], p[x]) : Integer.compare(x, y));
        int keep = 0;
        double mass = 0;
        int limit = options.topK() > 0 ? Math.min(options.topK(), vocab) : vocab;
        while (keep < limit && p[order[keep]] > 0) {
            mass += p[order[keep]];
            keep++;
            if (mass >= options.topP()) break;
        }
        double[] kept = new double[vocab];
        for (int i = 0; i < keep; i++) kept[order[i]] = p[order[i]] / mass;
        return kept;
    }

    private static int argmax(float[] a) {
        int best = -1;
        for (int id = 0; id < a.length; id++) {
            if (a[id] == Float.NEGATIVE_INFINITY) continue;
            if (best < 0 || a[id] > a[best]) best = id;
        }
        return best;
    }
}
