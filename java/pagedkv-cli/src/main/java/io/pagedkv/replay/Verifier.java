package io.pagedkv.replay;

import io.pagedkv.model.Model;
import io.pagedkv.model.PagedKvAttention;

import io.pagedkv.Batch;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import java.util.List;

/**
 * Checks that reused KV gives the model the same answer as recomputed KV: every request of a run
 * is computed again from scratch in a cache without reuse — its prompt and generated tokens in one
 * prefill (teacher forcing) — and the logits of each generated position are compared with the
 * ones the run sampled from. Those came from cached pages, partial-page copies, decode and cascade
 * kernels; these from freshly written pages and the prefill kernel.
 *
 * <p>Not thread-safe; uses the given cache from the calling thread.
 */
public final class Verifier {
    /**
     * The outcome.
     *
     * @param requests     requests checked
     * @param positions    generated positions compared
     * @param maxAbsDiff   largest |logit difference| over all of them
     * @param worstRequest id of the request where it occurred (null if nothing was compared)
     * @param worstIndex   index of the generated token where it occurred
     * @param tolerance    the bound maxAbsDiff must not exceed
     * @param top1Matches  positions whose largest logit is the same token on both sides
     * @param meanAbsDiff  mean |logit difference| over every logit of every compared position
     */
    public record Result(int requests, long positions, double maxAbsDiff, String worstRequest, int worstIndex,
                         double tolerance, long top1Matches, double meanAbsDiff) {
        public boolean ok() {
            return maxAbsDiff <= tolerance;
        }

        /** Fraction of positions whose top-1 token agrees (1 when nothing was compared). */
        public double top1Agreement() {
            return positions == 0 ? 1.0 : (double) top1Matches / positions;
        }
    }

    private Verifier() {}

    /**
     * The default bound on |logit difference| for a KV dtype. Both sides store the same rounded
     * K/V, but later layers' K/V follow attention outputs that differ in the last float bits
     * (kernels sum in different orders), and such a difference can flip one f16/bf16 rounding.
     */
    public static double defaultTolerance(KvDtype dtype) {
        return switch (dtype) {
            case F32 -> 1e-3;
            case F16 -> 1e-2;
            case BF16 -> 5e-2;
            // Quantized formats are compared with a recompute over f32 KV: the bound is the
            // format's own error on the bundled model, with margin (README, "Quantized KV pages").
            case FP8_E4M3, Q8 -> 0.5;
            case Q6 -> 1.0;
            case Q4 -> 2.0;
        };
    }

    /** The KV format of the recompute: the run's own, or f32 for a quantized run. */
    public static KvDtype recomputeDtype(KvDtype dtype) {
        return dtype.isQuantized() ? KvDtype.F32 : dtype;
    }

    /**
     * Recomputes every request of {@code results} in {@code scratch} (a cache built without reuse,
     * with room for the longest request) and compares logits.
     */
    public static Result verify(Model model, PagedKvCache scratch, List<RequestResult> results, double tolerance,
                                Scheduler.Progress progress) {
        double maxDiff = 0;
        String worst = null;
        int worstIndex = -1;
        long positions = 0;
        long top1Matches = 0;
        double sumDiff = 0;
        long logits = 0;
        int done = 0;
        try (PagedKvAttention attention = new PagedKvAttention(scratch, model.heads())) {
            for (RequestResult r : results) {
                int generated = r.generated().length;
                if (generated > 0) {
                    if (r.logits().size() != generated) {
                        throw new IllegalArgumentException("request " + r.request().id() + " has no recorded logits");
                    }
                    float[][] fresh = recompute(model, scratch, attention, r);
                    for (int g = 0; g < generated; g++) {
                        float[] a = r.logits().get(g);
                        float[] b = fresh[g];
                        if (argmax(a) == argmax(b)) top1Matches++;
                        logits += a.length;
                        for (int i = 0; i < a.length; i++) {
                            double d = Math.abs((double) a[i] - b[i]);
                            sumDiff += d;
                            if (d > maxDiff || Double.isNaN(d)) {
                                maxDiff = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
                                worst = r.request().id();
                                worstIndex = g;
                            }
                        }
                    }
                    positions += generated;
                }
                done++;
                if (progress != null) progress.update(done, results.size(), positions);
            }
        }
        return new Result(results.size(), positions, maxDiff, worst, worstIndex, tolerance, top1Matches,
                logits == 0 ? 0.0 : sumDiff / logits);
    }

    private static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /** Logits of the generated positions of r, computed in one prefill from an empty cache. */
    private static float[][] recompute(Model model, PagedKvCache scratch, PagedKvAttention attention, RequestResult r) {
        int[] prompt = r.request().prompt();
        int[] generated = r.generated();
        // The last generated token was never fed back; the others were.
        int n = prompt.length + generated.length - 1;
        int[] tokens = new int[n];
        System.arraycopy(prompt, 0, tokens, 0, prompt.length);
        System.arraycopy(generated, 0, tokens, prompt.length, generated.length - 1);
        int[] positions = new int[n];
        for (int i = 0; i < n; i++) positions[i] = i;
        int[] rows = new int[generated.length];
        for (int g = 0; g < rows.length; g++) rows[g] = prompt.length - 1 + g;
        try (Sequence seq = scratch.createSequence(tokens, r.request().salt())) {
            if (seq.numCached() != 0) {
                throw new IllegalStateException("the verification cache reused " + seq.numCached() + " tokens; it must not");
            }
            try (Batch batch = scratch.batch(List.of(seq))) {
                return attention.forward(model, batch, PagedKvAttention.Kernel.PREFILL, tokens, positions, rows);
            }
        }
    }
}
