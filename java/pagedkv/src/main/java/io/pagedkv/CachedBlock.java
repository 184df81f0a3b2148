package io.pagedkv;

import java.util.OptionalLong;

/**
 * One block a cache holds ({@link PagedKvCache#snapshot()}), with the hashes its events carry.
 *
 * @param blockHash       the block
 * @param parentBlockHash its parent; empty for the first block of a prompt
 * @param tokenIds        its page size tokens
 * @param medium          where it lives
 */
public record CachedBlock(long blockHash, OptionalLong parentBlockHash, int[] tokenIds, Medium medium) {}
