package io.pagedkv.replay;

import java.util.ArrayList;
import java.util.List;

/**
 * Built-in workloads. Thread-safe (stateless).
 */
public final class Workloads {
    /** Seed of the ExLlamaV2 scenario's tokens; examples/exllamav2.jsonl holds the same requests. */
    public static final long EXLLAMAV2_SEED = 2;
    public static final String EXLLAMAV2_NAME = "ExLlamaV2 scenario (built-in: examples/exllamav2.jsonl)";

    private Workloads() {}

    /**
     * The ExLlamaV2 scenario: three prompts sharing a 400-token fixed prefix and a 200-token
     * middle, each ending in its own suffix of 80, 81 and 82 tokens (first tokens all different),
     * 300 tokens generated each. The first request computes its 680 prompt tokens; the next two
     * reuse exactly 600 of 681 and 682 (88%): 1200 of 2043 prompt positions over the three.
     */
    public static List<Request> exllamav2() {
        SplitMix64 rng = new SplitMix64(EXLLAMAV2_SEED);
        int[] prefix = randomBytes(rng, 400);
        int[] middle = randomBytes(rng, 200);
        List<Request> requests = new ArrayList<>();
        int[] firstTokens = new int[3];
        for (int i = 0; i < 3; i++) {
            int[] suffix = randomBytes(rng, 80 + i);
            // Suffixes must differ at their first token, or the shared prefix would be longer than 600.
            while (contains(firstTokens, i, suffix[0])) suffix[0] = (suffix[0] + 1) % 256;
            firstTokens[i] = suffix[0];
            int[] prompt = new int[600 + suffix.length];
            System.arraycopy(prefix, 0, prompt, 0, 400);
            System.arraycopy(middle, 0, prompt, 400, 200);
            System.arraycopy(suffix, 0, prompt, 600, suffix.length);
            requests.add(new Request("r" + (i + 1), i + 1, prompt, 300, ""));
        }
        return requests;
    }

    /** The requests as JSONL lines, the format {@link TraceParser} reads. */
    public static String toJsonl(List<Request> requests) {
        StringBuilder sb = new StringBuilder();
        for (Request r : requests) {
            sb.append(JsonLines.object(g -> {
                g.writeStringField("id", r.id());
                g.writeFieldName("tokens");
                g.writeArray(r.prompt(), 0, r.prompt().length);
                g.writeNumberField("max_new_tokens", r.maxNewTokens());
                if (!r.salt().isEmpty()) g.writeStringField("salt", r.salt());
            })).append('\n');
        }
        return sb.toString();
    }

    private static int[] randomBytes(SplitMix64 rng, int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = (int) (rng.nextLong() >>> 56);
        return a;
    }

    private static boolean contains(int[] a, int n, int value) {
        for (int i = 0; i < n; i++) if (a[i] == value) return true;
        return false;
    }
}
