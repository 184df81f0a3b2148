package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.NativeLibrary;
import io.pagedkv.internal.ffi.pagedkv_attention_params;
import io.pagedkv.internal.ffi.pagedkv_cache_config;
import io.pagedkv.internal.ffi.pagedkv_cache_layout;
import io.pagedkv.internal.ffi.pagedkv_cache_stats;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * A paged KV cache: one page pool on one device, one prefix index, and the sequences using it.
 *
 * <pre>{@code
 * try (PagedKvCache cache = PagedKvCache.builder()
 *         .layers(32).kvHeads(8).headDim(128).pageSize(16).pages(4096).kvDtype(KvDtype.BF16).build();
 *      Sequence seq = cache.createSequence(prompt)) {
 *     // seq.numCached() positions are already computed; compute the rest, write their K/V, then:
 *     seq.commitAll();
 * }
 * }</pre>
 *
 * <p><b>Ownership.</b> The cache owns one shared {@link Arena}; the native cache is tied to it, so
 * {@link #close()} destroys the native cache, every sequence and batch made from it, the buffers
 * from {@link #allocateDevice(long)}, and makes every segment it handed out ({@link #page},
 * {@link #slab}, batch arrays) inaccessible. After close, every method of the cache and of its
 * sequences and batches throws {@link IllegalStateException}.
 *
 * <p><b>Threads.</b> A cache may be used from several threads at once: the native side serializes
 * metadata operations (sequences, batches, stats), and CPU kernels may run concurrently on disjoint
 * outputs. {@link #close()} fails with {@link IllegalStateException} while another thread is inside
 * a call on this cache; close it once all users are done.
 *
 * <p><b>Errors.</b> Arguments Java can check (null references, tensor sizes, layer ranges) throw
 * {@link NullPointerException} or {@link IllegalArgumentException} before any native call; the
 * library's own checks (token ids, counts, page ids...) surface as {@link PagedKvException}s with
 * the library's message. A failed call changes nothing.
 *
 * <p><b>Tensors.</b> Kernel tensors are dense row-major {@link MemorySegment}s. On a CPU cache they
 * may be native segments (passed without copying) or heap segments (copied through a scratch
 * native buffer, outputs copied back after success). On a CUDA cache they should be device buffers
 * from {@link #allocateDevice(long)} (used in place; kernels run asynchronously on the default
 * stream, see {@link #synchronize()}); host segments are accepted and staged through temporary
 * device buffers, which makes the call synchronous.
 */
public final class PagedKvCache implements AutoCloseable {
    static {
        NativeLibrary.ensureLoaded();
    }

    private static final int FLOAT_BYTES = 4;

    private final Arena arena;
    private final MemorySegment handle;
    private final CacheLayout layout;
    private final MemorySegment pool;
    private final long poolAddress;
    private final DeviceMemory deviceMemory;
    private final Object closeLock = new Object();
    private volatile boolean closed;

    private PagedKvCache(MemorySegment config, Device device) {
        Arena owner = Arena.ofShared();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(C_POINTER);
            Status.check(pagedkv_cache_create(config, out));
            DeviceMemory buffers = new DeviceMemory(device.isCuda());
            // From here the arena owns the native cache: closing it frees the buffers, then the cache.
            this.handle = out.get(C_POINTER, 0).reinterpret(0, owner, raw -> {
                buffers.freeAll(raw);
                pagedkv_cache_destroy(raw); // cannot fail for a valid handle; nothing to report from a cleanup
            });
            this.arena = owner;
            this.deviceMemory = buffers;
            NativeLayout nativeLayout = readLayout(scratch, handle);
            this.layout = nativeLayout.layout();
            this.poolAddress = nativeLayout.poolAddress();
            this.pool = device.isCuda() ? null
                    : MemorySegment.ofAddress(poolAddress).reinterpret(layout.poolBytes(), owner, null);
        } catch (Throwable failure) {
            owner.close();
            throw failure;
        }
    }

    /** The layout record plus the pool pointer, which the record leaves out. */
    private record NativeLayout(CacheLayout layout, long poolAddress) {}

    private static NativeLayout readLayout(Arena scratch, MemorySegment cache) {
        MemorySegment l = pagedkv_cache_layout.allocate(scratch);
        pagedkv_cache_layout.struct_size(l, (int) pagedkv_cache_layout.sizeof());
        Status.check(pagedkv_cache_get_layout(cache, l));
        CacheLayout layout = new CacheLayout(pagedkv_cache_layout.num_layers(l), pagedkv_cache_layout.num_kv_heads(l),
                pagedkv_cache_layout.head_dim(l), pagedkv_cache_layout.page_size(l), pagedkv_cache_layout.num_pages(l),
                KvDtype.ofCode(pagedkv_cache_layout.kv_dtype(l)),
                new Device(Device.Type.ofCode(pagedkv_cache_layout.device_type(l)), pagedkv_cache_layout.device_index(l)),
                pagedkv_cache_layout.page_bytes(l), pagedkv_cache_layout.slab_stride(l),
                pagedkv_cache_layout.page_stride(l), pagedkv_cache_layout.pool_bytes(l));
        return new NativeLayout(layout, pagedkv_cache_layout.pool_base(l).address());
    }

    /** A builder; layers, kvHeads, headDim and pages (or byteBudget) must be set. */
    public static Builder builder() {
        return new Builder();
    }

    // ---- library-wide ------------------------------------------------------------------------------

    /** Version of the loaded native library as {@code MAJOR*10000 + MINOR*100 + PATCH}. */
    public static int version() {
        return pagedkv_version();
    }

    /** Version of the loaded native library as {@code "MAJOR.MINOR.PATCH"}. */
    public static String versionString() {
        int v = version();
        return (v / 10000) + "." + (v / 100 % 100) + "." + (v % 100);
    }

    /** What the loaded library can run on this machine; always contains {@link Backend#CPU}. */
    public static Set<Backend> backends() {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment mask = scratch.allocate(C_INT);
            Status.check(pagedkv_backends(mask));
            return Backend.fromMask(mask.get(C_INT, 0));
        }
    }

    /** Usable CUDA devices: 0 without CUDA support or without a device (not an error). */
    public static int cudaDeviceCount() {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment count = scratch.allocate(C_INT);
            Status.check(pagedkv_cuda_device_count(count));
            return count.get(C_INT, 0);
        }
    }

    /** A one-line description, e.g. {@code "cpu: 16 threads, avx2 f16c fma"}. */
    public static String describeDevice(Device device) {
        Objects.requireNonNull(device, "device");
        int capacity = 512;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment buffer = scratch.allocate(capacity);
            Status.check(pagedkv_device_describe(device.type().code(), device.index(), buffer, capacity));
            return buffer.getString(0);
        }
    }

    // ---- cache ---------------------------------------------------------------------------------------

    /** The physical layout of the pool; immutable, readable after close. */
    public CacheLayout layout() {
        return layout;
    }

    /** The device holding the pool. */
    public Device device() {
        return layout.device();
    }

    /** A snapshot of the counters; cheap. */
    public CacheStats stats() {
        MemorySegment cache = handle();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment s = pagedkv_cache_stats.allocate(scratch);
            pagedkv_cache_stats.struct_size(s, (int) pagedkv_cache_stats.sizeof());
            Status.check(pagedkv_cache_get_stats(cache, s));
            return new CacheStats(pagedkv_cache_stats.pages_total(s), pagedkv_cache_stats.pages_free(s),
                    pagedkv_cache_stats.pages_cached(s), pagedkv_cache_stats.pages_in_use(s),
                    pagedkv_cache_stats.index_nodes(s), pagedkv_cache_stats.live_sequences(s),
                    pagedkv_cache_stats.prompt_tokens(s), pagedkv_cache_stats.reused_tokens(s),
                    pagedkv_cache_stats.computed_tokens(s), pagedkv_cache_stats.evictions(s),
                    pagedkv_cache_stats.cow_copies(s), pagedkv_cache_stats.dedup_hits(s));
        }
    }

    /** Evicts every cached page no sequence holds; returns how many pages were freed. */
    public int clearUnused() {
        MemorySegment cache = handle();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment evicted = scratch.allocate(C_INT);
            Status.check(pagedkv_cache_clear_unused(cache, evicted));
            return evicted.get(C_INT, 0);
        }
    }

    /**
     * Page {@code pageId} of a host cache: a {@code pageBytes} slice of the pool, readable and
     * writable, valid until the cache is closed. Throws {@link IllegalStateException} on a CUDA
     * cache, whose pages are device memory that Java cannot dereference (see {@link #pageAddress}).
     */
    public MemorySegment page(int pageId) {
        checkOpen();
        checkPageId(pageId);
        if (pool == null)
            throw new IllegalStateException("the pool of a " + layout.device()
                    + " cache is device memory and cannot be dereferenced from Java; use pageAddress(int) or copyToHost");
        return pool.asSlice(pageId * layout.pageBytes(), layout.pageBytes());
    }

    /** The K or V slab of one layer of a page (host cache): {@code kvHeads*pageSize*headDim} elements. */
    public MemorySegment slab(int pageId, int layer, KvKind kind) {
        Objects.requireNonNull(kind, "kind");
        checkLayer(layer);
        return page(pageId).asSlice(layout.slabOffset(layer, kind), layout.slabBytes());
    }

    /** Address of the pool: a host pointer, or a CUDA device pointer (not dereferenceable from Java). */
    public long poolAddress() {
        checkOpen();
        return poolAddress;
    }

    /** Address of page {@code pageId} (host or device pointer, as {@link #poolAddress()}). */
    public long pageAddress(int pageId) {
        checkOpen();
        checkPageId(pageId);
        return poolAddress + pageId * layout.pageBytes();
    }

    /** Whether {@link #close()} has not run yet. */
    public boolean isOpen() {
        return !closed;
    }

    /**
     * Destroys the native cache with all its sequences, batches, device buffers and pages; later
     * calls do nothing. Throws {@link IllegalStateException} (and closes nothing) while another
     * thread is inside a call on this cache.
     */
    @Override
    public void close() {
        synchronized (closeLock) {
            if (closed) return;
            arena.close();
            closed = true;
        }
    }

    @Override
    public String toString() {
        return "PagedKvCache[" + layout.device() + ", " + layout.layers() + " layers, " + layout.kvHeads() + " kv heads x "
                + layout.headDim() + ", " + layout.pages() + " pages of " + layout.pageSize() + " tokens, "
                + layout.kvDtype() + (closed ? ", closed]" : "]");
    }

    // ---- sequences and batches -----------------------------------------------------------------------

    /** Creates a sequence for {@code prompt} under the default (empty) isolation key. */
    public Sequence createSequence(int[] prompt) {
        return createSequence(prompt, new byte[0]);
    }

    /** Creates a sequence under the isolation key {@code salt} (its UTF-8 bytes). */
    public Sequence createSequence(int[] prompt, String salt) {
        Objects.requireNonNull(salt, "salt");
        return createSequence(prompt, salt.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Creates a sequence for {@code prompt}: the longest computed prefix known under the same
     * {@code salt} is reused ({@link Sequence#numCached()} positions; at least the last token is
     * left to compute), and pages for the rest are reserved, all or nothing.
     *
     * @throws OutOfPagesException when the pages cannot be reserved; nothing changed
     * @throws PagedKvException.InvalidArgument for an empty prompt or a token outside the vocabulary
     */
    public Sequence createSequence(int[] prompt, byte[] salt) {
        Objects.requireNonNull(prompt, "prompt");
        Objects.requireNonNull(salt, "salt");
        MemorySegment cache = handle();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment tokens = scratch.allocateFrom(C_INT, prompt);
            MemorySegment key = salt.length == 0 ? MemorySegment.NULL : scratch.allocateFrom(ValueLayout.JAVA_BYTE, salt);
            MemorySegment id = scratch.allocate(C_LONG_LONG);
            MemorySegment cached = scratch.allocate(C_LONG_LONG);
            Status.check(pagedkv_sequence_create(cache, tokens, prompt.length, key, salt.length, id, cached));
            return new Sequence(this, id.get(C_LONG_LONG, 0), cached.get(C_LONG_LONG, 0));
        }
    }

    /** The kernel metadata for {@code sequences}, as a snapshot; see {@link Batch}. */
    public Batch batch(Sequence... sequences) {
        Objects.requireNonNull(sequences, "sequences");
        return batch(List.of(sequences));
    }

    /** The kernel metadata for {@code sequences}, as a snapshot; see {@link Batch}. */
    public Batch batch(List<Sequence> sequences) {
        Objects.requireNonNull(sequences, "sequences");
        long[] ids = new long[sequences.size()];
        for (int i = 0; i < ids.length; i++) {
            Sequence sequence = Objects.requireNonNull(sequences.get(i), "sequences[" + i + "]");
            if (sequence.cache() != this)
                throw new IllegalArgumentException("sequences[" + i + "] belongs to another cache");
            ids[i] = sequence.idForCall();
        }
        MemorySegment cache = handle();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(C_POINTER);
            Status.check(pagedkv_batch_create(cache, scratch.allocateFrom(C_LONG_LONG, ids), ids.length, out));
            // Scoped to the cache's arena: any use after the cache is closed is refused by the FFM runtime.
            return new Batch(this, out.get(C_POINTER, 0).reinterpret(0, arena, null), arena);
        }
    }

    // ---- kernels ---------------------------------------------------------------------------------------

    /**
     * Writes K and V of the batch's query tokens into their slots of {@code layer}.
     * {@code k} and {@code v} are {@code [numQoTokens, kvHeads, headDim]} of {@code srcDtype}, which
     * must be F32 or the cache's KV dtype.
     */
    public void writeKv(Batch batch, int layer, MemorySegment k, MemorySegment v, KvDtype srcDtype) {
        Objects.requireNonNull(batch, "batch");
        Objects.requireNonNull(srcDtype, "srcDtype");
        MemorySegment cache = handle();
        checkBatch(batch);
        checkLayer(layer);
        if (srcDtype != KvDtype.F32 && srcDtype != layout.kvDtype())
            throw new IllegalArgumentException("srcDtype must be F32 or the cache's " + layout.kvDtype() + ", got " + srcDtype);
        batch.acquire();
        try (Operands operands = new Operands(this, cache)) {
            long bytes = Math.multiplyExact(batch.numQoTokens(), (long) layout.kvHeads() * layout.headDim() * srcDtype.bytes());
            MemorySegment kIn = operands.input(k, bytes, srcDtype.bytes(), "k");
            MemorySegment vIn = operands.input(v, bytes, srcDtype.bytes(), "v");
            MemorySegment params = params(operands.scratch(), AttentionParams.of(layout.kvHeads()));
            Status.check(pagedkv_write_kv(cache, batch.handle(), layer, kIn, vIn, srcDtype.code(), params));
        } finally {
            batch.release();
        }
    }

    /**
     * Decode attention: every sequence of the batch has exactly one query token, which attends to
     * all of its KV. {@code q}, {@code out}: {@code [numSeqs, numQoHeads, headDim]} float32;
     * {@code lse} (nullable): {@code [numSeqs, numQoHeads]} float32, natural-log log-sum-exp.
     */
    public void decodeAttention(Batch batch, int layer, AttentionParams params, MemorySegment q, MemorySegment out,
                                MemorySegment lse) {
        attention(Kernel.DECODE, batch, layer, params, q, out, lse);
    }

    /**
     * Prefill / extend attention: query token j of sequence i (position {@code kvLen - qoLen + j})
     * attends causally to KV positions {@code [0, position]}. {@code q}, {@code out}:
     * {@code [numQoTokens, numQoHeads, headDim]} float32; {@code lse} (nullable):
     * {@code [numQoTokens, numQoHeads]}.
     */
    public void prefillAttention(Batch batch, int layer, AttentionParams params, MemorySegment q, MemorySegment out,
                                 MemorySegment lse) {
        attention(Kernel.PREFILL, batch, layer, params, q, out, lse);
    }

    /**
     * Shared-prefix attention: the same result as {@link #prefillAttention}, but the batch's
     * {@link Batch#sharedPrefixPages()} are read once for all queries and merged through the LSE.
     */
    public void cascadeAttention(Batch batch, int layer, AttentionParams params, MemorySegment q, MemorySegment out,
                                 MemorySegment lse) {
        attention(Kernel.CASCADE, batch, layer, params, q, out, lse);
    }

    /** Copies whole pages {@code src[i] -> dst[i]} (all layers, K and V) on the cache's device. */
    public void copyPages(int[] src, int[] dst) {
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(dst, "dst");
        if (src.length != dst.length)
            throw new IllegalArgumentException("src has " + src.length + " page ids, dst " + dst.length);
        MemorySegment cache = handle();
        try (Arena scratch = Arena.ofConfined()) {
            Status.check(pagedkv_copy_pages(cache, scratch.allocateFrom(C_INT, src), scratch.allocateFrom(C_INT, dst),
                    src.length, MemorySegment.NULL));
        }
    }

    /** The attention kernels, which share one contract apart from decode's one query per sequence. */
    private enum Kernel {
        DECODE,
        PREFILL,
        CASCADE;

        int run(MemorySegment cache, MemorySegment batch, int layer, MemorySegment params, MemorySegment q,
                MemorySegment out, MemorySegment lse) {
            return switch (this) {
                case DECODE -> pagedkv_decode_attention(cache, batch, layer, params, q, out, lse);
                case PREFILL -> pagedkv_prefill_attention(cache, batch, layer, params, q, out, lse);
                case CASCADE -> pagedkv_cascade_attention(cache, batch, layer, params, q, out, lse);
            };
        }
    }

    private void attention(Kernel kernel, Batch batch, int layer, AttentionParams params, MemorySegment q,
                           MemorySegment out, MemorySegment lse) {
        boolean decode = kernel == Kernel.DECODE;
        Objects.requireNonNull(batch, "batch");
        Objects.requireNonNull(params, "params");
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(out, "out");
        MemorySegment cache = handle();
        checkBatch(batch);
        checkLayer(layer);
        if (params.numQoHeads() % layout.kvHeads() != 0)
            throw new IllegalArgumentException("numQoHeads " + params.numQoHeads() + " is not a multiple of the cache's "
                    + layout.kvHeads() + " kv heads");
        batch.acquire();
        try (Operands operands = new Operands(this, cache)) {
            long rows = decode ? batch.numSeqs() : batch.numQoTokens();
            if (decode && (batch.numQoTokens() != batch.numSeqs() || (batch.numSeqs() > 0 && batch.maxQoLen() != 1)))
                throw new IllegalArgumentException("decode needs exactly one query token per sequence; the batch has "
                        + batch.numQoTokens() + " query tokens for " + batch.numSeqs() + " sequences (use prefill)");
            long lseBytes = Math.multiplyExact(rows, (long) params.numQoHeads() * FLOAT_BYTES);
            long tensorBytes = Math.multiplyExact(lseBytes, layout.headDim());
            MemorySegment qIn = operands.input(q, tensorBytes, FLOAT_BYTES, "q");
            MemorySegment outIn = operands.output(out, tensorBytes, FLOAT_BYTES, "out");
            MemorySegment lseIn = lse == null ? MemorySegment.NULL : operands.output(lse, lseBytes, FLOAT_BYTES, "lse");
            MemorySegment p = params(operands.scratch(), params);
            Status.check(kernel.run(cache, batch.handle(), layer, p, qIn, outIn, lseIn));
            operands.finish();
        } finally {
            batch.release();
        }
    }

    private static MemorySegment params(Arena scratch, AttentionParams params) {
        MemorySegment p = pagedkv_attention_params.allocate(scratch);
        pagedkv_attention_params.struct_size(p, (int) pagedkv_attention_params.sizeof());
        pagedkv_attention_params.num_qo_heads(p, params.numQoHeads());
        pagedkv_attention_params.sm_scale(p, params.smScale());
        pagedkv_attention_params.q_dtype(p, KvDtype.F32.code());
        pagedkv_attention_params.out_dtype(p, KvDtype.F32.code());
        pagedkv_attention_params.num_threads(p, params.numThreads());
        pagedkv_attention_params.kv_split_size(p, params.kvSplitSize());
        pagedkv_attention_params.cuda_stream(p, MemorySegment.NULL);
        return p;
    }

    // ---- device memory -----------------------------------------------------------------------------

    /**
     * Allocates {@code bytes} (256-byte aligned) on the cache's device, for kernel tensors. On a CUDA
     * cache the result is a zero-length segment whose address is the device pointer: it is NOT
     * dereferenceable from Java; pass it (or {@code MemorySegment.ofAddress(address + offset)}) to
     * kernels and the copy methods. On a CPU cache it is an ordinary host segment of {@code bytes}.
     * Freed by {@link #freeDevice} or when the cache is closed.
     */
    public MemorySegment allocateDevice(long bytes) {
        return deviceMemory.allocate(handle(), bytes);
    }

    /** Frees a buffer from {@link #allocateDevice}; every segment of it becomes unusable. */
    public void freeDevice(MemorySegment buffer) {
        Objects.requireNonNull(buffer, "buffer");
        deviceMemory.free(handle(), buffer);
    }

    /** Copies {@code bytes} from host memory (native or heap) to a device buffer; synchronous. */
    public void copyToDevice(MemorySegment hostSrc, MemorySegment deviceDst, long bytes) {
        copy(hostSrc, deviceDst, bytes, true);
    }

    /** Copies {@code bytes} from a device buffer to host memory (native or heap); synchronous. */
    public void copyToHost(MemorySegment deviceSrc, MemorySegment hostDst, long bytes) {
        copy(deviceSrc, hostDst, bytes, false);
    }

    /** Waits for all work queued on the cache's device (a no-op on the CPU). */
    public void synchronize() {
        Status.check(pagedkv_synchronize(handle()));
    }

    private void copy(MemorySegment src, MemorySegment dst, long bytes, boolean toDevice) {
        Objects.requireNonNull(src, toDevice ? "hostSrc" : "deviceSrc");
        Objects.requireNonNull(dst, toDevice ? "deviceDst" : "hostDst");
        if (bytes < 0) throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
        MemorySegment cache = handle();
        if (!layout.device().isCuda()) {
            if (src.byteSize() < bytes || dst.byteSize() < bytes)
                throw new IllegalArgumentException("copy of " + bytes + " bytes from a segment of " + src.byteSize()
                        + " bytes into one of " + dst.byteSize());
            if (dst.isReadOnly()) throw new IllegalArgumentException("the destination is read-only");
            MemorySegment.copy(src, 0, dst, 0, bytes);
            return;
        }
        // Operands stage the host side through a device temporary only when it is heap memory;
        // here the device side must be a buffer of this cache and the host side native or heap.
        try (Operands operands = new Operands(this, cache)) {
            if (toDevice) {
                MemorySegment device = operands.output(requireDevice(dst, "deviceDst"), bytes, 1, "deviceDst");
                MemorySegment host = hostNative(operands, src, bytes, "hostSrc", true);
                Status.check(pagedkv_memcpy(cache, device, host, bytes, PAGEDKV_COPY_HOST_TO_DEVICE()));
            } else {
                MemorySegment device = operands.input(requireDevice(src, "deviceSrc"), bytes, 1, "deviceSrc");
                MemorySegment host = hostNative(operands, dst, bytes, "hostDst", false);
                Status.check(pagedkv_memcpy(cache, host, device, bytes, PAGEDKV_COPY_DEVICE_TO_HOST()));
                if (host != dst) MemorySegment.copy(host, 0, dst, 0, bytes);
            }
        }
    }

    private MemorySegment requireDevice(MemorySegment segment, String name) {
        if (deviceMemory.find(segment.address()) == null)
            throw new IllegalArgumentException(name + " is not inside a live buffer from allocateDevice of this cache");
        return segment;
    }

    private static MemorySegment hostNative(Operands operands, MemorySegment host, long bytes, String name, boolean source) {
        if (host.byteSize() < bytes)
            throw new IllegalArgumentException(name + " holds " + host.byteSize() + " bytes, the copy needs " + bytes);
        if (!source && host.isReadOnly()) throw new IllegalArgumentException(name + " is read-only");
        if (host.isNative()) return host;
        MemorySegment staged = operands.scratch().allocate(Math.max(bytes, 1), 64);
        if (source) MemorySegment.copy(host, 0, staged, 0, bytes);
        return staged;
    }

    // ---- package-private -------------------------------------------------------------------------------

    /** The native handle, after checking the cache is open. */
    MemorySegment handle() {
        checkOpen();
        return handle;
    }

    DeviceMemory deviceMemory() {
        return deviceMemory;
    }

    void checkOpen() {
        if (closed) throw new IllegalStateException("the cache is closed");
    }

    private void checkBatch(Batch batch) {
        if (batch.cache() != this) throw new IllegalArgumentException("the batch belongs to another cache");
    }

    private void checkLayer(int layer) {
        if (layer < 0 || layer >= layout.layers())
            throw new IllegalArgumentException("layer " + layer + " out of range [0, " + layout.layers() + ")");
    }

    private void checkPageId(int pageId) {
        if (pageId < 0 || pageId >= layout.pages())
            throw new IllegalArgumentException("page id " + pageId + " out of range [0, " + layout.pages() + ")");
    }

    /**
     * Configures and creates a {@link PagedKvCache}. Defaults: page size 16, F16 keys and values,
     * the CPU, any token id &gt;= 0 (vocabulary 0), prefix reuse on. Values are checked by the library
     * when {@link #build()} runs. Not thread-safe.
     */
    public static final class Builder {
        private int layers;
        private int kvHeads;
        private int headDim;
        private int pageSize = 16;
        private int pages;
        private long byteBudget;
        private KvDtype kvDtype = KvDtype.F16;
        private Device device = Device.cpu();
        private int vocabSize;
        private boolean reuse = true;

        private Builder() {}

        /** Layers per page, &gt;= 1. */
        public Builder layers(int value) {
            layers = value;
            return this;
        }

        /** KV heads, &gt;= 1. */
        public Builder kvHeads(int value) {
            kvHeads = value;
            return this;
        }

        /** Elements per head: 64 or 128 (other multiples of 8 on the CPU). */
        public Builder headDim(int value) {
            headDim = value;
            return this;
        }

        /** Tokens per page, 1..4096. */
        public Builder pageSize(int value) {
            pageSize = value;
            return this;
        }

        /** Capacity in pages; 0 derives it from {@link #byteBudget(long)}. */
        public Builder pages(int value) {
            pages = value;
            return this;
        }

        /** Bytes for the pool when {@link #pages(int)} is 0: {@code floor(budget / pageBytes)} pages. */
        public Builder byteBudget(long value) {
            byteBudget = value;
            return this;
        }

        public Builder kvDtype(KvDtype value) {
            kvDtype = Objects.requireNonNull(value, "kvDtype");
            return this;
        }

        public Builder device(Device value) {
            device = Objects.requireNonNull(value, "device");
            return this;
        }

        /** &gt; 0: token ids must lie in {@code [0, vocabSize)}; 0: any id &gt;= 0. */
        public Builder vocabSize(int value) {
            vocabSize = value;
            return this;
        }

        /** false: never match prefixes (every prompt is computed from scratch). */
        public Builder reuse(boolean value) {
            reuse = value;
            return this;
        }

        /**
         * Creates the cache.
         *
         * @throws PagedKvException.InvalidArgument for a bad configuration
         * @throws PagedKvException.DeviceFailure when the device is absent or the pool cannot be allocated
         */
        public PagedKvCache build() {
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment c = pagedkv_cache_config.allocate(scratch);
                pagedkv_cache_config.struct_size(c, (int) pagedkv_cache_config.sizeof());
                pagedkv_cache_config.num_layers(c, layers);
                pagedkv_cache_config.num_kv_heads(c, kvHeads);
                pagedkv_cache_config.head_dim(c, headDim);
                pagedkv_cache_config.page_size(c, pageSize);
                pagedkv_cache_config.num_pages(c, pages);
                pagedkv_cache_config.byte_budget(c, byteBudget);
                pagedkv_cache_config.kv_dtype(c, kvDtype.code());
                pagedkv_cache_config.device_type(c, device.type().code());
                pagedkv_cache_config.device_index(c, device.index());
                pagedkv_cache_config.vocab_size(c, vocabSize);
                pagedkv_cache_config.flags(c, reuse ? 0 : PAGEDKV_CACHE_NO_REUSE());
                return new PagedKvCache(c, device);
            }
        }
    }
}
