package io.pagedkv.internal;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counts the threads using a native handle so that it is destroyed only when nobody uses it:
 * {@link #acquire()} before a use, {@link #release()} after it, {@link #close()} once. Closing
 * while another thread is inside a use fails with {@link IllegalStateException} instead of
 * freeing memory under that thread; both failures carry the owner's own words (what was closed,
 * what to do), never the FFM runtime's.
 *
 * <p>Thread-safe and lock-free: two uncontended compare-and-sets per use.
 */
public final class HandleGuard {
    private static final long CLOSED = Long.MIN_VALUE;

    private final AtomicLong users = new AtomicLong();
    private final String closedMessage;
    private final String busyMessage;

    /**
     * @param closedMessage the message of a use after {@link #close()}
     * @param busyMessage the message of a {@link #close()} while another thread uses the handle
     */
    public HandleGuard(String closedMessage, String busyMessage) {
        this.closedMessage = closedMessage;
        this.busyMessage = busyMessage;
    }

    /** Marks one more user; throws {@link IllegalStateException} once closed. */
    public void acquire() {
        if (!tryAcquire()) throw new IllegalStateException(closedMessage);
    }

    /** Marks one more user and returns true, or returns false once closed. */
    public boolean tryAcquire() {
        for (;;) {
            long current = users.get();
            if (current < 0) return false;
            if (users.compareAndSet(current, current + 1)) return true;
        }
    }

    /** Ends a use begun by {@link #acquire()} or a successful {@link #tryAcquire()}. */
    public void release() {
        users.decrementAndGet();
    }

    /**
     * Closes the guard: true for the one call that closed it, false if it was already closed.
     * Throws {@link IllegalStateException} while another thread uses the handle.
     */
    public boolean close() {
        for (;;) {
            long current = users.get();
            if (current < 0) return false;
            if (current > 0) throw new IllegalStateException(busyMessage);
            if (users.compareAndSet(0, CLOSED)) return true;
        }
    }

    /**
     * Undoes a {@link #close()} whose owner could not free the handle after all (the memory was
     * still held elsewhere), so that it stays usable and can be closed again later.
     */
    public void reopen() {
        users.compareAndSet(CLOSED, 0);
    }

    /** Whether {@link #close()} has succeeded. */
    public boolean isClosed() {
        return users.get() < 0;
    }

    /** The message of a use after close, for owners that detect it without acquiring. */
    public IllegalStateException closedException() {
        return new IllegalStateException(closedMessage);
    }
}
