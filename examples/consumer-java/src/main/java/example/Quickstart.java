package example;

import io.pagedkv.AttentionParams;
import io.pagedkv.Batch;
import io.pagedkv.Kernels;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The README's Java example: two requests whose prompts differ only in the last token. The first
 * computes all 100 positions, the second reuses 99 from the cache; each then decodes one token.
 *
 * <p>Sizes: 2 layers, 2 key/value heads and 8 query heads (grouped-query attention) of 64 floats;
 * pages of 16 tokens, 1024 of them. T, a batch's query tokens, is the number of positions to
 * compute this step: the prompt minus what the cache already holds, then 1 per decode step.
 */
public final class Quickstart {
    static final int LAYERS = 2, KV_HEADS = 2, Q_HEADS = 8, HEAD_DIM = 64;

    public static void main(String[] args) {
        int[] prompt = new int[100];
        for (int i = 0; i < prompt.length; i++) prompt[i] = 1000 + i;
        long reused = 0;
        try (var cache = PagedKvCache.builder()
                .layers(LAYERS).kvHeads(KV_HEADS).headDim(HEAD_DIM).pageSize(16).pages(1024)
                .kvDtype(KvDtype.BF16).build()) {
            for (int request = 0; request < 2; request++) {
                prompt[99] = request;                                   // the prompts differ in the last token
                try (Sequence seq = cache.createSequence(prompt, "tenant-a")) {   // matches the longest cached prefix
                    System.out.println("request " + request + ": reused " + seq.numCached() + " of " + prompt.length);
                    reused = seq.numCached();
                    step(cache, seq);                                   // prefill: T = 100 - reused
                    seq.append(42);                                     // the token the model sampled
                    step(cache, seq);                                   // decode: T = 1
                }                                                       // pages stay cached for the next prompt
            }
            System.out.println(cache.stats());                          // hit rate, pages, evictions...
        }
        if (reused != prompt.length - 1) throw new AssertionError("expected 99 reused tokens, got " + reused);
    }

    /** One model step: K/V of the T positions to compute written into their pages, attention, commit. */
    static void step(PagedKvCache cache, Sequence seq) {
        Kernels kernels = cache.kernels();
        try (Batch batch = cache.batch(seq); Arena arena = Arena.ofConfined()) {  // a batch serves one step
            long t = batch.numQoTokens();
            // k, v: [T, KV_HEADS, HEAD_DIM] floats; q, out: [T, Q_HEADS, HEAD_DIM] (a model's projections)
            MemorySegment k = arena.allocate(t * KV_HEADS * HEAD_DIM * Float.BYTES);
            MemorySegment v = arena.allocate(t * KV_HEADS * HEAD_DIM * Float.BYTES);
            MemorySegment q = arena.allocate(t * Q_HEADS * HEAD_DIM * Float.BYTES);
            MemorySegment out = arena.allocate(t * Q_HEADS * HEAD_DIM * Float.BYTES);
            for (int layer = 0; layer < LAYERS; layer++) {
                kernels.writeKv(batch, layer, k, v, KvDtype.F32);
                if (t == 1) {
                    kernels.decodeAttention(batch, layer, AttentionParams.of(Q_HEADS), q, out, null);
                } else {
                    kernels.prefillAttention(batch, layer, AttentionParams.of(Q_HEADS), q, out, null);
                }
            }
            batch.commit();                                             // computed pages join the index
        }
    }
}
