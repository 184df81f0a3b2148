package io.pagedkv.model.tensor;

import java.util.concurrent.ForkJoinPool;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * The worker threads of the model's matrix products: a fork-join pool of a fixed size, so that
 * "same threads as llama.cpp" means something. Thread-safe; close it to stop the workers.
 */
public final class Parallel implements AutoCloseable {
    private final int threads;
    private final ForkJoinPool pool;

    public Parallel(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads);
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code task(i)} for i in [0, tasks), spread over the workers; returns when all are done. */
    public void forEach(int tasks, IntConsumer task) {
        if (pool == null || tasks == 1) {
            for (int i = 0; i < tasks; i++) task.accept(i);
            return;
        }
        pool.submit(() -> IntStream.range(0, tasks).parallel().forEach(task)).join();
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdown();
    }
}
