package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The FlashInfer-style arrays of a batch, spelled out on a small example. */
class BatchTest {
    @Test
    void arraysDescribeTheSequences() {
        try (PagedKvCache cache = cache(4, 64)) {
            Sequence a = cache.createSequence(new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
            computeAll(a, "");
            a.append(11);
            Sequence b = cache.createSequence(new int[] {1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 22, 23, 24});
            assertEquals(8, b.numCached());
            Sequence c = a.fork();
            try (Batch batch = cache.batch(List.of(a, b, c))) {
                assertEquals(3, batch.numSeqs());
                assertEquals(1 + 5 + 1, batch.numQoTokens());
                assertArrayEquals(new int[] {0, 1, 6, 7}, batch.qoIndptr());
                assertArrayEquals(new int[] {11, 13, 11}, batch.kvLen());
                assertArrayEquals(new int[] {0, 3, 7, 10}, batch.kvIndptr());
                assertArrayEquals(new int[] {3, 1, 3}, batch.kvLastPageLen());
                assertEquals(13, batch.maxKvLen());
                assertEquals(5, batch.maxQoLen());
                assertEquals(2, batch.sharedPrefixPages(), "8 common tokens = 2 full pages");
                int[] pages = batch.kvPageIndices();
                assertArrayEquals(a.blockTable(), java.util.Arrays.copyOfRange(pages, 0, 3));
                assertArrayEquals(b.blockTable(), java.util.Arrays.copyOfRange(pages, 3, 7));
                assertArrayEquals(c.blockTable(), java.util.Arrays.copyOfRange(pages, 7, 10));
                long[] slots = batch.slotMapping();
                assertEquals(7, slots.length);
                assertArrayEquals(a.slotMapping(), new long[] {slots[0]});
                assertArrayEquals(b.slotMapping(), java.util.Arrays.copyOfRange(slots, 1, 6));
                assertArrayEquals(c.slotMapping(), new long[] {slots[6]});
                assertNotEquals(slots[0], slots[6], "a and c write their own copy of the shared last page");

                a.append(12); // a change of a member makes the batch stale; its arrays stay as built
                assertArrayEquals(new int[] {11, 13, 11}, batch.kvLen());
                assertArrayEquals(pages, batch.kvPageIndices());
                assertThrows(StaleBatchException.class, batch::commit, "a stale batch commits nothing");
                assertEquals(10, a.numComputed(), "nothing committed");
                assertEquals(8, b.numComputed(), "nothing committed");
                assertEquals(10, c.numComputed(), "nothing committed");
                a.truncate(11);
            }
            try (Batch batch = cache.batch(List.of(a, b, c))) {
                assertArrayEquals(new int[] {11, 13, 11}, batch.kvLen());
                batch.commit();
                for (Sequence s : List.of(a, b, c)) assertEquals(s.numTokens(), s.numComputed());
            }
            try (Batch empty = cache.batch(a)) {
                assertEquals(0, empty.numQoTokens(), "nothing left to compute");
                assertArrayEquals(new int[] {0, 0}, empty.qoIndptr());
            }
            for (Sequence s : List.of(a, b, c)) s.close();
            assertEquals(0, cache.stats().pagesInUse());
        }
    }
}
