package io.pagedkv;

/**
 * Receives a cache's KV events ({@link PagedKvCache#setEventListener}).
 *
 * <p>Threads: called after the native cache's lock is released, by one thread at a time, in batch
 * order, on a thread that is inside a call on this cache (the one whose call caused the events, or
 * another whose call waits behind it); that call returns only after its events were delivered, so
 * keep the listener short. It may call the cache (match, snapshot, stats, even sequence
 * operations, whose events follow in later batches), but must not set the listener, close the
 * cache or a publisher of it. An exception it throws never reaches native code: it goes to the
 * calling thread's uncaught-exception handler and the cache carries on.
 */
@FunctionalInterface
public interface KvEventListener {
    void onEvents(KvEventBatch batch);
}
