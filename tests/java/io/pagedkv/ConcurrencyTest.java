package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Several threads on one cache: the counters add up and every page ends free or cached. */
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
}
