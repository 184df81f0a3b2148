package io.pagedkv.replay;

import io.pagedkv.model.Model;

import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;

/**
 * How the replay builds its caches.
 *
 * @param pageSize tokens per page
 * @param pages    capacity in pages
 * @param kvDtype  element type of the stored K/V
 * @param device   where the pages live and the kernels run
 * @param hadamard Q8/Q6/Q4: K/V groups rotated before quantizing
 * @param tiers    the tiers below the pool of the cache with reuse
 */
public record CacheOptions(int pageSize, int pages, KvDtype kvDtype, Device device, boolean hadamard,
                           TierOptions tiers) {
    /** Default capacity in tokens when no page count is given. */
    public static final int DEFAULT_CAPACITY_TOKENS = 16384;

    public CacheOptions {
        if (pageSize < 1) throw new IllegalArgumentException("page size must be >= 1");
        if (pages < 1) throw new IllegalArgumentException("pages must be >= 1");
        if (tiers == null) tiers = TierOptions.NONE;
    }

    /** Without the Hadamard rotation. */
    public CacheOptions(int pageSize, int pages, KvDtype kvDtype, Device device) {
        this(pageSize, pages, kvDtype, device, false);
    }

    /** Without tiers. */
    public CacheOptions(int pageSize, int pages, KvDtype kvDtype, Device device, boolean hadamard) {
        this(pageSize, pages, kvDtype, device, hadamard, TierOptions.NONE);
    }

    /** The same pages and device with another KV format (the f32 recompute of --verify). */
    public CacheOptions withKvDtype(KvDtype dtype) {
        return new CacheOptions(pageSize, pages, dtype, device, hadamard && dtype == kvDtype, tiers);
    }

    /** Page size {@code pageSize} and the default capacity. */
    public static CacheOptions defaults(int pageSize, KvDtype dtype, Device device) {
        return new CacheOptions(pageSize, Math.max(1, DEFAULT_CAPACITY_TOKENS / pageSize), dtype, device);
    }

    /**
     * A cache for {@code model}'s KV; {@code reuse} false builds one that never matches prefixes
     * and has no tiers (it must not read what a run with reuse stored).
     */
    public PagedKvCache build(Model model, boolean reuse) {
        var builder = PagedKvCache.builder()
                .layers(model.layers())
                .kvHeads(model.kvHeads())
                .headDim(model.headDim())
                .pageSize(pageSize)
                .pages(pages)
                .kvDtype(kvDtype)
                .device(device)
                .vocabSize(model.vocab())
                .reuse(reuse)
                .hadamard(hadamard);
        return (reuse ? tiers.applyTo(builder) : builder).build();
    }

    /** Bytes of the page pool holding {@code model}'s keys and values (the layout of pagedkv.h). */
    public long poolBytes(Model model) {
        return (long) pages * model.layers() * model.kvHeads() * (runBytes(0, model.headDim()) + runBytes(1, model.headDim()));
    }

    /** One head's K (kv 0) or V (kv 1) for a page: codes, scales and padding for the quantized formats. */
    private long runBytes(int kv, int headDim) {
        if (!kvDtype.isQuantized()) return (long) pageSize * headDim * kvDtype.bytes();
        boolean fourBit = kvDtype == KvDtype.Q4 || (kvDtype == KvDtype.Q6 && kv == 1);
        long token = fourBit ? headDim / 2 : headDim;
        if (kvDtype != KvDtype.FP8_E4M3) token += headDim / 32 * 2;  // fp16 scale per 32 dims
        long run = pageSize * token + (kvDtype == KvDtype.FP8_E4M3 ? 16 : 0);
        return (run + 15) / 16 * 16;
    }

    /** One line for reports, e.g. {@code cpu, page size 16, 1024 pages (16384 tokens, 32.0 MiB), f32 KV}. */
    public String describe(Model model) {
        return String.format("%s, page size %d, %d pages (%d tokens, %s), %s%s KV", device, pageSize, pages,
                (long) pageSize * pages, ByteUnits.format(poolBytes(model)), kvDtype.name().toLowerCase(java.util.Locale.ROOT),
                hadamard ? " (Hadamard-rotated)" : "");
    }
}
