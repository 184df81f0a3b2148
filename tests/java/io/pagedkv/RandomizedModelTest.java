package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Thousands of random operations, each checked against an independent model: per isolation key,
 * the set of token sequences ever computed. With room to spare, a prompt P must get exactly
 * {@code min(len(P) - 1, max common prefix with a computed sequence)} positions for free; with
 * few pages (eviction, out-of-pages) it may get less, never more. After every step: the counters
 * add up, every live sequence's tokens, counts and slots match the model, and every computed
 * position's page holds the marker of its own prefix.
 */
class RandomizedModelTest {
    private static final String[] SALTS = {"", "", "a", "b"};

    /** The model of one live sequence. */
    private static final class Model {
        final Sequence seq;
        final String salt;
        int[] tokens;
        long computed;

        Model(Sequence seq, String salt, int[] tokens, long computed) {
            this.seq = seq;
            this.salt = salt;
            this.tokens = tokens;
            this.computed = computed;
        }
    }

    @ParameterizedTest(name = "seed {0}, page size {1}, {2} pages")
    @CsvSource({"1, 4, 20000", "2, 16, 8000", "3, 1, 60000", "4, 4, 48", "5, 8, 24", "6, 16, 12"})
    void randomOperationsMatchTheModel(long seed, int pageSize, int pages) {
        boolean roomy = pages >= 5000;
        Random random = new Random(seed);
        int[][] documents = new int[6][];
        for (int i = 0; i < documents.length; i++) documents[i] = randomTokens(random, 96, 50);
        Map<String, List<int[]>> computedHistory = new HashMap<>();
        List<Model> live = new ArrayList<>();
        int outOfPages = 0;
        try (PagedKvCache cache = cache(pageSize, pages)) {
            for (int step = 0; step < 2500; step++) {
                int op = random.nextInt(100);
                CacheStats before = cache.stats();
                try {
                    if (live.isEmpty() || (op < 22 && live.size() < 16)) {
                        String salt = SALTS[random.nextInt(SALTS.length)];
                        int[] prompt = prompt(random, documents, computedHistory.get(salt));
                        Sequence seq = cache.createSequence(prompt, salt);
                        long expected = Math.min(prompt.length - 1, longestCommonPrefix(prompt, computedHistory.get(salt)));
                        if (roomy) assertEquals(expected, seq.numCached(), "step " + step + ": cached positions");
                        else assertTrue(seq.numCached() <= expected, "step " + step + ": reused more than was ever computed");
                        live.add(new Model(seq, salt, prompt, seq.numCached()));
                    } else {
                        Model m = live.get(random.nextInt(live.size()));
                        if (op < 45) {
                            long upTo = m.computed + random.nextInt((int) (m.tokens.length - m.computed) + 1);
                            writeUpTo(m.seq, m.salt, upTo);
                            m.seq.commit(upTo);
                            m.computed = upTo;
                            remember(computedHistory, m);
                        } else if (op < 62) {
                            int[] more = random.nextBoolean() ? randomTokens(random, 1, 50)
                                    : randomTokens(random, 1 + random.nextInt(2 * pageSize + 3), 50);
                            m.seq.append(more);
                            m.tokens = concat(m.tokens, more);
                        } else if (op < 70 && live.size() < 16) {
                            Sequence child = m.seq.fork();
                            live.add(new Model(child, m.salt, m.tokens.clone(), m.computed));
                        } else if (op < 78) {
                            int length = 1 + random.nextInt(m.tokens.length);
                            m.seq.truncate(length);
                            m.tokens = Arrays.copyOf(m.tokens, length);
                            m.computed = Math.min(m.computed, length);
                        } else if (op < 86) {
                            stepBatch(cache, random, live, computedHistory);
                        } else if (op < 87 && !roomy) {
                            cache.clearUnused();
                        } else {
                            m.seq.close();
                            live.remove(m);
                            assertThrows(IllegalStateException.class, m.seq::numTokens);
                        }
                    }
                } catch (OutOfPagesException e) {
                    assertFalse(roomy, "step " + step + ": out of pages with room to spare: " + e.getMessage());
                    assertEquals(before, cache.stats(), "step " + step + ": a failed operation changed the counters");
                    outOfPages++;
                }
                check(cache, live, step);
            }
            CacheStats end = cache.stats();
            if (roomy) assertEquals(0, end.evictions());
            if (!roomy) assertTrue(end.evictions() > 0 || outOfPages > 0, "the small cache was never under pressure");
            for (Model m : live) m.seq.close();
            CacheStats released = cache.stats();
            assertEquals(0, released.liveSequences());
            assertEquals(0, released.pagesInUse());
            assertConsistent(released);
        }
    }

    /** One model step through a batch: write every query token's marker at the batch's slot, commit the batch. */
    private static void stepBatch(PagedKvCache cache, Random random, List<Model> live, Map<String, List<int[]>> history) {
        List<Model> chosen = new ArrayList<>(live);
        java.util.Collections.shuffle(chosen, random);
        chosen = chosen.subList(0, 1 + random.nextInt(Math.min(4, chosen.size())));
        int ps = cache.layout().pageSize();
        try (Batch batch = cache.batch(chosen.stream().map(m -> m.seq).toList())) {
            int[] qoIndptr = batch.qoIndptr();
            int[] kvIndptr = batch.kvIndptr();
            int[] pages = batch.kvPageIndices();
            long[] slots = batch.slotMapping();
            assertEquals(chosen.size(), batch.numSeqs());
            for (int i = 0; i < chosen.size(); i++) {
                Model m = chosen.get(i);
                int[] table = m.seq.blockTable();
                int used = (m.tokens.length + ps - 1) / ps;
                assertArrayEquals(Arrays.copyOf(table, used), Arrays.copyOfRange(pages, kvIndptr[i], kvIndptr[i + 1]));
                assertEquals(m.tokens.length - m.computed, qoIndptr[i + 1] - qoIndptr[i]);
                assertEquals(m.tokens.length, batch.kvLen()[i]);
                assertEquals(m.tokens.length - (long) (used - 1) * ps, batch.kvLastPageLen()[i]);
                int[] hashes = prefixHashes(m.salt, m.tokens);
                for (long pos = m.computed; pos < m.tokens.length; pos++)
                    write(cache, slots[(int) (qoIndptr[i] + pos - m.computed)], hashes[(int) pos], pos);
            }
            batch.commit();
        }
        for (Model m : chosen) {
            m.computed = m.tokens.length;
            remember(history, m);
        }
    }

    private static void check(PagedKvCache cache, List<Model> live, int step) {
        CacheStats stats = cache.stats();
        assertConsistent(stats);
        assertEquals(live.size(), stats.liveSequences(), "step " + step);
        for (Model m : live) {
            assertArrayEquals(m.tokens, m.seq.tokens(), "step " + step + ": tokens");
            assertEquals(m.computed, m.seq.numComputed(), "step " + step + ": computed");
            assertEquals(m.tokens.length - m.computed, m.seq.slotMapping().length, "step " + step + ": slots");
            verify(m.seq, m.salt);
        }
    }

    private static void remember(Map<String, List<int[]>> history, Model m) {
        if (m.computed > 0) history.computeIfAbsent(m.salt, k -> new ArrayList<>()).add(Arrays.copyOf(m.tokens, (int) m.computed));
    }

    /** Prompts that share prefixes: a document's prefix or an earlier computed sequence, plus a random tail. */
    private static int[] prompt(Random random, int[][] documents, List<int[]> computed) {
        int[] base;
        if (computed != null && !computed.isEmpty() && random.nextInt(3) == 0) base = computed.get(random.nextInt(computed.size()));
        else base = documents[random.nextInt(documents.length)];
        int keep = random.nextInt(base.length + 1);
        int[] tail = randomTokens(random, (keep == 0 ? 1 : 0) + random.nextInt(12), 50);
        return concat(Arrays.copyOf(base, keep), tail);
    }

    private static long longestCommonPrefix(int[] prompt, List<int[]> computed) {
        long best = 0;
        if (computed == null) return 0;
        for (int[] other : computed) {
            int n = Math.min(prompt.length, other.length);
            int i = 0;
            while (i < n && prompt[i] == other[i]) i++;
            best = Math.max(best, i);
        }
        return best;
    }
}
