package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.ffi.pagedkv_attention_params;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * The kernels of one cache ({@link PagedKvCache#kernels()}): K/V writes, decode, prefill and
 * shared-prefix (cascade) attention over the pages of a {@link Batch}, and page copies.
 *
 * <p><b>Tensors</b> are dense row-major {@link MemorySegment}s; each one's byte size is checked
 * against the shape the kernel uses before the call (the library takes no sizes). On a CPU cache
 * they may be native segments (passed without copying) or heap segments (copied through a scratch
 * native buffer, outputs copied back after success). On a CUDA cache they should be
 * {@link DeviceMemory} segments (used in place; kernels run asynchronously on the default stream,
 * see {@link #synchronize()}); host segments are accepted and staged through temporary device
 * buffers, which makes the call synchronous. A {@link DeviceMemory} used by a call cannot be freed
 * until the call returns.
 *
 * <p><b>Batches</b> must be valid: a batch whose sequences changed since it was built (see
 * {@link Batch}) makes every kernel throw {@link StaleBatchException} without touching any page.
 *
 * <p><b>Threads.</b> Stateless apart from its cache: kernels may run from several threads at once,
 * on disjoint outputs (on the CPU each call uses its own worker threads). A sequence changed by
 * another thread during a call waits for the call to return.
 */
public final class Kernels {
    private static final int FLOAT_BYTES = 4;

    private final PagedKvCache cache;

    Kernels(PagedKvCache cache) {
        this.cache = cache;
    }

    /** The cache whose pages these kernels read and write. */
    public PagedKvCache cache() {
        return cache;
    }

    /**
     * Writes K and V of the batch's query tokens into their slots of {@code layer}.
     * {@code k} and {@code v} are {@code [numQoTokens, kvHeads, headDim]} of {@code srcDtype}, which
     * must be F32 or the cache's KV dtype.
     *
     * @throws StaleBatchException when a sequence of the batch changed since it was built
     */
    public void writeKv(Batch batch, int layer, MemorySegment k, MemorySegment v, KvDtype srcDtype) {
        Objects.requireNonNull(batch, "batch");
        Objects.requireNonNull(k, "k");
        Objects.requireNonNull(v, "v");
        Objects.requireNonNull(srcDtype, "srcDtype");
        CacheLayout layout = cache.layout();
        MemorySegment handle = cache.enter();
        try {
            checkBatch(batch);
            cache.checkLayer(layer);
            if (srcDtype != KvDtype.F32 && srcDtype != layout.kvDtype())
                throw new IllegalArgumentException("srcDtype must be F32 or the cache's " + layout.kvDtype() + ", got "
                        + srcDtype);
            batch.acquire();
            try (Operands operands = new Operands(cache, handle)) {
                long bytes = Math.multiplyExact(batch.numQoTokens(),
                        (long) layout.kvHeads() * layout.headDim() * srcDtype.bytes());
                MemorySegment kIn = operands.input(k, bytes, srcDtype.bytes(), "k");
                MemorySegment vIn = operands.input(v, bytes, srcDtype.bytes(), "v");
                MemorySegment params = params(operands.scratch(), AttentionParams.of(layout.kvHeads()));
                Status.check(Operands.call(() -> pagedkv_write_kv(handle, batch.handle(), layer, kIn, vIn,
                        srcDtype.code(), params)));
            } finally {
                batch.release();
            }
        } finally {
            cache.exit();
        }
    }

    /**
     * Decode attention: every sequence of the batch has exactly one query token, which attends to
     * all of its KV. {@code q}, {@code out}: {@code [numSeqs, numQoHeads, headDim]} float32;
     * {@code lse} (nullable): {@code [numSeqs, numQoHeads]} float32, natural-log log-sum-exp.
     *
     * @throws StaleBatchException when a sequence of the batch changed since it was built
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
     *
     * @throws StaleBatchException when a sequence of the batch changed since it was built
     */
    public void prefillAttention(Batch batch, int layer, AttentionParams params, MemorySegment q, MemorySegment out,
                                 MemorySegment lse) {
        attention(Kernel.PREFILL, batch, layer, params, q, out, lse);
    }

    /**
     * Shared-prefix attention: the same result as {@link #prefillAttention}, but the batch's
     * {@link Batch#sharedPrefixPages()} are read once for all queries and merged through the LSE.
     *
     * @throws StaleBatchException when a sequence of the batch changed since it was built
     */
    public void cascadeAttention(Batch batch, int layer, AttentionParams params, MemorySegment q, MemorySegment out,
                                 MemorySegment lse) {
        attention(Kernel.CASCADE, batch, layer, params, q, out, lse);
    }

    /**
     * Copies whole pages {@code src[i] -> dst[i]} (all layers, K and V) on the cache's device. The
     * caller makes sure no sequence still reads the destination pages.
     */
    public void copyPages(int[] src, int[] dst) {
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(dst, "dst");
        if (src.length != dst.length)
            throw new IllegalArgumentException("src has " + src.length + " page ids, dst " + dst.length);
        MemorySegment handle = cache.enter();
        try (Arena scratch = Arena.ofConfined()) {
            Status.check(pagedkv_copy_pages(handle, scratch.allocateFrom(C_INT, src), scratch.allocateFrom(C_INT, dst),
                    src.length, MemorySegment.NULL));
        } finally {
            cache.exit();
        }
    }

    /** Waits for all work queued on the cache's device (a no-op on the CPU). */
    public void synchronize() {
        MemorySegment handle = cache.enter();
        try {
            Status.check(pagedkv_synchronize(handle));
        } finally {
            cache.exit();
        }
    }

    @Override
    public String toString() {
        return "Kernels[" + cache + "]";
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
        Objects.requireNonNull(batch, "batch");
        Objects.requireNonNull(params, "params");
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(out, "out");
        CacheLayout layout = cache.layout();
        MemorySegment handle = cache.enter();
        try {
            checkBatch(batch);
            cache.checkLayer(layer);
            if (params.numQoHeads() % layout.kvHeads() != 0)
                throw new IllegalArgumentException("numQoHeads " + params.numQoHeads() + " is not a multiple of the cache's "
                        + layout.kvHeads() + " kv heads");
            batch.acquire();
            try (Operands operands = new Operands(cache, handle)) {
                boolean decode = kernel == Kernel.DECODE;
                if (decode && (batch.numQoTokens() != batch.numSeqs() || (batch.numSeqs() > 0 && batch.maxQoLen() != 1)))
                    throw new IllegalArgumentException("decode needs exactly one query token per sequence; the batch has "
                            + batch.numQoTokens() + " query tokens for " + batch.numSeqs() + " sequences (use prefill)");
                long rows = decode ? batch.numSeqs() : batch.numQoTokens();
                long lseBytes = Math.multiplyExact(rows, (long) params.numQoHeads() * FLOAT_BYTES);
                long tensorBytes = Math.multiplyExact(lseBytes, layout.headDim());
                MemorySegment qIn = operands.input(q, tensorBytes, FLOAT_BYTES, "q");
                MemorySegment outIn = operands.output(out, tensorBytes, FLOAT_BYTES, "out");
                MemorySegment lseIn = lse == null ? MemorySegment.NULL : operands.output(lse, lseBytes, FLOAT_BYTES, "lse");
                MemorySegment p = params(operands.scratch(), params);
                Status.check(Operands.call(() -> kernel.run(handle, batch.handle(), layer, p, qIn, outIn, lseIn)));
                operands.finish();
            } finally {
                batch.release();
            }
        } finally {
            cache.exit();
        }
    }

    private void checkBatch(Batch batch) {
        if (batch.cache() != cache) throw new IllegalArgumentException("the batch belongs to another cache");
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
}
