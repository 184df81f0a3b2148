package io.pagedkv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

/**
 * Test fixture: small f32 caches whose K slabs carry, for every computed position, a marker that
 * identifies the whole prefix up to it (a hash of the salt and the tokens). A reused page whose
 * marker differs from the hash of the new prompt is wrong KV, whatever the counters say.
 */
final class Markers {
    static final int HEAD_DIM = 8;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;

    private Markers() {}

    /** One layer, one KV head, head dim 8, f32: 256-byte pages at page size 4. */
    static PagedKvCache cache(int pageSize, int pages) {
        return PagedKvCache.builder().layers(1).kvHeads(1).headDim(HEAD_DIM).pageSize(pageSize).pages(pages)
                .kvDtype(KvDtype.F32).build();
    }

    static int[] randomTokens(Random random, int n, int vocab) {
        int[] tokens = new int[n];
        for (int i = 0; i < n; i++) tokens[i] = random.nextInt(vocab);
        return tokens;
    }

    static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] part : parts) n += part.length;
        int[] all = new int[n];
        int at = 0;
        for (int[] part : parts) {
            System.arraycopy(part, 0, all, at, part.length);
            at += part.length;
        }
        return all;
    }

    /** Marker of position i: a hash of the salt and tokens[0..i]. */
    static int[] prefixHashes(String salt, int[] tokens) {
        int[] hashes = new int[tokens.length];
        int h = salt.hashCode() * 31 + 17;
        for (int i = 0; i < tokens.length; i++) {
            h = h * 1_000_003 + tokens[i] + 1;
            hashes[i] = h == 0 ? 1 : h; // 0 is what an unwritten page reads
            h = hashes[i];
        }
        return hashes;
    }

    /** Element 0 and 1 of (layer 0, K, head 0, token) in the given page. */
    static MemorySegment tokenK(PagedKvCache cache, int page, int tokenInPage) {
        CacheLayout layout = cache.layout();
        return cache.slab(page, 0, KvKind.K).asSlice(layout.tokenOffset(0, tokenInPage), (long) HEAD_DIM * 4);
    }

    static void write(PagedKvCache cache, long slot, int marker, long position) {
        int ps = cache.layout().pageSize();
        MemorySegment k = tokenK(cache, (int) (slot / ps), (int) (slot % ps));
        k.setAtIndex(INT, 0, marker);
        k.setAtIndex(INT, 1, (int) position);
    }

    /**
     * Writes the markers of positions [numComputed, upTo) through the slot mapping (checking it
     * against the block table), as a model step would write their K/V; the caller then commits.
     */
    static void writeUpTo(Sequence seq, String salt, long upTo) {
        PagedKvCache cache = seq.cache();
        int ps = cache.layout().pageSize();
        int[] tokens = seq.tokens();
        int[] table = seq.blockTable();
        long computed = seq.numComputed();
        long[] slots = seq.slotMapping();
        assertEquals(tokens.length - computed, slots.length, "slot mapping covers the positions to compute");
        int[] hashes = prefixHashes(salt, tokens);
        for (long pos = computed; pos < upTo; pos++) {
            long slot = slots[(int) (pos - computed)];
            assertEquals((long) table[(int) (pos / ps)] * ps + pos % ps, slot, "slot of position " + pos);
            write(cache, slot, hashes[(int) pos], pos);
        }
    }

    /** Writes markers for every position to compute and commits them all. */
    static void computeAll(Sequence seq, String salt) {
        writeUpTo(seq, salt, seq.numTokens());
        seq.commitAll();
    }

    /** Every computed position of {@code seq} holds the marker of its own prefix. */
    static void verify(Sequence seq, String salt) {
        PagedKvCache cache = seq.cache();
        int ps = cache.layout().pageSize();
        int[] tokens = seq.tokens();
        int[] table = seq.blockTable();
        long computed = seq.numComputed();
        assertTrue(table.length >= (tokens.length + ps - 1) / ps, "block table covers the tokens");
        int[] hashes = prefixHashes(salt, tokens);
        for (int pos = 0; pos < computed; pos++) {
            int page = table[pos / ps];
            MemorySegment k = tokenK(cache, page, pos % ps);
            int marker = k.getAtIndex(INT, 0);
            if (marker != hashes[pos])
                throw new AssertionError("sequence " + seq.id() + " position " + pos + " (page " + page + ", salt '" + salt
                        + "'): K holds marker " + marker + " of position " + k.getAtIndex(INT, 1) + ", expected "
                        + hashes[pos] + " — wrong KV reused");
            assertEquals(pos, k.getAtIndex(INT, 1), "position marker");
        }
    }

    static void assertConsistent(CacheStats stats) {
        assertEquals(stats.pagesTotal(), stats.pagesFree() + stats.pagesCached() + stats.pagesInUse(),
                "free + cached + in use == total: " + stats);
    }
}
