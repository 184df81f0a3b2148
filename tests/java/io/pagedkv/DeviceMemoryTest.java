package io.pagedkv;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** allocateDevice / copies / freeDevice on a CPU cache (host memory that behaves like a device buffer). */
class DeviceMemoryTest {
    private static PagedKvCache cache() {
        return PagedKvCache.builder().layers(1).kvHeads(1).headDim(8).pageSize(4).pages(8).kvDtype(KvDtype.F32).build();
    }

    @Test
    void allocateCopyFree() {
        try (PagedKvCache cache = cache()) {
            MemorySegment buffer = cache.allocateDevice(1000);
            assertEquals(1000, buffer.byteSize(), "on the CPU a device buffer is a real host segment");
            assertEquals(0, buffer.address() % 256);
            float[] data = new float[250];
            for (int i = 0; i < data.length; i++) data[i] = i * 0.5f;
            cache.copyToDevice(MemorySegment.ofArray(data), buffer, 1000);
            assertEquals(10.5f, buffer.getAtIndex(ValueLayout.JAVA_FLOAT, 21));
            float[] back = new float[250];
            cache.copyToHost(buffer, MemorySegment.ofArray(back), 1000);
            assertArrayEquals(data, back);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(1000);
                cache.copyToHost(buffer, host, 1000);
                assertEquals(-1, host.mismatch(buffer));
                assertThrows(IllegalArgumentException.class, () -> cache.copyToHost(buffer, host, 1001));
                assertThrows(IllegalArgumentException.class, () -> cache.copyToDevice(host, buffer, -1));
                assertThrows(IllegalArgumentException.class, () -> cache.copyToHost(buffer, host.asReadOnly(), 8));
                assertThrows(IllegalArgumentException.class, () -> cache.freeDevice(host), "not from allocateDevice");
            }
            cache.synchronize();
            cache.freeDevice(buffer);
            assertThrows(IllegalStateException.class, () -> buffer.get(ValueLayout.JAVA_BYTE, 0), "freed memory is unreachable");
            assertThrows(IllegalArgumentException.class, () -> cache.freeDevice(buffer), "double free");
            assertThrows(IllegalArgumentException.class, () -> cache.allocateDevice(0));
            assertThrows(IllegalArgumentException.class, () -> cache.allocateDevice(-8));
        }
    }

    @Test
    void closingTheCacheFreesItsBuffers() {
        PagedKvCache cache = cache();
        MemorySegment buffer = cache.allocateDevice(64);
        buffer.set(ValueLayout.JAVA_INT, 0, 42);
        cache.close();
        assertThrows(IllegalStateException.class, () -> buffer.get(ValueLayout.JAVA_INT, 0));
        assertThrows(IllegalStateException.class, () -> cache.allocateDevice(64));
        assertThrows(IllegalStateException.class, () -> cache.freeDevice(buffer));
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
