package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

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

    /** (e) Head dims every kernel cannot serve are refused when the cache is built, not at the first kernel. */
    @Test
    void headDimsOutsideTheKernelsAreRejectedAtBuild() {
        for (int headDim : new int[] {12, 4, 0, -8, 7, 100, 264, 512}) {
            var error = assertThrows(PagedKvException.InvalidArgument.class,
                    () -> PagedKvCache.builder().layers(1).kvHeads(1).headDim(headDim).pageSize(4).pages(4).build(),
                    "head dim " + headDim);
            assertTrue(error.getMessage().startsWith("pagedkv_cache_create"), error.getMessage());
            assertEquals(1, error.status());
        }
        for (int headDim : new int[] {8, 16, 24, 64, 128, 136, 256}) {
            try (PagedKvCache cache = PagedKvCache.builder().layers(1).kvHeads(1).headDim(headDim).pageSize(4).pages(4)
                    .build()) {
                assertEquals(headDim, cache.layout().headDim());
            }
        }
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
            var error = assertThrows(PagedKvException.class,
                    () -> cache.kernels().copyPages(new int[] {9999}, new int[] {0}));
            assertTrue(error instanceof PagedKvException.InvalidArgument || error instanceof PagedKvException.NotFound,
                    error.getClass().getName());
            assertTrue(error.getMessage().startsWith("pagedkv_copy_pages"), error.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cache.kernels().copyPages(new int[] {1}, new int[0]));
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
            cache.kernels().copyPages(new int[] {1}, new int[] {5});
            assertEquals(-1, a.mismatch(cache.page(5)));
        }
    }

    /** (f) Every null argument of the public API is refused up front, naming the argument. */
    @Test
    void nullArgumentsNameTheArgument() {
        assertNullNamed("device", () -> PagedKvCache.describeDevice(null));
        assertNullNamed("kvDtype", () -> PagedKvCache.builder().kvDtype(null));
        assertNullNamed("device", () -> PagedKvCache.builder().device(null));
        assertNullNamed("type", () -> new Device(null, 0));
        try (PagedKvCache cache = cache(4, 16); Arena arena = Arena.ofConfined()) {
            Sequence seq = cache.createSequence(new int[] {1, 2, 3});
            assertNullNamed("prompt", () -> cache.createSequence(null));
            assertNullNamed("prompt", () -> cache.createSequence(null, "salt"));
            assertNullNamed("prompt", () -> cache.createSequence(null, new byte[0]));
            assertNullNamed("salt", () -> cache.createSequence(new int[] {1}, (String) null));
            assertNullNamed("salt", () -> cache.createSequence(new int[] {1}, (byte[]) null));
            assertNullNamed("sequences", () -> cache.batch((Sequence[]) null));
            assertNullNamed("sequences", () -> cache.batch((List<Sequence>) null));
            assertNullNamed("sequences[1]", () -> cache.batch(seq, null));
            assertNullNamed("sequences[0]", () -> cache.batch(Arrays.asList(null, seq)));
            assertNullNamed("kind", () -> cache.slab(0, 0, null));
            assertNullNamed("kind", () -> cache.layout().slabOffset(0, null));
            assertNullNamed("tokens", () -> seq.append((int[]) null));

            Kernels kernels = cache.kernels();
            try (Batch batch = cache.batch(seq)) {
                MemorySegment kv = arena.allocate(batch.numQoTokens() * HEAD_DIM * 4);
                MemorySegment q = arena.allocate(batch.numQoTokens() * HEAD_DIM * 4);
                MemorySegment out = arena.allocate(q.byteSize());
                AttentionParams params = AttentionParams.of(1);
                assertNullNamed("batch", () -> kernels.writeKv(null, 0, kv, kv, KvDtype.F32));
                assertNullNamed("k", () -> kernels.writeKv(batch, 0, null, kv, KvDtype.F32));
                assertNullNamed("v", () -> kernels.writeKv(batch, 0, kv, null, KvDtype.F32));
                assertNullNamed("srcDtype", () -> kernels.writeKv(batch, 0, kv, kv, null));
                assertNullNamed("batch", () -> kernels.prefillAttention(null, 0, params, q, out, null));
                assertNullNamed("params", () -> kernels.prefillAttention(batch, 0, null, q, out, null));
                assertNullNamed("q", () -> kernels.prefillAttention(batch, 0, params, null, out, null));
                assertNullNamed("out", () -> kernels.prefillAttention(batch, 0, params, q, null, null));
                assertNullNamed("batch", () -> kernels.decodeAttention(null, 0, params, q, out, null));
                assertNullNamed("q", () -> kernels.decodeAttention(batch, 0, params, null, out, null));
                assertNullNamed("batch", () -> kernels.cascadeAttention(null, 0, params, q, out, null));
                assertNullNamed("out", () -> kernels.cascadeAttention(batch, 0, params, q, null, null));
            }
            assertNullNamed("src", () -> kernels.copyPages(null, new int[0]));
            assertNullNamed("dst", () -> kernels.copyPages(new int[0], null));
            try (DeviceMemory buffer = cache.allocateDevice(64)) {
                assertNullNamed("hostSrc", () -> buffer.copyFromHost(null, 8));
                assertNullNamed("hostDst", () -> buffer.copyToHost(null, 8));
            }
            assertEquals(1, cache.stats().liveSequences(), "nothing was created by the refused calls");
            seq.close();
        }
    }

    private static void assertNullNamed(String argument, Executable call) {
        var error = assertThrows(NullPointerException.class, call, argument);
        assertEquals(argument, error.getMessage(), "the message names the null argument");
    }

    /** (g) Closing twice is harmless; any use after close is an IllegalStateException in pagedkv's words. */
    @Test
    void closedHandlesThrowIllegalState() {
        PagedKvCache cache = cache(4, 16);
        Sequence seq = cache.createSequence(new int[] {1, 2, 3, 4, 5});
        Sequence released = cache.createSequence(new int[] {7, 8});
        Batch batch = cache.batch(seq);
        Batch closedBatch = cache.batch(released);
        MemorySegment page = cache.page(0);
        DeviceMemory buffer = cache.allocateDevice(256);
        DeviceMemory freedBuffer = cache.allocateDevice(256);

        released.close();
        released.close(); // idempotent
        assertFalse(released.isOpen());
        assertClosed("sequence " + released.id() + " is released", released::numTokens);
        assertClosed("released", released::blockTable);
        assertClosed("released", released::tokens);
        assertClosed("released", released::slotMapping);
        assertClosed("released", released::fork);
        assertClosed("released", () -> released.commit(1));
        assertClosed("released", () -> released.append(1));
        assertClosed("released", () -> released.truncate(1));
        assertClosed("released", released::numCached);
        assertClosed("released", () -> cache.batch(released));
        assertEquals(1, closedBatch.numSeqs(), "a stale batch's arrays stay readable");
        assertArrayEquals(new int[] {0, 2}, closedBatch.qoIndptr());
        assertThrows(StaleBatchException.class, closedBatch::commit, "its sequence was released");
        closedBatch.close();
        closedBatch.close(); // idempotent
        assertFalse(closedBatch.isOpen());
        assertClosed("batch is closed", closedBatch::kvIndptr);
        assertClosed("batch is closed", closedBatch::numQoTokens);
        assertClosed("batch is closed", closedBatch::commit);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = arena.allocate(64 * 4);
            assertClosed("batch is closed", () -> cache.kernels().writeKv(closedBatch, 0, k, k, KvDtype.F32));
            MemorySegment q = arena.allocate(5 * HEAD_DIM * 4);
            MemorySegment freedSegment = freedBuffer.segment();
            freedBuffer.close();
            freedBuffer.close(); // idempotent
            assertClosed("freed", () -> cache.kernels().prefillAttention(batch, 0, AttentionParams.of(1), freedSegment,
                    q, null));
            assertClosed("device buffer", freedBuffer::segment);
            MemorySegment dead;
            try (Arena gone = Arena.ofConfined()) {
                dead = gone.allocate(q.byteSize());
            }
            assertClosed("freed", () -> cache.kernels().prefillAttention(batch, 0, AttentionParams.of(1), q, dead, null));
        }
        assertEquals(1, cache.stats().liveSequences());

        cache.close();
        cache.close(); // idempotent
        assertFalse(cache.isOpen());
        assertFalse(seq.isOpen());
        assertFalse(batch.isOpen());
        assertFalse(buffer.isOpen());
        String cacheClosed = "PagedKvCache is closed";
        assertClosed(cacheClosed, cache::stats);
        assertClosed(cacheClosed, cache::clearUnused);
        assertClosed(cacheClosed, () -> cache.createSequence(new int[] {1}));
        assertClosed(cacheClosed, () -> cache.page(0));
        assertClosed(cacheClosed, cache::poolAddress);
        assertClosed(cacheClosed, () -> cache.allocateDevice(64));
        assertClosed(cacheClosed, () -> cache.kernels().synchronize());
        assertClosed(cacheClosed, () -> cache.kernels().copyPages(new int[] {0}, new int[] {1}));
        assertClosed(cacheClosed, seq::numTokens);
        assertClosed(cacheClosed, seq::tokens);
        assertClosed(cacheClosed, () -> seq.commit(1));
        assertClosed(cacheClosed, batch::kvPageIndices);
        assertClosed(cacheClosed, batch::commit);
        assertClosed(cacheClosed, buffer::segment);
        assertClosed(cacheClosed, () -> buffer.copyToHost(MemorySegment.ofArray(new byte[8]), 8));
        assertClosed(cacheClosed, () -> cache.kernels().writeKv(batch, 0, MemorySegment.ofArray(new float[80]),
                MemorySegment.ofArray(new float[80]), KvDtype.F32));
        // The caller's own reads of a page are refused by the FFM runtime: the page is gone, never dangling.
        assertThrows(IllegalStateException.class, () -> page.get(ValueLayout.JAVA_INT, 0), "pages die with the cache");
        seq.close(); // no native call after the cache is gone
        seq.close();
        batch.close();
        batch.close();
        buffer.close();
        assertNotNull(cache.layout(), "the layout stays readable");
        assertTrue(cache.toString().contains("closed"));
    }

    /** An IllegalStateException whose message is pagedkv's (contains {@code words}), never the FFM runtime's. */
    static IllegalStateException assertClosed(String words, Executable call) {
        var error = assertThrows(IllegalStateException.class, call, words);
        assertPagedKvWords(error, words);
        return error;
    }

    static void assertPagedKvWords(IllegalStateException error, String words) {
        String message = error.getMessage();
        assertNotNull(message);
        assertTrue(message.contains(words), "expected a message with '" + words + "', got: " + message);
        for (String ffm : List.of("Already closed", "Session is acquired", "acquired by"))
            assertFalse(message.contains(ffm), "the FFM runtime's text reached the user: " + message);
    }
}
