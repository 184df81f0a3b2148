package io.pagedkv.replay;

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
 */
public record CacheOptions(int pageSize, int pages, KvDtype kvDtype, Device device) {
    /** Default capacity in tokens when no page count is given. */
    public static final int DEFAULT_CAPACITY_TOKENS = 16384;

    public CacheOptions {
        if (pageSize < 1) throw new IllegalArgumentException("page size must be >= 1");
        if (pages < 1) throw new IllegalArgumentException("pages must be >= 1");
    }

    /** Page size {@code pageSize} and the default capacity. */
    public static CacheOptions defaults(int pageSize, KvDtype dtype, Device device) {
        return new CacheOptions(pageSize, Math.max(1, DEFAULT_CAPACITY_TOKENS / pageSize), dtype, device);
    }

    /** A cache for {@code model}'s KV; {@code reuse} false builds one that never matches prefixes. */
    public PagedKvCache build(ModelConfig model, boolean reuse) {
        return PagedKvCache.builder()
                .layers(model.layers())
                .kvHeads(model.kvHeads())
                .headDim(model.headDim())
                .pageSize(pageSize)
                .pages(pages)
                .kvDtype(kvDtype)
                .device(device)
                .vocabSize(model.vocab())
                .reuse(reuse)
                .build();
    }

    /** Bytes of the page pool holding {@code model}'s keys and values. */
    public long poolBytes(ModelConfig model) {
        return (long) pages * pageSize * model.layers() * 2L * model.kvHeads() * model.headDim() * kvDtype.bytes();
    }

    /** One line for reports, e.g. {@code cpu, page size 16, 1024 pages (16384 tokens, 32.0 MiB), f32 KV}. */
    public String describe(ModelConfig model) {
        return String.format("%s, page size %d, %d pages (%d tokens, %s), %s KV", device, pageSize, pages,
                (long) pageSize * pages, ByteUnits.format(poolBytes(model)), kvDtype.name().toLowerCase(java.util.Locale.ROOT));
    }
}
