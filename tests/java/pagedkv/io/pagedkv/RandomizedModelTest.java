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
 * the token sequences ever computed. With room to spare, a prompt P gets
 * {@code min(len(P) - 1, max common prefix with a computed sequence)} positions for free (docs/semantics.md),
 * with one refinement the core makes on purpose: a truncate forgets the positions past the new end
 * inside the sequence's own, unshared, partly filled last page (they are about to be overwritten;
 * keeping them would cost a page copy per rejected speculative step). Full pages and runs a fork
 * shares are kept. So the model keeps, per computed sequence, its length (the upper bound) and a
 * guaranteed length that its owner's truncates may lower (the lower bound); the two agree except
 * after such truncates, and the result must lie between them. With few pages (eviction,
 * out-of-pages) a prompt may get less, never more. After every step: the counters add up, every
 * live sequence's tokens, counts and slots match the model, and every computed position's page
 * holds the marker of its own prefix.
 */
class RandomizedModelTest {
    private static final String[] SALTS = {"", "", "a", "b"};

    /** A computed token sequence; {@code guaranteed} drops when its live owner truncates. */
    private static final class Known {
        final int[] tokens;
        Model owner;
        int guaranteed;

        Known(int[] tokens, Model owner) {
            this.tokens = tokens;
            this.owner = owner;
            this.guaranteed = tokens.length;
        }
    }

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
        Map<String, List<Known>> computedHistory = new HashMap<>();
        List<Model> live = new ArrayList<>();
        int outOfPages = 0;
        int creates = 0;
        int exactChecks = 0;
        List<String> log = new ArrayList<>();
        try (PagedKvCache cache = cache(pageSize, pages)) {
            for (int i = 0; i < 2500; i++) {
                final int step = i;
                int op = random.nextInt(100);
                CacheStats before = cache.stats();
                try {
                    if (live.isEmpty() || (op < 22 && live.size() < 16)) {
                        String salt = SALTS[random.nextInt(SALTS.length)];
                        int[] prompt = prompt(random, documents, computedHistory.get(salt));
                        Sequence seq = cache.createSequence(prompt, salt);
                        log.add("create '" + salt + "' " + Arrays.toString(prompt) + " -> seq " + seq.id() + " cached "
                                + seq.numCached());
                        long upper = Math.min(prompt.length - 1, longestCommonPrefix(prompt, computedHistory.get(salt), false));
                        long lower = Math.min(prompt.length - 1, longestCommonPrefix(prompt, computedHistory.get(salt), true));
                        creates++;
                        if (lower == upper) exactChecks++;
                        if (roomy && lower == upper)
                            assertEquals(upper, seq.numCached(), () -> "step " + step + ": cached positions\n" + tail(log));
                        if (roomy) assertTrue(seq.numCached() >= lower, () -> "step " + step + ": reused " + seq.numCached()
                                + ", less than the guaranteed " + lower + "\n" + tail(log));
                        assertTrue(seq.numCached() <= upper, () -> "step " + step + ": reused " + seq.numCached()
                                + ", more than was ever computed (" + upper + ")\n" + tail(log));
                        live.add(new Model(seq, salt, prompt, seq.numCached()));
                    } else {
                        Model m = live.get(random.nextInt(live.size()));
                        if (op < 45) {
                            long upTo = m.computed + random.nextInt((int) (m.tokens.length - m.computed) + 1);
                            writeUpTo(m.seq, m.salt, upTo);
                            m.seq.commit(upTo);
                            log.add("seq " + m.seq.id() + " commit " + upTo);
                            m.computed = upTo;
                            remember(computedHistory, m);
                        } else if (op < 62) {
                            int[] more = random.nextBoolean() ? randomTokens(random, 1, 50)
                                    : randomTokens(random, 1 + random.nextInt(2 * pageSize + 3), 50);
                            m.seq.append(more);
                            log.add("seq " + m.seq.id() + " append " + Arrays.toString(more));
                            m.tokens = concat(m.tokens, more);
                        } else if (op < 70 && live.size() < 16) {
                            Sequence child = m.seq.fork();
                            log.add("seq " + m.seq.id() + " fork -> " + child.id());
                            live.add(new Model(child, m.salt, m.tokens.clone(), m.computed));
                        } else if (op < 78) {
                            int length = 1 + random.nextInt(m.tokens.length);
                            m.seq.truncate(length);
                            forget(computedHistory, m, length, pageSize);
                            log.add("seq " + m.seq.id() + " truncate " + length);
                            m.tokens = Arrays.copyOf(m.tokens, length);
                            m.computed = Math.min(m.computed, length);
                        } else if (op < 86) {
                            stepBatch(cache, random, live, computedHistory, log);
                        } else if (op < 87 && !roomy) {
                            cache.clearUnused();
                        } else {
                            m.seq.close();
                            log.add("seq " + m.seq.id() + " release");
                            for (Known known : computedHistory.getOrDefault(m.salt, List.of()))
                                if (known.owner == m) known.owner = null; // released pages never change again
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
            assertTrue(exactChecks >= creates * 0.9, exactChecks + " of " + creates + " creates checked exactly");
            if (!roomy) assertTrue(end.evictions() > 0 || outOfPages > 0, "the small cache was never under pressure");
            for (Model m : live) m.seq.close();
            CacheStats released = cache.stats();
            assertEquals(0, released.liveSequences());
            assertEquals(0, released.pagesInUse());
            assertConsistent(released);
        }
    }

    /** One model step through a batch: write every query token's marker at the batch's slot, commit the batch. */
    private static void stepBatch(PagedKvCache cache, Random random, List<Model> live, Map<String, List<Known>> history,
                                  List<String> log) {
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
            log.add("batch commit " + chosen.stream().map(m -> m.seq.id()).toList());
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

    /** The last operations, for a failure message. */
    private static String tail(List<String> log) {
        return String.join("\n", log.subList(Math.max(0, log.size() - 60), log.size()));
    }

    private static void remember(Map<String, List<Known>> history, Model m) {
        if (m.computed > 0)
            history.computeIfAbsent(m.salt, k -> new ArrayList<>()).add(new Known(Arrays.copyOf(m.tokens, (int) m.computed), m));
    }

    /** After {@code m} truncates to {@code length}: its own runs past it may be forgotten, never its full pages. */
    private static void forget(Map<String, List<Known>> history, Model m, int length, int pageSize) {
        for (Known known : history.getOrDefault(m.salt, List.of())) {
            if (known.owner != m) continue;
            int fullPages = known.tokens.length / pageSize * pageSize;
            known.guaranteed = Math.min(known.guaranteed, Math.max(fullPages, length));
        }
    }

    /** Prompts that share prefixes: a document's prefix or an earlier computed sequence, plus a random tail. */
    private static int[] prompt(Random random, int[][] documents, List<Known> computed) {
        int[] base;
        if (computed != null && !computed.isEmpty() && random.nextInt(3) == 0)
            base = computed.get(random.nextInt(computed.size())).tokens;
        else base = documents[random.nextInt(documents.length)];
        int keep = random.nextInt(base.length + 1);
        int[] tail = randomTokens(random, (keep == 0 ? 1 : 0) + random.nextInt(12), 50);
        return concat(Arrays.copyOf(base, keep), tail);
    }

    private static long longestCommonPrefix(int[] prompt, List<Known> computed, boolean guaranteedOnly) {
        long best = 0;
        if (computed == null) return 0;
        for (Known known : computed) {
            int[] other = known.tokens;
            int n = Math.min(prompt.length, guaranteedOnly ? known.guaranteed : other.length);
            int i = 0;
            while (i < n && prompt[i] == other[i]) i++;
            best = Math.max(best, i);
        }
        return best;
    }
}
