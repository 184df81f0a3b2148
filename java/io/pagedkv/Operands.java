package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The tensors of one kernel or copy call, checked and made passable to the library.
 *
 * <p>Downcalls can only take native memory, and on a CUDA cache only device memory. So:
 * <ul>
 *   <li>a native host segment on a CPU cache is passed as is (no copy);</li>
 *   <li>a heap segment is copied into a scratch native buffer (inputs before the call, outputs
 *       back after it succeeds — only the bytes the kernel uses);</li>
 *   <li>on a CUDA cache, an address inside a buffer from {@link PagedKvCache#allocateDevice} is
 *       passed as is; host memory (heap or native) is staged through a temporary device buffer.</li>
 * </ul>
 * Every check runs before any native call, and outputs are written back only after the call
 * succeeded, so a rejected call leaves the caller's outputs untouched.
 *
 * <p>Confined to the calling thread; one instance per call, closed in a try-with-resources.
 */
final class Operands implements AutoCloseable {
    private final PagedKvCache cache;
    private final MemorySegment handle;
    private final boolean cuda;
    private final Arena scratch = Arena.ofConfined();
    private final List<Runnable> copyBack = new ArrayList<>(2);
    private final List<MemorySegment> deviceTemps = new ArrayList<>(0);

    Operands(PagedKvCache cache, MemorySegment handle) {
        this.cache = cache;
        this.handle = handle;
        this.cuda = cache.layout().device().isCuda();
    }

    /** Confined memory for parameter structs and out values; freed on close. */
    Arena scratch() {
        return scratch;
    }

    /** An input of {@code bytes} bytes aligned to {@code align}. */
    MemorySegment input(MemorySegment segment, long bytes, int align, String name) {
        return resolve(segment, bytes, align, name, false);
    }

    /** An output of {@code bytes} bytes, written back after {@link #finish()}. */
    MemorySegment output(MemorySegment segment, long bytes, int align, String name) {
        return resolve(segment, bytes, align, name, true);
    }

    /** Copies staged outputs back to the caller's segments; call after the native call succeeded. */
    void finish() {
        for (Runnable copy : copyBack) copy.run();
    }

    @Override
    public void close() {
        try {
            for (MemorySegment temp : deviceTemps) Status.check(pagedkv_device_free(handle, temp));
        } finally {
            scratch.close();
        }
    }

    private MemorySegment resolve(MemorySegment segment, long bytes, int align, String name, boolean output) {
        Objects.requireNonNull(segment, name);
        if (cuda) {
            DeviceMemory.Buffer buffer = cache.deviceMemory().find(segment.address());
            if (buffer != null) return deviceOperand(segment, buffer, bytes, align, name);
        }
        if (segment.byteSize() < bytes)
            throw new IllegalArgumentException(name + " holds " + segment.byteSize() + " bytes, the call needs " + bytes
                    + (segment.byteSize() == 0 && segment.isNative()
                            ? " (a zero-length segment: a raw address? pass a segment of the right size)" : ""));
        if (output && segment.isReadOnly()) throw new IllegalArgumentException(name + " is read-only");
        if (cuda) return stageOnDevice(segment, bytes, name, output);
        if (segment.isNative()) {
            if (segment.address() % align != 0)
                throw new IllegalArgumentException(name + " at 0x" + Long.toHexString(segment.address())
                        + " is not aligned to " + align + " bytes");
            return segment;
        }
        MemorySegment staged = scratch.allocate(bytes, 64);
        if (output) copyBack.add(() -> MemorySegment.copy(staged, 0, segment, 0, bytes));
        else MemorySegment.copy(segment, 0, staged, 0, bytes);
        return staged;
    }

    private static MemorySegment deviceOperand(MemorySegment segment, DeviceMemory.Buffer buffer, long bytes, int align,
                                               String name) {
        long address = segment.address();
        if (address + bytes > buffer.end())
            throw new IllegalArgumentException(name + " needs " + bytes + " bytes from offset " + (address - buffer.address())
                    + " of a device buffer of " + buffer.bytes() + " bytes");
        if (segment.byteSize() != 0 && segment.byteSize() < bytes)
            throw new IllegalArgumentException(name + " holds " + segment.byteSize() + " bytes, the call needs " + bytes);
        if (address % align != 0)
            throw new IllegalArgumentException(name + " at device address 0x" + Long.toHexString(address)
                    + " is not aligned to " + align + " bytes");
        return MemorySegment.ofAddress(address);
    }

    private MemorySegment stageOnDevice(MemorySegment host, long bytes, String name, boolean output) {
        MemorySegment out = scratch.allocate(C_POINTER);
        Status.check(pagedkv_device_alloc(handle, Math.max(bytes, 1), out));
        MemorySegment device = MemorySegment.ofAddress(out.get(C_POINTER, 0).address());
        deviceTemps.add(device);
        MemorySegment nativeHost = host.isNative() ? host : scratch.allocate(Math.max(bytes, 1), 64);
        if (output) {
            copyBack.add(() -> {
                Status.check(pagedkv_memcpy(handle, nativeHost, device, bytes, PAGEDKV_COPY_DEVICE_TO_HOST()));
                if (nativeHost != host) MemorySegment.copy(nativeHost, 0, host, 0, bytes);
            });
        } else {
            if (nativeHost != host) MemorySegment.copy(host, 0, nativeHost, 0, bytes);
            Status.check(pagedkv_memcpy(handle, device, nativeHost, bytes, PAGEDKV_COPY_HOST_TO_DEVICE()));
        }
        return device;
    }
}
