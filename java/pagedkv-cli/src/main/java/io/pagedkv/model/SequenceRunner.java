package io.pagedkv.model;

import io.pagedkv.Batch;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.util.Arrays;

/**
 * Runs one sequence at a time of a {@link Transformer} over a pagedkv cache: a prefill that reuses
 * whatever prefix the cache holds and computes the rest in one step, then single-token decode
 * steps. Confined to one thread.
 */
public final class SequenceRunner implements AutoCloseable {
    /**
     * A prefilled sequence.
     *
     * @param sequence the open sequence (the caller closes it; its pages stay cached)
     * @param reused   prompt positions taken from the cache, not computed
     * @param logits   next-token logits after each computed position {@code reused..n-1}, or only
     *                 after the last one when not all were asked for
     */
    public record Prefill(Sequence sequence, int reused, float[][] logits) {
        /** Logits after the prompt's last token. */
        public float[] last() {
            return logits[logits.length - 1];
        }
    }

    private final Transformer model;
    private final PagedKvCache cache;
    private final PagedKvAttention attention;

    public SequenceRunner(Transformer model, PagedKvCache cache) {
        this.model = model;
        this.cache = cache;
        this.attention = new PagedKvAttention(cache, model.shape().heads());
    }

    public Transformer model() {
        return model;
    }

    public PagedKvCache cache() {
        return cache;
    }

    /** Creates a sequence for {@code prompt}, reusing the cached prefix, and computes the rest. */
    public Prefill prefill(int[] prompt, boolean allLogits) {
        Sequence seq = cache.createSequence(prompt);
        try {
            int from = (int) seq.numComputed();
            int n = prompt.length - from;
            int[] tokens = Arrays.copyOfRange(prompt, from, prompt.length);
            int[] positions = new int[n];
            for (int i = 0; i < n; i++) positions[i] = from + i;
            int[] rows;
            if (allLogits) {
                rows = new int[n];
                for (int i = 0; i < n; i++) rows[i] = i;
            } else {
                rows = new int[] {n - 1};
            }
            float[][] logits = step(seq, tokens, positions, rows, PagedKvAttention.Kernel.PREFILL);
            return new Prefill(seq, from, logits);
        } catch (RuntimeException e) {
            seq.close();
            throw e;
        }
    }

    /** Appends {@code token} to {@code seq} and returns the logits after it. */
    public float[] decode(Sequence seq, int token) {
        int position = (int) seq.numTokens();
        seq.append(token);
        return step(seq, new int[] {token}, new int[] {position}, new int[] {0}, PagedKvAttention.Kernel.DECODE)[0];
    }

    private float[][] step(Sequence seq, int[] tokens, int[] positions, int[] rows, PagedKvAttention.Kernel kernel) {
        try (Batch batch = cache.batch(seq)) {
            float[][] logits = attention.forward(model, batch, kernel, tokens, positions, rows);
            batch.commit();
            return logits;
        }
    }

    @Override
    public void close() {
        attention.close();
    }
}
