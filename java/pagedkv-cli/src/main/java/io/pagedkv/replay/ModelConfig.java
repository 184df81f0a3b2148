package io.pagedkv.replay;

/**
 * Shape of the tiny Llama-style model. The KV cache must be built with {@link #layers()},
 * {@link #kvHeads()} and {@link #headDim()} of the model it serves.
 *
 * @param layers       decoder blocks
 * @param hidden       residual stream width
 * @param qHeads       query heads (a multiple of kvHeads: grouped-query attention)
 * @param kvHeads      key/value heads
 * @param headDim      width of one head (the cache kernels support 64 and 128)
 * @param intermediate SwiGLU width
 * @param vocab        vocabulary size
 * @param ropeTheta    rotary base
 * @param normEps      RMSNorm epsilon
 * @param logitScale   multiplies the output logits, so the next-token distribution is neither flat nor one-hot
 * @param seed         seed the weights are drawn from
 */
public record ModelConfig(int layers, int hidden, int qHeads, int kvHeads, int headDim, int intermediate, int vocab,
                          float ropeTheta, float normEps, float logitScale, long seed) {
    /** The built-in model: 2 layers, hidden 256, 8 query heads over 2 KV heads of 64, vocabulary 259. */
    public static final ModelConfig DEFAULT =
            new ModelConfig(2, 256, 8, 2, 64, 512, Tokenizer.VOCAB_SIZE, 10000f, 1e-5f, 3f, 20240601L);

    public ModelConfig {
        if (layers < 1 || hidden < 1 || qHeads < 1 || kvHeads < 1 || headDim < 2 || intermediate < 1 || vocab < 1) {
            throw new IllegalArgumentException("model dimensions must be positive");
        }
        if (qHeads % kvHeads != 0) throw new IllegalArgumentException("qHeads must be a multiple of kvHeads");
        if (headDim % 2 != 0) throw new IllegalArgumentException("headDim must be even (rotary pairs)");
    }

    public int qDim() {
        return qHeads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Number of weights (floats). */
    public long parameters() {
        long perLayer = 2L * hidden + (long) hidden * (qDim() + 2L * kvDim()) + (long) qDim() * hidden
                + 3L * hidden * intermediate;
        return layers * perLayer + 2L * vocab * hidden + hidden;
    }

    /** One line for reports. */
    public String describe() {
        return String.format("tiny Llama: %d layers, hidden %d, %d q / %d kv heads x %d, SwiGLU %d, vocab %d, %.1fM weights from seed %d",
                layers, hidden, qHeads, kvHeads, headDim, intermediate, vocab, parameters() / 1e6, seed);
    }
}
