package io.pagedkv;

/**
 * Counters of one tier below the pool ({@link PagedKvCache#tierStats(Tier)}).
 *
 * @param enabled false when the cache has no such tier (every count 0)
 * @param pages page objects held (Redis: stored by this cache)
 * @param bytes their bytes
 * @param capacityBytes the byte budget (Redis: 0)
 * @param hits pages loaded from this tier into the pool
 * @param misses pages asked for that this tier did not hold intact
 * @param verifyFailures objects found but refused (header, tokens, size or checksum mismatch)
 * @param loads objects read
 * @param loadBytes their bytes
 * @param loadNanos time spent reading them
 * @param stores objects written
 * @param storeBytes their bytes
 * @param storeNanos time spent writing them
 * @param droppedStores stores given up (queue full, no room, tier failing)
 * @param evictions objects this tier let go to make room (to the next tier)
 * @param errors I/O, connection and protocol errors
 */
public record TierStats(boolean enabled, long pages, long bytes, long capacityBytes, long hits, long misses,
                        long verifyFailures, long loads, long loadBytes, long loadNanos, long stores,
                        long storeBytes, long storeNanos, long droppedStores, long evictions, long errors) {}
