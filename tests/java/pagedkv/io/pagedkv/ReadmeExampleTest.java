package io.pagedkv;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** The README's Java example, kept compiling and true: the second prompt reuses the first. */
class ReadmeExampleTest {
    @Test
    void readmeExampleRunsAndReuses() {
        int[] prompt = new int[100];
        for (int i = 0; i < prompt.length; i++) prompt[i] = 1000 + i;
        long[] cached = new long[2];
        try (var cache = PagedKvCache.builder()
                .layers(2).kvHeads(2).headDim(64).pageSize(16).pages(1024)
                .kvDtype(KvDtype.BF16).build();
             Arena arena = Arena.ofConfined()) {
            Kernels kernels = cache.kernels();
            for (int request = 0; request < 2; request++) {
                try (Sequence seq = cache.createSequence(prompt, "tenant-a")) {
                    cached[request] = seq.numCached();
                    try (Batch batch = cache.batch(seq)) {
                        long t = batch.numQoTokens();
                        MemorySegment k = arena.allocate(t * 2 * 64 * 4), v = arena.allocate(t * 2 * 64 * 4);
                        MemorySegment q = arena.allocate(t * 8 * 64 * 4), out = arena.allocate(t * 8 * 64 * 4);
                        for (int layer = 0; layer < 2; layer++) {
                            kernels.writeKv(batch, layer, k, v, KvDtype.F32);
                            kernels.prefillAttention(batch, layer, AttentionParams.of(8), q, out, null);
                        }
                        batch.commit();
                    }
                    seq.append(7);
                }
            }
            assertEquals(0, cached[0]);
            assertEquals(prompt.length - 1, cached[1], "all but the last prompt token reused");
            assertEquals(99, cache.stats().reusedTokens());
        }
    }
}
