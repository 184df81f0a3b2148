package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.ffi.pagedkv_sequence_info;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One sequence of a {@link PagedKvCache}: its tokens, its block table (page ids, one per
 * {@code pageSize} positions), how many positions are computed, and its isolation key. Positions
 * {@code [numComputed, numTokens)} are to compute: their slots ({@link #slotMapping()}) are
 * reserved for this sequence alone. Create one with {@link PagedKvCache#createSequence}.
 *
 * <p>Lifecycle: create (the cached prefix is reused) → write K/V of the positions to compute →
 * {@link #commit(long)} → {@link #append(int...)} decode steps → {@link #fork()},
 * {@link #truncate(long)} → {@link #close()} (pages return to the pool; indexed ones stay cached).
 * Every change ({@link #commit}, {@link #append}, {@link #truncate}, {@link #close}) makes the
 * {@link Batch}es holding this sequence stale; {@link #fork()} does not.
 *
 * <p>Threads: every call is one native operation, serialized by the cache, so a sequence may be
 * touched from several threads without corrupting anything; but its state then changes between
 * calls, so drive a sequence from one thread at a time. A change made while another thread runs a
 * kernel with a batch holding this sequence waits for that kernel to return. {@link #close()} is
 * idempotent and thread-safe. After {@code close()}, or once the cache is closed, every other
 * method throws {@link IllegalStateException}.
 */
public final class Sequence implements AutoCloseable {
    private static final int INITIAL_CAPACITY = 64;

    private final PagedKvCache cache;
    private final long id;
    private final long numCached;
    private final AtomicBoolean closed = new AtomicBoolean();
    // Last sizes seen, so that the array getters need one downcall, not a size query and a fetch.
    // Races between threads only cost a retry.
    private int pagesHint = INITIAL_CAPACITY;
    private int tokensHint = INITIAL_CAPACITY;
    private int slotsHint = INITIAL_CAPACITY;

    Sequence(PagedKvCache cache, long id, long numCached) {
        this.cache = cache;
        this.id = id;
        this.numCached = numCached;
    }

    /** The cache this sequence lives in. */
    public PagedKvCache cache() {
        return cache;
    }

    /** The native id (&gt; 0), unique within the cache. */
    public long id() {
        return id;
    }

    /** Tokens in the sequence. */
    public long numTokens() {
        return info().numTokens;
    }

    /** Positions whose K/V are written and committed. */
    public long numComputed() {
        return info().numComputed;
    }

    /** Positions reused from the cache when the sequence was created (for a fork: its parent's). */
    public long numCached() {
        checkOpen();
        return numCached;
    }

    /** Page ids, one per {@code pageSize} positions. */
    public int[] blockTable() {
        MemorySegment handle = enter();
        try (Arena scratch = Arena.ofConfined()) {
            int[] pages = fetch(scratch, C_INT, C_INT, pagesHint,
                    (buffer, capacity, count) -> pagedkv_sequence_get_block_table(handle, id, buffer, (int) capacity, count))
                    .toArray(C_INT);
            pagesHint = Math.max(pages.length, 1);
            return pages;
        } finally {
            cache.exit();
        }
    }

    /** The token ids. */
    public int[] tokens() {
        MemorySegment handle = enter();
        try (Arena scratch = Arena.ofConfined()) {
            int[] tokens = fetch(scratch, C_INT, C_LONG_LONG, tokensHint,
                    (buffer, capacity, count) -> pagedkv_sequence_get_tokens(handle, id, buffer, capacity, count))
                    .toArray(C_INT);
            tokensHint = Math.max(tokens.length, 1);
            return tokens;
        } finally {
            cache.exit();
        }
    }

    /**
     * Slots ({@code page*pageSize + offset}) of the positions to compute,
     * {@code [numComputed, numTokens)}, in order.
     */
    public long[] slotMapping() {
        MemorySegment handle = enter();
        try (Arena scratch = Arena.ofConfined()) {
            long[] slots = fetch(scratch, C_LONG_LONG, C_LONG_LONG, slotsHint,
                    (buffer, capacity, count) -> pagedkv_sequence_get_slot_mapping(handle, id, buffer, capacity, count))
                    .toArray(C_LONG_LONG);
            slotsHint = Math.max(slots.length, 1);
            return slots;
        } finally {
            cache.exit();
        }
    }

    /** A native getter that copies up to {@code capacity} elements and writes the full count. */
    @FunctionalInterface
    private interface ArrayGetter {
        int call(MemorySegment buffer, long capacity, MemorySegment count);
    }

    /**
     * Runs {@code getter} with room for {@code hint} elements, and once more with room for all if
     * the array was longer; returns the filled elements.
     */
    private MemorySegment fetch(Arena scratch, ValueLayout element, ValueLayout countLayout, long hint,
                                ArrayGetter getter) {
        MemorySegment count = scratch.allocate(countLayout);
        long capacity = hint;
        for (;;) {
            MemorySegment buffer = scratch.allocate(element, capacity);
            check(getter.call(buffer, capacity, count));
            long n = countLayout.byteSize() == Integer.BYTES ? count.get(C_INT, 0) : count.get(C_LONG_LONG, 0);
            if (n <= capacity) return buffer.asSlice(0, n * element.byteSize());
            capacity = n; // longer than the hint: ask again with room for all
        }
    }

    /**
     * Declares positions {@code [0, numComputed)} computed (their K/V written). Full pages join the
     * prefix index; an identical indexed page replaces its duplicate. Batches holding this sequence
     * become stale.
     *
     * @throws PagedKvException.InvalidArgument unless {@code numComputed} lies in
     *     {@code [numComputed(), numTokens()]}
     */
    public void commit(long numComputed) {
        MemorySegment handle = enter();
        try {
            check(pagedkv_sequence_commit(handle, id, numComputed));
        } finally {
            cache.exit();
        }
    }

    /** Commits every position: {@code commit(numTokens())}. */
    public void commitAll() {
        commit(numTokens());
    }

    /**
     * Appends tokens to compute (decode steps, a new user turn). Pages are reserved all or nothing;
     * a shared last page is copied first. Batches holding this sequence become stale.
     *
     * @throws OutOfPagesException when the pages cannot be reserved; nothing changed
     */
    public void append(int... tokens) {
        Objects.requireNonNull(tokens, "tokens");
        MemorySegment handle = enter();
        try (Arena scratch = Arena.ofConfined()) {
            check(pagedkv_sequence_append(handle, id, scratch.allocateFrom(C_INT, tokens), tokens.length));
        } finally {
            cache.exit();
        }
    }

    /**
     * A new sequence with the same tokens, computed count and isolation key, sharing every page;
     * a shared page is copied when either sequence writes into it. Batches holding this sequence
     * stay valid.
     */
    public Sequence fork() {
        MemorySegment handle = enter();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment child = scratch.allocate(C_LONG_LONG);
            check(pagedkv_sequence_fork(handle, id, child));
            long childId = child.get(C_LONG_LONG, 0);
            MemorySegment info = pagedkv_sequence_info.allocate(scratch);
            pagedkv_sequence_info.struct_size(info, (int) pagedkv_sequence_info.sizeof());
            try {
                Status.check(pagedkv_sequence_get_info(handle, childId, info));
            } catch (RuntimeException failure) {
                pagedkv_sequence_release(handle, childId); // do not leak the child; the first error is the one to report
                throw failure;
            }
            return new Sequence(cache, childId, pagedkv_sequence_info.num_cached(info));
        } finally {
            cache.exit();
        }
    }

    /**
     * Rolls back to the first {@code numTokens} tokens ({@code 1 <= numTokens <= numTokens()}).
     * Batches holding this sequence become stale.
     */
    public void truncate(long numTokens) {
        MemorySegment handle = enter();
        try {
            check(pagedkv_sequence_truncate(handle, id, numTokens));
        } finally {
            cache.exit();
        }
    }

    /** Whether {@link #close()} has not run and the cache is open. */
    public boolean isOpen() {
        return !closed.get() && cache.isOpen();
    }

    /**
     * Releases the sequence: its pages return to the pool, indexed ones stay cached, and batches
     * holding it become stale (a kernel running with such a batch on another thread finishes
     * first). Idempotent; does nothing once the cache is closed (the cache released everything).
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) return;
        MemorySegment handle = cache.tryEnter();
        if (handle == null) return;
        try {
            Status.check(pagedkv_sequence_release(handle, id));
        } finally {
            cache.exit();
        }
    }

    @Override
    public String toString() {
        return "Sequence[id=" + id + (closed.get() ? ", released]" : "]");
    }

    /** The id, for building a batch, after checking the sequence is open. */
    long idForCall() {
        checkOpen();
        return id;
    }

    /**
     * Of {@link #numCached()}, the positions brought back from {@code tier} when the sequence was
     * created (full pages only).
     */
    public long loadedTokens(Tier tier) {
        Objects.requireNonNull(tier, "tier");
        return info().loadedTokens[tier.code()];
    }

    /** The counts of {@code pagedkv_sequence_info} that Java reads. */
    private record Info(long numTokens, long numComputed, long[] loadedTokens) {}

    private Info info() {
        MemorySegment handle = enter();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment info = pagedkv_sequence_info.allocate(scratch);
            pagedkv_sequence_info.struct_size(info, (int) pagedkv_sequence_info.sizeof());
            check(pagedkv_sequence_get_info(handle, id, info));
            long[] loaded = new long[Tier.values().length];
            for (int t = 0; t < loaded.length; ++t) loaded[t] = pagedkv_sequence_info.loaded_tokens(info, t);
            return new Info(pagedkv_sequence_info.num_tokens(info), pagedkv_sequence_info.num_computed(info), loaded);
        } finally {
            cache.exit();
        }
    }

    /** Holds the cache open for one call on this sequence; the caller ends it with {@code cache.exit()}. */
    private MemorySegment enter() {
        if (closed.get()) throw released();
        return cache.enter();
    }

    /**
     * Status.check, except that the library's "unknown sequence" after another thread closed this
     * one during the call is reported as the close it is.
     */
    private void check(int status) {
        if (status != PAGEDKV_OK() && closed.get()) throw released();
        Status.check(status);
    }

    private void checkOpen() {
        if (closed.get()) throw released();
        cache.checkOpen();
    }

    private IllegalStateException released() {
        return new IllegalStateException("sequence " + id + " is released (closed); create a new sequence");
    }
}
