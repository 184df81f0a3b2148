package io.pagedkv.model.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * One weight row (in the mapped file) times one prepared activation row ({@link Activations}),
 * per weight type, with the Java Vector API. The quantized kernels multiply small integers held in
 * floats, so every block's integer sum is exact, then scale it by the weight and activation block
 * scales as GGML does. Thread-safe (stateless).
 */
final class DotProducts {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_256;
    private static final VectorSpecies<Byte> B64 = ByteVector.SPECIES_64;
    private static final VectorSpecies<Byte> B128 = ByteVector.SPECIES_128;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;

    private DotProducts() {}

    /**
     * The sum of the 8 lanes in a fixed order, GGML's hsum_float_8: (x0+x4 + x2+x6) + (x1+x5 + x3+x7).
     * Not reduceLanes, whose order may differ between the JIT's tiers, which would make a token's
     * result depend on which compiled code ran it.
     */
    private static float hsum(FloatVector v) {
        float r0 = v.lane(0) + v.lane(4), r1 = v.lane(1) + v.lane(5), r2 = v.lane(2) + v.lane(6), r3 = v.lane(3) + v.lane(7);
        return (r0 + r2) + (r1 + r3);
    }

    static float f32(MemorySegment w, long off, float[] x, int xo, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i + F.length() <= n; i += F.length()) {
            acc = FloatVector.fromMemorySegment(F, w, off + 4L * i, LE).fma(FloatVector.fromArray(F, x, xo + i), acc);
        }
        float sum = hsum(acc);
        for (; i < n; i++) sum += w.get(ValueLayout.JAVA_FLOAT_UNALIGNED, off + 4L * i) * x[xo + i];
        return sum;
    }

    static float f16(MemorySegment w, long off, float[] x, int xo, int n) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            s0 += Float.float16ToFloat(w.get(SHORT, off + 2L * i)) * x[xo + i];
            s1 += Float.float16ToFloat(w.get(SHORT, off + 2L * i + 2)) * x[xo + i + 1];
            s2 += Float.float16ToFloat(w.get(SHORT, off + 2L * i + 4)) * x[xo + i + 2];
            s3 += Float.float16ToFloat(w.get(SHORT, off + 2L * i + 6)) * x[xo + i + 3];
        }
        for (; i < n; i++) s0 += Float.float16ToFloat(w.get(SHORT, off + 2L * i)) * x[xo + i];
        return (s0 + s1) + (s2 + s3);
    }

    static float bf16(MemorySegment w, long off, float[] x, int xo, int n) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            s0 += HalfFloats.fromBf16(w.get(SHORT, off + 2L * i)) * x[xo + i];
            s1 += HalfFloats.fromBf16(w.get(SHORT, off + 2L * i + 2)) * x[xo + i + 1];
            s2 += HalfFloats.fromBf16(w.get(SHORT, off + 2L * i + 4)) * x[xo + i + 2];
            s3 += HalfFloats.fromBf16(w.get(SHORT, off + 2L * i + 6)) * x[xo + i + 3];
        }
        for (; i < n; i++) s0 += HalfFloats.fromBf16(w.get(SHORT, off + 2L * i)) * x[xo + i];
        return (s0 + s1) + (s2 + s3);
    }

    /** Q8_0 weights (34-byte blocks: F16 scale, 32 int8) against Q8_0 activations. */
    static float q8_0(MemorySegment w, long off, float[] x, int xo, float[] xs, int so, int blocks) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < blocks; b++, off += 34, xo += 32) {
            float d = Float.float16ToFloat(w.get(SHORT, off)) * xs[so + b];
            FloatVector s = weights8(w, off + 2).mul(FloatVector.fromArray(F, x, xo));
            s = weights8(w, off + 10).fma(FloatVector.fromArray(F, x, xo + 8), s);
            s = weights8(w, off + 18).fma(FloatVector.fromArray(F, x, xo + 16), s);
            s = weights8(w, off + 26).fma(FloatVector.fromArray(F, x, xo + 24), s);
            acc = s.fma(FloatVector.broadcast(F, d), acc);
        }
        return hsum(acc);
    }

    /**
     * Decoded Q8_0 or Q4_0 codes ({@link DecodedRow}) against Q8_0: the operations of {@link #q8_0}
     * and {@link #q4_0} in their order (codes 0-7, 8-15, 16-23, 24-31 of each block), so the result
     * is bit-identical to theirs.
     */
    static float blocks32(float[] codes, float[] ws, float[] x, int xo, float[] xs, int so) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0, c = 0; b < ws.length; b++, c += 32, xo += 32) {
            float d = ws[b] * xs[so + b];
            FloatVector s = FloatVector.fromArray(F, codes, c).mul(FloatVector.fromArray(F, x, xo));
            s = FloatVector.fromArray(F, codes, c + 8).fma(FloatVector.fromArray(F, x, xo + 8), s);
            s = FloatVector.fromArray(F, codes, c + 16).fma(FloatVector.fromArray(F, x, xo + 16), s);
            s = FloatVector.fromArray(F, codes, c + 24).fma(FloatVector.fromArray(F, x, xo + 24), s);
            acc = s.fma(FloatVector.broadcast(F, d), acc);
        }
        return hsum(acc);
    }

    /**
     * Decoded Q5_0 (mins null) or Q5_1 codes against Q8_0 / Q8_1: as {@link #q5_0} and {@link #q5_1}.
     * A block's sum of code x activation products is an integer below 2^24, so it is exact in float
     * whatever the order, and equals their integer sum.
     */
    static float fiveBitBlocks(float[] codes, float[] ws, float[] wm, float[] x, int xo, float[] xs, float[] xsums, int so) {
        float sum = 0, mins = 0;
        for (int b = 0, c = 0; b < ws.length; b++, c += 32, xo += 32) {
            float d = ws[b] * xs[so + b];
            if (wm != null) mins += wm[b] * xsums[so + b];
            FloatVector s = FloatVector.fromArray(F, codes, c).mul(FloatVector.fromArray(F, x, xo));
            s = FloatVector.fromArray(F, codes, c + 8).fma(FloatVector.fromArray(F, x, xo + 8), s);
            s = FloatVector.fromArray(F, codes, c + 16).fma(FloatVector.fromArray(F, x, xo + 16), s);
            s = FloatVector.fromArray(F, codes, c + 24).fma(FloatVector.fromArray(F, x, xo + 24), s);
            sum += d * hsum(s);
        }
        return sum + mins;
    }

    private static FloatVector weights8(MemorySegment w, long at) {
        return (FloatVector) ByteVector.fromMemorySegment(B64, w, at, LE).castShape(F, 0);
    }

    /** Q4_0 weights (18-byte blocks: F16 scale, 16 bytes of nibbles, value = nibble - 8) against Q8_0. */
    static float q4_0(MemorySegment w, long off, float[] x, int xo, float[] xs, int so, int blocks) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < blocks; b++, off += 18, xo += 32) {
            float d = Float.float16ToFloat(w.get(SHORT, off)) * xs[so + b];
            ByteVector q = ByteVector.fromMemorySegment(B128, w, off + 2, LE);
            ByteVector lo = q.and((byte) 0xF).sub((byte) 8);
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).sub((byte) 8);
            FloatVector s = ((FloatVector) lo.castShape(F, 0)).mul(FloatVector.fromArray(F, x, xo));
            s = ((FloatVector) lo.castShape(F, 1)).fma(FloatVector.fromArray(F, x, xo + 8), s);
            s = ((FloatVector) hi.castShape(F, 0)).fma(FloatVector.fromArray(F, x, xo + 16), s);
            s = ((FloatVector) hi.castShape(F, 1)).fma(FloatVector.fromArray(F, x, xo + 24), s);
            acc = s.fma(FloatVector.broadcast(F, d), acc);
        }
        return hsum(acc);
    }

    /** Q5_0 weights (22-byte blocks: F16 scale, uint32 of fifth bits, 16 bytes of nibbles; value = q - 16) against Q8_0. */
    static float q5_0(MemorySegment w, long off, float[] x, int xo, float[] xs, int so, int blocks) {
        float sum = 0;
        for (int b = 0; b < blocks; b++, off += 22, xo += 32) {
            float d = Float.float16ToFloat(w.get(SHORT, off)) * xs[so + b];
            sum += d * fiveBitDot(w, off + 2, x, xo, 16);
        }
        return sum;
    }

    /**
     * Q5_1 weights (24-byte blocks: F16 scale d and min m, fifth bits, nibbles; value = q * d + m)
     * against Q8_1: d * xd * sum(q * xq) + m * (xd * sum(xq)), the second term from the block's sum.
     */
    static float q5_1(MemorySegment w, long off, float[] x, int xo, float[] xs, float[] xsums, int so, int blocks) {
        float sum = 0, mins = 0;
        for (int b = 0; b < blocks; b++, off += 24, xo += 32) {
            float d = Float.float16ToFloat(w.get(SHORT, off)) * xs[so + b];
            mins += Float.float16ToFloat(w.get(SHORT, off + 2)) * xsums[so + b];
            sum += d * fiveBitDot(w, off + 4, x, xo, 0);
        }
        return sum + mins;
    }

    /** Sum of (q - bias) * x over one block of 5-bit values (qh at {@code at}, nibbles after it); exact in int. */
    private static int fiveBitDot(MemorySegment w, long at, float[] x, int xo, int bias) {
        int qh = w.get(ValueLayout.JAVA_INT_UNALIGNED, at);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int q = w.get(BYTE, at + 4 + j) & 0xff;
            int x0 = ((q & 0xF) | (qh >>> j & 1) << 4) - bias, x1 = ((q >> 4) | (qh >>> (j + 16) & 1) << 4) - bias;
            sumi += x0 * (int) x[xo + j] + x1 * (int) x[xo + 16 + j];
        }
        return sumi;
    }

    /** Q4_K weights against Q8_K: d*xd*sum(scale*q*x) - dmin*xd*sum(min*x) per super-block. */
    static float q4_K(MemorySegment w, long off, float[] x, int xo, float[] xs, int so, int blocks) {
        int[] sc = new int[8], m = new int[8];
        float sum = 0;
        for (int b = 0; b < blocks; b++, off += 144, xo += 256) {
            float d = Float.float16ToFloat(w.get(SHORT, off)) * xs[so + b];
            float dmin = Float.float16ToFloat(w.get(SHORT, off + 2)) * xs[so + b];
            KQuants.q4kScales(w, off + 4, sc, m);
            float scaled = 0, mins = 0;
            for (int p = 0; p < 4; p++) {
                float lo = 0, hi = 0, xlo = 0, xhi = 0;
                int base = xo + 64 * p;
                for (int l = 0; l < 32; l++) {
                    int q = w.get(BYTE, off + 16 + 32 * p + l) & 0xff;
                    lo += (q & 0xF) * x[base + l];
                    hi += (q >> 4) * x[base + 32 + l];
                    xlo += x[base + l];
                    xhi += x[base + 32 + l];
                }
                scaled += sc[2 * p] * lo + sc[2 * p + 1] * hi;
                mins += m[2 * p] * xlo + m[2 * p + 1] * xhi;
            }
            sum += d * scaled - dmin * mins;
        }
        return sum;
    }

    /** Q6_K weights against Q8_K: d*xd*sum over 16 groups of scale*sum((q-32)*x). */
    static float q6_K(MemorySegment w, long off, float[] x, int xo, float[] xs, int so, int blocks) {
        int[] q = new int[256];
        float sum = 0;
        for (int b = 0; b < blocks; b++, off += 210, xo += 256) {
            float d = Float.float16ToFloat(w.get(SHORT, off + 208)) * xs[so + b];
            KQuants.q6kValues(w, off, q);
            float scaled = 0;
            for (int g = 0; g < 16; g++) {
                float s = 0;
                for (int l = 0; l < 16; l++) s += q[16 * g + l] * x[xo + 16 * g + l];
                scaled += w.get(BYTE, off + 192 + g) * s;
            }
            sum += d * scaled;
        }
        return sum;
    }
}
