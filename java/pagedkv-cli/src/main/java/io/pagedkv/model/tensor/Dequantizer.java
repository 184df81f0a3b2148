package io.pagedkv.model.tensor;

import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufTensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Decodes GGML blocks to floats exactly as GGML's dequantize_row_* do. Thread-safe (stateless). */
public final class Dequantizer {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Dequantizer() {}

    /** The whole tensor as floats (norm weights, biases: small vectors). */
    public static float[] all(GgufTensor t) {
        float[] out = new float[Math.toIntExact(t.elements())];
        row(t.type(), t.data(), 0, out.length, out);
        return out;
    }

    /** {@code n} elements of {@code type} starting at byte {@code offset} into dst[0..n). */
    static void row(GgmlType type, MemorySegment data, long offset, int n, float[] dst) {
        switch (type) {
            case F32 -> MemorySegment.copy(data, FLOAT, offset, dst, 0, n);
            case F16 -> { for (int i = 0; i < n; i++) dst[i] = HalfFloats.fromF16(data.get(SHORT, offset + 2L * i)); }
            case BF16 -> { for (int i = 0; i < n; i++) dst[i] = HalfFloats.fromBf16(data.get(SHORT, offset + 2L * i)); }
            case Q8_0 -> {
                for (int b = 0; b < n / 32; b++, offset += 34) {
                    float d = HalfFloats.fromF16(data.get(SHORT, offset));
                    for (int i = 0; i < 32; i++) dst[32 * b + i] = data.get(ValueLayout.JAVA_BYTE, offset + 2 + i) * d;
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < n / 32; b++, offset += 18) {
                    float d = HalfFloats.fromF16(data.get(SHORT, offset));
                    for (int i = 0; i < 16; i++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, offset + 2 + i) & 0xff;
                        dst[32 * b + i] = ((q & 0xF) - 8) * d;
                        dst[32 * b + 16 + i] = ((q >> 4) - 8) * d;
                    }
                }
            }
            case Q5_0, Q5_1 -> {
                boolean q51 = type == GgmlType.Q5_1;
                int bytes = q51 ? 24 : 22;
                for (int b = 0; b < n / 32; b++, offset += bytes) {
                    float d = HalfFloats.fromF16(data.get(SHORT, offset));
                    float m = q51 ? HalfFloats.fromF16(data.get(SHORT, offset + 2)) : 0f;
                    long qs = offset + (q51 ? 8 : 6);
                    int qh = data.get(ValueLayout.JAVA_INT_UNALIGNED, qs - 4);
                    for (int j = 0; j < 16; j++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, qs + j) & 0xff;
                        int x0 = (q & 0xF) | (qh >>> j & 1) << 4, x1 = (q >> 4) | (qh >>> (j + 16) & 1) << 4;
                        dst[32 * b + j] = q51 ? x0 * d + m : (x0 - 16) * d;
                        dst[32 * b + 16 + j] = q51 ? x1 * d + m : (x1 - 16) * d;
                    }
                }
            }
            case Q4_K -> {
                int[] sc = new int[8], m = new int[8];
                for (int b = 0; b < n / 256; b++, offset += 144) {
                    float d = HalfFloats.fromF16(data.get(SHORT, offset));
                    float dmin = HalfFloats.fromF16(data.get(SHORT, offset + 2));
                    KQuants.q4kScales(data, offset + 4, sc, m);
                    for (int p = 0; p < 4; p++) {
                        float d1 = d * sc[2 * p], m1 = dmin * m[2 * p], d2 = d * sc[2 * p + 1], m2 = dmin * m[2 * p + 1];
                        for (int l = 0; l < 32; l++) {
                            int q = data.get(ValueLayout.JAVA_BYTE, offset + 16 + 32 * p + l) & 0xff;
                            dst[256 * b + 64 * p + l] = d1 * (q & 0xF) - m1;
                            dst[256 * b + 64 * p + 32 + l] = d2 * (q >> 4) - m2;
                        }
                    }
                }
            }
            case Q6_K -> {
                int[] q = new int[256];
                for (int b = 0; b < n / 256; b++, offset += 210) {
                    float d = HalfFloats.fromF16(data.get(SHORT, offset + 208));
                    KQuants.q6kValues(data, offset, q);
                    for (int i = 0; i < 256; i++) dst[256 * b + i] = d * data.get(ValueLayout.JAVA_BYTE, offset + 192 + i / 16) * q[i];
                }
            }
        }
    }
}
