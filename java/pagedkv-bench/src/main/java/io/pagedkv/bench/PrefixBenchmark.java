package io.pagedkv.bench;

import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Sequence operations through the Java API at page size 16, so the FFM cost per operation shows
 * next to the native benchmark of the same operations (bench/native). {@code match32kPerPage}
 * reports nanoseconds per matched page (design target: about 10 ns per page on one core).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Benchmark)
public class PrefixBenchmark {
    static final int PAGE_SIZE = 16;
    static final int LONG_PROMPT = 32 * 1024;
    static final int SHARED_PREFIX = 4 * 1024;

    PagedKvCache cache;
    int[] longPrompt;
    int[] sharedPrompt;
    Sequence longSequence;

    @Setup(Level.Trial)
    public void setup() {
        cache = PagedKvCache.builder().layers(1).kvHeads(1).headDim(8).pageSize(PAGE_SIZE).pages(16 * 1024)
                .kvDtype(KvDtype.F16).build();
        Random random = new Random(1);
        longPrompt = tokens(random, LONG_PROMPT);
        try (Sequence seq = cache.createSequence(longPrompt)) {
            seq.commitAll();
        }
        int[] prefix = tokens(random, SHARED_PREFIX);
        try (Sequence seq = cache.createSequence(prefix)) {
            seq.commitAll();
        }
        sharedPrompt = new int[SHARED_PREFIX + 64];
        System.arraycopy(prefix, 0, sharedPrompt, 0, SHARED_PREFIX);
        System.arraycopy(tokens(random, 64), 0, sharedPrompt, SHARED_PREFIX, 64);
        longSequence = cache.createSequence(longPrompt);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cache.close();
    }

    /** createSequence + close of a fully cached 32k-token prompt (2048 pages); time per page. */
    @Benchmark
    @OperationsPerInvocation(LONG_PROMPT / PAGE_SIZE)
    public long match32kPerPage() {
        try (Sequence seq = cache.createSequence(longPrompt)) {
            return seq.numCached();
        }
    }

    /**
     * The Java side of {@link #match32kPerPage} alone: a confined arena and the 128 KiB copy of the
     * prompt into native memory, per page. The rest of that benchmark is the native match.
     */
    @Benchmark
    @OperationsPerInvocation(LONG_PROMPT / PAGE_SIZE)
    public long marshal32kPerPage() {
        try (Arena scratch = Arena.ofConfined()) {
            return scratch.allocateFrom(ValueLayout.JAVA_INT, longPrompt).address();
        }
    }

    /** createSequence + close of a 4k cached prefix plus 64 new tokens (256 pages shared, 4 reserved). */
    @Benchmark
    public long createReleaseShared4k() {
        try (Sequence seq = cache.createSequence(sharedPrompt)) {
            return seq.numCached();
        }
    }

    /** A commit that changes nothing: one downcall and the cache lock. */
    @Benchmark
    public void commitNothing() {
        longSequence.commit(LONG_PROMPT - 1);
    }

    /** The block table of the 32k sequence: 2048 ints copied out through a confined arena. */
    @Benchmark
    public int[] blockTable2048() {
        return longSequence.blockTable();
    }

    /** The counters. */
    @Benchmark
    public Object stats() {
        return cache.stats();
    }

    /** Commit of one newly written full page (the page joins the index). */
    @State(Scope.Thread)
    public static class CommitState {
        Sequence seq;
        long base;
        final Random random = new Random(2);

        @Setup(Level.Trial)
        public void create(PrefixBenchmark shared) {
            seq = shared.cache.createSequence(tokens(random, PAGE_SIZE * 4));
            seq.commitAll();
            base = seq.numTokens();
        }

        @Setup(Level.Invocation)
        public void appendPage() {
            seq.append(tokens(random, PAGE_SIZE));
        }

        @TearDown(Level.Invocation)
        public void rollBack() {
            seq.truncate(base);
        }
    }

    @Benchmark
    public void commitOneFullPage(CommitState state) {
        state.seq.commit(state.base + PAGE_SIZE);
    }

    static int[] tokens(Random random, int n) {
        int[] tokens = new int[n];
        for (int i = 0; i < n; i++) tokens[i] = random.nextInt(32_000);
        return tokens;
    }
}
