package io.pagedkv.bench;

import io.pagedkv.AttentionParams;
import io.pagedkv.Batch;
import io.pagedkv.DeviceMemory;
import io.pagedkv.Kernels;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
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
 * Decode attention through the Java API on a CPU cache: 32 query heads over 8 KV heads, head dim
 * 128, bf16 pages, per context length and batch size. {@code copyKvBytes} copies the same number of bytes
 * as decode reads (K and V of every position) with one memcpy, in the same run: decode time over
 * copy time is how far the kernel is from streaming its input.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Benchmark)
public class AttentionBenchmark {
    static final int QO_HEADS = 32;
    static final int KV_HEADS = 8;
    static final int HEAD_DIM = 128;
    static final int PAGE_SIZE = 16;

    @Param({"512", "2048", "8192"})
    int context;

    @Param({"1", "8"})
    int batchSize;

    PagedKvCache cache;
    Kernels kernels;
    Arena arena;
    Batch batch;
    AttentionParams params = AttentionParams.of(QO_HEADS);
    DeviceMemory qBuffer;
    DeviceMemory outBuffer;
    MemorySegment q;
    MemorySegment out;
    MemorySegment copySource;
    MemorySegment copyTarget;
    long kvBytes;

    @Setup(Level.Trial)
    public void setup() {
        int pagesPerSequence = context / PAGE_SIZE + 2;
        cache = PagedKvCache.builder().layers(1).kvHeads(KV_HEADS).headDim(HEAD_DIM).pageSize(PAGE_SIZE)
                .pages(batchSize * pagesPerSequence + 8).kvDtype(KvDtype.BF16).build();
        kernels = cache.kernels();
        arena = Arena.ofShared();
        Random random = new Random(context * 31L + batchSize);
        MemorySegment kv = arena.allocate((long) context * KV_HEADS * HEAD_DIM * 4, 64);
        for (long i = 0; i < kv.byteSize() / 4; i++) kv.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextGaussian());
        List<Sequence> sequences = new ArrayList<>();
        for (int s = 0; s < batchSize; s++) {
            int[] prompt = new int[context];
            for (int i = 0; i < context; i++) prompt[i] = random.nextInt(32_000);
            Sequence seq = cache.createSequence(prompt);
            try (Batch prefill = cache.batch(seq)) {
                kernels.writeKv(prefill, 0, kv, kv, KvDtype.F32);
                prefill.commit();
            }
            seq.append(random.nextInt(32_000));
            sequences.add(seq);
        }
        batch = cache.batch(sequences);
        kernels.writeKv(batch, 0, kv, kv, KvDtype.F32);
        long qBytes = (long) batchSize * QO_HEADS * HEAD_DIM * 4;
        qBuffer = cache.allocateDevice(qBytes);
        outBuffer = cache.allocateDevice(qBytes);
        q = qBuffer.segment();
        out = outBuffer.segment();
        float[] hostQ = new float[(int) (qBytes / 4)];
        for (int i = 0; i < hostQ.length; i++) hostQ[i] = (float) random.nextGaussian();
        qBuffer.copyFromHost(MemorySegment.ofArray(hostQ), qBytes);
        kvBytes = (long) batchSize * (context + 1) * KV_HEADS * HEAD_DIM * 2 * KvDtype.BF16.bytes();
        copySource = arena.allocate(kvBytes, 64);
        copyTarget = arena.allocate(kvBytes, 64);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cache.close();
        arena.close();
    }

    @Benchmark
    public void decode() {
        kernels.decodeAttention(batch, 0, params, q, out, null);
        kernels.synchronize();
    }

    @Benchmark
    public void copyKvBytes() {
        MemorySegment.copy(copySource, 0, copyTarget, 0, kvBytes);
    }
}
