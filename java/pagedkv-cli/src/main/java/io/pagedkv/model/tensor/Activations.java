package io.pagedkv.model.tensor;

import io.pagedkv.model.gguf.GgmlType;

/**
 * Input rows of a matrix product in the form GGML's CPU dot products consume them for a weight
 * type (its "vec_dot_type"): F32 as is; rounded to F16 or BF16; or quantized to Q8_0 (blocks of 32
 * with an F16 scale, for Q8_0, Q4_0 and Q5_0 weights), Q8_1 (Q8_0 plus the F16 scaled block sum,
 * for Q5_1) or Q8_K (blocks of 256 with an F32 scale, for the
 * K-quants). Matching that step is what makes logits agree with llama.cpp to 1e-4 rather than to
 * the quantization noise of the activations. Quantized values are kept as small integers in floats
 * (products and block sums stay exact in float arithmetic).
 */
final class Activations {
    final int rows;
    final int cols;
    /** rows x cols values (rounded, or quantized integers). */
    final float[] values;
    /** Per block: the scale (Q8_0, Q8_1: F16-rounded; Q8_K: F32). */
    final float[] scales;
    /** Per block (Q8_1 only): the scale times the block's sum of quantized values, F16-rounded. */
    final float[] sums;

    private Activations(int rows, int cols, float[] values, float[] scales) {
        this(rows, cols, values, scales, null);
    }

    private Activations(int rows, int cols, float[] values, float[] scales, float[] sums) {
        this.rows = rows;
        this.cols = cols;
        this.values = values;
        this.scales = scales;
        this.sums = sums;
    }

    static Activations prepare(GgmlType weightType, float[][] x, int rows, int cols) {
        float[] values = new float[rows * cols];
        return switch (weightType) {
            case F32 -> {
                for (int t = 0; t < rows; t++) System.arraycopy(x[t], 0, values, t * cols, cols);
                yield new Activations(rows, cols, values, null);
            }
            case F16, BF16 -> {
                boolean f16 = weightType == GgmlType.F16;
                for (int t = 0; t < rows; t++) {
                    for (int i = 0; i < cols; i++) values[t * cols + i] = f16 ? HalfFloats.roundF16(x[t][i]) : HalfFloats.roundBf16(x[t][i]);
                }
                yield new Activations(rows, cols, values, null);
            }
            case Q8_0, Q4_0, Q5_0 -> {
                float[] scales = new float[rows * cols / 32];
                for (int t = 0; t < rows; t++) {
                    for (int b = 0; b < cols / 32; b++) quantizeQ8_0(x[t], 32 * b, values, t * cols + 32 * b, scales, t * cols / 32 + b);
                }
                yield new Activations(rows, cols, values, scales);
            }
            case Q5_1 -> {
                float[] scales = new float[rows * cols / 32], sums = new float[rows * cols / 32];
                for (int t = 0; t < rows; t++) {
                    for (int b = 0; b < cols / 32; b++) {
                        int block = t * cols / 32 + b;
                        float d = quantizeQ8_0(x[t], 32 * b, values, t * cols + 32 * b, scales, block);
                        int sum = 0;
                        for (int i = 0; i < 32; i++) sum += (int) values[t * cols + 32 * b + i];
                        sums[block] = HalfFloats.roundF16(d * sum);
                    }
                }
                yield new Activations(rows, cols, values, scales, sums);
            }
            case Q4_K, Q6_K -> {
                float[] scales = new float[rows * cols / 256];
                for (int t = 0; t < rows; t++) {
                    for (int b = 0; b < cols / 256; b++) quantizeQ8_K(x[t], 256 * b, values, t * cols + 256 * b, scales, t * cols / 256 + b);
                }
                yield new Activations(rows, cols, values, scales);
            }
        };
    }

    /**
     * GGML's quantize_row_q8_0 and, without the sum, quantize_row_q8_1 (x86): d = amax/127 stored as
     * F16, q = round-half-even(x * 127/amax). Returns d unrounded (Q8_1's sum is scaled by it).
     */
    private static float quantizeQ8_0(float[] x, int from, float[] q, int to, float[] scales, int block) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[from + i]));
        float id = amax != 0 ? 127f / amax : 0f;
        float d = amax / 127f;
        scales[block] = HalfFloats.roundF16(d);
        for (int i = 0; i < 32; i++) q[to + i] = (float) Math.rint(x[from + i] * id);
        return d;
    }

    /** GGML's quantize_row_q8_K: signed max, iscale = -127/max, q = min(127, nearest(iscale*x)), d = 1/iscale. */
    private static void quantizeQ8_K(float[] x, int from, float[] q, int to, float[] scales, int block) {
        float amax = 0, max = 0;
        for (int i = 0; i < 256; i++) {
            float ax = Math.abs(x[from + i]);
            if (ax > amax) {
                amax = ax;
                max = x[from + i];
            }
        }
        if (amax == 0) {
            scales[block] = 0;
            for (int i = 0; i < 256; i++) q[to + i] = 0;
            return;
        }
        float iscale = -127f / max;
        for (int i = 0; i < 256; i++) q[to + i] = Math.min(127f, (float) Math.rint(iscale * x[from + i]));
        scales[block] = 1f / iscale;
    }
}
