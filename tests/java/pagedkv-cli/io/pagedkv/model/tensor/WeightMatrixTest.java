package io.pagedkv.model.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufTensor;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Matrix products of every weight type: a step of several tokens gives each token exactly (bit for
 * bit) what a step of that token alone gives — the path that decodes each row once for many tokens
 * and the per-token kernels agree — and the products are close to a double-precision product of the
 * dequantized weights with the unrounded activations (the activation rounding GGML applies is the
 * only difference).
 */
class WeightMatrixTest {
    @ParameterizedTest
    @EnumSource(GgmlType.class)
    void aTokensResultDoesNotDependOnItsStepAndIsTheProduct(GgmlType type) {
        SplittableRandom rng = new SplittableRandom(31L * type.ordinal());
        try (Parallel parallel = new Parallel(2)) {
            for (int cols : new int[] {256, 512, 768}) {
                int rows = 1 + rng.nextInt(40);
                float[] w = new float[rows * cols];
                for (int i = 0; i < w.length; i++) w[i] = (float) rng.nextGaussian();
                byte[] bytes = Quantizer.encode(type, w);
                WeightMatrix m = WeightMatrix.of(new GgufTensor("w", type, new long[] {cols, rows}, MemorySegment.ofArray(bytes)));
                float[] dequantized = new float[rows * cols];
                float[] row = new float[cols];
                for (int r = 0; r < rows; r++) {
                    m.dequantizeRow(r, row);
                    System.arraycopy(row, 0, dequantized, r * cols, cols);
                }
                for (int n : new int[] {1, 2, 5, 17}) {
                    float[][] x = new float[n][cols];
                    for (float[] xr : x) for (int i = 0; i < cols; i++) xr[i] = (float) rng.nextGaussian();
                    float[][] batch = new float[n][rows];
                    m.multiply(x, n, batch, false, parallel);
                    for (int t = 0; t < n; t++) {
                        float[][] alone = new float[1][rows];
                        m.multiply(new float[][] {x[t]}, 1, alone, false, parallel);
                        for (int r = 0; r < rows; r++) {
                            assertEquals(Float.floatToIntBits(alone[0][r]), Float.floatToIntBits(batch[t][r]),
                                    type + " cols " + cols + " step of " + n + ", token " + t + ", row " + r);
                            double want = 0, scale = 0;
                            for (int i = 0; i < cols; i++) {
                                want += (double) dequantized[r * cols + i] * x[t][i];
                                scale += Math.abs((double) dequantized[r * cols + i] * x[t][i]);
                            }
                            double bound = (type == GgmlType.F32 ? 1e-6 : type == GgmlType.F16 || type == GgmlType.BF16 ? 1e-2 : 2e-2) * scale;
                            double got = batch[t][r];
                            assertTrue(Math.abs(got - want) <= bound, type + ": " + got + " vs " + want + " (bound " + bound + ")");
                        }
                    }
                }
            }
        }
    }
}
