package io.pagedkv;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** DeviceMemory on a CPU cache (host memory that behaves like a device buffer): copies, ownership, close. */
class DeviceMemoryTest {
    private static PagedKvCache cache() {
        return PagedKvCache.builder().layers(1).kvHeads(1).headDim(8).pageSize(4).pages(8).kvDtype(KvDtype.F32).build();
    }

    @Test
    void allocateCopyFree() {
        try (PagedKvCache cache = cache()) {
            DeviceMemory buffer = cache.allocateDevice(1000);
            assertEquals(1000, buffer.byteSize());
            MemorySegment segment = buffer.segment();
            assertEquals(1000, segment.byteSize(), "on the CPU a device buffer is a real host segment");
            assertEquals(0, buffer.address() % 256);
            assertEquals(buffer.address(), segment.address());
            assertSame(cache, buffer.cache());
            float[] data = new float[250];
            for (int i = 0; i < data.length; i++) data[i] = i * 0.5f;
            buffer.copyFromHost(MemorySegment.ofArray(data), 1000);
            assertEquals(10.5f, segment.getAtIndex(ValueLayout.JAVA_FLOAT, 21));
            float[] back = new float[250];
            buffer.copyToHost(MemorySegment.ofArray(back), 1000);
            assertArrayEquals(data, back);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(1000);
                buffer.copyToHost(host, 1000);
                assertEquals(-1, host.mismatch(segment));
                assertThrows(IllegalArgumentException.class, () -> buffer.copyToHost(host, 1001), "more than the buffer");
                assertThrows(IllegalArgumentException.class, () -> buffer.copyToHost(host.asSlice(0, 8), 16),
                        "more than the host segment");
                assertThrows(IllegalArgumentException.class, () -> buffer.copyFromHost(host, -1));
                assertThrows(IllegalArgumentException.class, () -> buffer.copyToHost(host.asReadOnly(), 8));
                assertThrows(NullPointerException.class, () -> buffer.copyFromHost(null, 8));
            }
            cache.kernels().synchronize();
            assertTrue(buffer.isOpen());
            buffer.close();
            assertFalse(buffer.isOpen());
            var freed = assertThrows(IllegalStateException.class, () -> segment.get(ValueLayout.JAVA_BYTE, 0),
                    "freed memory is unreachable");
            assertNotNull(freed);
            buffer.close(); // idempotent
            var closed = assertThrows(IllegalStateException.class, buffer::segment);
            assertTrue(closed.getMessage().contains("device buffer"), closed.getMessage());
            assertThrows(IllegalStateException.class, () -> buffer.copyFromHost(MemorySegment.ofArray(data), 8));
            assertThrows(IllegalArgumentException.class, () -> cache.allocateDevice(0));
            assertThrows(IllegalArgumentException.class, () -> cache.allocateDevice(-8));
            assertTrue(buffer.toString().contains("freed"), buffer.toString());
        }
    }

    @Test
    void closingTheCacheFreesItsBuffers() {
        PagedKvCache cache = cache();
        DeviceMemory buffer = cache.allocateDevice(64);
        MemorySegment segment = buffer.segment();
        segment.set(ValueLayout.JAVA_INT, 0, 42);
        cache.close();
        assertFalse(buffer.isOpen());
        assertThrows(IllegalStateException.class, () -> segment.get(ValueLayout.JAVA_INT, 0));
        assertThrows(IllegalStateException.class, () -> cache.allocateDevice(64));
        assertThrows(IllegalStateException.class, buffer::segment);
        assertThrows(IllegalStateException.class, () -> buffer.copyToHost(MemorySegment.ofArray(new byte[8]), 8));
        buffer.close(); // nothing left to free: harmless
    }

    @Test
    void poolAndPages() {
        try (PagedKvCache cache = cache()) {
            CacheLayout layout = cache.layout();
            assertEquals(cache.page(0).address(), cache.poolAddress());
            assertEquals(cache.poolAddress() + 3 * layout.pageBytes(), cache.pageAddress(3));
            assertEquals(layout.pageBytes(), cache.page(7).byteSize());
            MemorySegment v = cache.slab(2, 0, KvKind.V);
            assertEquals(layout.slabBytes(), v.byteSize());
            assertEquals(cache.pageAddress(2) + layout.slabBytes(), v.address());
        }
    }
}
