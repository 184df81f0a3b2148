package io.pagedkv.replay;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * The float kernels of {@link TinyLlama}, the plain-Java reference model, written as plain loops the JIT vectorizes.
 * Matrices are arrays of rows, and every inner loop reads and writes its arrays at the same index
 * ({@code out[j] += a * w[j]}): C2 vectorizes that form even though it cannot prove two arrays
 * distinct, where offset forms ({@code c[off + j]}) stay scalar. Each result row depends only on its
 * own input row, with a fixed order of operations, so a token's values never depend on the batch
 * it was computed in. Thread-safe (stateless).
 */
final class TensorOps {
    /** Tokens per tile: a tile's output rows stay in L1 while a weight row is reused for each. */
    private static final int TILE = 8;
    /** Below this many rows the work is not worth the fork-join overhead. */
    private static final int PARALLEL_ROWS = 32;

    private TensorOps() {}

    /** A new matrix of {@code rows} rows of {@code cols} floats. */
    static float[][] matrix(int rows, int cols) {
        return new float[rows][cols];
    }

    /** c[t] (+)= a[t] x w for t < rows; a: [rows][in], w: [in][out], c: [rows][out]. */
    static void matmul(float[][] a, int rows, float[][] w, float[][] c, boolean accumulate) {
        int tiles = (rows + TILE - 1) / TILE;
        if (rows >= PARALLEL_ROWS) {
            IntStream.range(0, tiles).parallel().forEach(tile -> matmulTile(a, rows, w, c, accumulate, tile));
        } else {
            for (int tile = 0; tile < tiles; tile++) matmulTile(a, rows, w, c, accumulate, tile);
        }
    }

    private static void matmulTile(float[][] a, int rows, float[][] w, float[][] c, boolean accumulate, int tile) {
        int t0 = tile * TILE;
        int t1 = Math.min(rows, t0 + TILE);
        if (!accumulate) for (int t = t0; t < t1; t++) Arrays.fill(c[t], 0f);
        for (int i = 0; i < w.length; i++) {
            float[] wRow = w[i];
            for (int t = t0; t < t1; t++) {
                float av = a[t][i];
                float[] cRow = c[t];
                for (int j = 0; j < wRow.length; j++) cRow[j] += av * wRow[j];
            }
        }
    }

    /** y[t] = x[t] / rms(x[t]) * weight for t < rows (y may be x). */
    static void rmsNorm(float[][] x, int rows, float[] weight, float eps, float[][] y) {
        for (int t = 0; t < rows; t++) {
            float[] xr = x[t];
            float[] yr = y[t];
            float sum = 0f;
            for (float v : xr) sum += v * v;
            float inv = (float) (1.0 / Math.sqrt(sum / xr.length + eps));
            for (int i = 0; i < xr.length; i++) yr[i] = xr[i] * inv * weight[i];
        }
    }

    /** gate[t] = silu(gate[t]) * up[t] for t < rows. */
    static void swiglu(float[][] gate, float[][] up, int rows) {
        for (int t = 0; t < rows; t++) {
            float[] g = gate[t];
            float[] u = up[t];
            for (int i = 0; i < g.length; i++) g[i] = g[i] / (1f + (float) Math.exp(-g[i])) * u[i];
        }
    }

    /**
     * Rotary embedding (rotate-half form) in place on rows of {@code heads * dim}; cos, sin:
     * [rows][dim/2] for each row's absolute position.
     */
    static void rope(float[][] x, int rows, int heads, int dim, float[][] cos, float[][] sin) {
        int half = dim / 2;
        for (int t = 0; t < rows; t++) {
            float[] r = x[t];
            float[] c = cos[t];
            float[] s = sin[t];
            for (int h = 0; h < heads; h++) {
                int off = h * dim;
                for (int i = 0; i < half; i++) {
                    float x0 = r[off + i];
                    float x1 = r[off + half + i];
                    r[off + i] = x0 * c[i] - x1 * s[i];
                    r[off + half + i] = x1 * c[i] + x0 * s[i];
                }
            }
        }
    }
}
