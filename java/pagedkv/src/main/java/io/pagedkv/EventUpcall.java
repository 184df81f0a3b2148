package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.ffi.pagedkv_block_event;
import io.pagedkv.internal.ffi.pagedkv_event_batch;
import io.pagedkv.internal.ffi.pagedkv_event_callback;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * The native event callback of a {@link KvEventListener}: an upcall stub that copies each native
 * batch into a {@link KvEventBatch} and hands it to the listener. Nothing thrown in Java unwinds
 * into native code (that would end the process): a failure goes to the thread's uncaught-exception
 * handler. The stub lives until {@link #close()}, which the cache calls once the native side can no
 * longer call it.
 */
final class EventUpcall implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment stub;

    EventUpcall(KvEventListener listener) {
        this.stub = pagedkv_event_callback.allocate((batch, userData) -> deliver(listener, batch), arena);
    }

    /** The function pointer to pass as a {@code pagedkv_event_callback}. */
    MemorySegment stub() {
        return stub;
    }

    @Override
    public void close() {
        arena.close();
    }

    private static void deliver(KvEventListener listener, MemorySegment batch) {
        try {
            listener.onEvents(read(batch));
        } catch (Throwable failure) {
            try {
                Thread thread = Thread.currentThread();
                thread.getUncaughtExceptionHandler().uncaughtException(thread, failure);
            } catch (Throwable ignored) {
                // The handler failed too: dropping the failure is the only way not to unwind into C.
            }
        }
    }

    /** Copies a native {@code pagedkv_event_batch} (valid during the callback only). */
    static KvEventBatch read(MemorySegment address) {
        MemorySegment batch = address.reinterpret(pagedkv_event_batch.sizeof());
        int count = pagedkv_event_batch.num_events(batch);
        long stride = pagedkv_event_batch.event_stride(batch);
        MemorySegment all = pagedkv_event_batch.events(batch).reinterpret(stride * count);
        List<KvEvent> events = new ArrayList<>(count);
        for (int i = 0; i < count; i++) events.add(event(all.asSlice(i * stride, pagedkv_block_event.sizeof())));
        return new KvEventBatch(pagedkv_event_batch.seq(batch), pagedkv_event_batch.timestamp(batch), events);
    }

    private static KvEvent event(MemorySegment e) {
        Medium medium = Medium.ofCode(pagedkv_block_event.medium(e));
        int blocks = pagedkv_block_event.num_blocks(e);
        long[] hashes = blocks == 0 ? new long[0]
                : pagedkv_block_event.block_hashes(e).reinterpret(8L * blocks).toArray(ValueLayout.JAVA_LONG);
        int type = pagedkv_block_event.type(e);
        if (type == PAGEDKV_EVENT_BLOCK_STORED()) {
            long tokens = pagedkv_block_event.num_token_ids(e);
            int[] ids = pagedkv_block_event.token_ids(e).reinterpret(4L * tokens).toArray(ValueLayout.JAVA_INT);
            OptionalLong parent = pagedkv_block_event.has_parent(e) != 0
                    ? OptionalLong.of(pagedkv_block_event.parent_block_hash(e)) : OptionalLong.empty();
            return new KvEvent.BlockStored(hashes, parent, ids, pagedkv_block_event.block_size(e), medium);
        }
        if (type == PAGEDKV_EVENT_BLOCK_REMOVED()) return new KvEvent.BlockRemoved(hashes, medium);
        return new KvEvent.AllBlocksCleared();
    }
}
