package io.pagedkv.replay;

import io.pagedkv.model.Attention;
import io.pagedkv.model.BuiltinModel;
import io.pagedkv.model.Model;
import io.pagedkv.model.ModelShape;

/**
 * The built-in model computed in plain Java from its weights as drawn ({@link BuiltinModel#weights()}),
 * in x·W form with rotate-half rotary positions — the independent path the GGUF file written by
 * {@link BuiltinModel} and run by the {@code Transformer} is compared with: it checks the writer's
 * layout (transposes, llama.cpp's Q/K row permutation), the reader and the engine's conventions.
 * Attention is delegated to an {@link Attention}. Thread-safe.
 */
final class TinyLlama implements Model {
    private static final ModelShape CFG = BuiltinModel.SHAPE;

    private final float[][] embedding; // [vocab][hidden]
    private final BuiltinModel.Layer[] layers;
    private final float[] finalNorm;   // [hidden]
    private final float[][] lmHead;    // [hidden][vocab]
    private final double[] inverseFrequencies; // [headDim / 2]

    TinyLlama() {
        BuiltinModel.Weights w = BuiltinModel.weights();
        embedding = w.embedding();
        layers = w.layers();
        finalNorm = w.outputNorm();
        lmHead = w.output();
        int half = CFG.headDim() / 2;
        inverseFrequencies = new double[half];
        for (int i = 0; i < half; i++) inverseFrequencies[i] = Math.pow(CFG.ropeBase(), -2.0 * i / CFG.headDim());
    }

    @Override
    public int layers() {
        return CFG.layers();
    }

    @Override
    public int heads() {
        return CFG.heads();
    }

    @Override
    public int kvHeads() {
        return CFG.kvHeads();
    }

    @Override
    public int headDim() {
        return CFG.headDim();
    }

    @Override
    public int vocab() {
        return CFG.vocab();
    }

    @Override
    public String describe() {
        return "tiny Llama computed in plain Java";
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
            if (id < 0 || id >= CFG.vocab()) throw new IllegalArgumentException("token " + id + " outside the vocabulary");
            x[i] = embedding[id].clone();
        }
        float[][][] rotary = rotaryTables(positions);
        float[][] normed = TensorOps.matrix(t, CFG.hidden());
        float[][] q = TensorOps.matrix(t, CFG.qDim());
        float[][] k = TensorOps.matrix(t, CFG.kvDim());
        float[][] v = TensorOps.matrix(t, CFG.kvDim());
        float[][] attn = TensorOps.matrix(t, CFG.qDim());
        float[][] gate = TensorOps.matrix(t, CFG.intermediate());
        float[][] up = TensorOps.matrix(t, CFG.intermediate());
        for (int l = 0; l < layers.length; l++) {
            BuiltinModel.Layer w = layers[l];
            TensorOps.rmsNorm(x, t, w.attnNorm(), CFG.rmsEps(), normed);
            TensorOps.matmul(normed, t, w.wq(), q, false);
            TensorOps.matmul(normed, t, w.wk(), k, false);
            TensorOps.matmul(normed, t, w.wv(), v, false);
            TensorOps.rope(q, t, CFG.heads(), CFG.headDim(), rotary[0], rotary[1]);
            TensorOps.rope(k, t, CFG.kvHeads(), CFG.headDim(), rotary[0], rotary[1]);
            attention.attend(l, t, q, k, v, attn);
            TensorOps.matmul(attn, t, w.wo(), x, true);
            TensorOps.rmsNorm(x, t, w.ffnNorm(), CFG.rmsEps(), normed);
            TensorOps.matmul(normed, t, w.gate(), gate, false);
            TensorOps.matmul(normed, t, w.up(), up, false);
            TensorOps.swiglu(gate, up, t);
            TensorOps.matmul(gate, t, w.down(), x, true);
        }
        int r = logitRows.length;
        float[][] last = new float[r][];
        for (int i = 0; i < r; i++) last[i] = x[logitRows[i]].clone();
        TensorOps.rmsNorm(last, r, finalNorm, CFG.rmsEps(), last);
        float[][] logits = TensorOps.matrix(r, CFG.vocab());
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
}
