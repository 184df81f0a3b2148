package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.IntSupplier;

/**
 * The tensors of one kernel call, checked and made passable to the library.
 *
 * <p>The C functions take no tensor sizes (pagedkv.h: a smaller buffer is the caller's error, as
 * with memcpy), so every tensor's byte size is checked here against the shape the kernel will use,
 * before any native call. Downcalls can only take native memory, and on a CUDA cache only device
 * memory. So:
 * <ul>
 *   <li>a native host segment on a CPU cache is passed as is (no copy);</li>
 *   <li>a heap segment is copied into a scratch native buffer (inputs before the call, outputs
 *       back after it succeeds — only the bytes the kernel uses);</li>
 *   <li>on a CUDA cache, an address inside a {@link DeviceMemory} of the cache is passed as is;
 *       host memory (heap or native) is staged through a temporary device buffer.</li>
 * </ul>
 * A {@link DeviceMemory} a tensor lies in is held until {@link #close()}, so no other thread can
 * free it under the call. Outputs are written back only after the call succeeded, so a rejected
 * call leaves the caller's outputs untouched.
 *
 * <p>Confined to the calling thread; one instance per call, closed in a try-with-resources while
 * the cache is held open.
 */
final class Operands implements AutoCloseable {
    private final PagedKvCache cache;
    private final MemorySegment handle;
    private final boolean cuda;
    private final Arena scratch = Arena.ofConfined();
    private final List<Runnable> copyBack = new ArrayList<>(2);
    private final List<MemorySegment> deviceTemps = new ArrayList<>(0);
    private final List<DeviceMemory> held = new ArrayList<>(0);

    Operands(PagedKvCache cache, MemorySegment handle) {
        this.cache = cache;
        this.handle = handle;
        this.cuda = cache.device().isCuda();
    }

    /**
     * Throws unless {@code segment} can be read by this thread: {@link IllegalStateException} when
     * its memory is freed (the FFM runtime would say "Already closed"), {@link IllegalArgumentException}
     * when it belongs to another thread's confined arena.
     */
    static void checkUsable(MemorySegment segment, String name) {
        if (!segment.scope().isAlive())
            throw new IllegalStateException(name + " is freed: the arena or DeviceMemory that owned it is closed;"
                    + " pass live memory");
        if (!segment.isAccessibleBy(Thread.currentThread()))
            throw new IllegalArgumentException(name + " belongs to a confined arena of another thread; pass memory this"
                    + " thread may use (a shared, global or automatic arena, or a heap segment)");
    }

    /**
     * Runs a downcall whose arguments include caller segments. Their memory was checked alive, but
     * another thread may free it just before the call; the FFM runtime then refuses the call, and
     * this says so in pagedkv's words.
     */
    static int call(IntSupplier downcall) {
        try {
            return downcall.getAsInt();
        } catch (IllegalStateException freedMeanwhile) {
            throw new IllegalStateException("a tensor of this call was freed by another thread as the call started;"
                    + " nothing was done", freedMeanwhile);
        }
    }

    /** Confined memory for parameter structs and out values; freed on close. */
    Arena scratch() {
        return scratch;
    }

    /** An input of {@code bytes} bytes aligned to {@code align}. */
    MemorySegment input(MemorySegment segment, long bytes, int align, String name) {
        return resolve(segment, bytes, align, name, false);
    }

    /** An output of {@code bytes} bytes, written back by {@link #finish()}. */
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
            for (DeviceMemory buffer : held) buffer.release();
            scratch.close();
        }
    }

    private MemorySegment resolve(MemorySegment segment, long bytes, int align, String name, boolean output) {
        Objects.requireNonNull(segment, name);
        DeviceMemory buffer = segment.isNative() ? cache.buffers().find(segment.address()) : null;
        if (buffer != null) {
            buffer.acquire(); // throws if another thread freed it since the lookup
            held.add(buffer);
            if (cuda) return deviceOperand(segment, buffer, bytes, align, name);
        }
        checkUsable(segment, name);
        if (segment.byteSize() < bytes)
            throw new IllegalArgumentException(name + " holds " + segment.byteSize() + " bytes, the call needs " + bytes
                    + (segment.byteSize() == 0 && segment.isNative()
                            ? " (a zero-length segment: a raw address? pass a segment of the right size)" : ""));
        if (output && segment.isReadOnly()) throw new IllegalArgumentException(name + " is read-only");
        if (cuda) return stageOnDevice(segment, bytes, output);
        if (segment.isNative()) {
            if (segment.address() % align != 0)
                throw new IllegalArgumentException(name + " at 0x" + Long.toHexString(segment.address())
                        + " is not aligned to " + align + " bytes");
            return segment;
        }
        MemorySegment staged = scratch.allocate(Math.max(bytes, 1), 64);
        if (output) copyBack.add(() -> MemorySegment.copy(staged, 0, segment, 0, bytes));
        else MemorySegment.copy(segment, 0, staged, 0, bytes);
        return staged;
    }

    private static MemorySegment deviceOperand(MemorySegment segment, DeviceMemory buffer, long bytes, int align,
                                               String name) {
        long address = segment.address();
        long offset = address - buffer.address();
        if (bytes > buffer.byteSize() - offset)
            throw new IllegalArgumentException(name + " needs " + bytes + " bytes from offset " + offset
                    + " of a device buffer of " + buffer.byteSize() + " bytes");
        if (segment.byteSize() != 0 && segment.byteSize() < bytes)
            throw new IllegalArgumentException(name + " holds " + segment.byteSize() + " bytes, the call needs " + bytes);
        if (address % align != 0)
            throw new IllegalArgumentException(name + " at device address 0x" + Long.toHexString(address)
                    + " is not aligned to " + align + " bytes");
        // A plain address: the buffer is held by this call, so its scope need not be (and a freed
        // buffer's segment was refused by acquire()).
        return MemorySegment.ofAddress(address);
    }

    private MemorySegment stageOnDevice(MemorySegment host, long bytes, boolean output) {
        MemorySegment out = scratch.allocate(C_POINTER);
        Status.check(pagedkv_device_alloc(handle, Math.max(bytes, 1), out));
        MemorySegment device = MemorySegment.ofAddress(out.get(C_POINTER, 0).address());
        deviceTemps.add(device);
        MemorySegment nativeHost = host.isNative() ? host : scratch.allocate(Math.max(bytes, 1), 64);
        if (output) {
            copyBack.add(() -> {
                Status.check(call(() -> pagedkv_memcpy(handle, nativeHost, device, bytes, PAGEDKV_COPY_DEVICE_TO_HOST())));
                if (nativeHost != host) MemorySegment.copy(nativeHost, 0, host, 0, bytes);
            });
        } else {
            if (nativeHost != host) MemorySegment.copy(host, 0, nativeHost, 0, bytes);
            Status.check(call(() -> pagedkv_memcpy(handle, device, nativeHost, bytes, PAGEDKV_COPY_HOST_TO_DEVICE())));
        }
        return device;
    }
}
