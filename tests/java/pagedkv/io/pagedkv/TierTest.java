package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tiers below the pool through the Java API: builder options, pages brought back with the
 * right KV (markers), per-sequence loaded counts, tier stats, prefetch, and a second cache on the
 * same disk directory.
 */
class TierTest {
    private static final int VOCAB = 32_000;

    private static CacheBuilder small(int pages) {
        return PagedKvCache.builder().layers(1).kvHeads(1).headDim(HEAD_DIM).pageSize(4).pages(pages).kvDtype(KvDtype.F32);
    }

    @Test
    void hostTierBringsBackEvictedPagesWithTheirKv() {
        Random random = new Random(1);
        try (PagedKvCache cache = small(16).hostTier(1 << 20).build()) {
            int[] prompt = randomTokens(random, 41, VOCAB);
            try (Sequence first = cache.createSequence(prompt)) {
                computeAll(first, "");
            }
            assertTrue(cache.clearUnused() >= 10);
            try (Sequence again = cache.createSequence(prompt)) {
                assertEquals(40, again.numCached());
                assertEquals(40, again.loadedTokens(Tier.HOST));
                assertEquals(0, again.loadedTokens(Tier.DISK));
                verify(again, "");
            }
            TierStats host = cache.tierStats(Tier.HOST);
            assertTrue(host.enabled());
            assertEquals(10, host.hits());
            assertEquals(0, host.verifyFailures());
            assertTrue(host.bytes() <= host.capacityBytes());
            assertFalse(cache.tierStats(Tier.REMOTE).enabled());
        }
    }

    @Test
    void prefetchLoadsIntoThePoolBeforeCreate() {
        Random random = new Random(2);
        try (PagedKvCache cache = small(32).hostTier(1 << 20).build()) {
            int[] prompt = randomTokens(random, 25, VOCAB);
            try (Sequence first = cache.createSequence(prompt, "tenant")) {
                computeAll(first, "tenant");
            }
            cache.clearUnused();
            byte[] salt = "tenant".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            assertEquals(24, cache.prefetch(prompt, salt));
            try (Sequence seq = cache.createSequence(prompt, salt)) {
                assertEquals(24, seq.numCached());
                assertEquals(0, seq.loadedTokens(Tier.HOST)); // in the pool already
                verify(seq, "tenant");
            }
            assertThrows(NullPointerException.class, () -> cache.prefetch(null, salt));
            assertThrows(PagedKvException.InvalidArgument.class, () -> cache.prefetch(new int[0], salt));
        }
    }

    @Test
    void aSecondCacheReusesTheDiskTier(@TempDir Path dir) throws Exception {
        Random random = new Random(3);
        int[] prompt = randomTokens(random, 33, VOCAB);
        try (PagedKvCache first = small(16).diskTier(dir, 1 << 20).tierNamespace("model-a").writeThrough(true).build()) {
            try (Sequence seq = first.createSequence(prompt)) {
                computeAll(seq, "");
            }
            first.flushTiers();
            assertEquals(8, first.tierStats(Tier.DISK).stores());
        }
        try (var files = Files.list(dir)) {
            assertEquals(8, files.filter(p -> p.toString().endsWith(".page")).count());
        }
        try (PagedKvCache other = small(16).diskTier(dir, 1 << 20).tierNamespace("model-b").build();
             Sequence seq = other.createSequence(prompt)) {
            assertEquals(0, seq.numCached(), "another namespace shares nothing");
        }
        try (PagedKvCache second = small(16).diskTier(dir, 1 << 20).tierNamespace("model-a").build();
             Sequence seq = second.createSequence(prompt)) {
            assertEquals(32, seq.numCached());
            assertEquals(32, seq.loadedTokens(Tier.DISK));
            verify(seq, "");
        }
        // A prefetch from disk returns at once; once it is in the pool, the create is a pool hit.
        try (PagedKvCache third = small(16).diskTier(dir, 1 << 20).tierNamespace("model-a").build()) {
            assertEquals(0, third.prefetch(prompt, new byte[0]), "the disk is read in the background");
            third.flushTiers();
            assertEquals(8, third.stats().pagesCached());
            try (Sequence seq = third.createSequence(prompt)) {
                assertEquals(32, seq.numCached());
                assertEquals(0, seq.loadedTokens(Tier.DISK), "in the pool already");
                verify(seq, "");
            }
        }
    }

    @Test
    void badTierOptionsAreInvalidArguments() {
        assertThrows(PagedKvException.InvalidArgument.class, () -> small(16).hostTier(10).build());
        assertThrows(PagedKvException.InvalidArgument.class, () -> small(16).remoteTier("http://x:1").build());
        assertThrows(PagedKvException.InvalidArgument.class, () -> small(16).tensorParallel(3, 2).build());
        assertThrows(PagedKvException.InvalidArgument.class, () -> small(16).diskTier(Path.of("/tmp"), 0).build());
    }
}
