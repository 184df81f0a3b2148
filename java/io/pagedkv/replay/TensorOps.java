package io.pagedkv.replay;

import java.util.stream.IntStream;

/**
 * The float kernels of the Java side of the model, written as plain loops the JIT vectorizes
 * (an axpy inner loop over contiguous output columns). Every result row depends only on its own
 * input row, with a fixed order of operations, so a token's values never depend on which batch it
 * was computed in. Thread-safe (stateless).
 */
final class TensorOps {
    /** Tokens per tile: a tile's output rows stay in L1 while a weight row is reused for each. */
    private static final int TILE = 8;
    /** Below this many rows the work is not worth the fork-join overhead. */
    private static final int PARALLEL_ROWS = 32;

    private TensorOps() {}

    /** c[t, :] (+)= a[t, :] x w for t < rows; a: [rows, in], w: [in, out], c: [rows, out]. */
    static void matmul(float[] a, int rows, int in, float[] w, int out, float[] c, boolean accumulate) {
        int tiles = (rows + TILE - 1) / TILE;
        if (rows >= PARALLEL_ROWS) {
            IntStream.range(0, tiles).parallel().forEach(tile -> matmulTile(a, rows, in, w, out, c, accumulate, tile));
        } else {
            for (int tile = 0; tile < tiles; tile++) matmulTile(a, rows, in, w, out, c, accumulate, tile);
        }
    }

    private static void matmulTile(float[] a, int rows, int in, float[] w, int out, float[] c, boolean accumulate,
                                   int tile) {
        int t0 = tile * TILE;
        int t1 = Math.min(rows, t0 + TILE);
        if (!accumulate) java.util.Arrays.fill(c, t0 * out, t1 * out, 0f);
        for (int i = 0; i < in; i++) {
            int wOff = i * out;
            for (int t = t0; t < t1; t++) {
                float av = a[t * in + i];
                int cOff = t * out;
                for (int j = 0; j < out; j++) c[cOff + j] += av * w[wOff + j];
            }
        }
    }

    /** y[t] = x[t] / rms(x[t]) * weight, row by row; x, y: [rows, n]. */
    static void rmsNorm(float[] x, int rows, int n, float[] weight, float eps, float[] y) {
        for (int t = 0; t < rows; t++) {
            int off = t * n;
            float sum = 0f;
            for (int i = 0; i < n; i++) sum += x[off + i] * x[off + i];
            float inv = (float) (1.0 / Math.sqrt(sum / n + eps));
            for (int i = 0; i < n; i++) y[off + i] = x[off + i] * inv * weight[i];
        }
    }

    /** gate = silu(gate) * up, elementwise over the first n values. */
    static void swiglu(float[] gate, float[] up, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[i];
            gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
        }
    }

    /**
     * Rotary embedding (rotate-half form) in place on x: [rows, heads, dim]; cos, sin: [rows, dim/2]
     * for each row's absolute position.
     */
    static void rope(float[] x, int rows, int heads, int dim, float[] cos, float[] sin) {
        int half = dim / 2;
        for (int t = 0; t < rows; t++) {
            int cs = t * half;
            for (int h = 0; h < heads; h++) {
                int off = (t * heads + h) * dim;
                for (int i = 0; i < half; i++) {
                    float x0 = x[off + i];
                    float x1 = x[off + half + i];
                    float c = cos[cs + i];
                    float s = sin[cs + i];
                    x[off + i] = x0 * c - x1 * s;
                    x[off + half + i] = x1 * c + x0 * s;
                }
            }
        }
    }
}
