package io.pagedkv;

/**
 * Parameters of the attention kernels. Queries, outputs and log-sum-exps are float32.
 *
 * @param numQoHeads query (and output) heads; a multiple of the cache's KV heads (GQA; equal = MHA)
 * @param smScale softmax scale; 0 means {@code 1/sqrt(headDim)}
 * @param numThreads CPU worker threads; 0 means all cores
 * @param kvSplitSize split the KV length into chunks of this many tokens; 0 = automatic, -1 = never
 */
public record AttentionParams(int numQoHeads, float smScale, int numThreads, int kvSplitSize) {
    public AttentionParams {
        if (numQoHeads < 1) throw new IllegalArgumentException("numQoHeads must be >= 1, got " + numQoHeads);
        if (!Float.isFinite(smScale) || smScale < 0)
            throw new IllegalArgumentException("smScale must be finite and >= 0 (0 = 1/sqrt(headDim)), got " + smScale);
        if (numThreads < 0) throw new IllegalArgumentException("numThreads must be >= 0 (0 = all cores), got " + numThreads);
        if (kvSplitSize < -1)
            throw new IllegalArgumentException("kvSplitSize must be >= -1 (0 = auto, -1 = never), got " + kvSplitSize);
    }

    /** Default parameters: scale {@code 1/sqrt(headDim)}, all cores, automatic KV split. */
    public static AttentionParams of(int numQoHeads) {
        return new AttentionParams(numQoHeads, 0f, 0, 0);
    }

    public AttentionParams withNumQoHeads(int value) {
        return new AttentionParams(value, smScale, numThreads, kvSplitSize);
    }

    public AttentionParams withSmScale(float value) {
        return new AttentionParams(numQoHeads, value, numThreads, kvSplitSize);
    }

    public AttentionParams withNumThreads(int value) {
        return new AttentionParams(numQoHeads, smScale, value, kvSplitSize);
    }

    public AttentionParams withKvSplitSize(int value) {
        return new AttentionParams(numQoHeads, smScale, numThreads, value);
    }
}
