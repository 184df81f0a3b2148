package io.pagedkv.model.tensor;

import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufException;
import io.pagedkv.model.gguf.GgufTensor;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix read in place from a mapped GGUF tensor: {@code rows} output rows of {@code cols}
 * inputs, each row stored contiguously in the tensor's type. Products run on the {@link Parallel}
 * workers, split by output rows; for every row all the step's tokens are done while its bytes are
 * in cache (matrix-matrix), so a prefill reads the weights once. Each output is one row's dot product
 * in a fixed order, so a token's result does not depend on the thread count or the batch.
 * Thread-safe (immutable).
 */
public final class WeightMatrix {
    /** Output rows per task: enough work per task that forking is cheap, many tasks for balance. */
    private static final int ROWS_PER_TASK = 16;
    /** From this many tokens a step decodes each quantized row once ({@link DecodedRow}) instead of per token. */
    private static final int DECODE_ONCE_TOKENS = 2;

    private final String name;
    private final GgmlType type;
    private final int rows;
    private final int cols;
    private final MemorySegment data;
    private final long rowBytes;

    private WeightMatrix(String name, GgmlType type, int rows, int cols, MemorySegment data) {
        this.name = name;
        this.type = type;
        this.rows = rows;
        this.cols = cols;
        this.data = data;
        this.rowBytes = type.bytes(cols);
    }

    /** The 2-D tensor {@code t} as a matrix of {@code t.rows()} rows of {@code t.rowLength()}. */
    public static WeightMatrix of(GgufTensor t) {
        if (t.dims().length != 2) throw new GgufException("tensor '" + t.name() + "' has rank " + t.dims().length + ", expected a matrix");
        return new WeightMatrix(t.name(), t.type(), Math.toIntExact(t.rows()), Math.toIntExact(t.rowLength()), t.data());
    }

    public String name() {
        return name;
    }

    public GgmlType type() {
        return type;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    /** Checks the shape against what the model expects, naming the tensor when it differs. */
    public WeightMatrix expect(int expectedRows, int expectedCols) {
        if (rows != expectedRows || cols != expectedCols) {
            throw new GgufException("tensor '" + name + "' is " + cols + " x " + rows + ", expected " + expectedCols + " x " + expectedRows);
        }
        return this;
    }

    /**
     * out[t] (+)= W x[t] for t &lt; n: x rows of {@code cols}, out rows of {@code rows}.
     * {@code accumulate} adds to out (the residual stream) instead of replacing it.
     */
    public void multiply(float[][] x, int n, float[][] out, boolean accumulate, Parallel parallel) {
        Activations a = Activations.prepare(type, x, n, cols);
        int tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
        boolean decodeOnce = n >= DECODE_ONCE_TOKENS && DecodedRow.serves(type);
        parallel.forEach(tasks, task -> {
            int r1 = Math.min(rows, (task + 1) * ROWS_PER_TASK);
            if (decodeOnce) {
                DecodedRow row = new DecodedRow(type, cols);
                for (int r = task * ROWS_PER_TASK; r < r1; r++) {
                    row.decode(data, r * rowBytes);
                    for (int t = 0; t < n; t++) {
                        float v = row.dot(a, t * cols, t * cols / 32);
                        out[t][r] = accumulate ? out[t][r] + v : v;
                    }
                }
                return;
            }
            for (int r = task * ROWS_PER_TASK; r < r1; r++) {
                long offset = r * rowBytes;
                for (int t = 0; t < n; t++) {
                    float v = dot(offset, a, t);
                    out[t][r] = accumulate ? out[t][r] + v : v;
                }
            }
        });
    }

    private float dot(long offset, Activations a, int t) {
        int xo = t * cols;
        return switch (type) {
            case F32 -> DotProducts.f32(data, offset, a.values, xo, cols);
            case F16 -> DotProducts.f16(data, offset, a.values, xo, cols);
            case BF16 -> DotProducts.bf16(data, offset, a.values, xo, cols);
            case Q8_0 -> DotProducts.q8_0(data, offset, a.values, xo, a.scales, xo / 32, cols / 32);
            case Q4_0 -> DotProducts.q4_0(data, offset, a.values, xo, a.scales, xo / 32, cols / 32);
            case Q5_0 -> DotProducts.q5_0(data, offset, a.values, xo, a.scales, xo / 32, cols / 32);
            case Q5_1 -> DotProducts.q5_1(data, offset, a.values, xo, a.scales, a.sums, xo / 32, cols / 32);
            case Q4_K -> DotProducts.q4_K(data, offset, a.values, xo, a.scales, xo / 256, cols / 256);
            case Q6_K -> DotProducts.q6_K(data, offset, a.values, xo, a.scales, xo / 256, cols / 256);
        };
    }

    /** Row {@code row} decoded to floats (an embedding lookup: GGML's get_rows). */
    public void dequantizeRow(int row, float[] dst) {
        if (row < 0 || row >= rows) throw new IllegalArgumentException("row " + row + " outside [0, " + rows + ") of " + name);
        Dequantizer.row(type, data, row * rowBytes, cols, dst);
    }
}
