package io.pagedkv.model;

/**
 * The attention of one layer for the T query tokens of one step. The cache interaction lives here:
 * write K and V of the new tokens, attend over every cached position plus the new ones.
 */
public interface Attention {
    /**
     * @param layer     the layer
     * @param numTokens T, the query tokens of the step (in batch order)
     * @param q         T rows of [heads * headDim], rotary applied
     * @param k         T rows of [kvHeads * headDim], rotary applied
     * @param v         T rows of [kvHeads * headDim]
     * @param out       receives T rows of [heads * headDim]
     */
    void attend(int layer, int numTokens, float[][] q, float[][] k, float[][] v, float[][] out);
}
