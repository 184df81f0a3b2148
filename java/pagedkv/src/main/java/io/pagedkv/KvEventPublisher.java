package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.ffi.pagedkv_event_publisher_config;
import io.pagedkv.internal.ffi.pagedkv_event_publisher_stats;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Publishes a cache's KV events over ZeroMQ exactly as vLLM does (PUB socket: topic, 8-byte
 * sequence number, MessagePack batch; ROUTER replay socket), so routers and indexers written for
 * vLLM subscribe unchanged. Publishing never blocks the cache: batches are copied into a ring and
 * sent by a background thread; when it falls behind, the oldest unsent batches are skipped
 * ({@link Stats#batchesDropped()}) and stay recoverable through the replay socket.
 *
 * <pre>{@code
 * try (KvEventPublisher events = KvEventPublisher.builder("tcp://*:5557")
 *         .replayEndpoint("tcp://*:5558").topic("kv@pagedkv").start(cache)) {
 *     ... serve ...
 * }
 * }</pre>
 *
 * <p>Threads: {@link #stats()} and {@link #close()} may be called from any thread; close is
 * idempotent and may come before or after the cache's. A build of the native library without
 * ZeroMQ throws {@link PagedKvException.DeviceFailure} (status "unsupported") from
 * {@link Builder#start}.
 */
public final class KvEventPublisher implements AutoCloseable {
    /** What the publisher did so far. */
    public record Stats(long batchesAccepted, long batchesSent, long batchesDropped, long eventsAccepted,
                        long replayRequests, long batchesReplayed) {}

    private final MemorySegment handle;
    private final AtomicBoolean closed = new AtomicBoolean();

    private KvEventPublisher(MemorySegment handle) {
        this.handle = handle;
    }

    /**
     * A publisher on the PUB {@code endpoint}: bound when it has a wildcard host ({@code *}) or is
     * {@code ipc://} or {@code inproc://}, connected otherwise (as vLLM).
     */
    public static Builder builder(String endpoint) {
        return new Builder(Objects.requireNonNull(endpoint, "endpoint"));
    }

    /** Options of a publisher; defaults as vLLM's. */
    public static final class Builder {
        private final String endpoint;
        private String replayEndpoint;
        private String topic = "";
        private int dataParallelRank;
        private int bufferSteps;
        private int maxQueueBatches;
        private int sendHwm;

        private Builder(String endpoint) {
            this.endpoint = endpoint;
        }

        /** The ROUTER socket answering replay requests (always bound); none by default. */
        public Builder replayEndpoint(String endpoint) {
            this.replayEndpoint = Objects.requireNonNull(endpoint, "endpoint");
            return this;
        }

        /** First frame of every message (subscribers filter on it); "" by default. */
        public Builder topic(String topic) {
            this.topic = Objects.requireNonNull(topic, "topic");
            return this;
        }

        /** Sent in every batch; also offsets a tcp port by the rank (vLLM's data-parallel rule). */
        public Builder dataParallelRank(int rank) {
            this.dataParallelRank = rank;
            return this;
        }

        /** Batches kept for replay (default 10000). */
        public Builder bufferSteps(int steps) {
            this.bufferSteps = steps;
            return this;
        }

        /** Unsent batches before the oldest are skipped (default: bufferSteps). */
        public Builder maxQueueBatches(int batches) {
            this.maxQueueBatches = batches;
            return this;
        }

        /** ZeroMQ high-water mark of the PUB socket (default 100000). */
        public Builder sendHwm(int messages) {
            this.sendHwm = messages;
            return this;
        }

        /** Opens the sockets and starts publishing {@code cache}'s events. */
        public KvEventPublisher start(PagedKvCache cache) {
            Objects.requireNonNull(cache, "cache");
            MemorySegment nativeCache = cache.enter();
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment c = pagedkv_event_publisher_config.allocate(scratch);
                pagedkv_event_publisher_config.struct_size(c, (int) pagedkv_event_publisher_config.sizeof());
                pagedkv_event_publisher_config.endpoint(c, scratch.allocateFrom(endpoint));
                pagedkv_event_publisher_config.replay_endpoint(c,
                        replayEndpoint == null ? MemorySegment.NULL : scratch.allocateFrom(replayEndpoint));
                pagedkv_event_publisher_config.topic(c, scratch.allocateFrom(topic));
                pagedkv_event_publisher_config.data_parallel_rank(c, dataParallelRank);
                pagedkv_event_publisher_config.buffer_steps(c, bufferSteps);
                pagedkv_event_publisher_config.max_queue_batches(c, maxQueueBatches);
                pagedkv_event_publisher_config.send_hwm(c, sendHwm);
                MemorySegment out = scratch.allocate(C_POINTER);
                Status.check(pagedkv_event_publisher_create(nativeCache, c, out));
                return new KvEventPublisher(MemorySegment.ofAddress(out.get(C_POINTER, 0).address()));
            } finally {
                cache.exit();
            }
        }
    }

    /** The counters; throws {@link IllegalStateException} once closed. */
    public Stats stats() {
        if (closed.get()) throw new IllegalStateException("this KvEventPublisher is closed");
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment s = pagedkv_event_publisher_stats.allocate(scratch);
            pagedkv_event_publisher_stats.struct_size(s, (int) pagedkv_event_publisher_stats.sizeof());
            Status.check(pagedkv_event_publisher_get_stats(handle, s));
            return new Stats(pagedkv_event_publisher_stats.batches_accepted(s), pagedkv_event_publisher_stats.batches_sent(s),
                    pagedkv_event_publisher_stats.batches_dropped(s), pagedkv_event_publisher_stats.events_accepted(s),
                    pagedkv_event_publisher_stats.replay_requests(s), pagedkv_event_publisher_stats.batches_replayed(s));
        }
    }

    /** Sends what is still queued (for at most a second), then closes the sockets. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) Status.check(pagedkv_event_publisher_destroy(handle));
    }
}
