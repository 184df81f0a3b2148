package io.pagedkv.replay;

import io.pagedkv.CacheStats;
import io.pagedkv.Tier;
import io.pagedkv.TierStats;
import java.util.List;
import java.util.Map;

/**
 * One run of a workload through a cache.
 *
 * @param requests       per request, in workload order
 * @param stats          the cache's counters at the end
 * @param wallNanos      the whole run
 * @param prefillNanos   time in prefill steps (admitted requests' prompts)
 * @param decodeNanos    time in decode steps
 * @param decodeTokens   tokens produced by decode steps (a request's first token comes from its prefill)
 * @param peakPagesInUse most pages held by live sequences at once
 * @param steps          model steps (prefill and decode)
 * @param cascadeSteps   steps that used the shared-prefix (cascade) kernel
 * @param preemptions    requests sent back to the queue for lack of pages
 * @param deferrals      times a request waited a step to reuse a co-joining request's prefix
 * @param schedule       the admission policy of the run
 * @param admissionOrder workload indices of the requests in the order they were first admitted
 * @param tiers          the stats of each tier below the pool at the end (those the cache has)
 */
public record RunResult(List<RequestResult> requests, CacheStats stats, long wallNanos,
                        long prefillNanos, long decodeNanos, long decodeTokens, int peakPagesInUse, long steps,
                        long cascadeSteps, long preemptions, long deferrals, SchedulePolicy schedule,
                        List<Integer> admissionOrder, Map<Tier, TierStats> tiers) {
    public RunResult {
        admissionOrder = List.copyOf(admissionOrder);
        tiers = Map.copyOf(tiers);
    }

    /** Positions brought back from {@code tier} over all requests. */
    public long loadedTokens(Tier tier) {
        return requests.stream().mapToLong(r -> r.loadedTokens(tier)).sum();
    }

    public long promptTokens() {
        return requests.stream().mapToLong(RequestResult::promptTokens).sum();
    }

    public long cachedTokens() {
        return requests.stream().mapToLong(RequestResult::cachedTokens).sum();
    }

    public long computedTokens() {
        return promptTokens() - cachedTokens();
    }

    public long generatedTokens() {
        return requests.stream().mapToLong(r -> r.generated().length).sum();
    }

    /** Reused over prompt positions. */
    public double hitRate() {
        long prompt = promptTokens();
        return prompt == 0 ? 0 : (double) cachedTokens() / prompt;
    }

    /** Mean time to first token in milliseconds. */
    public double meanTtftMillis() {
        return requests.stream().mapToLong(RequestResult::ttftNanos).average().orElse(0) / 1e6;
    }

    /** Mean time from arrival (the start of the run) to the first token, queue included, in milliseconds. */
    public double meanLatencyMillis() {
        return requests.stream().mapToLong(RequestResult::latencyNanos).average().orElse(0) / 1e6;
    }

    /** Most later-arriving requests admitted ahead of any one request (what the aging bound caps). */
    public int maxBypassed() {
        int worst = 0;
        for (int i = 0; i < admissionOrder.size(); i++) {
            int index = admissionOrder.get(i);
            int ahead = 0;
            for (int j = 0; j < i; j++) if (admissionOrder.get(j) > index) ahead++;
            worst = Math.max(worst, ahead);
        }
        return worst;
    }

    /** Decode throughput: tokens of decode steps per second of decode steps. */
    public double decodeTokensPerSecond() {
        return decodeNanos == 0 ? 0 : decodeTokens / (decodeNanos / 1e9);
    }
}
