package io.pagedkv;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A cache on CUDA device 0 against the same work on a CPU cache: reuse counts, then prefill,
 * decode and cascade outputs. Host segments are passed to the CUDA cache (the API stages them
 * through device buffers), and one path moves them explicitly with the device helpers. Skipped,
 * with the reason, where no CUDA device exists.
 */
class CudaCacheTest {
    private static final int LAYERS = 2, KV_HEADS = 2, QO_HEADS = 8, HEAD_DIM = 128, PAGE_SIZE = 16;

    /** Skips the calling test, saying why on the console and in the report, without a device. */
    private static void requireDevice() {
        if (PagedKvCache.cudaDeviceCount() > 0) return;
        String reason = "CudaCacheTest skipped: no CUDA device (" + noDeviceReason() + ")";
        System.out.println(reason);
        assumeTrue(false, reason);
    }

    private static String noDeviceReason() {
        try {
            PagedKvCache.describeDevice(Device.cuda(0));
            return "device 0 describes itself but is not counted";
        } catch (PagedKvException e) {
            return e.getMessage();
        }
    }

    private static PagedKvCache cache(Device device, KvDtype dtype) {
        return PagedKvCache.builder().layers(LAYERS).kvHeads(KV_HEADS).headDim(HEAD_DIM).pageSize(PAGE_SIZE)
                .pages(256).kvDtype(dtype).device(device).build();
    }

    private static MemorySegment randomFloats(Arena arena, Random random, long count) {
        MemorySegment segment = arena.allocate(count * 4, 64);
        for (long i = 0; i < count; i++) segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextGaussian());
        return segment;
    }

    private static void assertClose(MemorySegment expected, MemorySegment actual, double tolerance, String what) {
        long n = expected.byteSize() / 4;
        for (long i = 0; i < n; i++) {
            float e = expected.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            float a = actual.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            assertTrue(Math.abs(e - a) <= tolerance * (1 + Math.abs(e)), what + "[" + i + "]: cpu " + e + ", cuda " + a);
        }
    }

    @ParameterizedTest
    @EnumSource(value = KvDtype.class, names = {"F16", "BF16"})
    void cudaCacheMatchesCpuCache(KvDtype dtype) {
        requireDevice();
        double tolerance = dtype == KvDtype.F16 ? 4e-3 : 1.6e-2;
        Random random = new Random(dtype.ordinal());
        try (PagedKvCache cpu = cache(Device.cpu(), dtype); PagedKvCache gpu = cache(Device.cuda(0), dtype);
             Arena arena = Arena.ofConfined()) {
            int[] shared = new int[5 * PAGE_SIZE + 3];
            for (int i = 0; i < shared.length; i++) shared[i] = random.nextInt(50_000);
            List<int[]> prompts = List.of(append(shared, 11, 12, 13), append(shared, 21, 22), append(shared, 31));
            for (int round = 0; round < 2; round++) {
                // Round 0 computes the prompts; round 1 re-creates them and reuses what round 0 cached.
                List<Sequence> onCpu = prompts.stream().map(cpu::createSequence).toList();
                List<Sequence> onGpu = prompts.stream().map(gpu::createSequence).toList();
                for (int i = 0; i < prompts.size(); i++)
                    assertEquals(onCpu.get(i).numCached(), onGpu.get(i).numCached(), "reuse is device-independent");
                step(cpu, gpu, onCpu, onGpu, random, arena, tolerance, false);
                for (int i = 0; i < prompts.size(); i++) {
                    onCpu.get(i).append(7 + i);
                    onGpu.get(i).append(7 + i);
                }
                step(cpu, gpu, onCpu, onGpu, random, arena, tolerance, true);
                onCpu.forEach(Sequence::close);
                onGpu.forEach(Sequence::close);
            }
            assertEquals(cpu.stats().reusedTokens(), gpu.stats().reusedTokens());
        }
    }

    private static void step(PagedKvCache cpu, PagedKvCache gpu, List<Sequence> onCpu, List<Sequence> onGpu, Random random,
                             Arena arena, double tolerance, boolean decode) {
        try (Batch cpuBatch = cpu.batch(onCpu); Batch gpuBatch = gpu.batch(onGpu)) {
            long tokens = cpuBatch.numQoTokens();
            assertEquals(tokens, gpuBatch.numQoTokens());
            assertEquals(cpuBatch.sharedPrefixPages(), gpuBatch.sharedPrefixPages());
            AttentionParams params = AttentionParams.of(QO_HEADS);
            for (int layer = 0; layer < LAYERS; layer++) {
                MemorySegment k = randomFloats(arena, random, tokens * KV_HEADS * HEAD_DIM);
                MemorySegment v = randomFloats(arena, random, tokens * KV_HEADS * HEAD_DIM);
                MemorySegment q = randomFloats(arena, random, tokens * QO_HEADS * HEAD_DIM);
                cpu.kernels().writeKv(cpuBatch, layer, k, v, KvDtype.F32);
                // Explicit device buffers for K, staged host segments for V.
                try (DeviceMemory kDevice = gpu.allocateDevice(k.byteSize())) {
                    kDevice.copyFromHost(k, k.byteSize());
                    gpu.kernels().writeKv(gpuBatch, layer, kDevice.segment(), v, KvDtype.F32);
                }
                MemorySegment expected = arena.allocate(q.byteSize(), 64);
                MemorySegment actual = arena.allocate(q.byteSize(), 64);
                cpu.kernels().prefillAttention(cpuBatch, layer, params, q, expected, null);
                gpu.kernels().prefillAttention(gpuBatch, layer, params, q, actual, null);
                gpu.kernels().synchronize();
                assertClose(expected, actual, tolerance, "prefill layer " + layer);
                actual.fill((byte) 0xff);
                gpu.kernels().cascadeAttention(gpuBatch, layer, params, q, actual, null);
                gpu.kernels().synchronize();
                assertClose(expected, actual, tolerance, "cascade layer " + layer);
                if (decode) {
                    actual.fill((byte) 0xff);
                    gpu.kernels().decodeAttention(gpuBatch, layer, params, q, actual, null);
                    gpu.kernels().synchronize();
                    assertClose(expected, actual, tolerance, "decode layer " + layer);
                }
            }
            cpuBatch.commit();
            gpuBatch.commit();
        }
    }

    private static int[] append(int[] prefix, int... tail) {
        int[] joined = java.util.Arrays.copyOf(prefix, prefix.length + tail.length);
        System.arraycopy(tail, 0, joined, prefix.length, tail.length);
        return joined;
    }
}
