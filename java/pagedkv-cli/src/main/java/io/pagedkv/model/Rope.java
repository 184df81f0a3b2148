package io.pagedkv.model;

/**
 * Rotary position embedding computed as GGML's CPU rope does: the angle of pair i is
 * {@code pos * base^(-2i/dims)} built by repeated float multiplication, divided by the pair's
 * frequency factor (Llama 3's rope_freqs) and times the linear frequency scale, so the rotated
 * Q and K agree with llama.cpp's to float rounding. Adjacent pairs (llama) or halves (NEOX, qwen2).
 * Thread-safe (immutable).
 */
final class Rope {
    private final int dims;
    private final boolean neox;
    private final float thetaScale;
    private final float freqScale;
    private final float[] freqFactors; // null: all 1

    Rope(int dims, float base, float freqScale, float[] freqFactors, boolean neox) {
        if (freqFactors != null && freqFactors.length < dims / 2) {
            throw new IllegalArgumentException("rope_freqs has " + freqFactors.length + " factors, need " + dims / 2);
        }
        this.dims = dims;
        this.neox = neox;
        this.thetaScale = (float) Math.pow(base, -2.0f / dims);
        this.freqScale = freqScale;
        this.freqFactors = freqFactors;
    }

    /** cos and sin of each pair's angle at {@code position}, interleaved: [cos0, sin0, cos1, sin1, ...]. */
    float[] table(int position) {
        float[] cs = new float[dims];
        float theta = position;
        for (int i = 0; i < dims / 2; i++) {
            float ff = freqFactors != null ? freqFactors[i] : 1f;
            float angle = freqScale * (theta / ff);
            cs[2 * i] = (float) Math.cos(angle);
            cs[2 * i + 1] = (float) Math.sin(angle);
            theta *= thetaScale;
        }
        return cs;
    }

    /** Rotates each of the {@code heads} heads of width {@code headDim} in {@code row}. */
    void apply(float[] row, int heads, int headDim, float[] cs) {
        int half = dims / 2;
        for (int h = 0; h < heads; h++) {
            int off = h * headDim;
            for (int i = 0; i < half; i++) {
                int a = neox ? off + i : off + 2 * i;
                int b = neox ? off + i + half : off + 2 * i + 1;
                float x0 = row[a], x1 = row[b];
                float c = cs[2 * i], s = cs[2 * i + 1];
                row[a] = x0 * c - x1 * s;
                row[b] = x0 * s + x1 * c;
            }
        }
    }
}
