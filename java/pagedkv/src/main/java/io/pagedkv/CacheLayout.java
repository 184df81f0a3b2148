package io.pagedkv;

import java.util.Objects;

/**
 * Physical layout of a cache's page pool, as described at the top of pagedkv.h: page {@code p} is
 * the byte range {@code [p*pageBytes, (p+1)*pageBytes)} of the pool, and inside it element
 * {@code (layer, kv, head, token, dim)} is at element offset
 * {@code (layer*2 + kv)*slabStride + (head*pageSize + token)*headDim + dim}.
 *
 * @param layers layers per page
 * @param kvHeads KV heads
 * @param headDim elements per head
 * @param pageSize tokens per page
 * @param pages pages in the pool
 * @param kvDtype element type
 * @param device where the pool lives
 * @param pageBytes bytes per page
 * @param slabStride elements per (layer, K|V) slab: {@code kvHeads*pageSize*headDim}
 * @param pageStride elements per page: {@code layers*2*slabStride}
 * @param poolBytes bytes of the whole pool
 */
public record CacheLayout(int layers, int kvHeads, int headDim, int pageSize, int pages, KvDtype kvDtype,
                          Device device, long pageBytes, long slabStride, long pageStride, long poolBytes) {
    /** Bytes of K and V of one token in all layers, scales included: {@code pageBytes / pageSize}. */
    public double kvBytesPerToken() {
        return (double) pageBytes / pageSize;
    }

    /** Bytes per (layer, K|V) slab (F32, F16, BF16; the quantized layouts are in pagedkv.h). */
    public long slabBytes() {
        if (kvDtype.isQuantized()) {
            throw new UnsupportedOperationException(kvDtype + " pages are laid out in runs of codes and scales (pagedkv.h)");
        }
        return slabStride * kvDtype.bytes();
    }

    /** Byte offset of a slab inside its page. */
    public long slabOffset(int layer, KvKind kind) {
        Objects.requireNonNull(kind, "kind");
        return (layer * 2L + kind.index()) * slabBytes();
    }

    /** Byte offset, inside a slab, of the first element of {@code (head, tokenInPage)}. */
    public long tokenOffset(int head, int tokenInPage) {
        slabBytes();  // refuses the quantized formats
        return ((long) head * pageSize + tokenInPage) * headDim * kvDtype.bytes();
    }
}
