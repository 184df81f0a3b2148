package io.pagedkv.model;

import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufWriter;
import io.pagedkv.model.tensor.Quantizer;
import io.pagedkv.model.tokenizer.ByteAlphabet;
import io.pagedkv.replay.SplitMix64;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The demonstration model of {@code pagedkv replay} without {@code --model}: a tiny Llama (2 layers,
 * hidden 256, 8 query heads over 2 KV heads of 64, SwiGLU 512) whose weights are drawn from a fixed
 * seed, with a byte-level vocabulary — ids 0..255 are the UTF-8 bytes, then {@code <|endoftext|>},
 * {@code <|im_start|>} and {@code <|im_end|>} (ChatML's markers, single control tokens). It is
 * written as a GGUF file by {@link GgufWriter} and read back through the same loader, tokenizer
 * and {@link Transformer} as any model file, so the demonstration needs no download.
 *
 * <p>The vocabulary is GPT-2-style BPE with no merges: every byte of a text is its own token,
 * which is exactly the byte encoding of the replay's traces. Weights are uniform with variance
 * 1/fan_in (activations keep unit scale; attention scores and logits are spread out, neither flat
 * nor one-hot); norm weights lie near one. Thread-safe (static, stateless).
 */
public final class BuiltinModel {
    public static final ModelShape SHAPE = new ModelShape(Architecture.LLAMA, 2, 256, 8, 2, 64, 512, 259, 32768,
            1e-5f, 10000f, 1f, 64);
    public static final long SEED = 20240601L;
    /** Multiplies the output weights, so the next-token distribution is neither flat nor one-hot. */
    public static final float LOGIT_SCALE = 3f;
    public static final String NAME = "pagedkv built-in tiny Llama (seed " + SEED + ")";
    /** Token ids of the markers after the 256 bytes. */
    public static final int END_OF_TEXT = 256, IM_START = 257, IM_END = 258;

    /** One decoder block's weights as drawn, in x·W form ({@code [in][out]}); Q/K columns in rotate-half order. */
    public record Layer(float[] attnNorm, float[][] wq, float[][] wk, float[][] wv, float[][] wo, float[] ffnNorm,
                        float[][] gate, float[][] up, float[][] down) {}

    /** All weights as drawn: embedding {@code [vocab][hidden]}, output {@code [hidden][vocab]} (x·W form). */
    public record Weights(float[][] embedding, Layer[] layers, float[] outputNorm, float[][] output) {}

    private BuiltinModel() {}

    /** The weights, drawn from {@link #SEED} in a fixed order. */
    public static Weights weights() {
        ModelShape s = SHAPE;
        SplitMix64 rng = new SplitMix64(SEED);
        int h = s.hidden();
        float[][] embedding = uniform(rng, s.vocab(), h, 1f);
        Layer[] layers = new Layer[s.layers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new Layer(norm(rng, h),
                    uniform(rng, h, s.qDim(), fanIn(h)), uniform(rng, h, s.kvDim(), fanIn(h)), uniform(rng, h, s.kvDim(), fanIn(h)),
                    uniform(rng, s.qDim(), h, fanIn(s.qDim())), norm(rng, h),
                    uniform(rng, h, s.intermediate(), fanIn(h)), uniform(rng, h, s.intermediate(), fanIn(h)),
                    uniform(rng, s.intermediate(), h, fanIn(s.intermediate())));
        }
        float[] outputNorm = norm(rng, h);
        float[][] output = uniform(rng, h, s.vocab(), fanIn(h) * LOGIT_SCALE);
        return new Weights(embedding, layers, outputNorm, output);
    }

    /** Writes the model as a GGUF file (F32 weights, about 6 MB). */
    public static void write(Path path) throws IOException {
        ModelShape s = SHAPE;
        Weights w = weights();
        GgufWriter out = RandomModelWriter.header(s, NAME);
        vocabulary(out);
        out.addTensor("token_embd.weight", GgmlType.F32, new long[] {s.hidden(), s.vocab()}, f32(flatten(w.embedding())));
        for (int l = 0; l < s.layers(); l++) {
            Layer layer = w.layers()[l];
            String p = "blk." + l + ".";
            vector(out, p + "attn_norm.weight", layer.attnNorm());
            matrix(out, p + "attn_q.weight", layer.wq(), s.headDim());
            matrix(out, p + "attn_k.weight", layer.wk(), s.headDim());
            matrix(out, p + "attn_v.weight", layer.wv(), 0);
            matrix(out, p + "attn_output.weight", layer.wo(), 0);
            vector(out, p + "ffn_norm.weight", layer.ffnNorm());
            matrix(out, p + "ffn_gate.weight", layer.gate(), 0);
            matrix(out, p + "ffn_up.weight", layer.up(), 0);
            matrix(out, p + "ffn_down.weight", layer.down(), 0);
        }
        vector(out, "output_norm.weight", w.outputNorm());
        matrix(out, "output.weight", w.output(), 0);
        out.write(path);
    }

    /**
     * The model ready to run with {@code threads} workers: written to a temporary file, mapped, and
     * the file removed (the mapping stays valid until the model is closed).
     */
    public static GgufModel open(int threads) throws IOException {
        Path file = Files.createTempFile("pagedkv-builtin-", ".gguf");
        try {
            write(file);
            return GgufModel.open(file, threads);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** The 256 bytes in GPT-2's alphabet, then the markers; no merges, so text tokenizes byte by byte. */
    private static void vocabulary(GgufWriter w) {
        List<String> tokens = new ArrayList<>(SHAPE.vocab());
        int[] types = new int[SHAPE.vocab()];
        for (int b = 0; b < 256; b++) {
            tokens.add(String.valueOf(ByteAlphabet.of(b)));
            types[b] = 1; // normal
        }
        for (String marker : List.of("<|endoftext|>", "<|im_start|>", "<|im_end|>")) {
            types[tokens.size()] = 3; // control
            tokens.add(marker);
        }
        w.putString("tokenizer.ggml.model", "gpt2")
                .putString("tokenizer.ggml.pre", "qwen2")
                .putStrings("tokenizer.ggml.tokens", tokens)
                .putInts("tokenizer.ggml.token_type", types)
                .putStrings("tokenizer.ggml.merges", List.of())
                .putUint32("tokenizer.ggml.bos_token_id", END_OF_TEXT)
                .putUint32("tokenizer.ggml.eos_token_id", IM_END)
                .putUint32("tokenizer.ggml.padding_token_id", END_OF_TEXT)
                .putBool("tokenizer.ggml.add_bos_token", false)
                .putString("tokenizer.chat_template", RandomModelWriter.CHATML_TEMPLATE);
    }

    /**
     * A weight in x·W form written as GGUF's [out][in] rows. With {@code ropeHead > 0} (Q and K), the
     * rows of each head are permuted as llama.cpp's converter does — row 2j+a of a head is column
     * a*half+j — so the engine's rotation of adjacent pairs equals the rotate-half rotation the
     * weights were drawn for.
     */
    private static void matrix(GgufWriter w, String name, float[][] xw, int ropeHead) {
        int in = xw.length, out = xw[0].length;
        float[] data = new float[in * out];
        for (int r = 0; r < out; r++) {
            int col = r;
            if (ropeHead > 0) {
                int head = r / ropeHead, within = r % ropeHead, half = ropeHead / 2;
                col = head * ropeHead + (within % 2) * half + within / 2;
            }
            for (int i = 0; i < in; i++) data[r * in + i] = xw[i][col];
        }
        w.addTensor(name, GgmlType.F32, new long[] {in, out}, f32(data));
    }

    private static void vector(GgufWriter w, String name, float[] v) {
        w.addTensor(name, GgmlType.F32, new long[] {v.length}, f32(v));
    }

    private static byte[] f32(float[] v) {
        return Quantizer.encode(GgmlType.F32, v);
    }

    private static float[] flatten(float[][] rows) {
        int cols = rows[0].length;
        float[] flat = new float[rows.length * cols];
        for (int r = 0; r < rows.length; r++) System.arraycopy(rows[r], 0, flat, r * cols, cols);
        return flat;
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
