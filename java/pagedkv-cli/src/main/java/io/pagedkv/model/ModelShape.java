package io.pagedkv.model;

import io.pagedkv.model.gguf.GgufException;
import io.pagedkv.model.gguf.GgufFile;

/**
 * The hyperparameters of a decoder, read from GGUF metadata ({@code ARCH.*} keys).
 *
 * @param ropeDims      leading dimensions of each head that are rotated
 * @param ropeFreqScale 1 / linear scaling factor (1 when the file asks for none)
 */
public record ModelShape(Architecture architecture, int layers, int hidden, int heads, int kvHeads, int headDim,
                         int intermediate, int vocab, int contextLength, float rmsEps, float ropeBase,
                         float ropeFreqScale, int ropeDims) {
    /** Head dimensions pagedkv's attention kernels serve. */
    public static final int[] SERVED_HEAD_DIMS = {64, 128};

    public ModelShape {
        if (heads % kvHeads != 0) throw new GgufException(heads + " query heads are not a multiple of " + kvHeads + " KV heads");
        boolean served = false;
        for (int d : SERVED_HEAD_DIMS) served |= d == headDim;
        if (!served) throw new GgufException("head dimension " + headDim + " is not served by pagedkv's kernels (64 or 128)");
        if (ropeDims % 2 != 0 || ropeDims > headDim) throw new GgufException("rope dimension count " + ropeDims + " is invalid for heads of " + headDim);
    }

    public static ModelShape of(GgufFile file) {
        Architecture arch = Architecture.of(file.string("general.architecture"));
        String p = arch.ggufName() + ".";
        int hidden = (int) file.integer(p + "embedding_length");
        int heads = (int) file.integer(p + "attention.head_count");
        int kvHeads = (int) file.integer(p + "attention.head_count_kv", heads);
        int headDim = (int) file.integer(p + "attention.key_length", hidden / heads);
        if (file.integer(p + "attention.value_length", headDim) != headDim) throw new GgufException("different K and V head sizes are not supported");
        float freqScale = 1f;
        String scaling = file.has(p + "rope.scaling.type") ? file.string(p + "rope.scaling.type") : "none";
        switch (scaling) {
            case "none" -> {}
            case "linear" -> freqScale = (float) (1.0 / file.real(p + "rope.scaling.factor", 1.0));
            default -> throw new GgufException("rope scaling '" + scaling + "' is not supported (none, linear, and Llama 3's rope_freqs tensor are)");
        }
        var tokens = file.array("tokenizer.ggml.tokens");
        int vocab = (int) file.integer(p + "vocab_size", tokens != null ? tokens.size() : file.tensor("token_embd.weight").rows());
        return new ModelShape(arch, (int) file.integer(p + "block_count"), hidden, heads, kvHeads, headDim,
                (int) file.integer(p + "feed_forward_length"), vocab, (int) file.integer(p + "context_length", 4096),
                (float) file.real(p + "attention.layer_norm_rms_epsilon", 1e-5), (float) file.real(p + "rope.freq_base", 10000.0),
                freqScale, (int) file.integer(p + "rope.dimension_count", headDim));
    }

    public int qDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** One line for reports. */
    public String describe() {
        return String.format("%s: %d layers, hidden %d, %d q / %d kv heads x %d, FFN %d, vocab %d, context %d",
                architecture.ggufName(), layers, hidden, heads, kvHeads, headDim, intermediate, vocab, contextLength);
    }
}
