package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;

/**
 * The buffers a cache handed out through {@link PagedKvCache#allocateDevice(long)}, by address.
 * On a CUDA cache they are {@code pagedkv_device_alloc} memory, known to Java only as addresses,
 * and this registry is what lets kernels check that a device pointer and the bytes after it lie
 * inside one live buffer. On a CPU cache each buffer is a real host segment with its own arena,
 * so freeing it makes every view of it inaccessible instead of dangling.
 *
 * <p>Thread-safe.
 */
final class DeviceMemory {
    /** One buffer: {@code arena} owns host memory on a CPU cache and is null on CUDA. */
    record Buffer(long address, long bytes, Arena arena) {
        long end() {
            return address + bytes;
        }
    }

    static final long ALIGNMENT = 256;

    private final ConcurrentSkipListMap<Long, Buffer> buffers = new ConcurrentSkipListMap<>();
    private final boolean cuda;

    DeviceMemory(boolean cuda) {
        this.cuda = cuda;
    }

    MemorySegment allocate(MemorySegment cache, long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("bytes must be > 0, got " + bytes);
        if (!cuda) {
            Arena arena = Arena.ofShared();
            MemorySegment segment = arena.allocate(bytes, ALIGNMENT);
            buffers.put(segment.address(), new Buffer(segment.address(), bytes, arena));
            return segment;
        }
        long address;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(C_POINTER);
            Status.check(pagedkv_device_alloc(cache, bytes, out));
            address = out.get(C_POINTER, 0).address();
        }
        buffers.put(address, new Buffer(address, bytes, null));
        return MemorySegment.ofAddress(address);
    }

    void free(MemorySegment cache, MemorySegment segment) {
        long address = segment.address();
        Buffer buffer = buffers.remove(address);
        if (buffer == null)
            throw new IllegalArgumentException("0x" + Long.toHexString(address)
                    + " is not the start of a live buffer from allocateDevice of this cache (freed twice?)");
        if (buffer.arena() != null) {
            try {
                buffer.arena().close();
            } catch (IllegalStateException inUse) {
                buffers.put(address, buffer);
                throw inUse;
            }
        } else {
            Status.check(pagedkv_device_free(cache, MemorySegment.ofAddress(address)));
        }
    }

    /** The live buffer holding {@code address}, or null. */
    Buffer find(long address) {
        Map.Entry<Long, Buffer> entry = buffers.floorEntry(address);
        if (entry == null || address >= entry.getValue().end()) return null;
        return entry.getValue();
    }

    /**
     * Frees every buffer; called by the cache's cleanup just before the native cache is destroyed,
     * with a handle that is still valid. Never throws: a host buffer still in use by another
     * thread is left to its arena.
     */
    void freeAll(MemorySegment cache) {
        for (Buffer buffer; (buffer = pollFirst()) != null; ) {
            if (buffer.arena() != null) {
                try {
                    buffer.arena().close();
                } catch (IllegalStateException inUse) {
                    // Some thread is still reading it; the memory is freed when that arena is closed.
                }
            } else {
                // Nothing can be reported from a cleanup; the cache destroy below frees the device anyway.
                pagedkv_device_free(cache, MemorySegment.ofAddress(buffer.address()));
            }
        }
    }

    private Buffer pollFirst() {
        Map.Entry<Long, Buffer> entry = buffers.pollFirstEntry();
        return entry == null ? null : entry.getValue();
    }
}
