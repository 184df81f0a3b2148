package io.pagedkv.internal;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counts the threads using a native handle so that it is destroyed only when nobody uses it:
 * {@link #acquire()} before a use, {@link #release()} after it, {@link #close()} exactly once.
 * Closing while another thread is inside a use fails with {@link IllegalStateException} (as
 * closing a shared {@code Arena} does) instead of freeing memory under that thread.
 *
 * <p>Thread-safe and lock-free: two uncontended compare-and-sets per use.
 */
public final class HandleGuard {
    private static final long CLOSED = Long.MIN_VALUE;

    private final AtomicLong users = new AtomicLong();
    private final String what;

    /** {@code what} names the handle in messages ("batch", ...). */
    public HandleGuard(String what) {
        this.what = what;
    }

    /** Marks one more user; throws {@link IllegalStateException} once closed. */
    public void acquire() {
        for (;;) {
            long current = users.get();
            if (current < 0) throw new IllegalStateException(what + " is closed");
            if (users.compareAndSet(current, current + 1)) return;
        }
    }

    /** Ends a use begun by {@link #acquire()}. */
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
            if (current > 0) throw new IllegalStateException(what + " is in use by another thread; cannot close it now");
            if (users.compareAndSet(0, CLOSED)) return true;
        }
    }

    /** Whether {@link #close()} has succeeded. */
    public boolean isClosed() {
        return users.get() < 0;
    }
}
