package io.pagedkv.replay;

import io.pagedkv.model.Attention;
import io.pagedkv.model.Model;

/**
 * A tiny Llama-style decoder (RMSNorm, rotary positions, grouped-query attention, SwiGLU MLP)
 * with weights drawn from a fixed seed. Its projections run here in Java; attention is delegated
 * to an {@link Attention} — in the replay, pagedkv's write and attention kernels over the paged
 * cache. Weights are uniform with variance 1/fan_in, so activations keep unit scale and the
 * attention scores and logits are spread out rather than flat or one-hot.
 *
 * <p>Immutable after construction; {@link #forward} is thread-safe as long as the attention
 * callbacks are.
 */
public final class TinyLlama implements Model {
    private record Layer(float[] attnNorm, float[][] wq, float[][] wk, float[][] wv, float[][] wo,
                         float[] mlpNorm, float[][] wGate, float[][] wUp, float[][] wDown) {}

    private final ModelConfig cfg;
    private final float[][] embedding; // [vocab][hidden]
    private final Layer[] layers;
    private final float[] finalNorm;   // [hidden]
    private final float[][] lmHead;    // [hidden][vocab], scaled by logitScale
    private final double[] inverseFrequencies; // [headDim / 2]

    public TinyLlama(ModelConfig cfg) {
        this.cfg = cfg;
        SplitMix64 rng = new SplitMix64(cfg.seed());
        int h = cfg.hidden();
        embedding = uniform(rng, cfg.vocab(), h, 1f);
        layers = new Layer[cfg.layers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new Layer(
                    norm(rng, h),
                    uniform(rng, h, cfg.qDim(), fanIn(h)),
                    uniform(rng, h, cfg.kvDim(), fanIn(h)),
                    uniform(rng, h, cfg.kvDim(), fanIn(h)),
                    uniform(rng, cfg.qDim(), h, fanIn(cfg.qDim())),
                    norm(rng, h),
                    uniform(rng, h, cfg.intermediate(), fanIn(h)),
                    uniform(rng, h, cfg.intermediate(), fanIn(h)),
                    uniform(rng, cfg.intermediate(), h, fanIn(cfg.intermediate())));
        }
        finalNorm = norm(rng, h);
        lmHead = uniform(rng, h, cfg.vocab(), fanIn(h) * cfg.logitScale());
        int half = cfg.headDim() / 2;
        inverseFrequencies = new double[half];
        for (int i = 0; i < half; i++) inverseFrequencies[i] = Math.pow(cfg.ropeTheta(), -2.0 * i / cfg.headDim());
    }

    public ModelConfig config() {
        return cfg;
    }

    @Override
    public int layers() {
        return cfg.layers();
    }

    @Override
    public int heads() {
        return cfg.qHeads();
    }

    @Override
    public int kvHeads() {
        return cfg.kvHeads();
    }

    @Override
    public int headDim() {
        return cfg.headDim();
    }

    @Override
    public int vocab() {
        return cfg.vocab();
    }

    @Override
    public String describe() {
        return cfg.describe();
    }

    /**
     * Runs T tokens through the model.
     *
     * @param tokens    token ids of the step's query tokens, in batch order
     * @param positions absolute position of each token in its sequence (for the rotary embedding)
     * @param logitRows indexes into tokens whose next-token logits are wanted
     * @param attention the attention of each layer
     * @return logits, one row of {@code vocab} floats per entry of logitRows
     */
    @Override
    public float[][] forward(int[] tokens, int[] positions, int[] logitRows, Attention attention) {
        int t = tokens.length;
        if (positions.length != t) throw new IllegalArgumentException("tokens and positions differ in length");
        float[][] x = new float[t][];
        for (int i = 0; i < t; i++) {
            int id = tokens[i];
            if (id < 0 || id >= cfg.vocab()) throw new IllegalArgumentException("token " + id + " outside the vocabulary");
            x[i] = embedding[id].clone();
        }
        float[][][] rotary = rotaryTables(positions);
        float[][] normed = TensorOps.matrix(t, cfg.hidden());
        float[][] q = TensorOps.matrix(t, cfg.qDim());
        float[][] k = TensorOps.matrix(t, cfg.kvDim());
        float[][] v = TensorOps.matrix(t, cfg.kvDim());
        float[][] attn = TensorOps.matrix(t, cfg.qDim());
        float[][] gate = TensorOps.matrix(t, cfg.intermediate());
        float[][] up = TensorOps.matrix(t, cfg.intermediate());
        for (int l = 0; l < layers.length; l++) {
            Layer w = layers[l];
            TensorOps.rmsNorm(x, t, w.attnNorm(), cfg.normEps(), normed);
            TensorOps.matmul(normed, t, w.wq(), q, false);
            TensorOps.matmul(normed, t, w.wk(), k, false);
            TensorOps.matmul(normed, t, w.wv(), v, false);
            TensorOps.rope(q, t, cfg.qHeads(), cfg.headDim(), rotary[0], rotary[1]);
            TensorOps.rope(k, t, cfg.kvHeads(), cfg.headDim(), rotary[0], rotary[1]);
            attention.attend(l, t, q, k, v, attn);
            TensorOps.matmul(attn, t, w.wo(), x, true);
            TensorOps.rmsNorm(x, t, w.mlpNorm(), cfg.normEps(), normed);
            TensorOps.matmul(normed, t, w.wGate(), gate, false);
            TensorOps.matmul(normed, t, w.wUp(), up, false);
            TensorOps.swiglu(gate, up, t);
            TensorOps.matmul(gate, t, w.wDown(), x, true);
        }
        int r = logitRows.length;
        float[][] last = new float[r][];
        for (int i = 0; i < r; i++) last[i] = x[logitRows[i]].clone();
        TensorOps.rmsNorm(last, r, finalNorm, cfg.normEps(), last);
        float[][] logits = TensorOps.matrix(r, cfg.vocab());
        TensorOps.matmul(last, r, lmHead, logits, false);
        return logits;
    }

    /** cos and sin tables [T][headDim/2] for the given absolute positions. */
    private float[][][] rotaryTables(int[] positions) {
        int half = inverseFrequencies.length;
        float[][] cos = new float[positions.length][half];
        float[][] sin = new float[positions.length][half];
        for (int t = 0; t < positions.length; t++) {
            for (int i = 0; i < half; i++) {
                double angle = positions[t] * inverseFrequencies[i];
                cos[t][i] = (float) Math.cos(angle);
                sin[t][i] = (float) Math.sin(angle);
            }
        }
        return new float[][][] {cos, sin};
    }

    private static float fanIn(int n) {
        return (float) (1.0 / Math.sqrt(n));
    }

    /** A rows x cols matrix uniform in [-sqrt(3)*std, sqrt(3)*std): mean 0, standard deviation std. */
    private static float[][] uniform(SplitMix64 rng, int rows, int cols, float std) {
        float[][] a = new float[rows][cols];
        float bound = (float) (Math.sqrt(3.0) * std);
        for (float[] row : a) {
            for (int i = 0; i < cols; i++) row[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        }
        return a;
    }

    /** Norm weights near one, so each layer's scale differs a little. */
    private static float[] norm(SplitMix64 rng, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (1.0 + 0.1 * (rng.nextDouble() * 2 - 1));
        return a;
    }
}
