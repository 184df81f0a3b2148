package io.pagedkv;

import static io.pagedkv.Markers.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** KV events, snapshots and prefix-match queries through the Java API. */
class KvEventsTest {
    private static final int VOCAB = 50;

    /** The blocks a subscriber knows, rebuilt from events alone. */
    private static final class Mirror implements KvEventListener {
        final Map<Long, Long> parentOf = new HashMap<>(); // hash -> parent hash (or -1)
        final List<KvEventBatch> batches = new ArrayList<>();

        @Override
        public synchronized void onEvents(KvEventBatch batch) {
            batches.add(batch);
            for (KvEvent e : batch.events()) {
                switch (e) {
                    case KvEvent.BlockStored s -> {
                        assertEquals(s.blockHashes().length * s.blockSize(), s.tokenIds().length);
                        long parent = s.parentBlockHash().orElse(-1);
                        for (long h : s.blockHashes()) {
                            assertTrue(parent == -1 || parentOf.containsKey(parent), "unknown parent");
                            assertNull(parentOf.put(h, parent), "stored twice");
                            parent = h;
                        }
                    }
                    case KvEvent.BlockRemoved r -> {
                        for (long h : r.blockHashes()) assertNotNull(parentOf.remove(h), "unknown block removed");
                    }
                    case KvEvent.AllBlocksCleared c -> parentOf.clear();
                }
            }
        }

        synchronized Map<Long, Long> blocks() {
            return new HashMap<>(parentOf);
        }
    }

    private static Map<Long, Long> snapshotBlocks(PagedKvCache cache) {
        Map<Long, Long> out = new HashMap<>();
        for (CachedBlock b : cache.snapshot().blocks()) {
            assertEquals(Medium.CPU, b.medium());
            out.put(b.blockHash(), b.parentBlockHash().orElse(-1));
        }
        return out;
    }

    @Test
    void eventsOfARandomWorkloadRebuildTheSnapshot() {
        Random random = new Random(5);
        int[][] documents = {randomTokens(random, 64, VOCAB), randomTokens(random, 64, VOCAB)};
        try (PagedKvCache cache = cache(4, 40)) {
            Mirror mirror = new Mirror();
            cache.setEventListener(mirror);
            List<Sequence> live = new ArrayList<>();
            for (int step = 0; step < 600; step++) {
                if (live.size() < 4 || random.nextInt(3) == 0) {
                    int[] doc = documents[random.nextInt(2)];
                    int[] prompt = concat(java.util.Arrays.copyOf(doc, 1 + random.nextInt(doc.length)),
                            randomTokens(random, random.nextInt(8), VOCAB));
                    String salt = "t" + random.nextInt(2);
                    long predicted = cache.matchLength(prompt, salt);
                    try {
                        Sequence s = cache.createSequence(prompt, salt);
                        assertTrue(s.numCached() <= predicted); // less only when short of room for the partial copy
                        live.add(s);
                    } catch (OutOfPagesException e) {
                        continue;
                    }
                } else {
                    Sequence s = live.remove(random.nextInt(live.size()));
                    s.commitAll();
                    s.close();
                }
            }
            for (Sequence s : live) s.close();
            assertEquals(snapshotBlocks(cache), mirror.blocks());
            assertTrue(cache.stats().evictions() > 0);
            long seq = 0;
            for (KvEventBatch b : mirror.batches) assertEquals(seq++, b.seq());
            assertEquals(seq, cache.snapshot().nextBatchSeq());
            cache.setEventListener(null);
            int before = mirror.batches.size();
            cache.clearUnused();
            assertEquals(before, mirror.batches.size()); // removed: no more events
        }
    }

    @Test
    void matchLengthIsWhatTheNextCreateReusesAndChangesNothing() {
        Random random = new Random(8);
        int[] prompt = randomTokens(random, 37, VOCAB);
        try (PagedKvCache cache = cache(4, 64)) {
            try (Sequence s = cache.createSequence(prompt, "a")) {
                s.commitAll();
            }
            CacheStats before = cache.stats();
            PrefixMatch m = cache.matchPrefix(prompt, "a".getBytes());
            assertEquals(36, m.cachedTokens());
            assertEquals(9, m.sharedPages());
            assertEquals(0, m.partialTokens());
            assertEquals(Map.of(Medium.CPU, 36L), m.tokensByMedium());
            assertEquals(0, cache.matchLength(prompt, "b"));
            assertEquals(before, cache.stats());
            try (Sequence again = cache.createSequence(prompt, "a")) {
                assertEquals(m.cachedTokens(), again.numCached());
            }
            assertThrows(PagedKvException.InvalidArgument.class, () -> cache.matchLength(new int[0]));
        }
    }

    @Test
    void aListenerThatThrowsNeverReachesNativeCode() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        List<Throwable> reported = new ArrayList<>();
        Thread.UncaughtExceptionHandler previous = Thread.currentThread().getUncaughtExceptionHandler();
        Thread.currentThread().setUncaughtExceptionHandler((t, e) -> reported.add(e));
        try (PagedKvCache cache = cache(4, 16)) {
            cache.setEventListener(batch -> {
                calls.incrementAndGet();
                throw new IllegalStateException("listener failure");
            });
            try (Sequence s = cache.createSequence(randomTokens(new Random(1), 9, VOCAB))) {
                s.commitAll();
            }
            assertEquals(1, calls.get());
            assertEquals(1, reported.size());
            assertEquals("listener failure", reported.get(0).getMessage());
            assertEquals(2, cache.snapshot().blocks().size()); // the cache went on
        } finally {
            Thread.currentThread().setUncaughtExceptionHandler(previous);
        }
    }

    @Test
    void publisherStartsAndCountsTheBatches() {
        try (PagedKvCache cache = cache(4, 16)) {
            KvEventPublisher publisher;
            try {
                publisher = KvEventPublisher.builder("ipc:///tmp/pagedkv-java-test-" + ProcessHandle.current().pid())
                        .topic("kv@pagedkv").bufferSteps(100).start(cache);
            } catch (PagedKvException.DeviceFailure unsupported) {
                Assumptions.abort("no ZeroMQ in this build: " + unsupported.getMessage());
                return;
            }
            try (publisher) {
                try (Sequence s = cache.createSequence(randomTokens(new Random(2), 9, VOCAB))) {
                    s.commitAll();
                }
                assertEquals(1, publisher.stats().batchesAccepted());
                assertEquals(1, publisher.stats().eventsAccepted());
            }
            assertThrows(IllegalStateException.class, publisher::stats);
            publisher.close(); // idempotent
        }
    }
}
