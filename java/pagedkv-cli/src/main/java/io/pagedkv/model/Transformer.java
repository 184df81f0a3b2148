package io.pagedkv.model;

import io.pagedkv.model.gguf.GgufFile;
import io.pagedkv.model.gguf.GgufTensor;
import io.pagedkv.model.tensor.Dequantizer;
import io.pagedkv.model.tensor.Parallel;
import io.pagedkv.model.tensor.WeightMatrix;

/**
 * A Llama-family decoder (RMSNorm, rotary positions, grouped-query attention, SwiGLU MLP; Qwen2's
 * Q/K/V biases) over the weights of a GGUF file, read in place from its mapping. The projections
 * run here on the {@link Parallel} workers; attention is delegated to an {@link Attention} — pagedkv's
 * write and attention kernels over the paged cache. The order of operations follows llama.cpp's
 * graph for these architectures, so logits agree with it to float rounding.
 *
 * <p>Immutable after construction; {@link #forward} is thread-safe as long as the attention is.
 * The GGUF file must stay open while the model is used.
 */
public final class Transformer implements Model {
    private record Layer(float[] attnNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, float[] bq, float[] bk,
                         float[] bv, WeightMatrix wo, float[] ffnNorm, WeightMatrix gate, WeightMatrix up, WeightMatrix down) {}

    private final ModelShape shape;
    private final String name;
    private final WeightMatrix embedding;
    private final Layer[] layers;
    private final float[] outputNorm;
    private final WeightMatrix output;
    private final Rope rope;
    private final Parallel parallel;

    public Transformer(GgufFile file, Parallel parallel) {
        this.shape = ModelShape.of(file);
        this.name = file.has("general.name") ? file.string("general.name") : file.path().getFileName().toString();
        this.parallel = parallel;
        ModelShape s = shape;
        embedding = WeightMatrix.of(file.tensor("token_embd.weight")).expect(s.vocab(), s.hidden());
        layers = new Layer[s.layers()];
        for (int l = 0; l < layers.length; l++) {
            String p = "blk." + l + ".";
            boolean bias = s.architecture().qkvBias();
            layers[l] = new Layer(
                    vector(file, p + "attn_norm.weight", s.hidden()),
                    matrix(file, p + "attn_q.weight", s.qDim(), s.hidden()),
                    matrix(file, p + "attn_k.weight", s.kvDim(), s.hidden()),
                    matrix(file, p + "attn_v.weight", s.kvDim(), s.hidden()),
                    bias ? vector(file, p + "attn_q.bias", s.qDim()) : null,
                    bias ? vector(file, p + "attn_k.bias", s.kvDim()) : null,
                    bias ? vector(file, p + "attn_v.bias", s.kvDim()) : null,
                    matrix(file, p + "attn_output.weight", s.hidden(), s.qDim()),
                    vector(file, p + "ffn_norm.weight", s.hidden()),
                    matrix(file, p + "ffn_gate.weight", s.intermediate(), s.hidden()),
                    matrix(file, p + "ffn_up.weight", s.intermediate(), s.hidden()),
                    matrix(file, p + "ffn_down.weight", s.hidden(), s.intermediate()));
        }
        outputNorm = vector(file, "output_norm.weight", s.hidden());
        GgufTensor out = file.optionalTensor("output.weight");
        output = out != null ? WeightMatrix.of(out).expect(s.vocab(), s.hidden()) : embedding; // tied embeddings
        GgufTensor freqs = file.optionalTensor("rope_freqs.weight");
        rope = new Rope(s.ropeDims(), s.ropeBase(), s.ropeFreqScale(), freqs != null ? Dequantizer.all(freqs) : null,
                s.architecture().neoxRope());
    }

    private static WeightMatrix matrix(GgufFile file, String name, int rows, int cols) {
        return WeightMatrix.of(file.tensor(name)).expect(rows, cols);
    }

    private static float[] vector(GgufFile file, String name, int length) {
        GgufTensor t = file.tensor(name);
        if (t.elements() != length) throw new io.pagedkv.model.gguf.GgufException("tensor '" + name + "' has " + t.elements() + " elements, expected " + length);
        return Dequantizer.all(t);
    }

    public ModelShape shape() {
        return shape;
    }

    @Override
    public int layers() {
        return shape.layers();
    }

    @Override
    public int heads() {
        return shape.heads();
    }

    @Override
    public int kvHeads() {
        return shape.kvHeads();
    }

    @Override
    public int headDim() {
        return shape.headDim();
    }

    @Override
    public int vocab() {
        return shape.vocab();
    }

    @Override
    public String describe() {
        return name + " (" + shape.describe() + ", " + weightType() + " weights)";
    }

    /** The type of the feed-forward weights (for reports: "Q8_0", "Q4_K", ...). */
    public String weightType() {
        return layers[0].gate.type().name();
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
        ModelShape s = shape;
        float[][] x = new float[t][s.hidden()];
        for (int i = 0; i < t; i++) {
            if (tokens[i] < 0 || tokens[i] >= s.vocab()) throw new IllegalArgumentException("token " + tokens[i] + " outside the vocabulary of " + s.vocab());
            embedding.dequantizeRow(tokens[i], x[i]);
        }
        float[][] rotary = new float[t][];
        for (int i = 0; i < t; i++) rotary[i] = rope.table(positions[i]);
        float[][] normed = new float[t][s.hidden()];
        float[][] q = new float[t][s.qDim()], k = new float[t][s.kvDim()], v = new float[t][s.kvDim()];
        float[][] attn = new float[t][s.qDim()];
        float[][] gate = new float[t][s.intermediate()], up = new float[t][s.intermediate()];
        for (int l = 0; l < layers.length; l++) {
            Layer w = layers[l];
            rmsNorm(x, t, w.attnNorm, s.rmsEps(), normed);
            w.wq.multiply(normed, t, q, false, parallel);
            w.wk.multiply(normed, t, k, false, parallel);
            w.wv.multiply(normed, t, v, false, parallel);
            if (w.bq != null) {
                addBias(q, t, w.bq);
                addBias(k, t, w.bk);
                addBias(v, t, w.bv);
            }
            for (int i = 0; i < t; i++) {
                rope.apply(q[i], s.heads(), s.headDim(), rotary[i]);
                rope.apply(k[i], s.kvHeads(), s.headDim(), rotary[i]);
            }
            attention.attend(l, t, q, k, v, attn);
            w.wo.multiply(attn, t, x, true, parallel);
            rmsNorm(x, t, w.ffnNorm, s.rmsEps(), normed);
            w.gate.multiply(normed, t, gate, false, parallel);
            w.up.multiply(normed, t, up, false, parallel);
            swiglu(gate, up, t);
            w.down.multiply(gate, t, x, true, parallel);
        }
        int r = logitRows.length;
        float[][] last = new float[r][];
        for (int i = 0; i < r; i++) last[i] = x[logitRows[i]];
        float[][] lastNormed = new float[r][s.hidden()];
        rmsNorm(last, r, outputNorm, s.rmsEps(), lastNormed);
        float[][] logits = new float[r][s.vocab()];
        output.multiply(lastNormed, r, logits, false, parallel);
        return logits;
    }

    /** GGML's rms_norm then mul: the sum of squares in double, the scale in float. */
    private static void rmsNorm(float[][] x, int rows, float[] weight, float eps, float[][] y) {
        for (int t = 0; t < rows; t++) {
            float[] xr = x[t], yr = y[t];
            double sum = 0;
            for (float v : xr) sum += v * v;
            float mean = (float) (sum / xr.length);
            float scale = 1f / (float) Math.sqrt(mean + eps);
            for (int i = 0; i < xr.length; i++) yr[i] = xr[i] * scale * weight[i];
        }
    }

    private static void addBias(float[][] x, int rows, float[] bias) {
        for (int t = 0; t < rows; t++) for (int i = 0; i < bias.length; i++) x[t][i] += bias[i];
    }

    /** gate[t] = silu(gate[t]) * up[t]. */
    private static void swiglu(float[][] gate, float[][] up, int rows) {
        for (int t = 0; t < rows; t++) {
            float[] g = gate[t], u = up[t];
            for (int i = 0; i < g.length; i++) g[i] = g[i] / (1f + (float) Math.exp(-g[i])) * u[i];
        }
    }
}
