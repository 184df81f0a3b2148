package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Several threads on one cache: the counters add up and every page ends free or cached; a handle
 * closed while another thread is inside a call that uses it either waits for the call (sequences)
 * or is refused in pagedkv's words (cache, batch, device buffer), never freed under the call.
 */
class ConcurrencyTest {
    private static final int THREADS = 8;
    private static final int ROUNDS = 300;

    @Test
    @Timeout(120)
    void manyThreadsOneCache() throws Exception {
        Random seeds = new Random(42);
        int[][] systemPrompts = new int[4][];
        for (int i = 0; i < systemPrompts.length; i++) systemPrompts[i] = randomTokens(seeds, 64, 1000);
        AtomicLong promptTokens = new AtomicLong();
        AtomicLong reusedTokens = new AtomicLong();
        AtomicLong computedTokens = new AtomicLong();
        AtomicBoolean done = new AtomicBoolean();
        ConcurrentLinkedQueue<Throwable> readerErrors = new ConcurrentLinkedQueue<>();
        try (PagedKvCache cache = cache(8, 6000)) {
            Thread reader = new Thread(() -> {
                while (!done.get()) {
                    try {
                        CacheStats stats = cache.stats();
                        assertConsistent(stats);
                    } catch (Throwable t) {
                        readerErrors.add(t);
                        return;
                    }
                }
            });
            reader.start();
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                long seed = seeds.nextLong();
                futures.add(pool.submit(() -> {
                    start.await();
                    Random random = new Random(seed);
                    for (int round = 0; round < ROUNDS; round++) {
                        String salt = random.nextInt(4) == 0 ? "private" : "";
                        int[] prompt = concat(systemPrompts[random.nextInt(systemPrompts.length)],
                                randomTokens(random, 1 + random.nextInt(30), 1000));
                        try (Sequence seq = cache.createSequence(prompt, salt)) {
                            promptTokens.addAndGet(prompt.length);
                            reusedTokens.addAndGet(seq.numCached());
                            verify(seq, salt);
                            computedTokens.addAndGet(seq.numTokens() - seq.numComputed());
                            computeAll(seq, salt);
                            for (int step = random.nextInt(5); step > 0; step--) {
                                seq.append(random.nextInt(1000));
                                computedTokens.incrementAndGet();
                                computeAll(seq, salt);
                            }
                            if (random.nextBoolean()) {
                                try (Sequence child = seq.fork()) {
                                    child.append(randomTokens(random, 1 + random.nextInt(10), 1000));
                                    computedTokens.addAndGet(child.numTokens() - child.numComputed());
                                    computeAll(child, salt);
                                    verify(child, salt);
                                }
                            }
                            verify(seq, salt);
                        }
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> future : futures) future.get(100, TimeUnit.SECONDS);
            pool.shutdown();
            done.set(true);
            reader.join();
            assertTrue(readerErrors.isEmpty(), () -> "stats reader: " + readerErrors.peek());

            CacheStats stats = cache.stats();
            assertEquals(0, stats.liveSequences());
            assertEquals(0, stats.pagesInUse());
            assertEquals(stats.pagesTotal(), stats.pagesFree() + stats.pagesCached());
            assertEquals(promptTokens.get(), stats.promptTokens());
            assertEquals(reusedTokens.get(), stats.reusedTokens());
            assertEquals(computedTokens.get(), stats.computedTokens());
            assertTrue(stats.hitRate() > 0.5, "shared system prompts are reused: " + stats);
        }
    }

    /** Closing a cache that another thread is using fails instead of freeing memory under it. */
    @Test
    @Timeout(60)
    void closeWhileInUseIsRefusedOrClean() throws Exception {
        for (int attempt = 0; attempt < 20; attempt++) {
            PagedKvCache cache = cache(8, 256);
            AtomicBoolean stop = new AtomicBoolean();
            ConcurrentLinkedQueue<Throwable> unexpected = new ConcurrentLinkedQueue<>();
            Thread user = new Thread(() -> {
                int[] prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9};
                while (!stop.get()) {
                    try (Sequence seq = cache.createSequence(prompt)) {
                        seq.commitAll();
                        seq.blockTable();
                    } catch (IllegalStateException closed) {
                        return; // the cache went away: the only acceptable failure
                    } catch (Throwable t) {
                        unexpected.add(t);
                        return;
                    }
                }
            });
            user.start();
            Thread.sleep(2);
            boolean closed = false;
            while (!closed) {
                try {
                    cache.close();
                    closed = true;
                } catch (IllegalStateException inUse) {
                    Thread.onSpinWait(); // a call was in flight; retry
                }
            }
            stop.set(true);
            user.join();
            assertTrue(unexpected.isEmpty(), () -> "user thread: " + unexpected.peek());
            assertFalse(cache.isOpen());
        }
    }

    // ---- closing during a kernel ------------------------------------------------------------------

    private static final int KV_HEADS = 2, QO_HEADS = 8, HEAD_DIM = 128, PAGE_SIZE = 16, TOKENS = 2048;
    /** One worker thread: a prefill of TOKENS takes a few hundred milliseconds, long enough to act during it. */
    private static final AttentionParams SLOW = AttentionParams.of(QO_HEADS).withNumThreads(1);

    private static PagedKvCache slowCache(int pages) {
        return PagedKvCache.builder().layers(1).kvHeads(KV_HEADS).headDim(HEAD_DIM).pageSize(PAGE_SIZE).pages(pages)
                .kvDtype(KvDtype.F32).build();
    }

    private static MemorySegment randomFloats(Arena arena, Random random, long count) {
        MemorySegment segment = arena.allocate(count * 4, 64);
        for (long i = 0; i < count; i++) segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextGaussian());
        return segment;
    }

    private static void writeRandomKv(Kernels kernels, Batch batch, Arena arena, Random random) {
        long n = batch.numQoTokens() * KV_HEADS * HEAD_DIM;
        kernels.writeKv(batch, 0, randomFloats(arena, random, n), randomFloats(arena, random, n), KvDtype.F32);
    }

    /** A thread running one prefill; records whether it has returned and how it failed. */
    private static final class KernelThread extends Thread {
        final CountDownLatch started = new CountDownLatch(1);
        final AtomicBoolean returned = new AtomicBoolean();
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        private final Runnable kernel;

        KernelThread(Runnable kernel) {
            super("pagedkv-test-kernel");
            this.kernel = kernel;
        }

        @Override
        public void run() {
            started.countDown();
            try {
                kernel.run();
            } catch (Throwable t) {
                failure.set(t);
            } finally {
                returned.set(true);
            }
        }

        /** Starts the kernel and sleeps a quarter of {@code kernelNanos}, so that it is running. */
        void startAndWaitInto(long kernelNanos) throws InterruptedException {
            start();
            started.await();
            Thread.sleep(Math.max(5, kernelNanos / 4_000_000));
        }
    }

    /**
     * (c) Releasing a sequence while another thread runs a kernel with a batch holding it waits for
     * the kernel; the released pages then go to a new sequence that overwrites them, which the
     * kernel's output would show had it still been reading. Afterwards the batch is stale.
     */
    @Test
    @Timeout(120)
    void sequenceCloseDuringAKernelWaitsForItThenTheBatchIsStale() throws Exception {
        int overlapped = 0;
        for (int attempt = 0; attempt < 3; attempt++) {
            Random random = new Random(1000 + attempt);
            // Exactly the pages of one prompt: the next prompt must take the very pages the kernel reads.
            try (PagedKvCache cache = slowCache(TOKENS / PAGE_SIZE); Arena arena = Arena.ofShared()) {
                Kernels kernels = cache.kernels();
                Sequence seq = cache.createSequence(randomTokens(random, TOKENS, 30_000));
                Batch batch = cache.batch(seq);
                writeRandomKv(kernels, batch, arena, random);
                MemorySegment q = randomFloats(arena, random, (long) TOKENS * QO_HEADS * HEAD_DIM);
                MemorySegment expected = arena.allocate(q.byteSize(), 64);
                long t0 = System.nanoTime();
                kernels.prefillAttention(batch, 0, SLOW, q, expected, null);
                long kernelNanos = System.nanoTime() - t0;
                MemorySegment out = arena.allocate(q.byteSize(), 64);

                KernelThread worker = new KernelThread(() -> kernels.prefillAttention(batch, 0, SLOW, q, out, null));
                worker.startAndWaitInto(kernelNanos);
                boolean runningAtClose = !worker.returned.get();
                seq.close();
                try (Sequence next = cache.createSequence(randomTokens(random, TOKENS, 30_000));
                     Batch nextBatch = cache.batch(next)) {
                    assertEquals(0, next.numCached());
                    writeRandomKv(kernels, nextBatch, arena, random); // overwrites every page the kernel read
                }
                worker.join();

                if (worker.failure.get() == null) {
                    assertEquals(-1, expected.mismatch(out), "the kernel's output changed: the release did not wait for it");
                    if (runningAtClose) overlapped++;
                } else {
                    // The release came first: the kernel was refused and changed nothing.
                    assertInstanceOf(StaleBatchException.class, worker.failure.get());
                }
                assertThrows(StaleBatchException.class, () -> kernels.prefillAttention(batch, 0, SLOW, q, out, null));
                assertThrows(StaleBatchException.class, () -> writeRandomKv(kernels, batch, arena, random));
                batch.close();
                CacheStats stats = cache.stats();
                assertConsistent(stats);
                assertEquals(0, stats.liveSequences());
            }
        }
        assertTrue(overlapped > 0, "no release overlapped a running kernel in 3 attempts");
    }

    /**
     * Closing the cache, the batch or a device buffer while another thread runs a kernel with them
     * is refused with pagedkv's message (not the FFM runtime's), and leaves everything usable.
     */
    @Test
    @Timeout(120)
    void closingWhatAKernelUsesIsRefusedInPagedKvWords() throws Exception {
        boolean observed = false;
        for (int attempt = 0; attempt < 5 && !observed; attempt++) {
            Random random = new Random(2000 + attempt);
            PagedKvCache cache = slowCache(TOKENS / PAGE_SIZE + 4);
            try (Arena arena = Arena.ofShared()) {
                Kernels kernels = cache.kernels();
                Sequence seq = cache.createSequence(randomTokens(random, TOKENS, 30_000));
                Batch batch = cache.batch(seq);
                writeRandomKv(kernels, batch, arena, random);
                long qBytes = (long) TOKENS * QO_HEADS * HEAD_DIM * 4;
                DeviceMemory q = cache.allocateDevice(qBytes);
                DeviceMemory out = cache.allocateDevice(qBytes);
                q.copyFromHost(randomFloats(arena, random, qBytes / 4), qBytes);
                long t0 = System.nanoTime();
                kernels.prefillAttention(batch, 0, SLOW, q.segment(), out.segment(), null);
                long kernelNanos = System.nanoTime() - t0;

                KernelThread worker = new KernelThread(
                        () -> kernels.prefillAttention(batch, 0, SLOW, q.segment(), out.segment(), null));
                worker.startAndWaitInto(kernelNanos);
                Throwable cacheClose = failureOf(cache::close);
                Throwable batchClose = failureOf(batch::close);
                Throwable bufferClose = failureOf(out::close);
                boolean stillRunning = !worker.returned.get();
                worker.join();
                if (stillRunning) {
                    observed = true;
                    ErrorsTest.assertPagedKvWords(assertInstanceOf(IllegalStateException.class, cacheClose),
                            "cannot close this PagedKvCache while another thread is inside a call on it");
                    ErrorsTest.assertPagedKvWords(assertInstanceOf(IllegalStateException.class, batchClose),
                            "cannot close this batch while another thread is using it");
                    ErrorsTest.assertPagedKvWords(assertInstanceOf(IllegalStateException.class, bufferClose),
                            "cannot free this device buffer");
                    assertNull(worker.failure.get(), () -> "the kernel failed: " + worker.failure.get());
                    assertTrue(cache.isOpen() && batch.isOpen() && out.isOpen(), "the refused closes closed nothing");
                    kernels.prefillAttention(batch, 0, SLOW, q.segment(), out.segment(), null); // all still usable
                }
                for (Throwable t : new Throwable[] {cacheClose, batchClose, bufferClose})
                    if (t != null) ErrorsTest.assertPagedKvWords(assertInstanceOf(IllegalStateException.class, t), "cannot");
                out.close();
                q.close();
                batch.close();
                seq.close();
            } finally {
                cache.close();
            }
            assertFalse(cache.isOpen());
        }
        assertTrue(observed, "no close attempt overlapped a running kernel in 5 attempts");
    }

    private static Throwable failureOf(Runnable call) {
        try {
            call.run();
            return null;
        } catch (Throwable t) {
            return t;
        }
    }
}
