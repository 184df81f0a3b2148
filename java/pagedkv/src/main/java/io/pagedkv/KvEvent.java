package io.pagedkv;

import java.util.Arrays;
import java.util.OptionalLong;

/**
 * A change of the blocks a cache holds, in vLLM's KV-event terms (its {@code BlockStored},
 * {@code BlockRemoved} and {@code AllBlocksCleared}). A block is a full page of the prefix index;
 * its hash is the same in every process and on every server for the same tokens, salt and page
 * size (see {@code pagedkv.h}). The arrays are copies owned by the event; do not modify them.
 */
public sealed interface KvEvent {
    /**
     * Blocks joined the index: a chain, each block the parent of the next.
     *
     * @param blockHashes     the blocks, parents first
     * @param parentBlockHash the parent of the first block; empty for the first block of a prompt
     * @param tokenIds        {@code blockHashes.length * blockSize} token ids, block by block
     * @param blockSize       tokens per block (the page size)
     * @param medium          where the blocks live
     */
    record BlockStored(long[] blockHashes, OptionalLong parentBlockHash, int[] tokenIds, int blockSize, Medium medium)
            implements KvEvent {
        @Override
        public String toString() {
            return "BlockStored" + Arrays.toString(blockHashes) + " under " + parentBlockHash + " (" + medium + ")";
        }
    }

    /**
     * Blocks left the index (eviction, {@link PagedKvCache#clearUnused()}).
     *
     * @param blockHashes the blocks
     * @param medium      where they were
     */
    record BlockRemoved(long[] blockHashes, Medium medium) implements KvEvent {
        @Override
        public String toString() {
            return "BlockRemoved" + Arrays.toString(blockHashes) + " (" + medium + ")";
        }
    }

    /** {@link PagedKvCache#clearUnused()} left no block in the index. */
    record AllBlocksCleared() implements KvEvent {}
}
