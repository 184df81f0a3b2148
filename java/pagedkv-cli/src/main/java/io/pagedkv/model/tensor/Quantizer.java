package io.pagedkv.model.tensor;

import io.pagedkv.model.gguf.GgmlType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Encodes float rows into GGML's block formats, for writing GGUF files (the built-in model and the
 * random-weight test models). The encodings follow GGML's block layouts exactly; the choice of
 * scales is the plain one (absolute maximum per block, min/max per K-quant sub-block), which is
 * all a valid file needs. Thread-safe (stateless).
 */
public final class Quantizer {
    private Quantizer() {}

    /** {@code values} (rows of {@code rowLength}) in {@code type}'s encoding. */
    public static byte[] encode(GgmlType type, float[] values) {
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(type.bytes(values.length))).order(ByteOrder.LITTLE_ENDIAN);
        int block = type.blockSize();
        for (int b = 0; b < values.length; b += block) {
            switch (type) {
                case F32 -> out.putFloat(values[b]);
                case F16 -> out.putShort(HalfFloats.toF16(values[b]));
                case BF16 -> out.putShort(HalfFloats.toBf16(values[b]));
                case Q8_0 -> q8_0(values, b, out);
                case Q4_0 -> q4_0(values, b, out);
                case Q5_0 -> q5_0(values, b, out);
                case Q5_1 -> q5_1(values, b, out);
                case Q4_K -> q4_K(values, b, out);
                case Q6_K -> q6_K(values, b, out);
            }
        }
        return out.array();
    }

    private static void q8_0(float[] x, int at, ByteBuffer out) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[at + i]));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        out.putShort(HalfFloats.toF16(d));
        for (int i = 0; i < 32; i++) out.put((byte) Math.round(x[at + i] * id));
    }

    private static void q4_0(float[] x, int at, ByteBuffer out) {
        float d = signedMax(x, at) / -8f;
        float id = d != 0 ? 1f / d : 0f;
        out.putShort(HalfFloats.toF16(d));
        for (int i = 0; i < 16; i++) {
            int lo = Math.min(15, (int) (x[at + i] * id + 8.5f));
            int hi = Math.min(15, (int) (x[at + 16 + i] * id + 8.5f));
            out.put((byte) (lo | hi << 4));
        }
    }

    /** The value of largest magnitude in the block of 32 at {@code at}, with its sign (GGML's Q4_0/Q5_0 scale). */
    private static float signedMax(float[] x, int at) {
        float amax = 0, max = 0;
        for (int i = 0; i < 32; i++) {
            if (Math.abs(x[at + i]) > amax) {
                amax = Math.abs(x[at + i]);
                max = x[at + i];
            }
        }
        return max;
    }

    /** Q5_0: F16 scale d = max/-16, the 32 fifth bits (uint32), 16 bytes of low nibbles; value = (q - 16) * d. */
    private static void q5_0(float[] x, int at, ByteBuffer out) {
        float d = signedMax(x, at) / -16f;
        float id = d != 0 ? 1f / d : 0f;
        int[] q = new int[32];
        for (int i = 0; i < 32; i++) q[i] = Math.min(31, (int) (x[at + i] * id + 16.5f));
        out.putShort(HalfFloats.toF16(d));
        fiveBits(q, out);
    }

    /** Q5_1: F16 scale d = (max - min)/31 and F16 min m, the fifth bits, the low nibbles; value = q * d + m. */
    private static void q5_1(float[] x, int at, ByteBuffer out) {
        float min = Float.POSITIVE_INFINITY, max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < 32; i++) {
            min = Math.min(min, x[at + i]);
            max = Math.max(max, x[at + i]);
        }
        float d = (max - min) / 31f;
        float id = d != 0 ? 1f / d : 0f;
        int[] q = new int[32];
        for (int i = 0; i < 32; i++) q[i] = Math.min(31, (int) ((x[at + i] - min) * id + 0.5f));
        out.putShort(HalfFloats.toF16(d));
        out.putShort(HalfFloats.toF16(min));
        fiveBits(q, out);
    }

    /** 5-bit values q[0..32) as GGML stores them: bit 4 of q[j] in bit j of a uint32, then q[j] | q[j+16] << 4 nibbles. */
    private static void fiveBits(int[] q, ByteBuffer out) {
        int qh = 0;
        for (int j = 0; j < 32; j++) qh |= (q[j] >> 4 & 1) << j;
        out.putInt(qh);
        for (int j = 0; j < 16; j++) out.put((byte) ((q[j] & 0xF) | (q[j + 16] & 0xF) << 4));
    }

    /** Q4_K: 8 sub-blocks of 32, value = d*scale*q - dmin*min with 6-bit scale and min, q in [0, 15]. */
    private static void q4_K(float[] x, int at, ByteBuffer out) {
        float[] scales = new float[8], mins = new float[8];
        float maxScale = 0, maxMin = 0;
        for (int s = 0; s < 8; s++) {
            float lo = 0, hi = 0; // min is kept <= 0 so the stored min is non-negative
            for (int i = 0; i < 32; i++) {
                lo = Math.min(lo, x[at + 32 * s + i]);
                hi = Math.max(hi, x[at + 32 * s + i]);
            }
            scales[s] = (hi - lo) / 15f;
            mins[s] = -lo;
            maxScale = Math.max(maxScale, scales[s]);
            maxMin = Math.max(maxMin, mins[s]);
        }
        float d = HalfFloats.roundF16(maxScale / 63f), dmin = HalfFloats.roundF16(maxMin / 63f);
        int[] sc = new int[8], m = new int[8];
        for (int s = 0; s < 8; s++) {
            sc[s] = d > 0 ? Math.min(63, Math.round(scales[s] / d)) : 0;
            m[s] = dmin > 0 ? Math.min(63, Math.round(mins[s] / dmin)) : 0;
        }
        out.putShort(HalfFloats.toF16(d));
        out.putShort(HalfFloats.toF16(dmin));
        byte[] packed = new byte[12];
        for (int j = 0; j < 4; j++) {
            packed[j] = (byte) (sc[j] | (sc[j + 4] >> 4) << 6);
            packed[j + 4] = (byte) (m[j] | (m[j + 4] >> 4) << 6);
            packed[j + 8] = (byte) ((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
        }
        out.put(packed);
        for (int pair = 0; pair < 4; pair++) {
            for (int l = 0; l < 32; l++) {
                int lo = q4Level(x[at + 64 * pair + l], d * sc[2 * pair], dmin * m[2 * pair]);
                int hi = q4Level(x[at + 64 * pair + 32 + l], d * sc[2 * pair + 1], dmin * m[2 * pair + 1]);
                out.put((byte) (lo | hi << 4));
            }
        }
    }

    private static int q4Level(float v, float scale, float min) {
        if (scale == 0) return 0;
        return Math.max(0, Math.min(15, Math.round((v + min) / scale)));
    }

    /** Q6_K: 16 groups of 16, value = d*scale*(q - 32) with an int8 scale per group, q in [0, 63]. */
    private static void q6_K(float[] x, int at, ByteBuffer out) {
        float[] groupScale = new float[16];
        float maxScale = 0;
        for (int g = 0; g < 16; g++) {
            float amax = 0;
            for (int i = 0; i < 16; i++) amax = Math.max(amax, Math.abs(x[at + 16 * g + i]));
            groupScale[g] = amax / 31f;
            maxScale = Math.max(maxScale, groupScale[g]);
        }
        float d = HalfFloats.roundF16(maxScale / 127f);
        int[] sc = new int[16];
        for (int g = 0; g < 16; g++) sc[g] = d > 0 ? Math.min(127, Math.round(groupScale[g] / d)) : 0;
        int[] q = new int[256];
        for (int i = 0; i < 256; i++) {
            float scale = d * sc[i / 16];
            q[i] = scale == 0 ? 32 : Math.max(0, Math.min(63, Math.round(x[at + i] / scale) + 32));
        }
        byte[] ql = new byte[128], qh = new byte[64];
        for (int half = 0; half < 2; half++) {
            int base = 128 * half;
            for (int l = 0; l < 32; l++) {
                int q1 = q[base + l], q2 = q[base + 32 + l], q3 = q[base + 64 + l], q4 = q[base + 96 + l];
                ql[64 * half + l] = (byte) ((q1 & 0xF) | (q3 & 0xF) << 4);
                ql[64 * half + 32 + l] = (byte) ((q2 & 0xF) | (q4 & 0xF) << 4);
                qh[32 * half + l] = (byte) ((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
        }
        out.put(ql);
        out.put(qh);
        for (int g = 0; g < 16; g++) out.put((byte) sc[g]);
        out.putShort(HalfFloats.toF16(d));
    }
}
