package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.ffi.pagedkv_cache_config;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * Configures and creates a {@link PagedKvCache}; get one from {@link PagedKvCache#builder()}.
 * Defaults: page size 16, F16 keys and values, the CPU, any token id &gt;= 0 (vocabulary 0), prefix
 * reuse on. The numbers are checked once, by the library, when {@link #build()} runs, so the rules
 * below have one source of truth (pagedkv.h).
 *
 * <p>Not thread-safe: configure a builder on one thread. It holds no native resource; one builder
 * may build several caches.
 */
public final class CacheBuilder {
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
    private boolean hadamard = false;
    private long hostTierBytes;
    private Path diskTierPath;
    private long diskTierBytes;
    private String remoteTier;
    private String tierNamespace = "";
    private int tpRank;
    private int tpSize = 1;
    private Duration tierTimeout = Duration.ZERO;
    private Duration remoteTtl = Duration.ZERO;
    private boolean writeThrough;
    private boolean diskFsync = true;

    CacheBuilder() {}

    /** Layers per page, &gt;= 1. */
    public CacheBuilder layers(int value) {
        layers = value;
        return this;
    }

    /** KV heads, &gt;= 1. */
    public CacheBuilder kvHeads(int value) {
        kvHeads = value;
        return this;
    }

    /**
     * Elements per head: a multiple of 8 in [8, 256], which every kernel serves (64 and 128 run the
     * CUDA tensor-core path). Others are rejected by {@link #build()}.
     */
    public CacheBuilder headDim(int value) {
        headDim = value;
        return this;
    }

    /** Tokens per page, 1..4096. */
    public CacheBuilder pageSize(int value) {
        pageSize = value;
        return this;
    }

    /** Capacity in pages; 0 derives it from {@link #byteBudget(long)}. */
    public CacheBuilder pages(int value) {
        pages = value;
        return this;
    }

    /** Bytes for the pool when {@link #pages(int)} is 0: {@code floor(budget / pageBytes)} pages. */
    public CacheBuilder byteBudget(long value) {
        byteBudget = value;
        return this;
    }

    /** Element type of the stored keys and values. */
    public CacheBuilder kvDtype(KvDtype value) {
        kvDtype = Objects.requireNonNull(value, "kvDtype");
        return this;
    }

    /** Where the pool lives and the kernels run. */
    public CacheBuilder device(Device value) {
        device = Objects.requireNonNull(value, "device");
        return this;
    }

    /** &gt; 0: token ids must lie in {@code [0, vocabSize)}; 0: any id &gt;= 0. */
    public CacheBuilder vocabSize(int value) {
        vocabSize = value;
        return this;
    }

    /** false: never match prefixes (every prompt is computed from scratch). */
    public CacheBuilder reuse(boolean value) {
        reuse = value;
        return this;
    }

    /**
     * true: Q8/Q6/Q4 caches rotate each group of 32 dims of K and V by a Hadamard transform before
     * quantizing (outlier channels spread over the group); other formats refuse it.
     */
    public CacheBuilder hadamard(boolean value) {
        hadamard = value;
        return this;
    }

    /**
     * A host-memory tier of {@code bytes} below the pool (0: none): evicted full pages are kept
     * there and loaded back when a prompt needs them (pinned host memory when the pool is on a GPU).
     */
    public CacheBuilder hostTier(long bytes) {
        hostTierBytes = bytes;
        return this;
    }

    /**
     * A disk tier: one file per page object in {@code directory} (created if absent), at most
     * {@code bytes} of them. A later cache pointed at the same directory reuses them.
     */
    public CacheBuilder diskTier(Path directory, long bytes) {
        diskTierPath = Objects.requireNonNull(directory, "directory");
        diskTierBytes = bytes;
        return this;
    }

    /** A Redis tier: {@code redis://HOST:PORT[,HOST:PORT...]} (several: seed nodes of a Redis Cluster). */
    public CacheBuilder remoteTier(String url) {
        remoteTier = Objects.requireNonNull(url, "url");
        return this;
    }

    /** Who may share page objects through the disk and Redis tiers, e.g. the model id (default ""). */
    public CacheBuilder tierNamespace(String value) {
        tierNamespace = Objects.requireNonNull(value, "namespace");
        return this;
    }

    /** Tensor-parallel rank and size, part of the tiers' namespace (default 0 of 1). */
    public CacheBuilder tensorParallel(int rank, int size) {
        tpRank = rank;
        tpSize = size;
        return this;
    }

    /** The bound of every Redis call (default: 1 s). */
    public CacheBuilder tierTimeout(Duration value) {
        tierTimeout = Objects.requireNonNull(value, "timeout");
        return this;
    }

    /** Redis expires stored page objects after this long (default: never). */
    public CacheBuilder remoteTtl(Duration value) {
        remoteTtl = Objects.requireNonNull(value, "ttl");
        return this;
    }

    /**
     * true: every committed full page is also stored in every tier at commit, in the background
     * (default false: only pages the pool evicts go down, each tier evicting into the next).
     */
    public CacheBuilder writeThrough(boolean value) {
        writeThrough = value;
        return this;
    }

    /** false: disk objects are renamed into place without an fsync first (default true). */
    public CacheBuilder diskFsync(boolean value) {
        diskFsync = value;
        return this;
    }

    /**
     * Creates the cache.
     *
     * @throws PagedKvException.InvalidArgument for a bad configuration (a head dim that is not a
     *     multiple of 8 in [8, 256], no pages, ...)
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
            pagedkv_cache_config.flags(c, (reuse ? 0 : PAGEDKV_CACHE_NO_REUSE()) | (hadamard ? PAGEDKV_CACHE_HADAMARD() : 0));
            pagedkv_cache_config.host_tier_bytes(c, hostTierBytes);
            if (diskTierPath != null) {
                pagedkv_cache_config.disk_tier_path(c, scratch.allocateFrom(diskTierPath.toString()));
                pagedkv_cache_config.disk_tier_bytes(c, diskTierBytes);
            }
            if (remoteTier != null) pagedkv_cache_config.remote_tier(c, scratch.allocateFrom(remoteTier));
            pagedkv_cache_config.tier_namespace(c, scratch.allocateFrom(tierNamespace));
            pagedkv_cache_config.tp_rank(c, tpRank);
            pagedkv_cache_config.tp_size(c, tpSize);
            pagedkv_cache_config.tier_timeout_ms(c, (int) Math.min(Integer.MAX_VALUE, tierTimeout.toMillis()));
            pagedkv_cache_config.remote_ttl_seconds(c, (int) Math.min(Integer.MAX_VALUE, remoteTtl.toSeconds()));
            pagedkv_cache_config.tier_flags(c, (writeThrough ? PAGEDKV_TIER_WRITE_THROUGH() : 0)
                    | (diskFsync ? 0 : PAGEDKV_TIER_DISK_NO_FSYNC()));
            return new PagedKvCache(c, device);
        }
    }
}
