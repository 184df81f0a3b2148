package io.pagedkv;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The kernels through the Java API, against a plain Java attention computed from the K/V read
 * back from the page slabs (so f16/bf16 caches are compared on the values as stored).
 */
class KernelTest {
    private static final int LAYERS = 2;
    private static final int KV_HEADS = 2;
    private static final int QO_HEADS = 4;
    private static final int LAYER = 1;

    static Stream<Arguments> configurations() {
        return Stream.of(Arguments.of(KvDtype.F32, 64, 16), Arguments.of(KvDtype.F32, 128, 5),
                Arguments.of(KvDtype.F16, 128, 16), Arguments.of(KvDtype.F16, 64, 7),
                Arguments.of(KvDtype.BF16, 64, 16), Arguments.of(KvDtype.BF16, 128, 16));
    }

    private static PagedKvCache cache(KvDtype dtype, int headDim, int pageSize) {
        return PagedKvCache.builder().layers(LAYERS).kvHeads(KV_HEADS).headDim(headDim).pageSize(pageSize).pages(512)
                .kvDtype(dtype).build();
    }

    private static double tolerance(KvDtype dtype) {
        return dtype == KvDtype.F32 ? 1e-4 : 1e-3;
    }

    @ParameterizedTest(name = "{0}, head dim {1}, page size {2}")
    @MethodSource("configurations")
    void prefillDecodeAndCascadeMatchTheReference(KvDtype dtype, int headDim, int pageSize) {
        Random random = new Random(headDim * 31L + pageSize + dtype.ordinal());
        double tol = tolerance(dtype);
        try (PagedKvCache cache = cache(dtype, headDim, pageSize); Arena arena = Arena.ofConfined()) {
            int[] shared = Markers.randomTokens(random, 3 * pageSize + 2, 30_000);
            // A computes the shared prefix and its own tail.
            Sequence a = cache.createSequence(Markers.concat(shared, new int[] {30_001, 1, 2, 3, 4}));
            try (Batch batch = cache.batch(a)) {
                writeRandomKv(cache, batch, random, arena, 0);
                float[][] written = writeRandomKv(cache, batch, random, arena, LAYER);
                assertStored(cache, batch, written, LAYER);
                checkAttention(cache, batch, random, AttentionParams.of(QO_HEADS), false, tol);
                batch.commit();
            }
            assertEquals(a.numTokens(), a.numComputed());
            List<byte[]> aPages = snapshot(cache, a);

            // B and C reuse the shared prefix (3 full pages shared, the partial run copied) and extend it.
            Sequence b = cache.createSequence(Markers.concat(shared, Markers.randomTokens(random, 7, 30_000)));
            Sequence c = cache.createSequence(Markers.concat(shared, Markers.randomTokens(random, 2 * pageSize + 3, 30_000)));
            assertEquals(shared.length, b.numCached());
            assertEquals(shared.length, c.numCached());
            try (Batch batch = cache.batch(b, c)) {
                assertEquals(3, batch.sharedPrefixPages());
                assertEquals(7 + 2 * pageSize + 3, batch.numQoTokens());
                writeRandomKv(cache, batch, random, arena, 0);
                writeRandomKv(cache, batch, random, arena, LAYER);
                assertEquals(aPages, snapshot(cache, a), "writing B and C did not touch A's pages");
                float[] prefill = checkAttention(cache, batch, random, AttentionParams.of(QO_HEADS), false, tol);
                assertNotNull(prefill);
                batch.commit();
            }
            // Decode: one new token each, over a shared prefix; also forced KV splits and an explicit scale.
            Sequence d = a.fork();
            for (Sequence s : List.of(a, b, c, d)) s.append(random.nextInt(30_000));
            try (Batch batch = cache.batch(a, b, c, d)) {
                assertEquals(4, batch.numQoTokens());
                assertEquals(3, batch.sharedPrefixPages());
                writeRandomKv(cache, batch, random, arena, LAYER);
                checkAttention(cache, batch, random, AttentionParams.of(QO_HEADS), true, tol);
                checkAttention(cache, batch, random, AttentionParams.of(QO_HEADS).withKvSplitSize(8), true, tol);
                checkAttention(cache, batch, random, AttentionParams.of(QO_HEADS).withKvSplitSize(-1).withNumThreads(1)
                        .withSmScale(0.3f), true, tol);
            }
            for (Sequence s : List.of(a, b, c, d)) s.close();
        }
    }

    /** Long contexts exercise the KV split of decode; MHA and MQA head ratios. */
    @Test
    void longDecodeAndHeadRatios() {
        Random random = new Random(5);
        for (int qoHeads : new int[] {KV_HEADS, 8}) {
            try (PagedKvCache cache = cache(KvDtype.F32, 64, 16); Arena arena = Arena.ofConfined()) {
                Sequence s1 = cache.createSequence(Markers.randomTokens(random, 700, 1000));
                Sequence s2 = cache.createSequence(Markers.randomTokens(random, 1500, 1000));
                try (Batch batch = cache.batch(s1, s2)) {
                    writeRandomKv(cache, batch, random, arena, LAYER);
                    batch.commit();
                }
                s1.append(1);
                s2.append(2);
                try (Batch batch = cache.batch(s1, s2)) {
                    writeRandomKv(cache, batch, random, arena, LAYER);
                    checkAttention(cache, batch, random, AttentionParams.of(qoHeads), true, 1e-4);
                    checkAttention(cache, batch, random, AttentionParams.of(qoHeads).withKvSplitSize(64), true, 1e-4);
                }
            }
        }
    }

    /** K/V given in the cache's own dtype are stored bit for bit. */
    @Test
    void writeKvInCacheDtypeIsExact() {
        for (KvDtype dtype : List.of(KvDtype.F16, KvDtype.BF16)) {
            try (PagedKvCache cache = cache(dtype, 64, 16);
                 Sequence seq = cache.createSequence(new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17});
                 Batch batch = cache.batch(seq)) {
                int n = (int) batch.numQoTokens() * KV_HEADS * 64;
                short[] k = new short[n];
                short[] v = new short[n];
                Random random = new Random(3);
                for (int i = 0; i < n; i++) {
                    k[i] = toBits(dtype, (float) random.nextGaussian());
                    v[i] = toBits(dtype, (float) random.nextGaussian());
                }
                cache.kernels().writeKv(batch, 0, MemorySegment.ofArray(k), MemorySegment.ofArray(v), dtype);
                long[] slots = batch.slotMapping();
                CacheLayout layout = cache.layout();
                for (int t = 0; t < slots.length; t++)
                    for (int h = 0; h < KV_HEADS; h++)
                        for (KvKind kind : KvKind.values()) {
                            MemorySegment slab = cache.slab((int) (slots[t] / 16), 0, kind);
                            short[] row = slab.asSlice(layout.tokenOffset(h, (int) (slots[t] % 16)), 64 * 2)
                                    .toArray(ValueLayout.JAVA_SHORT);
                            short[] source = kind == KvKind.K ? k : v;
                            assertArrayEquals(Arrays.copyOfRange(source, (t * KV_HEADS + h) * 64, (t * KV_HEADS + h + 1) * 64), row);
                        }
            }
        }
    }

    /** Sizes, layers, dtypes and shapes are checked before the call; outputs stay untouched. */
    @Test
    void badKernelArgumentsAreRejectedBeforeTheCall() {
        try (PagedKvCache cache = cache(KvDtype.F32, 64, 16); Arena arena = Arena.ofConfined();
             PagedKvCache other = cache(KvDtype.F32, 64, 16)) {
            Sequence seq = cache.createSequence(new int[] {1, 2, 3, 4, 5});
            Batch batch = cache.batch(seq);
            long t = batch.numQoTokens();
            MemorySegment q = arena.allocate(t * QO_HEADS * 64 * 4);
            MemorySegment out = arena.allocate(q.byteSize());
            MemorySegment lse = arena.allocate(t * QO_HEADS * 4);
            MemorySegment kv = arena.allocate(t * KV_HEADS * 64 * 4);
            out.fill((byte) 0x7f);
            lse.fill((byte) 0x7f);
            AttentionParams params = AttentionParams.of(QO_HEADS);
            MemorySegment shortQ = q.asSlice(0, q.byteSize() - 4);
            var small = assertThrows(IllegalArgumentException.class, () -> cache.kernels().prefillAttention(batch, 0, params, shortQ, out, lse));
            assertTrue(small.getMessage().contains("q"), small.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> cache.kernels().prefillAttention(batch, 0, params, q, out.asSlice(4), lse));
            assertThrows(IllegalArgumentException.class,
                    () -> cache.kernels().prefillAttention(batch, 0, params, q, out, lse.asSlice(0, 4)));
            assertThrows(IllegalArgumentException.class, () -> cache.kernels().prefillAttention(batch, 2, params, q, out, lse));
            assertThrows(IllegalArgumentException.class, () -> cache.kernels().prefillAttention(batch, -1, params, q, out, lse));
            assertThrows(IllegalArgumentException.class,
                    () -> cache.kernels().prefillAttention(batch, 0, AttentionParams.of(3), q, out, lse), "3 is not a multiple of 2");
            assertThrows(IllegalArgumentException.class,
                    () -> cache.kernels().decodeAttention(batch, 0, params, q, out, lse), "5 query tokens for 1 sequence is not decode");
            assertThrows(IllegalArgumentException.class,
                    () -> cache.kernels().prefillAttention(batch, 0, params, q, out.asReadOnly(), lse));
            assertThrows(IllegalArgumentException.class,
                    () -> cache.kernels().prefillAttention(batch, 0, params, q, MemorySegment.ofAddress(out.address()), lse),
                    "a zero-length segment has no room");
            assertThrows(NullPointerException.class, () -> cache.kernels().prefillAttention(batch, 0, params, null, out, lse));
            assertThrows(NullPointerException.class, () -> cache.kernels().prefillAttention(batch, 0, null, q, out, lse));
            assertThrows(IllegalArgumentException.class, () -> cache.kernels().writeKv(batch, 0, kv, kv.asSlice(8), KvDtype.F32));
            assertThrows(IllegalArgumentException.class, () -> cache.kernels().writeKv(batch, 0, kv, kv, KvDtype.F16), "not the cache dtype");
            assertThrows(IllegalArgumentException.class, () -> cache.kernels().writeKv(batch, 5, kv, kv, KvDtype.F32));
            assertThrows(IllegalArgumentException.class, () -> cache.kernels().writeKv(batch, 0, kv.asSlice(2), kv, KvDtype.F32),
                    "misaligned");
            try (Sequence foreign = other.createSequence(new int[] {1}); Batch foreignBatch = other.batch(foreign)) {
                assertThrows(IllegalArgumentException.class, () -> cache.kernels().writeKv(foreignBatch, 0, kv, kv, KvDtype.F32));
                assertThrows(IllegalArgumentException.class, () -> cache.batch(foreign));
            }
            for (long i = 0; i < out.byteSize(); i++) assertEquals((byte) 0x7f, out.get(ValueLayout.JAVA_BYTE, i));
            for (long i = 0; i < lse.byteSize(); i++) assertEquals((byte) 0x7f, lse.get(ValueLayout.JAVA_BYTE, i));
            // The same arguments with the right sizes run.
            cache.kernels().writeKv(batch, 0, kv, kv, KvDtype.F32);
            cache.kernels().prefillAttention(batch, 0, params, q, out, null);
            batch.close();
            seq.close();
        }
    }

    // ---- helpers ----------------------------------------------------------------------------------

    /** Writes random f32 K/V ([T, Hkv, D]) for the batch's query tokens; returns {k, v}. */
    private static float[][] writeRandomKv(PagedKvCache cache, Batch batch, Random random, Arena arena, int layer) {
        int n = (int) batch.numQoTokens() * KV_HEADS * cache.layout().headDim();
        float[] k = gaussian(random, n);
        float[] v = gaussian(random, n);
        if (random.nextBoolean()) {
            cache.kernels().writeKv(batch, layer, MemorySegment.ofArray(k), MemorySegment.ofArray(v), KvDtype.F32);
        } else {
            cache.kernels().writeKv(batch, layer, arena.allocateFrom(ValueLayout.JAVA_FLOAT, k),
                    arena.allocateFrom(ValueLayout.JAVA_FLOAT, v), KvDtype.F32);
        }
        return new float[][] {k, v};
    }

    private static void assertStored(PagedKvCache cache, Batch batch, float[][] written, int layer) {
        CacheLayout layout = cache.layout();
        int d = layout.headDim();
        long[] slots = batch.slotMapping();
        double rel = switch (layout.kvDtype()) {
            case F32 -> 0;
            case F16 -> Math.scalb(1.0, -10);
            case BF16 -> Math.scalb(1.0, -7);
            default -> throw new IllegalArgumentException("raw page reads cover f32, f16 and bf16");
        };
        for (int t = 0; t < slots.length; t++)
            for (int h = 0; h < KV_HEADS; h++)
                for (KvKind kind : KvKind.values()) {
                    float[] stored = readToken(cache, (int) (slots[t] / layout.pageSize()), (int) (slots[t] % layout.pageSize()),
                            layer, kind, h);
                    for (int i = 0; i < d; i++) {
                        float source = written[kind.index()][(t * KV_HEADS + h) * d + i];
                        assertEquals(source, stored[i], 1e-7 + rel * Math.abs(source), "stored " + kind + " value");
                    }
                }
    }

    /**
     * Runs prefill (or decode) and cascade, with native and heap tensors, and compares all of them
     * to the reference. Returns the native result.
     */
    private static float[] checkAttention(PagedKvCache cache, Batch batch, Random random, AttentionParams params,
                                          boolean decode, double tol) {
        int d = cache.layout().headDim();
        int hq = params.numQoHeads();
        int rows = (int) batch.numQoTokens();
        float[] q = gaussian(random, rows * hq * d);
        float[][] reference = reference(cache, batch, params, q);

        DeviceMemory qDev = cache.allocateDevice((long) q.length * 4);
        DeviceMemory outDev = cache.allocateDevice((long) q.length * 4);
        DeviceMemory lseDev = cache.allocateDevice((long) rows * hq * 4);
        qDev.copyFromHost(MemorySegment.ofArray(q), (long) q.length * 4);
        if (decode) cache.kernels().decodeAttention(batch, LAYER, params, qDev.segment(), outDev.segment(), lseDev.segment());
        else cache.kernels().prefillAttention(batch, LAYER, params, qDev.segment(), outDev.segment(), lseDev.segment());
        float[] out = new float[q.length];
        float[] lse = new float[rows * hq];
        outDev.copyToHost(MemorySegment.ofArray(out), outDev.byteSize());
        lseDev.copyToHost(MemorySegment.ofArray(lse), lseDev.byteSize());
        assertClose(reference[0], out, tol, "out");
        assertClose(reference[1], lse, tol, "lse");

        float[] heapOut = new float[q.length];
        float[] heapLse = new float[rows * hq];
        if (decode)
            cache.kernels().decodeAttention(batch, LAYER, params, MemorySegment.ofArray(q), MemorySegment.ofArray(heapOut),
                    MemorySegment.ofArray(heapLse));
        else
            cache.kernels().prefillAttention(batch, LAYER, params, MemorySegment.ofArray(q), MemorySegment.ofArray(heapOut),
                    MemorySegment.ofArray(heapLse));
        assertClose(out, heapOut, 1e-6, "heap out");
        assertClose(lse, heapLse, 1e-6, "heap lse");

        float[] cascadeOut = new float[q.length];
        float[] cascadeLse = new float[rows * hq];
        cache.kernels().cascadeAttention(batch, LAYER, params, MemorySegment.ofArray(q), MemorySegment.ofArray(cascadeOut),
                MemorySegment.ofArray(cascadeLse));
        assertClose(reference[0], cascadeOut, tol, "cascade out");
        assertClose(reference[1], cascadeLse, tol, "cascade lse");

        float[] noLse = new float[q.length];
        cache.kernels().cascadeAttention(batch, LAYER, params, MemorySegment.ofArray(q), MemorySegment.ofArray(noLse), null);
        assertClose(cascadeOut, noLse, 1e-6, "without lse");

        qDev.close();
        outDev.close();
        lseDev.close();
        return out;
    }

    /** Causal attention over the K/V as stored in the pages: {out [T,Hq,D], lse [T,Hq]}. */
    private static float[][] reference(PagedKvCache cache, Batch batch, AttentionParams params, float[] q) {
        CacheLayout layout = cache.layout();
        int d = layout.headDim();
        int ps = layout.pageSize();
        int hq = params.numQoHeads();
        int group = hq / layout.kvHeads();
        double scale = params.smScale() == 0 ? 1 / Math.sqrt(d) : params.smScale();
        int[] kvIndptr = batch.kvIndptr();
        int[] pages = batch.kvPageIndices();
        int[] qoIndptr = batch.qoIndptr();
        int[] kvLen = batch.kvLen();
        float[] out = new float[q.length];
        float[] lse = new float[(int) batch.numQoTokens() * hq];
        for (int s = 0; s < batch.numSeqs(); s++) {
            int len = kvLen[s];
            float[][][] k = new float[len][][];
            float[][][] v = new float[len][][];
            for (int pos = 0; pos < len; pos++) {
                int page = pages[kvIndptr[s] + pos / ps];
                k[pos] = new float[layout.kvHeads()][];
                v[pos] = new float[layout.kvHeads()][];
                for (int h = 0; h < layout.kvHeads(); h++) {
                    k[pos][h] = readToken(cache, page, pos % ps, LAYER, KvKind.K, h);
                    v[pos][h] = readToken(cache, page, pos % ps, LAYER, KvKind.V, h);
                }
            }
            int qoLen = qoIndptr[s + 1] - qoIndptr[s];
            for (int j = 0; j < qoLen; j++) {
                int row = qoIndptr[s] + j;
                int position = len - qoLen + j;
                for (int h = 0; h < hq; h++) {
                    int kvHead = h / group;
                    int qBase = (row * hq + h) * d;
                    double[] scores = new double[position + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int t = 0; t <= position; t++) {
                        double dot = 0;
                        for (int i = 0; i < d; i++) dot += (double) q[qBase + i] * k[t][kvHead][i];
                        scores[t] = dot * scale;
                        max = Math.max(max, scores[t]);
                    }
                    double sum = 0;
                    double[] acc = new double[d];
                    for (int t = 0; t <= position; t++) {
                        double w = Math.exp(scores[t] - max);
                        sum += w;
                        for (int i = 0; i < d; i++) acc[i] += w * v[t][kvHead][i];
                    }
                    for (int i = 0; i < d; i++) out[qBase + i] = (float) (acc[i] / sum);
                    lse[row * hq + h] = (float) (max + Math.log(sum));
                }
            }
        }
        return new float[][] {out, lse};
    }

    /** One head's D values of one token of a page, converted to float from the cache's dtype. */
    static float[] readToken(PagedKvCache cache, int page, int tokenInPage, int layer, KvKind kind, int head) {
        CacheLayout layout = cache.layout();
        int d = layout.headDim();
        MemorySegment row = cache.slab(page, layer, kind).asSlice(layout.tokenOffset(head, tokenInPage),
                (long) d * layout.kvDtype().bytes());
        float[] values = new float[d];
        for (int i = 0; i < d; i++) {
            values[i] = switch (layout.kvDtype()) {
                case F32 -> row.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                case F16 -> Float.float16ToFloat(row.getAtIndex(ValueLayout.JAVA_SHORT, i));
                case BF16 -> Float.intBitsToFloat((row.getAtIndex(ValueLayout.JAVA_SHORT, i) & 0xffff) << 16);
                default -> throw new IllegalArgumentException("raw page reads cover f32, f16 and bf16");
            };
        }
        return values;
    }

    private static short toBits(KvDtype dtype, float value) {
        if (dtype == KvDtype.F16) return Float.floatToFloat16(value);
        return (short) (Float.floatToRawIntBits(value) >>> 16); // truncation is a valid bf16 value too
    }

    private static List<byte[]> snapshot(PagedKvCache cache, Sequence seq) {
        List<byte[]> pages = new ArrayList<>();
        for (int page : seq.blockTable()) pages.add(cache.page(page).toArray(ValueLayout.JAVA_BYTE));
        return new ListOfArrays(pages);
    }

    /** A list of byte arrays compared by content. */
    private static final class ListOfArrays extends java.util.AbstractList<byte[]> {
        private final List<byte[]> arrays;

        ListOfArrays(List<byte[]> arrays) {
            this.arrays = arrays;
        }

        @Override
        public byte[] get(int index) {
            return arrays.get(index);
        }

        @Override
        public int size() {
            return arrays.size();
        }

        @Override
        public boolean equals(Object other) {
            if (!(other instanceof ListOfArrays that) || that.size() != size()) return false;
            for (int i = 0; i < size(); i++) if (!Arrays.equals(get(i), that.get(i))) return false;
            return true;
        }

        @Override
        public int hashCode() {
            int h = 1;
            for (byte[] array : arrays) h = 31 * h + Arrays.hashCode(array);
            return h;
        }
    }

    private static float[] gaussian(Random random, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (float) random.nextGaussian();
        return values;
    }

    private static void assertClose(float[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what + " length");
        for (int i = 0; i < expected.length; i++) {
            double limit = tol + tol * Math.abs(expected[i]);
            if (!(Math.abs(expected[i] - actual[i]) <= limit))
                fail(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i] + " (tolerance " + limit + ")");
        }
    }
}
