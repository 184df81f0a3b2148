package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The reuse semantics of docs/semantics.md, checked through the public API and the page contents. */
class PrefixReuseTest {
    private static final int VOCAB = 32_000;

    /**
     * ExLlamaV2's example: a 400-token system prompt, a 200-token shared context, and three
     * requests with different 80/81/82-token suffixes. The first computes everything; each later
     * one reuses exactly the 600 shared positions, whatever the page size (a hit is not rounded
     * down to a page boundary).
     */
    @ParameterizedTest
    @ValueSource(ints = {16, 256})
    void exllamaScenario(int pageSize) {
        Random random = new Random(pageSize);
        int[] prefix = randomTokens(random, 400, VOCAB);
        int[] middle = randomTokens(random, 200, VOCAB);
        int[][] suffixes = {randomTokens(random, 80, VOCAB), randomTokens(random, 81, VOCAB), randomTokens(random, 82, VOCAB)};
        suffixes[0][0] = 1; // distinct first suffix tokens, so the common prefix is exactly 600
        suffixes[1][0] = 2;
        suffixes[2][0] = 3;
        try (PagedKvCache cache = cache(pageSize, 4096 / pageSize * 8)) {
            Sequence first = cache.createSequence(concat(prefix, middle, suffixes[0]));
            assertEquals(0, first.numCached());
            assertEquals(680, first.numTokens());
            assertEquals(0, first.numComputed());
            computeAll(first, "");
            long[] expected = {0, 600, 600};
            for (int i = 1; i < 3; i++) {
                try (Sequence next = cache.createSequence(concat(prefix, middle, suffixes[i]))) {
                    assertEquals(expected[i], next.numCached(), "request " + i);
                    assertEquals(600, next.numComputed());
                    verify(next, "");
                    // Full pages of the shared part are shared by reference, not copied.
                    int fullPages = 600 / pageSize;
                    assertArrayEquals(Arrays.copyOf(first.blockTable(), fullPages), Arrays.copyOf(next.blockTable(), fullPages));
                    assertNotEquals(first.blockTable()[fullPages], next.blockTable()[fullPages], "the partial page is a copy");
                    computeAll(next, "");
                    verify(next, "");
                }
            }
            first.close();
            CacheStats stats = cache.stats();
            assertEquals(2043, stats.promptTokens());
            assertEquals(1200, stats.reusedTokens());
            assertEquals(680 + 81 + 82, stats.computedTokens());
            assertEquals(1200.0 / 2043, stats.hitRate(), 1e-12);
            assertEquals(0, stats.liveSequences());
            assertEquals(0, stats.pagesInUse());
            assertConsistent(stats);
        }
    }

    /** A chat: every turn resends the whole conversation; the partly filled last page of the released turn is reused. */
    @Test
    void multiTurnChatReusesPartialLastPage() {
        Random random = new Random(7);
        try (PagedKvCache cache = cache(16, 256)) {
            int[] conversation = randomTokens(random, 37, VOCAB);
            for (int turn = 0; turn < 5; turn++) {
                long cowBefore = cache.stats().cowCopies();
                try (Sequence seq = cache.createSequence(conversation)) {
                    long expectedCached = turn == 0 ? 0 : conversation.length - (23 + turn);
                    assertEquals(expectedCached, seq.numCached(), "turn " + turn);
                    verify(seq, "");
                    if (turn > 0 && expectedCached % 16 != 0)
                        assertEquals(cowBefore + 1, cache.stats().cowCopies(), "the partial page is copied once");
                    computeAll(seq, "");
                    for (int step = 0; step < 20 + turn; step++) { // decode: one token per step
                        seq.append(random.nextInt(VOCAB));
                        computeAll(seq, "");
                    }
                    verify(seq, "");
                    conversation = concat(seq.tokens(), randomTokens(random, 23 + turn + 1, VOCAB));
                }
            }
            assertConsistent(cache.stats());
        }
    }

    @Test
    void lastTokenIsAlwaysComputed() {
        try (PagedKvCache cache = cache(4, 64)) {
            int[] prompt = {5, 6, 7, 8, 9, 10, 11, 12};
            try (Sequence seq = cache.createSequence(prompt)) {
                computeAll(seq, "");
            }
            try (Sequence again = cache.createSequence(prompt)) {
                assertEquals(7, again.numCached());
                assertEquals(1, again.slotMapping().length);
                verify(again, "");
            }
            try (Sequence one = cache.createSequence(new int[] {5})) {
                assertEquals(0, one.numCached());
                assertEquals(1, one.slotMapping().length);
            }
        }
    }

    @Test
    void releaseThenRematchThenClear() {
        try (PagedKvCache cache = cache(4, 64)) {
            int[] prompt = new int[18];
            Arrays.setAll(prompt, i -> 100 + i);
            try (Sequence seq = cache.createSequence(prompt)) {
                computeAll(seq, "");
            }
            CacheStats afterRelease = cache.stats();
            assertEquals(0, afterRelease.pagesInUse());
            assertEquals(5, afterRelease.pagesCached(), "4 full pages + the partial tail stay cached: " + afterRelease);
            int[] longer = concat(prompt, new int[] {1, 2, 3});
            try (Sequence seq = cache.createSequence(longer)) {
                assertEquals(18, seq.numCached());
                verify(seq, "");
            }
            int cached = cache.stats().pagesCached();
            assertTrue(cached >= 5, "the pages of both released sequences stay cached");
            assertEquals(cached, cache.clearUnused());
            CacheStats cleared = cache.stats();
            assertEquals(0, cleared.pagesCached());
            assertEquals(cleared.pagesTotal(), cleared.pagesFree());
            try (Sequence seq = cache.createSequence(longer)) {
                assertEquals(0, seq.numCached());
            }
        }
    }

    /** Prefixes are shared only under equal isolation keys. */
    @Test
    void saltIsolation() {
        int[] prompt = new int[30];
        Arrays.setAll(prompt, i -> 7 * i + 1);
        try (PagedKvCache cache = cache(8, 64)) {
            try (Sequence a = cache.createSequence(prompt, "tenant-a")) {
                computeAll(a, "tenant-a");
            }
            try (Sequence b = cache.createSequence(prompt, "tenant-b")) {
                assertEquals(0, b.numCached());
                computeAll(b, "tenant-b");
            }
            try (Sequence none = cache.createSequence(prompt)) {
                assertEquals(0, none.numCached(), "no salt is a key of its own");
            }
            try (Sequence a = cache.createSequence(prompt, "tenant-a".getBytes(java.nio.charset.StandardCharsets.UTF_8))) {
                assertEquals(29, a.numCached(), "byte[] and String salts are the same key");
                verify(a, "tenant-a");
            }
            try (Sequence b = cache.createSequence(prompt, "tenant-b")) {
                assertEquals(29, b.numCached());
                verify(b, "tenant-b");
            }
            try (Sequence empty = cache.createSequence(prompt, "")) {
                assertEquals(0, empty.numCached(), "the empty salt was never computed");
            }
        }
    }

    @Test
    void noReuseCacheComputesEverything() {
        try (PagedKvCache cache = PagedKvCache.builder().layers(1).kvHeads(1).headDim(8).pageSize(4).pages(32)
                .kvDtype(KvDtype.F32).reuse(false).build()) {
            int[] prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9};
            try (Sequence seq = cache.createSequence(prompt)) {
                computeAll(seq, "");
            }
            try (Sequence seq = cache.createSequence(prompt)) {
                assertEquals(0, seq.numCached());
            }
            assertEquals(0, cache.stats().reusedTokens());
        }
    }

    /** Two requests for the same prompt computed side by side: the second commit finds the first's pages. */
    @Test
    void dedupOnCommit() {
        int[] prompt = new int[21];
        Arrays.setAll(prompt, i -> 3 * i);
        try (PagedKvCache cache = cache(4, 64);
             Sequence a = cache.createSequence(prompt);
             Sequence b = cache.createSequence(prompt)) {
            assertEquals(0, b.numCached(), "nothing computed yet");
            assertEquals(12, cache.stats().pagesInUse());
            writeUpTo(a, "", 21);
            writeUpTo(b, "", 21);
            a.commitAll();
            b.commitAll();
            CacheStats stats = cache.stats();
            assertEquals(5, stats.dedupHits(), "b's 5 full pages are duplicates of a's");
            assertEquals(7, stats.pagesInUse(), "5 shared full pages + 2 private tails: " + stats);
            assertArrayEquals(Arrays.copyOf(a.blockTable(), 5), Arrays.copyOf(b.blockTable(), 5));
            assertNotEquals(a.blockTable()[5], b.blockTable()[5]);
            verify(a, "");
            verify(b, "");
            assertConsistent(stats);
        }
    }

    /** Fork shares every page; the first write into the shared partial page copies it. */
    @Test
    void forkAndCopyOnWrite() {
        try (PagedKvCache cache = cache(4, 64);
             Sequence parent = cache.createSequence(new int[] {10, 11, 12, 13, 14, 15})) {
            computeAll(parent, "");
            int[] parentTable = parent.blockTable();
            try (Sequence child = parent.fork()) {
                assertNotEquals(parent.id(), child.id());
                assertArrayEquals(parentTable, child.blockTable(), "a fork shares every page");
                assertArrayEquals(parent.tokens(), child.tokens());
                assertEquals(6, child.numComputed());
                long cow = cache.stats().cowCopies();

                child.append(99);
                int[] childTable = child.blockTable();
                assertEquals(parentTable[0], childTable[0], "the full page stays shared");
                assertNotEquals(parentTable[1], childTable[1], "the partial page is copied before the child writes");
                assertEquals(cow + 1, cache.stats().cowCopies());
                verify(child, ""); // the copy holds the parent's first two positions of that page
                computeAll(child, "");

                MemorySegmentSnapshot parentTail = MemorySegmentSnapshot.of(cache.page(parentTable[1]));
                parent.append(42);
                assertArrayEquals(parentTable, parent.blockTable(), "the parent owns its page alone now: no copy");
                computeAll(parent, "");
                verify(parent, "");
                verify(child, "");
                // The parent's write landed in its own page only: the child's copy still says 99 at position 6.
                assertEquals(prefixHashes("", child.tokens())[6], tokenK(cache, childTable[1], 2).get(java.lang.foreign.ValueLayout.JAVA_INT, 0));
                assertFalse(parentTail.equalsNow(cache.page(parentTable[1])), "the parent's page changed");
            }
            verify(parent, "");
        }
    }

    /** Rejected speculative tokens: truncate, append others; what was computed before stays matchable. */
    @Test
    void truncateAndReappend() {
        int[] prompt = new int[20];
        Arrays.setAll(prompt, i -> 500 + i);
        try (PagedKvCache cache = cache(16, 64)) {
            try (Sequence seq = cache.createSequence(prompt)) {
                computeAll(seq, "");
                seq.truncate(10);
                assertEquals(10, seq.numTokens());
                assertEquals(10, seq.numComputed());
                assertArrayEquals(Arrays.copyOf(prompt, 10), seq.tokens());
                seq.append(1, 2, 3, 4, 5);
                assertEquals(15, seq.numTokens());
                assertEquals(5, seq.slotMapping().length);
                computeAll(seq, "");
                verify(seq, "");
                seq.truncate(15); // a no-op truncate is allowed
                assertEquals(15, seq.numTokens());
            }
            int[] rewritten = concat(Arrays.copyOf(prompt, 10), new int[] {1, 2, 3, 4, 5, 6});
            try (Sequence seq = cache.createSequence(rewritten)) {
                assertEquals(15, seq.numCached());
                verify(seq, "");
            }
            try (Sequence seq = cache.createSequence(concat(prompt, new int[] {7}))) {
                assertEquals(20, seq.numCached(), "positions computed before the truncate are still known");
                verify(seq, "");
            }
        }
    }

    /** A leaf of the trie that is least recently used goes first; pages in use never go. */
    @Test
    void evictionTakesLeastRecentlyUsedLeaves() {
        try (PagedKvCache cache = cache(4, 6)) {
            int[] a = {1, 2, 3, 4, 5, 6, 7, 8};
            int[] b = {21, 22, 23, 24, 25, 26, 27, 28};
            try (Sequence seq = cache.createSequence(a)) {
                computeAll(seq, "");
            }
            try (Sequence seq = cache.createSequence(b)) {
                computeAll(seq, "");
            }
            try (Sequence touch = cache.createSequence(concat(a, new int[] {9, 9, 9, 9}))) {
                assertEquals(8, touch.numCached()); // a's pages are now more recent than b's
            }
            CacheStats before = cache.stats();
            assertEquals(4, before.pagesCached());
            assertEquals(2, before.pagesFree());
            try (Sequence big = cache.createSequence(randomTokens(new Random(1), 16, 1000))) {
                assertEquals(0, big.numCached());
                CacheStats during = cache.stats();
                assertEquals(2, during.evictions() - before.evictions());
                assertEquals(2, during.pagesCached(), during.toString());
                assertEquals(4, during.pagesInUse());
                assertConsistent(during);
            }
            try (Sequence again = cache.createSequence(concat(a, new int[] {0}))) {
                assertEquals(8, again.numCached(), "a was used last: it survives");
                verify(again, "");
            }
            try (Sequence again = cache.createSequence(concat(b, new int[] {0}))) {
                assertEquals(0, again.numCached(), "b was least recently used: evicted");
            }
        }
    }

    /** A parent page is not evicted before its children, even when it was inserted earlier. */
    @Test
    void evictionNeverOrphansAChild() {
        try (PagedKvCache cache = cache(4, 4)) {
            int[] x = {1, 2, 3, 4, 5, 6, 7, 8};
            int[] y = {31, 32, 33, 34};
            Sequence sx = cache.createSequence(x);
            writeUpTo(sx, "", 4);
            sx.commit(4); // x's first page enters the index first
            try (Sequence sy = cache.createSequence(concat(y, new int[] {35}))) {
                writeUpTo(sy, "", 4);
                sy.commit(4);
            }
            computeAll(sx, "");
            sx.close();
            try (Sequence z = cache.createSequence(new int[] {50, 51, 52, 53, 54, 55, 56, 57})) {
                assertEquals(0, z.numCached());
            }
            // One page had to go (1 free + 3 cached, 2 needed): a leaf, so x's chain stays whole or loses its tail.
            try (Sequence again = cache.createSequence(concat(x, new int[] {0}))) {
                assertTrue(again.numCached() == 8 || again.numCached() == 4, "x reuses " + again.numCached());
                verify(again, "");
            }
            assertConsistent(cache.stats());
        }
    }

    /** An operation that needs pages gets all of them or fails and changes nothing. */
    @Test
    void outOfPagesIsAllOrNothing() {
        try (PagedKvCache cache = cache(4, 4);
             Sequence holder = cache.createSequence(new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10})) {
            computeAll(holder, "");
            CacheStats before = cache.stats();
            assertEquals(1, before.pagesFree());
            var error = assertThrows(OutOfPagesException.class,
                    () -> cache.createSequence(new int[] {40, 41, 42, 43, 44, 45, 46, 47, 48}));
            assertFalse(error.getMessage().isBlank());
            assertEquals(before, cache.stats(), "a failed create changes nothing");

            assertThrows(OutOfPagesException.class, () -> holder.append(new int[10]));
            assertEquals(before, cache.stats(), "a failed append changes nothing");
            assertEquals(10, holder.numTokens());
            assertEquals(10, holder.numComputed());

            holder.append(11, 12, 13, 14, 15, 16); // fits: 2 free slots in the tail + 4 in the last free page
            assertEquals(16, holder.numTokens());
            assertEquals(0, cache.stats().pagesFree());
            verify(holder, "");
        }
    }

    /**
     * (d) A partial hit whose donor page is the only evictable one: the run is copied into the free
     * page, and the donor itself can then be evicted for the prompt's second page. Counting the
     * donor as unavailable would report out of pages with enough pages in the pool.
     */
    @Test
    void partialDonorIsNoReasonToRunOutOfPages() {
        Random random = new Random(77);
        try (PagedKvCache cache = cache(4, 2)) {
            int[] donor = randomTokens(random, 3, 1000);
            try (Sequence seq = cache.createSequence(donor)) {
                computeAll(seq, ""); // one partly filled page, which becomes a cached donor on release
            }
            CacheStats before = cache.stats();
            assertEquals(1, before.pagesFree(), before.toString());
            assertEquals(1, before.pagesCached(), before.toString());
            int[] prompt = concat(Arrays.copyOf(donor, 2), new int[] {donor[2] + 1}, randomTokens(random, 3, 1000));
            try (Sequence seq = cache.createSequence(prompt)) { // two pages: a partial match of 2 with the donor
                assertTrue(seq.numCached() == 2 || seq.numCached() == 0, "reused " + seq.numCached());
                assertEquals(2, seq.blockTable().length);
                verify(seq, "");
                computeAll(seq, "");
                verify(seq, "");
                CacheStats during = cache.stats();
                assertEquals(2, during.pagesInUse(), during.toString());
                assertConsistent(during);
            }
            assertConsistent(cache.stats());
        }
    }

    /** A snapshot of a segment's bytes, to compare after a write. */
    record MemorySegmentSnapshot(byte[] bytes) {
        static MemorySegmentSnapshot of(java.lang.foreign.MemorySegment segment) {
            return new MemorySegmentSnapshot(segment.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        }

        boolean equalsNow(java.lang.foreign.MemorySegment segment) {
            return Arrays.equals(bytes, segment.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        }
    }
}
