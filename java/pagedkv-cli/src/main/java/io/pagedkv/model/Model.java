package io.pagedkv.model;

/**
 * A decoder whose attention runs elsewhere (over pagedkv): the built-in tiny Llama of the replay or
 * a {@link Transformer} over a GGUF file. A KV cache serving it is built with its {@link #layers()},
 * {@link #kvHeads()} and {@link #headDim()}.
 */
public interface Model {
    /**
     * Runs T tokens through the model.
     *
     * @param tokens    token ids of the step's query tokens, in batch order
     * @param positions absolute position of each token in its sequence (for the rotary embedding)
     * @param logitRows indexes into tokens whose next-token logits are wanted
     * @param attention the attention of each layer
     * @return logits, one row of {@link #vocab()} floats per entry of logitRows
     */
    float[][] forward(int[] tokens, int[] positions, int[] logitRows, Attention attention);

    int layers();

    /** Query heads. */
    int heads();

    int kvHeads();

    int headDim();

    int vocab();

    /** One line for reports. */
    String describe();
}
