package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.HandleGuard;
import io.pagedkv.internal.ffi.pagedkv_batch_info;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.Function;

/**
 * The arrays attention kernels need for a list of sequences, built for one model step with
 * {@link PagedKvCache#batch}: FlashInfer-style {@code kv_indptr}, {@code kv_page_indices},
 * {@code kv_last_page_len}, {@code qo_indptr}, plus the slot of every query token and every KV
 * length. For sequence {@code i} the query tokens are its positions to compute
 * {@code [numComputed, numTokens)} and the KV is all of {@code [0, numTokens)}.
 *
 * <p><b>Validity.</b> A batch is valid until any of its sequences changes: a commit
 * ({@link Sequence#commit}, or {@link #commit()} of this or another batch), an append, a truncate
 * or a release. From then on every kernel call with the batch and its {@link #commit()} throw
 * {@link StaleBatchException} and change nothing, so a batch can never write K/V into pages its
 * sequences no longer own, nor commit positions it did not cover. {@link #commit()} itself makes
 * the batch stale (a second commit throws). Forking a member does not change it. The arrays and
 * counts below stay readable on a stale batch (they describe the step it was built for), and
 * {@link #close()} accepts it. So one step is:
 * <pre>{@code
 * try (Batch batch = cache.batch(sequences)) {
 *     for (int layer = 0; layer < layers; layer++) {
 *         kernels.writeKv(batch, layer, k, v, KvDtype.F32);
 *         kernels.prefillAttention(batch, layer, params, q, out, null);
 *     }
 *     batch.commit();            // the batch is stale from here
 * }
 * sequence.append(sampledToken); // then build the next step's batch
 * }</pre>
 *
 * <p><b>Threads.</b> All methods may be called from several threads, kernels included. A sequence
 * changed by another thread while a kernel runs with this batch waits for the kernel to return,
 * then makes the batch stale. {@link #close()} throws {@link IllegalStateException} while another
 * thread is using the batch (a kernel or an array read); after it (or once the cache is closed),
 * every method throws {@link IllegalStateException}.
 */
public final class Batch implements AutoCloseable {
    private final PagedKvCache cache;
    private final MemorySegment handle;
    // Held by kernels and array reads: the native arrays are freed when the batch is destroyed.
    private final HandleGuard guard = new HandleGuard(
            "this batch is closed; build a new one with cache.batch(...)",
            "cannot close this batch while another thread is using it (a kernel call or an array read);"
                    + " close it after that call returns");
    private final int numSeqs;
    private final int sharedPrefixPages;
    private final long numQoTokens;
    private final long maxKvLen;
    private final long maxQoLen;
    // Host views of the native arrays, scoped to the cache's arena, read only under the guard.
    private final MemorySegment kvIndptr;
    private final MemorySegment kvPageIndices;
    private final MemorySegment kvLastPageLen;
    private final MemorySegment qoIndptr;
    private final MemorySegment slotMapping;
    private final MemorySegment kvLen;

    /**
     * Takes ownership of {@code handle}, which the caller created while holding the cache open;
     * destroys it if reading it fails.
     */
    Batch(PagedKvCache cache, MemorySegment handle, Arena cacheArena) {
        this.cache = cache;
        this.handle = handle;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment info = pagedkv_batch_info.allocate(scratch);
            pagedkv_batch_info.struct_size(info, (int) pagedkv_batch_info.sizeof());
            Status.check(pagedkv_batch_get_info(handle, info));
            numSeqs = pagedkv_batch_info.num_seqs(info);
            int numPages = pagedkv_batch_info.num_pages(info);
            sharedPrefixPages = pagedkv_batch_info.shared_prefix_pages(info);
            numQoTokens = pagedkv_batch_info.num_qo_tokens(info);
            maxKvLen = pagedkv_batch_info.max_kv_len(info);
            maxQoLen = pagedkv_batch_info.max_qo_len(info);
            kvIndptr = view(pagedkv_batch_info.kv_indptr(info), numSeqs + 1L, C_INT, cacheArena);
            kvPageIndices = view(pagedkv_batch_info.kv_page_indices(info), numPages, C_INT, cacheArena);
            kvLastPageLen = view(pagedkv_batch_info.kv_last_page_len(info), numSeqs, C_INT, cacheArena);
            qoIndptr = view(pagedkv_batch_info.qo_indptr(info), numSeqs + 1L, C_INT, cacheArena);
            slotMapping = view(pagedkv_batch_info.slot_mapping(info), numQoTokens, C_LONG_LONG, cacheArena);
            kvLen = view(pagedkv_batch_info.kv_len(info), numSeqs, C_INT, cacheArena);
        } catch (RuntimeException failure) {
            pagedkv_batch_destroy(handle); // the first error is the one to report
            throw failure;
        }
    }

    private static MemorySegment view(MemorySegment pointer, long count, ValueLayout element, Arena arena) {
        if (count > 0 && pointer.equals(MemorySegment.NULL))
            throw new PagedKvException.Internal(PAGEDKV_ERR_INTERNAL(), "batch info: null array of " + count + " elements");
        return pointer.reinterpret(count * element.byteSize(), arena, null);
    }

    /** The cache this batch belongs to. */
    public PagedKvCache cache() {
        return cache;
    }

    /** Sequences in the batch. */
    public int numSeqs() {
        checkOpen();
        return numSeqs;
    }

    /** Query tokens of all sequences ({@code qoIndptr[numSeqs]}): the T of kernel shapes. */
    public long numQoTokens() {
        checkOpen();
        return numQoTokens;
    }

    /** Leading full pages common to every sequence (0 with fewer than two); read once by cascade. */
    public int sharedPrefixPages() {
        checkOpen();
        return sharedPrefixPages;
    }

    /** The longest KV length. */
    public long maxKvLen() {
        checkOpen();
        return maxKvLen;
    }

    /** The most query tokens of one sequence. */
    public long maxQoLen() {
        checkOpen();
        return maxQoLen;
    }

    /** {@code numSeqs + 1} entries: the pages of sequence i are {@code kvPageIndices[kvIndptr[i]..kvIndptr[i+1])}. */
    public int[] kvIndptr() {
        return read(kvIndptr, array -> array.toArray(C_INT));
    }

    /** Page ids of every sequence, concatenated. */
    public int[] kvPageIndices() {
        return read(kvPageIndices, array -> array.toArray(C_INT));
    }

    /** Tokens in the last page of every sequence, 1..pageSize (0 without pages). */
    public int[] kvLastPageLen() {
        return read(kvLastPageLen, array -> array.toArray(C_INT));
    }

    /** {@code numSeqs + 1} entries: query tokens of sequence i are {@code [qoIndptr[i], qoIndptr[i+1])}. */
    public int[] qoIndptr() {
        return read(qoIndptr, array -> array.toArray(C_INT));
    }

    /** Slot ({@code page*pageSize + offset}) of every query token. */
    public long[] slotMapping() {
        return read(slotMapping, array -> array.toArray(C_LONG_LONG));
    }

    /** KV length (= numTokens when the batch was built) of every sequence. */
    public int[] kvLen() {
        return read(kvLen, array -> array.toArray(C_INT));
    }

    /**
     * Commits every sequence of the batch to the length it had when the batch was built (the
     * positions this batch's writeKv calls covered): one model step done. The batch is stale
     * afterwards.
     *
     * @throws StaleBatchException when a sequence changed since the batch was built, or the batch
     *     was committed already; nothing was committed
     */
    public void commit() {
        MemorySegment cacheHandle = cache.enter();
        try {
            guard.acquire();
            try {
                Status.check(pagedkv_batch_commit(cacheHandle, handle));
            } finally {
                guard.release();
            }
        } finally {
            cache.exit();
        }
    }

    /** Whether {@link #close()} has not run and the cache is open (a stale batch is still open). */
    public boolean isOpen() {
        return !guard.isClosed() && cache.isOpen();
    }

    /**
     * Destroys the batch (stale or not); idempotent, and nothing to do once the cache is closed (it
     * destroyed the batch). Throws {@link IllegalStateException} while another thread uses it.
     */
    @Override
    public void close() {
        MemorySegment cacheHandle = cache.tryEnter();
        if (cacheHandle == null) {
            guard.close(); // nobody can hold it: every use holds the cache open first
            return;
        }
        try {
            if (guard.close()) Status.check(pagedkv_batch_destroy(handle));
        } finally {
            cache.exit();
        }
    }

    @Override
    public String toString() {
        return "Batch[" + numSeqs + " sequences, " + numQoTokens + " query tokens" + (isOpen() ? "]" : ", closed]");
    }

    // ---- package-private: the kernels hold the cache open, then the batch, for one call ----

    void acquire() {
        guard.acquire();
    }

    void release() {
        guard.release();
    }

    MemorySegment handle() {
        return handle;
    }

    private <T> T read(MemorySegment array, Function<MemorySegment, T> copy) {
        cache.enter();
        try {
            guard.acquire();
            try {
                return copy.apply(array);
            } finally {
                guard.release();
            }
        } finally {
            cache.exit();
        }
    }

    private void checkOpen() {
        if (guard.isClosed()) throw guard.closedException();
        cache.checkOpen();
    }
}
