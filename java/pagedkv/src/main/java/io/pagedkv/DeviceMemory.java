package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.HandleGuard;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * One buffer on a cache's device, for kernel tensors, from {@link PagedKvCache#allocateDevice(long)}:
 * host memory on a CPU cache, {@code pagedkv_device_alloc} memory on a CUDA cache. The buffer is
 * the one owner of its allocation: {@link #close()} frees it (so does closing the cache).
 *
 * <p>Pass {@link #segment()} (or, on CUDA, {@code MemorySegment.ofAddress(address() + offset)}) to
 * the {@link Kernels}; a kernel or copy holds the buffer for as long as it runs, so it cannot be
 * freed under the call. On a CUDA cache the segment has length zero: device memory cannot be
 * dereferenced from Java, so use {@link #copyFromHost} and {@link #copyToHost}. On a CPU cache it is
 * an ordinary host segment of {@link #byteSize()} bytes.
 *
 * <p>Threads: every method may be called from any thread. {@link #close()} throws
 * {@link IllegalStateException} while a kernel or copy on another thread uses the buffer, and is
 * idempotent; after it (or once the cache is closed) every other method, and every kernel given the
 * buffer, throws {@link IllegalStateException}.
 */
public final class DeviceMemory implements AutoCloseable {
    static final long ALIGNMENT = 256;

    private final PagedKvCache cache;
    private final long address;
    private final long bytes;
    private final boolean cuda;
    // Owns the allocation (the host memory on a CPU cache); closing it makes every view of the
    // buffer inaccessible instead of dangling.
    private final Arena arena;
    private final MemorySegment segment;
    private final HandleGuard guard;

    private DeviceMemory(PagedKvCache cache, long address, long bytes, boolean cuda, Arena arena, MemorySegment segment) {
        this.cache = cache;
        this.address = address;
        this.bytes = bytes;
        this.cuda = cuda;
        this.arena = arena;
        this.segment = segment;
        this.guard = new HandleGuard(
                "this device buffer of " + bytes + " bytes is freed (closed); allocate a new one with allocateDevice",
                "cannot free this device buffer of " + bytes + " bytes while a kernel or copy on another thread uses it;"
                        + " close it after that call returns");
    }

    /** Allocates; the caller holds the cache open. */
    static DeviceMemory allocate(PagedKvCache cache, MemorySegment cacheHandle, long bytes) {
        boolean cuda = cache.device().isCuda();
        Arena arena = Arena.ofShared();
        try {
            if (!cuda) {
                MemorySegment host = arena.allocate(bytes, ALIGNMENT);
                return new DeviceMemory(cache, host.address(), bytes, false, arena, host);
            }
            long address;
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(C_POINTER);
                Status.check(pagedkv_device_alloc(cacheHandle, bytes, out));
                address = out.get(C_POINTER, 0).address();
            }
            // Zero length: Java must never dereference a device pointer.
            return new DeviceMemory(cache, address, bytes, true, arena, MemorySegment.ofAddress(address).reinterpret(0, arena, null));
        } catch (Throwable failure) {
            arena.close();
            throw failure;
        }
    }

    /** The cache this buffer belongs to. */
    public PagedKvCache cache() {
        return cache;
    }

    /** Bytes in the buffer. */
    public long byteSize() {
        return bytes;
    }

    /** Address of the first byte: a host pointer, or a CUDA device pointer (not dereferenceable from Java). */
    public long address() {
        return address;
    }

    /**
     * The buffer as a segment, to pass to the kernels: {@link #byteSize()} bytes of host memory on a
     * CPU cache, a zero-length segment at the device address on a CUDA cache.
     */
    public MemorySegment segment() {
        checkOpen();
        return segment;
    }

    /** Copies {@code bytes} from host memory (native or heap) to the start of this buffer; synchronous. */
    public void copyFromHost(MemorySegment hostSrc, long bytes) {
        copy(hostSrc, bytes, true);
    }

    /** Copies the first {@code bytes} of this buffer to host memory (native or heap); synchronous. */
    public void copyToHost(MemorySegment hostDst, long bytes) {
        copy(hostDst, bytes, false);
    }

    /** Whether {@link #close()} has not run and the cache is open. */
    public boolean isOpen() {
        return !guard.isClosed() && cache.isOpen();
    }

    /**
     * Frees the buffer; idempotent, and nothing to do once the cache is closed (it freed the buffer).
     * Throws {@link IllegalStateException} while a kernel or copy on another thread uses it.
     */
    @Override
    public void close() {
        MemorySegment cacheHandle = cache.tryEnter();
        if (cacheHandle == null) return;
        try {
            free(cacheHandle);
        } finally {
            cache.exit();
        }
    }

    @Override
    public String toString() {
        return "DeviceMemory[" + bytes + " bytes at 0x" + Long.toHexString(address) + " on " + cache.device()
                + (isOpen() ? "]" : ", freed]");
    }

    // ---- package-private: the cache's registry and the kernels' operands ----------------------------

    /** Holds the buffer for one call; throws {@link IllegalStateException} once it is freed. */
    void acquire() {
        guard.acquire();
    }

    void release() {
        guard.release();
    }

    boolean contains(long at) {
        return at >= address && at - address < bytes;
    }

    /** Frees the allocation; the caller holds the cache's native handle valid. False if already freed. */
    boolean free(MemorySegment cacheHandle) {
        if (!guard.close()) return false;
        try {
            arena.close();
        } catch (IllegalStateException heldByNativeCall) {
            // A native call of the caller's own still holds the host segment: keep the buffer usable.
            guard.reopen();
            throw new IllegalStateException("cannot free this device buffer of " + bytes + " bytes: a native call on"
                    + " another thread holds its segment; close it after that call returns", heldByNativeCall);
        }
        cache.buffers().remove(this);
        if (cuda) Status.check(pagedkv_device_free(cacheHandle, MemorySegment.ofAddress(address)));
        return true;
    }

    private void checkOpen() {
        cache.checkOpen(); // first: closing the cache freed this buffer too, and that is the news
        if (guard.isClosed()) throw guard.closedException();
    }

    private void copy(MemorySegment host, long count, boolean toDevice) {
        String name = toDevice ? "hostSrc" : "hostDst";
        Objects.requireNonNull(host, name);
        if (count < 0 || count > bytes)
            throw new IllegalArgumentException("bytes must lie in [0, " + bytes + "] (the buffer's size), got " + count);
        if (host.byteSize() < count)
            throw new IllegalArgumentException(name + " holds " + host.byteSize() + " bytes, the copy needs " + count);
        if (!toDevice && host.isReadOnly()) throw new IllegalArgumentException(name + " is read-only");
        Operands.checkUsable(host, name);
        MemorySegment cacheHandle = cache.enter();
        try {
            guard.acquire();
            try (Arena scratch = Arena.ofConfined()) {
                if (!cuda) {
                    if (toDevice) MemorySegment.copy(host, 0, segment, 0, count);
                    else MemorySegment.copy(segment, 0, host, 0, count);
                    return;
                }
                // The library copies between native memory only: a heap segment goes through a staging buffer.
                MemorySegment nativeHost = host.isNative() ? host : scratch.allocate(Math.max(count, 1), 64);
                MemorySegment device = MemorySegment.ofAddress(address);
                if (toDevice) {
                    if (nativeHost != host) MemorySegment.copy(host, 0, nativeHost, 0, count);
                    Status.check(Operands.call(() -> pagedkv_memcpy(cacheHandle, device, nativeHost, count,
                            PAGEDKV_COPY_HOST_TO_DEVICE())));
                } else {
                    Status.check(Operands.call(() -> pagedkv_memcpy(cacheHandle, nativeHost, device, count,
                            PAGEDKV_COPY_DEVICE_TO_HOST())));
                    if (nativeHost != host) MemorySegment.copy(nativeHost, 0, host, 0, count);
                }
            } finally {
                guard.release();
            }
        } finally {
            cache.exit();
        }
    }
}
