package io.pagedkv;

import java.util.List;

/**
 * Every block a cache holds at one moment ({@link PagedKvCache#snapshot()}).
 *
 * @param blocks        the blocks, parents before their children
 * @param nextBatchSeq  event batches with this {@link KvEventBatch#seq()} or later describe changes
 *                      after the snapshot; earlier ones, changes it already shows
 */
public record CacheSnapshot(List<CachedBlock> blocks, long nextBatchSeq) {
    public CacheSnapshot {
        blocks = List.copyOf(blocks);
    }
}
