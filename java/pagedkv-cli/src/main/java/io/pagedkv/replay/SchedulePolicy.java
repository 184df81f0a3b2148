package io.pagedkv.replay;

/**
 * Which waiting request the replay scheduler admits next.
 *
 * <p>{@link #LPM} (longest prefix match, as SGLang's cache-aware scheduling): the waiting request
 * whose prompt has the longest prefix in the cache now ({@link io.pagedkv.PagedKvCache#matchLength},
 * which changes nothing), earliest first on ties; so a request is served while its prefix is still
 * cached, before other requests evict it. Starvation is bounded: a request that later requests were
 * admitted ahead of {@code agingBound} times is admitted next, whatever its match.
 */
public enum SchedulePolicy {
    /** First come, first served: the order of the workload file. */
    FCFS,
    /** Longest cached prefix first, with an aging bound. */
    LPM
}
