package io.pagedkv;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;

/**
 * The live {@link DeviceMemory} buffers of one cache, by address. On a CUDA cache Java knows a
 * device pointer only as a number, so this is what lets a kernel find the buffer an address lies
 * in: to check that the tensor fits inside it, and to hold the buffer while the call runs.
 *
 * <p>Thread-safe.
 */
final class DeviceBuffers {
    private final ConcurrentSkipListMap<Long, DeviceMemory> byAddress = new ConcurrentSkipListMap<>();

    void add(DeviceMemory buffer) {
        byAddress.put(buffer.address(), buffer);
    }

    void remove(DeviceMemory buffer) {
        byAddress.remove(buffer.address(), buffer);
    }

    /** The live buffer holding {@code address}, or null. */
    DeviceMemory find(long address) {
        Map.Entry<Long, DeviceMemory> entry = byAddress.floorEntry(address);
        return entry != null && entry.getValue().contains(address) ? entry.getValue() : null;
    }

    /**
     * Frees every buffer; run by the cache's cleanup just before the native cache is destroyed, with
     * a handle that is still valid. Never throws: nothing can be reported from a cleanup, and the
     * cache's destroy releases its device anyway.
     */
    void freeAll(MemorySegment cacheHandle) {
        for (Map.Entry<Long, DeviceMemory> entry; (entry = byAddress.pollFirstEntry()) != null; ) {
            try {
                entry.getValue().free(cacheHandle);
            } catch (RuntimeException heldOrFailed) {
                // A host buffer still held by a caller's own native call is freed when its arena closes.
            }
        }
    }
}
