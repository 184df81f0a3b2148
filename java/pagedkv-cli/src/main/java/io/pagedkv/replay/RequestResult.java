package io.pagedkv.replay;

import io.pagedkv.Tier;
import java.util.List;

/**
 * What happened to one request in a run.
 *
 * @param request      the request
 * @param cachedTokens prompt positions reused from the cache when its sequence was created
 * @param generated    the tokens it generated
 * @param ttftNanos    from admission (its sequence created) to its first token; its prefill time
 *                     when it generates nothing
 * @param logits       the logits each generated token was chosen from, when the run records them
 *                     (for verification); empty otherwise
 * @param queuedNanos  from the start of the run (every request arrives then) to its admission
 * @param loadedTokens of {@code cachedTokens}, the positions brought back from each tier below the
 *                     pool, indexed by {@link Tier#code()}
 */
public record RequestResult(Request request, long cachedTokens, int[] generated, long ttftNanos, List<float[]> logits,
                            long queuedNanos, long[] loadedTokens) {
    public RequestResult(Request request, long cachedTokens, int[] generated, long ttftNanos, List<float[]> logits) {
        this(request, cachedTokens, generated, ttftNanos, logits, 0, new long[Tier.values().length]);
    }

    /** Positions brought back from {@code tier}. */
    public long loadedTokens(Tier tier) {
        return loadedTokens[tier.code()];
    }

    /** From arrival (the start of the run) to its first token: the queue plus {@link #ttftNanos()}. */
    public long latencyNanos() {
        return queuedNanos + ttftNanos;
    }

    public int promptTokens() {
        return request.prompt().length;
    }

    /** Prompt positions computed for this request. */
    public long computedTokens() {
        return promptTokens() - cachedTokens;
    }
}
