package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.HandleGuard;
import io.pagedkv.internal.NativeLibrary;
import io.pagedkv.internal.ffi.pagedkv_cache_layout;
import io.pagedkv.internal.ffi.pagedkv_cache_stats;
import io.pagedkv.internal.ffi.pagedkv_prefix_match;
import io.pagedkv.internal.ffi.pagedkv_snapshot_block;
import io.pagedkv.internal.ffi.pagedkv_tier_stats;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.Set;

/**
 * A paged KV cache: one page pool on one device, one prefix index, and the sequences using it. This
 * class is the entry point: it creates the cache ({@link #builder()}), its {@link Sequence}s, its
 * {@link Batch}es and its {@link DeviceMemory} buffers, hands out views of the pool, and reaches
 * the attention {@link #kernels()}.
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
 * <p><b>Ownership.</b> The cache owns one native cache and one shared {@link Arena}, to which the
 * pool views ({@link #page}, {@link #slab}) and the batches' arrays are tied. {@link #close()}
 * destroys the native cache with every sequence, batch and device buffer made from it, and makes
 * every segment it handed out inaccessible. After close, every method of the cache and of its
 * sequences, batches and buffers throws {@link IllegalStateException} (their {@code close()} does
 * nothing), so no call can reach freed memory.
 *
 * <p><b>Threads.</b> A cache may be used from several threads at once: the native side serializes
 * metadata operations (sequences, batches, stats), and CPU kernels may run concurrently on disjoint
 * outputs. Every call holds the cache open while it runs, so {@link #close()} throws
 * {@link IllegalStateException} (and closes nothing) while another thread is inside a call on this
 * cache; close it once all users are done.
 *
 * <p><b>Errors.</b> Arguments Java can check (null references, tensor sizes, layer ranges) throw
 * {@link NullPointerException} or {@link IllegalArgumentException} before any native call; the
 * library's own checks (token ids, counts, page ids, configurations...) surface as
 * {@link PagedKvException}s with the library's message. A failed call changes nothing.
 */
public final class PagedKvCache implements AutoCloseable {
    static {
        NativeLibrary.ensureLoaded();
    }

    private final Arena arena;
    // The native handle as a plain address: the guard, not the arena, keeps it valid during a call
    // (and the library reports a destroyed handle instead of dereferencing it).
    private final MemorySegment handle;
    private final HandleGuard guard = new HandleGuard(
            "this PagedKvCache is closed: its sequences, batches, device buffers and pages were freed with it;"
                    + " build a new cache",
            "cannot close this PagedKvCache while another thread is inside a call on it (a kernel, a copy, a"
                    + " sequence or batch operation); close it once every thread is done with the cache");
    private final CacheLayout layout;
    private final MemorySegment pool;
    private final long poolAddress;
    private final DeviceBuffers buffers = new DeviceBuffers();
    private final Kernels kernels = new Kernels(this);
    private final Object listenerLock = new Object();
    private EventUpcall listener; // the registered event listener's stub, under listenerLock

    /** Creates the native cache from a filled {@code pagedkv_cache_config}; see {@link CacheBuilder#build()}. */
    PagedKvCache(MemorySegment config, Device device) {
        Arena owner = Arena.ofShared();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(C_POINTER);
            Status.check(pagedkv_cache_create(config, out));
            long address = out.get(C_POINTER, 0).address();
            DeviceBuffers ownBuffers = buffers;
            // From here the arena owns the native cache: closing it frees the buffers, then the cache.
            MemorySegment.ofAddress(address).reinterpret(0, owner, raw -> {
                ownBuffers.freeAll(raw);
                pagedkv_cache_destroy(raw); // cannot fail for a live handle; nothing to report from a cleanup
            });
            this.arena = owner;
            this.handle = MemorySegment.ofAddress(address);
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
    public static CacheBuilder builder() {
        return new CacheBuilder();
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

    /**
     * Where the native library was loaded from: a file path, {@code "java.library.path"}, or
     * {@code "jar:/<platform>/libpagedkv.so"} for the copy packaged in this jar (for diagnostics).
     */
    public static String libraryLocation() {
        return NativeLibrary.loadedFrom();
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

    // ---- the cache -----------------------------------------------------------------------------------

    /** The physical layout of the pool; immutable, readable after close. */
    public CacheLayout layout() {
        return layout;
    }

    /** The device holding the pool. */
    public Device device() {
        return layout.device();
    }

    /** The attention and page-copy kernels of this cache. */
    public Kernels kernels() {
        return kernels;
    }

    /** A snapshot of the counters; cheap. */
    public CacheStats stats() {
        MemorySegment cache = enter();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment s = pagedkv_cache_stats.allocate(scratch);
            pagedkv_cache_stats.struct_size(s, (int) pagedkv_cache_stats.sizeof());
            Status.check(pagedkv_cache_get_stats(cache, s));
            return new CacheStats(pagedkv_cache_stats.pages_total(s), pagedkv_cache_stats.pages_free(s),
                    pagedkv_cache_stats.pages_cached(s), pagedkv_cache_stats.pages_in_use(s),
                    pagedkv_cache_stats.index_nodes(s), pagedkv_cache_stats.live_sequences(s),
                    pagedkv_cache_stats.prompt_tokens(s), pagedkv_cache_stats.reused_tokens(s),
                    pagedkv_cache_stats.computed_tokens(s), pagedkv_cache_stats.evictions(s),
                    pagedkv_cache_stats.cow_copies(s), pagedkv_cache_stats.dedup_hits(s),
                    pagedkv_cache_stats.kv_bytes_per_token(s));
        } finally {
            exit();
        }
    }

    /** Counters of {@code tier}; {@link TierStats#enabled()} is false when the cache has no such tier. */
    public TierStats tierStats(Tier tier) {
        Objects.requireNonNull(tier, "tier");
        MemorySegment cache = enter();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment s = pagedkv_tier_stats.allocate(scratch);
            pagedkv_tier_stats.struct_size(s, (int) pagedkv_tier_stats.sizeof());
            Status.check(pagedkv_cache_get_tier_stats(cache, tier.code(), s));
            return new TierStats(pagedkv_tier_stats.enabled(s) != 0, pagedkv_tier_stats.pages(s),
                    pagedkv_tier_stats.bytes(s), pagedkv_tier_stats.capacity_bytes(s), pagedkv_tier_stats.hits(s),
                    pagedkv_tier_stats.misses(s), pagedkv_tier_stats.verify_failures(s), pagedkv_tier_stats.loads(s),
                    pagedkv_tier_stats.load_bytes(s), pagedkv_tier_stats.load_ns(s), pagedkv_tier_stats.stores(s),
                    pagedkv_tier_stats.store_bytes(s), pagedkv_tier_stats.store_ns(s),
                    pagedkv_tier_stats.dropped_stores(s), pagedkv_tier_stats.evictions(s), pagedkv_tier_stats.errors(s));
        } finally {
            exit();
        }
    }

    /**
     * Waits until the prefetches started so far are in the pool and the background stores of the
     * disk and Redis tiers queued so far are done.
     */
    public void flushTiers() {
        MemorySegment cache = enter();
        try {
            Status.check(pagedkv_cache_flush_tiers(cache));
        } finally {
            exit();
        }
    }

    /**
     * Starts loading the prefix of {@code prompt} that the tiers hold into the pool (as cached
     * pages) before a sequence for it is created, so that the create finds it there (or joins the
     * load in flight). Returns at once: disk and Redis are read on the cache's I/O thread
     * ({@link #flushTiers()} waits for them); with a host tier alone the pages are copied before it
     * returns. Returns the positions put in the pool before returning (0 for a background load).
     * Never fails for want of room: it loads at most what the pool can take.
     */
    public long prefetch(int[] prompt, byte[] salt) {
        return withPrompt(prompt, salt, (cache, tokens, key, scratch) -> {
            MemorySegment loaded = scratch.allocate(C_LONG_LONG);
            Status.check(pagedkv_prefetch(cache, tokens, prompt.length, key, salt.length, loaded));
            return loaded.get(C_LONG_LONG, 0);
        });
    }

    /** A C call on a prompt and a salt in native memory (salt NULL when empty). */
    @FunctionalInterface
    private interface PromptCall<T> {
        T call(MemorySegment cache, MemorySegment tokens, MemorySegment salt, Arena scratch);
    }

    /** Runs {@code call} on the live cache with {@code prompt} and {@code salt} copied to native memory. */
    private <T> T withPrompt(int[] prompt, byte[] salt, PromptCall<T> call) {
        Objects.requireNonNull(prompt, "prompt");
        Objects.requireNonNull(salt, "salt");
        MemorySegment cache = enter();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment tokens = scratch.allocateFrom(C_INT, prompt);
            MemorySegment key = salt.length == 0 ? MemorySegment.NULL : scratch.allocateFrom(ValueLayout.JAVA_BYTE, salt);
            return call.call(cache, tokens, key, scratch);
        } finally {
            exit();
        }
    }

    /** Evicts every cached page no sequence holds; returns how many pages were freed. */
    public int clearUnused() {
        MemorySegment cache = enter();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment evicted = scratch.allocate(C_INT);
            Status.check(pagedkv_cache_clear_unused(cache, evicted));
            return evicted.get(C_INT, 0);
        } finally {
            exit();
        }
    }

    // ---- the pool ------------------------------------------------------------------------------------

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
                    + " cache is device memory and cannot be dereferenced from Java; use pageAddress(int) instead");
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

    // ---- sequences, batches, buffers -----------------------------------------------------------------

    /** Creates a sequence for {@code prompt} under the default (empty) isolation key. */
    public Sequence createSequence(int[] prompt) {
        return createSequence(prompt, new byte[0]);
    }

    /** Creates a sequence under the isolation key {@code salt} (its UTF-8 bytes). */
    public Sequence createSequence(int[] prompt, String salt) {
        Objects.requireNonNull(prompt, "prompt");
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
        return withPrompt(prompt, salt, (cache, tokens, key, scratch) -> {
            MemorySegment id = scratch.allocate(C_LONG_LONG);
            MemorySegment cached = scratch.allocate(C_LONG_LONG);
            Status.check(pagedkv_sequence_create(cache, tokens, prompt.length, key, salt.length, id, cached));
            return new Sequence(this, id.get(C_LONG_LONG, 0), cached.get(C_LONG_LONG, 0));
        });
    }

    /** The kernel metadata of {@code sequences} for one step; see {@link Batch} for how long it is valid. */
    public Batch batch(Sequence... sequences) {
        Objects.requireNonNull(sequences, "sequences");
        return batch(Arrays.asList(sequences)); // not List.of: it would reject a null element without naming it
    }

    /** The kernel metadata of {@code sequences} for one step; see {@link Batch} for how long it is valid. */
    public Batch batch(List<Sequence> sequences) {
        Objects.requireNonNull(sequences, "sequences");
        long[] ids = new long[sequences.size()];
        for (int i = 0; i < ids.length; i++) {
            Sequence sequence = Objects.requireNonNull(sequences.get(i), "sequences[" + i + "]");
            if (sequence.cache() != this)
                throw new IllegalArgumentException("sequences[" + i + "] belongs to another cache");
            ids[i] = sequence.idForCall();
        }
        MemorySegment cache = enter();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(C_POINTER);
            Status.check(pagedkv_batch_create(cache, scratch.allocateFrom(C_LONG_LONG, ids), ids.length, out));
            return new Batch(this, MemorySegment.ofAddress(out.get(C_POINTER, 0).address()), arena);
        } finally {
            exit();
        }
    }

    /**
     * Allocates {@code bytes} (256-byte aligned) on the cache's device, for kernel tensors: host
     * memory on a CPU cache, device memory on a CUDA cache. The buffer is its own handle: free it
     * with {@link DeviceMemory#close()} (or let the cache's close free it).
     */
    public DeviceMemory allocateDevice(long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("bytes must be > 0, got " + bytes);
        MemorySegment cache = enter();
        try {
            DeviceMemory buffer = DeviceMemory.allocate(this, cache, bytes);
            buffers.add(buffer);
            return buffer;
        } finally {
            exit();
        }
    }

    // ---- prefix queries, KV events, snapshots -------------------------------------------------------

    /** {@link #matchLength(int[], byte[])} under the default (empty) isolation key. */
    public long matchLength(int[] prompt) {
        return matchLength(prompt, new byte[0]);
    }

    /** {@link #matchLength(int[], byte[])} under the isolation key {@code salt} (its UTF-8 bytes). */
    public long matchLength(int[] prompt, String salt) {
        Objects.requireNonNull(salt, "salt");
        return matchLength(prompt, salt.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * How many positions of {@code prompt} a {@link #createSequence} with the same arguments would
     * reuse now: exactly its {@link Sequence#numCached()} with room to spare. Changes nothing: no
     * page is pinned, the eviction (LRU) order and the statistics stay as they are.
     *
     * @throws PagedKvException.InvalidArgument for an empty prompt or a token outside the vocabulary
     */
    public long matchLength(int[] prompt, byte[] salt) {
        return matchPrefix(prompt, salt).cachedTokens();
    }

    /** As {@link #matchLength(int[], byte[])}, with the details: shared pages, partial run, tiers. */
    public PrefixMatch matchPrefix(int[] prompt, byte[] salt) {
        return withPrompt(prompt, salt, (cache, tokens, key, scratch) -> {
            MemorySegment cached = scratch.allocate(C_LONG_LONG);
            MemorySegment m = pagedkv_prefix_match.allocate(scratch);
            pagedkv_prefix_match.struct_size(m, (int) pagedkv_prefix_match.sizeof());
            Status.check(pagedkv_match_length(cache, tokens, prompt.length, key, salt.length, cached, m));
            Map<Medium, Long> byMedium = new EnumMap<>(Medium.class);
            for (Medium medium : Medium.values()) {
                long n = pagedkv_prefix_match.tokens_by_medium(m, medium.code());
                if (n > 0) byMedium.put(medium, n);
            }
            return new PrefixMatch(cached.get(C_LONG_LONG, 0), pagedkv_prefix_match.shared_pages(m),
                    pagedkv_prefix_match.partial_tokens(m), byMedium);
        });
    }

    /**
     * Sets the listener of this cache's KV events (null: none), replacing any previous one. When
     * this returns, a previous listener is not running and will not be called again. Blocks indexed
     * before are not announced ({@link #snapshot()} lists them). See {@link KvEventListener} for
     * the threads it runs on. Must not be called from a listener.
     */
    public void setEventListener(KvEventListener listener) {
        synchronized (listenerLock) {
            MemorySegment cache = enter();
            try {
                EventUpcall next = listener == null ? null : new EventUpcall(listener);
                try {
                    Status.check(pagedkv_cache_set_event_callback(cache, next == null ? MemorySegment.NULL : next.stub(),
                            MemorySegment.NULL));
                } catch (RuntimeException failure) {
                    if (next != null) next.close();
                    throw failure;
                }
                if (this.listener != null) this.listener.close(); // no longer callable: the native side said so
                this.listener = next;
            } finally {
                exit();
            }
        }
    }

    /** Every block this cache holds now, parents first, with the hashes its events carry. */
    public CacheSnapshot snapshot() {
        MemorySegment cache = enter();
        try (Arena scratch = Arena.ofConfined()) {
            int pageSize = layout.pageSize();
            MemorySegment count = scratch.allocate(C_INT);
            MemorySegment next = scratch.allocate(C_LONG_LONG);
            Status.check(pagedkv_cache_snapshot(cache, MemorySegment.NULL, MemorySegment.NULL, 0, count, next));
            while (true) { // the index may grow between the size query and the copy: retry with more room
                int capacity = count.get(C_INT, 0) + 16;
                MemorySegment blocks = pagedkv_snapshot_block.allocateArray(capacity, scratch);
                MemorySegment tokens = scratch.allocate(C_INT, (long) capacity * pageSize);
                Status.check(pagedkv_cache_snapshot(cache, blocks, tokens, capacity, count, next));
                int n = count.get(C_INT, 0);
                if (n > capacity) continue;
                List<CachedBlock> out = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    MemorySegment b = pagedkv_snapshot_block.asSlice(blocks, i);
                    OptionalLong parent = pagedkv_snapshot_block.has_parent(b) != 0
                            ? OptionalLong.of(pagedkv_snapshot_block.parent_block_hash(b)) : OptionalLong.empty();
                    int[] ids = tokens.asSlice(4L * i * pageSize, 4L * pageSize).toArray(ValueLayout.JAVA_INT);
                    out.add(new CachedBlock(pagedkv_snapshot_block.block_hash(b), parent, ids,
                            Medium.ofCode(pagedkv_snapshot_block.medium(b))));
                }
                return new CacheSnapshot(out, next.get(C_LONG_LONG, 0));
            }
        } finally {
            exit();
        }
    }

    // ---- lifecycle -----------------------------------------------------------------------------------

    /** Whether {@link #close()} has not run yet. */
    public boolean isOpen() {
        return !guard.isClosed();
    }

    /**
     * Destroys the native cache with all its sequences, batches, device buffers and pages; later
     * calls do nothing. Throws {@link IllegalStateException} (and closes nothing) while another
     * thread is inside a call on this cache.
     */
    @Override
    public void close() {
        if (!guard.close()) return;
        try {
            arena.close(); // its cleanup frees the device buffers, then destroys the native cache
            synchronized (listenerLock) {
                if (listener != null) listener.close(); // the destroyed cache calls no one
                listener = null;
            }
        } catch (IllegalStateException heldByNativeCall) {
            // Only a native call of the caller's own, holding a pool page, keeps the arena acquired.
            guard.reopen();
            throw new IllegalStateException("cannot close this PagedKvCache: a page of its pool is in use by a native"
                    + " call on another thread; close the cache once that call returns", heldByNativeCall);
        }
    }

    @Override
    public String toString() {
        return "PagedKvCache[" + layout.device() + ", " + layout.layers() + " layers, " + layout.kvHeads() + " kv heads x "
                + layout.headDim() + ", " + layout.pages() + " pages of " + layout.pageSize() + " tokens, "
                + layout.kvDtype() + (isOpen() ? "]" : ", closed]");
    }

    // ---- package-private: every native call on the cache runs between enter() and exit() ----------

    /** Holds the cache open for one call and returns the native handle; throws once closed. */
    MemorySegment enter() {
        guard.acquire();
        return handle;
    }

    /** As {@link #enter()}, but returns null instead of throwing once the cache is closed. */
    MemorySegment tryEnter() {
        return guard.tryAcquire() ? handle : null;
    }

    /** Ends a call begun by {@link #enter()} or a successful {@link #tryEnter()}. */
    void exit() {
        guard.release();
    }

    DeviceBuffers buffers() {
        return buffers;
    }

    void checkOpen() {
        if (guard.isClosed()) throw guard.closedException();
    }

    void checkLayer(int layer) {
        if (layer < 0 || layer >= layout.layers())
            throw new IllegalArgumentException("layer " + layer + " out of range [0, " + layout.layers() + ")");
    }

    private void checkPageId(int pageId) {
        if (pageId < 0 || pageId >= layout.pages())
            throw new IllegalArgumentException("page id " + pageId + " out of range [0, " + layout.pages() + ")");
    }
}
