package io.pagedkv.model;

import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufWriter;
import io.pagedkv.model.tensor.Quantizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Writes a GGUF model of a given shape with weights drawn from a seed: the built-in demonstration
 * model (no download needed) and the random-weight models the tests run through both this engine
 * and llama.cpp. Weights are uniform with standard deviation 1/sqrt(fan_in), so activations keep
 * unit scale and attention scores and logits are spread out rather than flat or one-hot; norm
 * weights lie near one. The vocabulary is SentencePiece-style: {@code <unk>}, {@code <s>},
 * {@code </s>}, the 256 byte tokens, then word pieces, so any text has a tokenization.
 *
 * @param shape      the hyperparameters (the vocabulary size must be at least 261)
 * @param weightType the type of every matrix (token embedding and output included)
 * @param tiedOutput no output.weight: logits use the token embedding
 * @param logitScale multiplies the output weights, so the next-token distribution is neither flat nor one-hot
 * @param seed       seed the weights are drawn from
 */
public record RandomModelWriter(ModelShape shape, GgmlType weightType, boolean tiedOutput, float logitScale, long seed) {
    public static final int FIRST_PIECE = 261;
    /** ChatML in the Jinja form models carry (the engine only recognizes the format from it). */
    static final String CHATML_TEMPLATE = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
            + " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    public RandomModelWriter {
        if (shape.vocab() < FIRST_PIECE) throw new IllegalArgumentException("the vocabulary needs at least " + FIRST_PIECE + " tokens");
    }

    public void write(Path path) throws IOException {
        ModelShape s = shape;
        GgufWriter w = header(s, "pagedkv random " + s.architecture().ggufName() + " " + weightType + " seed " + seed);
        vocabulary(w, s.vocab());
        SplittableRandom rng = new SplittableRandom(seed);
        matrix(w, rng, "token_embd.weight", s.vocab(), s.hidden(), 1f);
        for (int l = 0; l < s.layers(); l++) {
            String p = "blk." + l + ".";
            norm(w, rng, p + "attn_norm.weight", s.hidden());
            matrix(w, rng, p + "attn_q.weight", s.qDim(), s.hidden(), fanIn(s.hidden()));
            matrix(w, rng, p + "attn_k.weight", s.kvDim(), s.hidden(), fanIn(s.hidden()));
            matrix(w, rng, p + "attn_v.weight", s.kvDim(), s.hidden(), fanIn(s.hidden()));
            if (s.architecture().qkvBias()) {
                bias(w, rng, p + "attn_q.bias", s.qDim());
                bias(w, rng, p + "attn_k.bias", s.kvDim());
                bias(w, rng, p + "attn_v.bias", s.kvDim());
            }
            matrix(w, rng, p + "attn_output.weight", s.hidden(), s.qDim(), fanIn(s.qDim()));
            norm(w, rng, p + "ffn_norm.weight", s.hidden());
            matrix(w, rng, p + "ffn_gate.weight", s.intermediate(), s.hidden(), fanIn(s.hidden()));
            matrix(w, rng, p + "ffn_up.weight", s.intermediate(), s.hidden(), fanIn(s.hidden()));
            matrix(w, rng, p + "ffn_down.weight", s.hidden(), s.intermediate(), fanIn(s.intermediate()));
        }
        norm(w, rng, "output_norm.weight", s.hidden());
        if (!tiedOutput) matrix(w, rng, "output.weight", s.vocab(), s.hidden(), fanIn(s.hidden()) * logitScale);
        w.write(path);
    }

    /** A writer holding the metadata of {@code s} (the {@code ARCH.*} keys {@link ModelShape#of} reads) and the model's name. */
    static GgufWriter header(ModelShape s, String name) {
        String a = s.architecture().ggufName();
        return new GgufWriter()
                .putString("general.architecture", a)
                .putString("general.name", name)
                .putUint32(a + ".context_length", s.contextLength())
                .putUint32(a + ".embedding_length", s.hidden())
                .putUint32(a + ".block_count", s.layers())
                .putUint32(a + ".feed_forward_length", s.intermediate())
                .putUint32(a + ".attention.head_count", s.heads())
                .putUint32(a + ".attention.head_count_kv", s.kvHeads())
                .putUint32(a + ".attention.key_length", s.headDim())
                .putUint32(a + ".attention.value_length", s.headDim())
                .putUint32(a + ".rope.dimension_count", s.ropeDims())
                .putFloat32(a + ".attention.layer_norm_rms_epsilon", s.rmsEps())
                .putFloat32(a + ".rope.freq_base", s.ropeBase())
                .putUint32(a + ".vocab_size", s.vocab())
                .putUint32("general.file_type", 0);
    }

    /** A byte-fallback SentencePiece vocabulary: unk, bos, eos, the 256 bytes, ChatML's markers, then pieces. */
    private static void vocabulary(GgufWriter w, int size) {
        List<String> tokens = new ArrayList<>(size);
        float[] scores = new float[size];
        int[] types = new int[size];
        tokens.add("<unk>");
        types[0] = 2;
        tokens.add("<s>");
        types[1] = 3;
        tokens.add("</s>");
        types[2] = 3;
        for (int b = 0; b < 256; b++) {
            tokens.add(String.format("<0x%02X>", b));
            types[3 + b] = 6;
        }
        tokens.add("<|im_start|>");
        types[259] = 3;
        tokens.add("<|im_end|>");
        types[260] = 3;
        String letters = "etaoinshrdlucmfwypvbgkjqxz";
        for (int i = FIRST_PIECE; i < size; i++) {
            int k = i - FIRST_PIECE;
            String piece = k < letters.length() ? "\u2581" + letters.charAt(k)
                    : "\u2581" + letters.charAt(k % letters.length()) + letters.charAt((k / letters.length()) % letters.length()) + (k / 676 > 0 ? String.valueOf(k / 676) : "");
            tokens.add(piece);
            types[i] = 1;
            scores[i] = -k;
        }
        w.putString("tokenizer.ggml.model", "llama")
                .putStrings("tokenizer.ggml.tokens", tokens)
                .putFloats("tokenizer.ggml.scores", scores)
                .putInts("tokenizer.ggml.token_type", types)
                .putUint32("tokenizer.ggml.unknown_token_id", 0)
                .putUint32("tokenizer.ggml.bos_token_id", 1)
                .putUint32("tokenizer.ggml.eos_token_id", 2)
                .putBool("tokenizer.ggml.add_bos_token", true)
                .putBool("tokenizer.ggml.add_eos_token", false)
                .putString("tokenizer.chat_template", CHATML_TEMPLATE);
    }

    private void matrix(GgufWriter w, SplittableRandom rng, String name, int rows, int cols, float std) {
        float[] v = new float[rows * cols];
        float bound = (float) (Math.sqrt(3.0) * std);
        for (int i = 0; i < v.length; i++) v[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        w.addTensor(name, weightType, new long[] {cols, rows}, Quantizer.encode(weightType, v));
    }

    private static void norm(GgufWriter w, SplittableRandom rng, String name, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (1.0 + 0.1 * (rng.nextDouble() * 2 - 1));
        w.addTensor(name, GgmlType.F32, new long[] {n}, Quantizer.encode(GgmlType.F32, v));
    }

    private static void bias(GgufWriter w, SplittableRandom rng, String name, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (0.2 * (rng.nextDouble() * 2 - 1));
        w.addTensor(name, GgmlType.F32, new long[] {n}, Quantizer.encode(GgmlType.F32, v));
    }

    private static float fanIn(int n) {
        return (float) (1.0 / Math.sqrt(n));
    }
}
