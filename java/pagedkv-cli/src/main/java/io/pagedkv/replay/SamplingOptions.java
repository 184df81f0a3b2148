package io.pagedkv.replay;

import java.util.Arrays;

/**
 * How the next token is chosen from the logits.
 *
 * @param temperature       0 = greedy (argmax); above 0 the logits are divided by it and a token is drawn
 * @param topK              keep only the k most likely tokens before drawing (0 = all)
 * @param topP              keep the smallest set of most likely tokens whose probability reaches p (1 = all)
 * @param repetitionPenalty divides positive (multiplies negative) logits of tokens already in the
 *                          prompt or output, as in CTRL (1 = off); also applies when greedy
 * @param seed              seed of the draws; request i uses its own stream, so its output does not
 *                          depend on the batch it ran in
 * @param disallowed        token ids never produced
 */
public record SamplingOptions(float temperature, int topK, float topP, float repetitionPenalty, long seed,
                              int[] disallowed) {
    public static final SamplingOptions GREEDY = new SamplingOptions(0f, 0, 1f, 1f, 0L, new int[0]);

    public SamplingOptions {
        if (!(temperature >= 0f) || Float.isInfinite(temperature)) throw new IllegalArgumentException("temperature must be >= 0");
        if (topK < 0) throw new IllegalArgumentException("top-k must be >= 0");
        if (!(topP > 0f && topP <= 1f)) throw new IllegalArgumentException("top-p must be in (0, 1]");
        if (!(repetitionPenalty > 0f) || Float.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetition penalty must be > 0");
        }
        disallowed = disallowed == null ? new int[0] : disallowed.clone();
    }

    public boolean greedy() {
        return temperature == 0f;
    }

    /** Same options drawing with another seed. */
    public SamplingOptions withSeed(long newSeed) {
        return new SamplingOptions(temperature, topK, topP, repetitionPenalty, newSeed, disallowed);
    }

    /** One line for reports. */
    public String describe() {
        StringBuilder sb = new StringBuilder(greedy() ? "greedy" : "temperature " + temperature);
        if (!greedy() && topK > 0) sb.append(", top-k ").append(topK);
        if (!greedy() && topP < 1f) sb.append(", top-p ").append(topP);
        if (repetitionPenalty != 1f) sb.append(", repetition penalty ").append(repetitionPenalty);
        if (!greedy()) sb.append(", seed ").append(seed);
        if (disallowed.length > 0) sb.append(", disallowed ").append(Arrays.toString(disallowed));
        return sb.toString();
    }
}
