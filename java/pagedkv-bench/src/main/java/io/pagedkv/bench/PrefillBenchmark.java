package io.pagedkv.bench;

import io.pagedkv.AttentionParams;
import io.pagedkv.Batch;
import io.pagedkv.Kernels;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Prefill / extend attention through the Java API on a CPU cache (32 query / 8 KV heads, head dim
 * 128, bf16 pages): {@code newTokens} query tokens over {@code cachedTokens} of reused prefix plus
 * themselves, causal. Each op is {@code flopsPerOp()} floating-point operations (QK and PV), so
 * GFLOP/s = flops / time; compare with bench_attention's FMA peak measured natively.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Benchmark)
public class PrefillBenchmark {
    static final int QO_HEADS = 32;
    static final int KV_HEADS = 8;
    static final int HEAD_DIM = 128;
    static final int PAGE_SIZE = 16;

    @Param({"0", "2048"})
    int cachedTokens;

    @Param({"256", "1024"})
    int newTokens;

    PagedKvCache cache;
    Kernels kernels;
    Arena arena;
    Sequence sequence;
    Batch batch;
    MemorySegment q;
    MemorySegment out;
    final AttentionParams params = AttentionParams.of(QO_HEADS);

    @Setup(Level.Trial)
    public void setup() {
        int total = cachedTokens + newTokens;
        cache = PagedKvCache.builder().layers(1).kvHeads(KV_HEADS).headDim(HEAD_DIM).pageSize(PAGE_SIZE)
                .pages(2 * (total / PAGE_SIZE + 2)).kvDtype(KvDtype.BF16).build();
        kernels = cache.kernels();
        arena = Arena.ofShared();
        Random random = new Random(total);
        int[] prompt = new int[total];
        for (int i = 0; i < total; i++) prompt[i] = random.nextInt(32_000);
        if (cachedTokens > 0) {
            // Compute the prefix once and release it: its pages stay cached for the measured prompt.
            try (Sequence prefix = cache.createSequence(java.util.Arrays.copyOf(prompt, cachedTokens));
                 Batch prefill = cache.batch(prefix)) {
                MemorySegment kv = randomFloats(random, prefill.numQoTokens() * KV_HEADS * HEAD_DIM);
                kernels.writeKv(prefill, 0, kv, kv, KvDtype.F32);
                prefill.commit();
            }
        }
        sequence = cache.createSequence(prompt);
        if (sequence.numCached() != cachedTokens)
            throw new IllegalStateException("expected " + cachedTokens + " cached, got " + sequence.numCached());
        batch = cache.batch(sequence);
        MemorySegment kv = randomFloats(random, batch.numQoTokens() * KV_HEADS * HEAD_DIM);
        kernels.writeKv(batch, 0, kv, kv, KvDtype.F32);
        q = randomFloats(random, batch.numQoTokens() * QO_HEADS * HEAD_DIM);
        out = arena.allocate(q.byteSize(), 64);
    }

    private MemorySegment randomFloats(Random random, long count) {
        MemorySegment segment = arena.allocate(count * 4, 64);
        for (long i = 0; i < count; i++) segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextGaussian());
        return segment;
    }

    /** QK and PV multiply-adds over the causal triangle on top of the cached prefix, times 2 flops. */
    public long flopsPerOp() {
        long pairs = (long) newTokens * cachedTokens + (long) newTokens * (newTokens + 1) / 2;
        return pairs * QO_HEADS * HEAD_DIM * 2 * 2;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cache.close();
        arena.close();
    }

    @Benchmark
    public void prefill() {
        kernels.prefillAttention(batch, 0, params, q, out, null);
    }
}
