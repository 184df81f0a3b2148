package io.pagedkv;

/**
 * A snapshot of a cache's counters ({@link PagedKvCache#stats()}).
 *
 * @param pagesTotal pages in the pool
 * @param pagesFree pages holding nothing
 * @param pagesCached indexed pages no sequence holds: reusable and evictable
 * @param pagesInUse pages held by at least one sequence
 * @param indexNodes pages in the prefix index (full and partial)
 * @param liveSequences sequences not yet released
 * @param promptTokens sum of prompt lengths at sequence creation
 * @param reusedTokens prompt positions served from the cache at creation
 * @param computedTokens positions committed as newly computed
 * @param evictions pages reclaimed from the index
 * @param cowCopies page copies: partial-prefix copies and copy-on-write
 * @param dedupHits committed pages replaced by an identical indexed page
 * @param kvBytesPerToken bytes of one token's K and V in all layers, scales included
 */
public record CacheStats(int pagesTotal, int pagesFree, int pagesCached, int pagesInUse, int indexNodes,
                         int liveSequences, long promptTokens, long reusedTokens, long computedTokens,
                         long evictions, long cowCopies, long dedupHits, double kvBytesPerToken) {
    /** Reused over prompt tokens; 0 before the first prompt. */
    public double hitRate() {
        return promptTokens == 0 ? 0.0 : (double) reusedTokens / promptTokens;
    }
}
