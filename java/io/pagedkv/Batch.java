package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.HandleGuard;
import io.pagedkv.internal.ffi.pagedkv_batch_info;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The arrays attention kernels need for a list of sequences, built once per model step with
 * {@link PagedKvCache#batch}: FlashInfer-style {@code kv_indptr}, {@code kv_page_indices},
 * {@code kv_last_page_len}, {@code qo_indptr}, plus the slot of every query token and every KV
 * length. For sequence {@code i} the query tokens are its positions to compute
 * {@code [numComputed, numTokens)} and the KV is all of {@code [0, numTokens)}.
 *
 * <p>A batch is a snapshot: later changes to its sequences do not alter it. Pass it to the
 * kernels of its cache, then {@link #commit()} and {@link #close()} it.
 *
 * <p>Threads: all methods may be called from several threads, kernels included. {@link #close()}
 * throws {@link IllegalStateException} while another thread is using the batch; after it (or once
 * the cache is closed), every method throws {@link IllegalStateException}.
 */
public final class Batch implements AutoCloseable {
    private final PagedKvCache cache;
    private final MemorySegment handle;
    private final HandleGuard guard = new HandleGuard("batch");
    private final int numSeqs;
    private final int sharedPrefixPages;
    private final long numQoTokens;
    private final long maxKvLen;
    private final long maxQoLen;
    // Host views of the native arrays, scoped to the cache's arena.
    private final MemorySegment kvIndptr;
    private final MemorySegment kvPageIndices;
    private final MemorySegment kvLastPageLen;
    private final MemorySegment qoIndptr;
    private final MemorySegment slotMapping;
    private final MemorySegment kvLen;

    /** Takes ownership of {@code handle} (scoped to {@code cacheArena}); destroys it if reading it fails. */
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
        return ints(kvIndptr);
    }

    /** Page ids of every sequence, concatenated. */
    public int[] kvPageIndices() {
        return ints(kvPageIndices);
    }

    /** Tokens in the last page of every sequence, 1..pageSize (0 without pages). */
    public int[] kvLastPageLen() {
        return ints(kvLastPageLen);
    }

    /** {@code numSeqs + 1} entries: query tokens of sequence i are {@code [qoIndptr[i], qoIndptr[i+1])}. */
    public int[] qoIndptr() {
        return ints(qoIndptr);
    }

    /** Slot ({@code page*pageSize + offset}) of every query token. */
    public long[] slotMapping() {
        acquire();
        try {
            return slotMapping.toArray(C_LONG_LONG);
        } finally {
            release();
        }
    }

    /** KV length (= numTokens) of every sequence. */
    public int[] kvLen() {
        return ints(kvLen);
    }

    /** Commits every sequence of the batch to its full length (one model step done). */
    public void commit() {
        acquire();
        try {
            Status.check(pagedkv_batch_commit(cache.handle(), handle));
        } finally {
            release();
        }
    }

    /** Whether {@link #close()} has not run and the cache is open. */
    public boolean isOpen() {
        return !guard.isClosed() && cache.isOpen();
    }

    /** Destroys the batch; idempotent. Throws {@link IllegalStateException} while another thread uses it. */
    @Override
    public void close() {
        if (!guard.close() || !cache.isOpen()) return;
        int status;
        try {
            status = pagedkv_batch_destroy(handle);
        } catch (IllegalStateException cacheClosedMeanwhile) {
            return; // destroying the cache destroyed this batch
        }
        Status.check(status);
    }

    @Override
    public String toString() {
        return "Batch[" + numSeqs + " sequences, " + numQoTokens + " query tokens" + (guard.isClosed() ? ", closed]" : "]");
    }

    // ---- package-private: used by the kernels of PagedKvCache, between acquire and release ----

    void acquire() {
        cache.checkOpen();
        guard.acquire();
    }

    void release() {
        guard.release();
    }

    MemorySegment handle() {
        return handle;
    }

    private int[] ints(MemorySegment array) {
        acquire();
        try {
            return array.toArray(C_INT);
        } finally {
            release();
        }
    }

    private void checkOpen() {
        if (guard.isClosed()) throw new IllegalStateException("batch is closed");
        cache.checkOpen();
    }
}
