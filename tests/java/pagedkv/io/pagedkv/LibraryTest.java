package io.pagedkv;

import static org.junit.jupiter.api.Assertions.*;

import java.util.Set;
import org.junit.jupiter.api.Test;

class LibraryTest {
    @Test
    void loadsAndReportsVersion() {
        assertEquals(10000 * 0 + 100 * 1 + 0, PagedKvCache.version());
        assertEquals("0.1.0", PagedKvCache.versionString());
    }

    @Test
    void backendsIncludeCpu() {
        Set<Backend> backends = PagedKvCache.backends();
        assertTrue(backends.contains(Backend.CPU), backends::toString);
        if (backends.contains(Backend.CUDA_DEVICE)) assertTrue(backends.contains(Backend.CUDA_BUILT));
        if (backends.contains(Backend.CPU_AVX512)) assertTrue(backends.contains(Backend.CPU_AVX2));
    }

    @Test
    void devices() {
        int count = PagedKvCache.cudaDeviceCount();
        assertTrue(count >= 0);
        assertEquals(count > 0, PagedKvCache.backends().contains(Backend.CUDA_DEVICE));
        String cpu = PagedKvCache.describeDevice(Device.cpu());
        assertFalse(cpu.isBlank());
        assertTrue(cpu.startsWith("cpu"), cpu);
        if (count == 0) {
            var error = assertThrows(PagedKvException.DeviceFailure.class, () -> PagedKvCache.describeDevice(Device.cuda(0)));
            assertFalse(error.getMessage().isBlank());
        } else {
            assertTrue(PagedKvCache.describeDevice(Device.cuda(0)).startsWith("cuda:0"));
        }
    }

    @Test
    void valueTypes() {
        assertEquals(4, KvDtype.F32.bytes());
        assertEquals(2, KvDtype.BF16.bytes());
        assertEquals(KvDtype.F16, KvDtype.ofCode(KvDtype.F16.code()));
        assertEquals("cuda:3", Device.cuda(3).toString());
        assertThrows(IllegalArgumentException.class, () -> new Device(Device.Type.CPU, 1));
        assertThrows(IllegalArgumentException.class, () -> Device.cuda(-1));
        AttentionParams p = AttentionParams.of(32).withSmScale(0.5f).withNumThreads(2).withKvSplitSize(-1);
        assertEquals(new AttentionParams(32, 0.5f, 2, -1), p);
        assertThrows(IllegalArgumentException.class, () -> AttentionParams.of(0));
        assertThrows(IllegalArgumentException.class, () -> p.withKvSplitSize(-2));
        assertEquals(0.0, new CacheStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0).hitRate());
        assertEquals(0.25, new CacheStats(0, 0, 0, 0, 0, 0, 8, 2, 0, 0, 0, 0, 0).hitRate());
    }
}
