package io.pagedkv;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The batch validity rule of pagedkv.h through the Java API: a batch serves one step, and once one
 * of its sequences changed (commit, append, truncate, release) every kernel and commit with it
 * throws {@link StaleBatchException} and changes nothing — in particular it cannot write K/V into
 * pages that now hold another sequence's, or the index's, values.
 */
class StaleBatchTest {
    private static final int LAYERS = 2;
    private static final int KV_HEADS = 2;
    private static final int QO_HEADS = 4;
    private static final int HEAD_DIM = 16;
    private static final int PAGE_SIZE = 4;
    private static final AttentionParams PARAMS = AttentionParams.of(QO_HEADS);

    private static PagedKvCache cache(int pages) {
        return PagedKvCache.builder().layers(LAYERS).kvHeads(KV_HEADS).headDim(HEAD_DIM).pageSize(PAGE_SIZE).pages(pages)
                .kvDtype(KvDtype.F32).build();
    }

    /** K and V written for every layer: {@code kv[layer][0 = K, 1 = V]} as {@code [T, KV_HEADS, HEAD_DIM]}. */
    private static float[][][] writeRandomKv(PagedKvCache cache, Batch batch, Random random) {
        float[][][] kv = new float[LAYERS][2][];
        for (int layer = 0; layer < LAYERS; layer++) {
            kv[layer][0] = gaussian(random, (int) batch.numQoTokens() * KV_HEADS * HEAD_DIM);
            kv[layer][1] = gaussian(random, (int) batch.numQoTokens() * KV_HEADS * HEAD_DIM);
            cache.kernels().writeKv(batch, layer, MemorySegment.ofArray(kv[layer][0]), MemorySegment.ofArray(kv[layer][1]),
                    KvDtype.F32);
        }
        return kv;
    }

    /**
     * Every position {@code [0, count)} of {@code seq} holds in its pages the K/V written for
     * query rows {@code firstRow + position} of {@code kv}.
     */
    private static void assertHolds(PagedKvCache cache, Sequence seq, int count, float[][][] kv, String what) {
        int[] table = seq.blockTable();
        CacheLayout layout = cache.layout();
        for (int pos = 0; pos < count; pos++)
            for (int layer = 0; layer < LAYERS; layer++)
                for (KvKind kind : KvKind.values())
                    for (int h = 0; h < KV_HEADS; h++) {
                        MemorySegment row = cache.slab(table[pos / PAGE_SIZE], layer, kind)
                                .asSlice(layout.tokenOffset(h, pos % PAGE_SIZE), HEAD_DIM * 4L);
                        float[] stored = row.toArray(ValueLayout.JAVA_FLOAT);
                        int from = (pos * KV_HEADS + h) * HEAD_DIM;
                        float[] expected = Arrays.copyOfRange(kv[layer][kind.index()], from, from + HEAD_DIM);
                        assertArrayEquals(expected, stored, what + ": position " + pos + " layer " + layer + " " + kind
                                + " head " + h);
                    }
    }

    private static byte[] pool(PagedKvCache cache) {
        byte[] all = new byte[Math.toIntExact(cache.layout().poolBytes())];
        for (int p = 0; p < cache.layout().pages(); p++) {
            byte[] page = cache.page(p).toArray(ValueLayout.JAVA_BYTE);
            System.arraycopy(page, 0, all, Math.toIntExact(p * cache.layout().pageBytes()), page.length);
        }
        return all;
    }

    /** Every kernel and the commit refuse the batch, and the pool is byte for byte what it was. */
    private static void assertStaleAndHarmless(PagedKvCache cache, Batch batch, Random random) {
        byte[] before = pool(cache);
        int rows = (int) batch.numQoTokens();
        float[] k = gaussian(random, rows * KV_HEADS * HEAD_DIM);
        float[] q = gaussian(random, rows * QO_HEADS * HEAD_DIM);
        float[] out = new float[q.length];
        float[] lse = new float[rows * QO_HEADS];
        Arrays.fill(out, 42f);
        Kernels kernels = cache.kernels();
        for (int layer = 0; layer < LAYERS; layer++) {
            final int l = layer;
            var stale = assertThrows(StaleBatchException.class,
                    () -> kernels.writeKv(batch, l, MemorySegment.ofArray(k), MemorySegment.ofArray(k), KvDtype.F32));
            assertEquals(9, stale.status());
            assertFalse(stale.getMessage().isBlank());
            assertThrows(StaleBatchException.class, () -> kernels.prefillAttention(batch, l, PARAMS, MemorySegment.ofArray(q),
                    MemorySegment.ofArray(out), MemorySegment.ofArray(lse)));
            assertThrows(StaleBatchException.class, () -> kernels.cascadeAttention(batch, l, PARAMS, MemorySegment.ofArray(q),
                    MemorySegment.ofArray(out), null));
        }
        assertThrows(StaleBatchException.class, batch::commit);
        for (float value : out) assertEquals(42f, value, "a refused kernel leaves its output alone");
        assertArrayEquals(before, pool(cache), "a stale batch changed the pool");
    }

    /** (a) After commit and release, the old batch cannot overwrite what the index now serves to others. */
    @Test
    void staleWriteAfterCommitAndReleaseCannotChangeIndexedKv() {
        Random random = new Random(101);
        try (PagedKvCache cache = cache(64)) {
            int[] prompt = Markers.randomTokens(random, 2 * PAGE_SIZE + 2, 1000); // two full pages and a partial one
            Sequence a = cache.createSequence(prompt);
            try (Batch batch = cache.batch(a)) {
                float[][][] written = writeRandomKv(cache, batch, random);
                batch.commit();
                a.close(); // full pages stay indexed, the partial one becomes a donor

                assertStaleAndHarmless(cache, batch, random);
                assertEquals(prompt.length, batch.numQoTokens(), "a stale batch's arrays stay readable");

                try (Sequence b = cache.createSequence(Markers.concat(prompt, new int[] {7}))) {
                    assertEquals(prompt.length, b.numCached(), "the new prompt reuses every computed position");
                    assertHolds(cache, b, prompt.length, written, "reused K/V");
                    assertStaleAndHarmless(cache, batch, random); // still stale with a live holder of the pages
                    assertHolds(cache, b, prompt.length, written, "reused K/V after the stale calls");
                }
            }
        }
    }

    /** (a) Variant: the old batch's pages were evicted and now belong to another live sequence. */
    @Test
    void staleWriteCannotReachPagesNowOwnedByAnotherSequence() {
        Random random = new Random(102);
        int pagesPerPrompt = 3;
        try (PagedKvCache cache = cache(pagesPerPrompt)) {
            int[] prompt = Markers.randomTokens(random, pagesPerPrompt * PAGE_SIZE, 1000);
            Sequence a = cache.createSequence(prompt);
            Batch stale = cache.batch(a);
            writeRandomKv(cache, stale, random);
            stale.commit();
            a.close();

            // A different prompt needs every page: it evicts a's and gets the very same pages.
            try (Sequence c = cache.createSequence(Markers.randomTokens(random, pagesPerPrompt * PAGE_SIZE, 1000))) {
                assertEquals(0, c.numCached());
                int[] reusedPages = c.blockTable().clone();
                Arrays.sort(reusedPages);
                int[] oldPages = stale.kvPageIndices().clone();
                Arrays.sort(oldPages);
                assertArrayEquals(oldPages, reusedPages, "c now owns the pages the stale batch points at");
                float[][][] cKv;
                try (Batch step = cache.batch(c)) {
                    cKv = writeRandomKv(cache, step, random);
                    step.commit();
                }
                assertStaleAndHarmless(cache, stale, random);
                assertHolds(cache, c, pagesPerPrompt * PAGE_SIZE, cKv, "c's K/V");
            }
            stale.close();
            stale.close(); // harmless
        }
    }

    /** (b) A batch built before truncate + append cannot commit positions whose K/V it never wrote. */
    @Test
    void staleCommitAfterTruncateAndAppendCommitsNothing() {
        Random random = new Random(103);
        try (PagedKvCache cache = cache(16)) {
            Sequence s = cache.createSequence(new int[] {1, 2, 3, 4});
            try (Batch batch = cache.batch(s)) {
                writeRandomKv(cache, batch, random); // K/V of tokens 1 2 3 4
                s.truncate(1);
                s.append(7, 7, 7);
                var error = assertThrows(StaleBatchException.class, batch::commit);
                assertEquals(9, error.status());
                assertEquals(0, s.numComputed(), "nothing was committed");
                assertArrayEquals(new int[] {1, 7, 7, 7}, s.tokens());
                assertEquals(4, s.slotMapping().length, "every position is still to compute");
                assertStaleAndHarmless(cache, batch, random);
            }
            try (Sequence later = cache.createSequence(new int[] {1, 7, 7, 7, 5})) {
                assertTrue(later.numCached() <= 1, "reused " + later.numCached() + " positions whose K/V of 7 7 7"
                        + " was never written");
            }
            s.close();
        }
    }

    /** commit makes the batch stale; so does a commit of another batch or of the sequence itself. */
    @Test
    void anyCommitMakesTheBatchStale() {
        Random random = new Random(104);
        try (PagedKvCache cache = cache(32)) {
            Sequence s = cache.createSequence(Markers.randomTokens(random, 6, 1000));
            try (Batch batch = cache.batch(s)) {
                writeRandomKv(cache, batch, random);
                batch.commit();
                assertEquals(6, s.numComputed());
                var twice = assertThrows(StaleBatchException.class, batch::commit, "a second commit is refused");
                assertEquals(9, twice.status());
            }
            s.append(11);
            try (Batch first = cache.batch(s); Batch second = cache.batch(s)) {
                writeRandomKv(cache, second, random);
                second.commit();
                assertStaleAndHarmless(cache, first, random); // another batch's commit changed s
            }
            s.append(12);
            try (Batch batch = cache.batch(s)) {
                float[] q = gaussian(random, QO_HEADS * HEAD_DIM);
                float[] out = new float[q.length];
                writeRandomKv(cache, batch, random);
                cache.kernels().decodeAttention(batch, 0, PARAMS, MemorySegment.ofArray(q), MemorySegment.ofArray(out), null);
                s.commit(s.numTokens()); // the sequence's own commit
                assertThrows(StaleBatchException.class, () -> cache.kernels().decodeAttention(batch, 0, PARAMS,
                        MemorySegment.ofArray(q), MemorySegment.ofArray(out), null));
                assertStaleAndHarmless(cache, batch, random);
            }
            s.close();
        }
    }

    /** Forking a member does not change it, so the batch stays valid. */
    @Test
    void forkKeepsTheBatchValid() {
        Random random = new Random(105);
        try (PagedKvCache cache = cache(32)) {
            Sequence s = cache.createSequence(Markers.randomTokens(random, 7, 1000));
            try (Batch batch = cache.batch(s)) {
                Sequence child = s.fork();
                float[][][] written = writeRandomKv(cache, batch, random);
                float[] q = gaussian(random, 7 * QO_HEADS * HEAD_DIM);
                cache.kernels().prefillAttention(batch, 1, PARAMS, MemorySegment.ofArray(q),
                        MemorySegment.ofArray(new float[q.length]), null);
                batch.commit();
                assertEquals(7, s.numComputed());
                assertHolds(cache, s, 7, written, "the parent's K/V");
                child.close();
            }
            s.close();
        }
    }

    private static float[] gaussian(Random random, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (float) random.nextGaussian();
        return values;
    }
}
