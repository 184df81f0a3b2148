package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** Bad input never corrupts state: Java-side checks, native errors with their messages, closed handles. */
class ErrorsTest {
    @Test
    void badConfigurations() {
        var error = assertThrows(PagedKvException.InvalidArgument.class,
                () -> PagedKvCache.builder().layers(0).kvHeads(1).headDim(8).pages(4).build());
        assertTrue(error.getMessage().startsWith("pagedkv_cache_create"), error.getMessage());
        assertEquals(1, error.status());
        assertThrows(PagedKvException.InvalidArgument.class,
                () -> PagedKvCache.builder().layers(1).kvHeads(1).headDim(8).pageSize(0).pages(4).build());
        assertThrows(PagedKvException.InvalidArgument.class,
                () -> PagedKvCache.builder().layers(1).kvHeads(1).headDim(8).build(), "no pages and no byte budget");
        if (PagedKvCache.cudaDeviceCount() == 0) {
            var noDevice = assertThrows(PagedKvException.DeviceFailure.class,
                    () -> PagedKvCache.builder().layers(1).kvHeads(1).headDim(64).pages(4).device(Device.cuda(0)).build());
            assertFalse(noDevice.getMessage().isBlank());
        }
        assertThrows(NullPointerException.class, () -> PagedKvCache.builder().kvDtype(null));
    }

    @Test
    void byteBudgetDerivesPages() {
        try (PagedKvCache cache = PagedKvCache.builder().layers(2).kvHeads(2).headDim(8).pageSize(4)
                .byteBudget(10_000).kvDtype(KvDtype.F16).build()) {
            CacheLayout layout = cache.layout();
            assertEquals(2L * 2 * 2 * 4 * 8 * 2, layout.pageBytes());
            assertEquals(10_000 / layout.pageBytes(), layout.pages());
            assertEquals(2 * 4 * 8, layout.slabStride());
            assertEquals(2 * 2 * layout.slabStride(), layout.pageStride());
            assertEquals(layout.pages() * layout.pageBytes(), layout.poolBytes());
            assertEquals(Device.cpu(), layout.device());
            assertEquals(layout.pages(), cache.stats().pagesTotal());
        }
    }

    @Test
    void badSequenceInputs() {
        try (PagedKvCache cache = PagedKvCache.builder().layers(1).kvHeads(1).headDim(8).pageSize(4).pages(32)
                .vocabSize(100).build()) {
            assertThrows(NullPointerException.class, () -> cache.createSequence(null));
            assertThrows(NullPointerException.class, () -> cache.createSequence(new int[] {1}, (String) null));
            var empty = assertThrows(PagedKvException.InvalidArgument.class, () -> cache.createSequence(new int[0]));
            assertTrue(empty.getMessage().startsWith("pagedkv_sequence_create"), empty.getMessage());
            var outside = assertThrows(PagedKvException.InvalidArgument.class, () -> cache.createSequence(new int[] {1, 100}));
            assertTrue(outside.getMessage().startsWith("pagedkv_sequence_create"), outside.getMessage());
            assertTrue(outside.getMessage().contains("100"), "the message names the bad token: " + outside.getMessage());
            assertThrows(PagedKvException.InvalidArgument.class, () -> cache.createSequence(new int[] {-1}));
            CacheStats clean = cache.stats();
            assertEquals(0, clean.liveSequences());
            assertEquals(0, clean.promptTokens());
            assertEquals(clean.pagesTotal(), clean.pagesFree());

            try (Sequence seq = cache.createSequence(new int[] {1, 2, 3, 4, 5, 6})) {
                seq.commit(3);
                var backwards = assertThrows(PagedKvException.InvalidArgument.class, () -> seq.commit(2));
                assertTrue(backwards.getMessage().startsWith("pagedkv_sequence_commit"), backwards.getMessage());
                assertThrows(PagedKvException.InvalidArgument.class, () -> seq.commit(7));
                assertThrows(PagedKvException.InvalidArgument.class, () -> seq.commit(-1));
                assertEquals(3, seq.numComputed());
                seq.commit(3); // committing what is committed is fine
                assertThrows(PagedKvException.InvalidArgument.class, () -> seq.truncate(0));
                assertThrows(PagedKvException.InvalidArgument.class, () -> seq.truncate(7));
                assertThrows(PagedKvException.InvalidArgument.class, () -> seq.truncate(-5));
                assertThrows(PagedKvException.InvalidArgument.class, () -> seq.append(5, 200));
                assertThrows(NullPointerException.class, () -> seq.append((int[]) null));
                assertEquals(6, seq.numTokens());
                assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6}, seq.tokens());
            }
            assertThrows(NullPointerException.class, () -> cache.batch((java.util.List<Sequence>) null));
        }
    }

    @Test
    void nativeErrorsCarryTheirMessage() {
        try (PagedKvCache cache = cache(4, 8)) {
            var error = assertThrows(PagedKvException.class, () -> cache.copyPages(new int[] {9999}, new int[] {0}));
            assertTrue(error instanceof PagedKvException.InvalidArgument || error instanceof PagedKvException.NotFound,
                    error.getClass().getName());
            assertTrue(error.getMessage().startsWith("pagedkv_copy_pages"), error.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cache.copyPages(new int[] {1}, new int[0]));
            assertThrows(IllegalArgumentException.class, () -> cache.page(8));
            assertThrows(IllegalArgumentException.class, () -> cache.page(-1));
            assertThrows(IllegalArgumentException.class, () -> cache.slab(0, 1, KvKind.V));
        }
    }

    @Test
    void copyPagesCopiesWholePages() {
        try (PagedKvCache cache = cache(4, 8)) {
            MemorySegment a = cache.page(1);
            for (long i = 0; i < a.byteSize(); i++) a.set(ValueLayout.JAVA_BYTE, i, (byte) i);
            cache.copyPages(new int[] {1}, new int[] {5});
            assertEquals(-1, a.mismatch(cache.page(5)));
        }
    }

    @Test
    void closedHandlesThrowIllegalState() {
        PagedKvCache cache = cache(4, 16);
        Sequence seq = cache.createSequence(new int[] {1, 2, 3, 4, 5});
        Sequence released = cache.createSequence(new int[] {7, 8});
        Batch batch = cache.batch(seq);
        Batch closedBatch = cache.batch(released);
        MemorySegment page = cache.page(0);

        released.close();
        released.close(); // idempotent
        assertFalse(released.isOpen());
        assertThrows(IllegalStateException.class, released::numTokens);
        assertThrows(IllegalStateException.class, released::blockTable);
        assertThrows(IllegalStateException.class, released::fork);
        assertThrows(IllegalStateException.class, () -> released.commit(1));
        assertThrows(IllegalStateException.class, () -> released.append(1));
        assertThrows(IllegalStateException.class, () -> released.truncate(1));
        assertThrows(IllegalStateException.class, released::numCached);
        assertThrows(IllegalStateException.class, () -> cache.batch(released));
        assertEquals(1, closedBatch.numSeqs(), "a batch is a snapshot: its sequence's release does not touch it");
        closedBatch.close();
        closedBatch.close();
        assertThrows(IllegalStateException.class, closedBatch::kvIndptr);
        assertThrows(IllegalStateException.class, closedBatch::numQoTokens);
        assertThrows(IllegalStateException.class, closedBatch::commit);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = arena.allocate(64 * 4);
            assertThrows(IllegalStateException.class, () -> cache.writeKv(closedBatch, 0, k, k, KvDtype.F32));
        }
        assertEquals(1, cache.stats().liveSequences());

        cache.close();
        cache.close(); // idempotent
        assertFalse(cache.isOpen());
        assertFalse(seq.isOpen());
        assertFalse(batch.isOpen());
        assertThrows(IllegalStateException.class, cache::stats);
        assertThrows(IllegalStateException.class, () -> cache.createSequence(new int[] {1}));
        assertThrows(IllegalStateException.class, () -> cache.page(0));
        assertThrows(IllegalStateException.class, () -> page.get(ValueLayout.JAVA_INT, 0), "pages die with the cache");
        assertThrows(IllegalStateException.class, seq::numTokens);
        assertThrows(IllegalStateException.class, seq::tokens);
        assertThrows(IllegalStateException.class, () -> seq.commit(1));
        assertThrows(IllegalStateException.class, batch::kvPageIndices);
        assertThrows(IllegalStateException.class, batch::commit);
        seq.close(); // no native call after the cache is gone
        batch.close();
        assertNotNull(cache.layout(), "the layout stays readable");
        assertTrue(cache.toString().contains("closed"));
    }
}
