package io.pagedkv.replay;

import io.pagedkv.model.Model;
import io.pagedkv.model.PagedKvAttention;

import io.pagedkv.Batch;
import io.pagedkv.CacheStats;
import io.pagedkv.OutOfPagesException;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Sequence;
import io.pagedkv.Tier;
import io.pagedkv.TierStats;
import java.util.ArrayDeque;
import java.util.EnumMap;
import java.util.Map;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * Serves a workload through the model and a cache with continuous batching: up to
 * {@code maxBatch} requests run at once; each step first prefills the requests that just joined
 * (one batch), then runs one decode step for every running request (one batch), and a finished
 * request's place goes to the next one in file order.
 *
 * <p>The model/cache contract of every step: the batch's query tokens are the positions
 * {@code numComputed..numTokens-1} of each sequence (the whole uncached prompt after creation, one
 * token after an append); their q, k, v are computed at those absolute positions, K/V written with
 * {@code writeKv}, attention run by the cache's kernels; then {@code batch.commit()} marks them
 * computed (full pages join the prefix index), the batch is closed (a committed batch is stale), and
 * only then is the sampled token appended for the next step, which builds a new batch. A batch whose
 * sequences share leading pages uses the cascade kernel, which reads those pages once.
 *
 * <p>Requests prefilled in the same step cannot reuse each other's prompt (neither is computed
 * yet). So, as SGLang does, a request that would gain at least {@value #DEFER_MIN_GAIN} more
 * positions from a request joining in the same step than from the cache waits one step, and
 * then reuses that request's freshly computed prefix.
 *
 * <p>A request is admitted only when the pages it can ever need fit beside those reserved by the
 * running ones, so appends do not run out of pages; if one still does, the most recently admitted
 * other request is preempted (released and queued again, to be recomputed — mostly from the cache).
 *
 * <p>Which waiting request joins next is the {@link SchedulePolicy}: file order (FCFS, the default)
 * or the longest prefix cached now (LPM), with an aging bound so that no request waits forever.
 *
 * <p>Not thread-safe: one run at a time, on one thread.
 */
public final class Scheduler {
    /** Progress callback, called after every step. */
    public interface Progress {
        void update(int finishedRequests, int totalRequests, long generatedTokens);
    }

    /** Positions a request must gain from waiting one step for a co-joining request's prefix. */
    static final int DEFER_MIN_GAIN = 16;
    /** Later requests admitted ahead of a waiting one before LPM admits it regardless (default). */
    public static final int DEFAULT_AGING_BOUND = 8;

    private final Model model;
    private final PagedKvCache cache;
    private final Sampler sampler;
    private final int maxBatch;
    private final boolean recordLogits;
    private final Progress progress;

    private boolean reservePages = true;
    private boolean deferToShare = true;
    private SchedulePolicy schedule = SchedulePolicy.FCFS;
    private int agingBound = DEFAULT_AGING_BOUND;
    private final List<Integer> admissionOrder = new ArrayList<>();
    private long runStart;
    private boolean ran;
    private final Deque<Slot> pending = new ArrayDeque<>();
    private final List<Slot> active = new ArrayList<>();
    private int pageSize;
    private int pagesTotal;
    private int finished;
    private long generatedTotal;
    private long prefillNanos;
    private long decodeNanos;
    private long decodeTokens;
    private int peakPagesInUse;
    private long steps;
    private long cascadeSteps;
    private long preemptions;
    private long deferrals;

    /**
     * @param recordLogits keep the logits of every generated position (for {@link Verifier})
     * @param progress     called after every step; may be null
     */
    public Scheduler(Model model, PagedKvCache cache, Sampler sampler, int maxBatch, boolean recordLogits,
                     Progress progress) {
        if (maxBatch < 1) throw new IllegalArgumentException("batch must be >= 1");
        this.model = model;
        this.cache = cache;
        this.sampler = sampler;
        this.maxBatch = maxBatch;
        this.recordLogits = recordLogits;
        this.progress = progress;
    }

    /**
     * Whether a request waits a step to reuse the prefix of one joining in the same step (default
     * on). Turn it off for a cache without prefix reuse, where waiting gains nothing.
     */
    Scheduler deferToShare(boolean on) {
        deferToShare = on;
        return this;
    }

    /**
     * Which waiting request joins next (default FCFS); for LPM, how many later requests may be
     * admitted ahead of a waiting one before it is admitted regardless ({@code agingBound >= 0}).
     */
    public Scheduler schedule(SchedulePolicy policy, int agingBound) {
        if (agingBound < 0) throw new IllegalArgumentException("agingBound must be >= 0, got " + agingBound);
        this.schedule = java.util.Objects.requireNonNull(policy, "policy");
        this.agingBound = agingBound;
        return this;
    }

    /**
     * Admits requests whenever their prompt fits now, without reserving pages for their output
     * (as vLLM does), so decode steps may run out of pages and preempt. For tests of preemption.
     */
    Scheduler optimisticAdmission() {
        reservePages = false;
        return this;
    }

    /** The state of one request while it runs. */
    private static final class Slot {
        final int index;
        final Request request;
        Sequence seq;
        IntList tokens;
        int generated;
        long cached;
        final long[] loaded = new long[Tier.values().length];  // positions loaded per tier at admission
        long admittedAt;
        long queuedNanos = -1;  // first admission - run start
        int bypassed;           // later requests admitted ahead of this one while it waited
        long ttftNanos = -1;
        List<float[]> logits;
        SplitMix64 rng;
        RequestResult result;

        Slot(int index, Request request) {
            this.index = index;
            this.request = request;
        }

        boolean done() {
            return generated >= request.maxNewTokens();
        }
    }

    /** Runs every request; returns their results in workload order. A scheduler runs once. */
    public RunResult run(List<Request> requests) {
        if (ran) throw new IllegalStateException("a Scheduler runs one workload; make a new one");
        ran = true;
        pageSize = cache.layout().pageSize();
        pagesTotal = cache.layout().pages();
        for (Request r : requests) {
            if (pagesFor(r) > pagesTotal) {
                throw new IllegalArgumentException("request " + r.id() + " needs " + pagesFor(r) + " pages, the cache has "
                        + pagesTotal);
            }
        }
        List<Slot> slots = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) slots.add(new Slot(i, requests.get(i)));
        pending.addAll(slots);
        long start = System.nanoTime();
        runStart = start;
        try (PagedKvAttention attention = new PagedKvAttention(cache, model.heads())) {
            while (!pending.isEmpty() || !active.isEmpty()) {
                List<Slot> joined = admit();
                if (!joined.isEmpty()) {
                    prefill(joined, attention);
                    retireFinished();
                }
                if (!active.isEmpty()) {
                    decode(attention);
                    retireFinished();
                }
            }
        } finally {
            for (Slot s : active) closeQuietly(s);
            active.clear();
            pending.clear();
        }
        long wall = System.nanoTime() - start;
        List<RequestResult> results = slots.stream().map(s -> s.result).toList();
        CacheStats stats = cache.stats();
        Map<Tier, TierStats> tiers = new EnumMap<>(Tier.class);
        for (Tier tier : Tier.values()) {
            TierStats t = cache.tierStats(tier);
            if (t.enabled()) tiers.put(tier, t);
        }
        return new RunResult(results, stats, wall, prefillNanos, decodeNanos, decodeTokens,
                peakPagesInUse, steps, cascadeSteps, preemptions, deferrals, schedule, admissionOrder, tiers);
    }

    /** Pages a request can ever hold: its prompt and every generated token but the last. */
    long pagesFor(Request r) {
        return (r.maxKvPositions() + pageSize - 1) / pageSize;
    }

    private List<Slot> admit() {
        List<Slot> joined = new ArrayList<>();
        long reserved = 0;
        for (Slot s : active) reserved += pagesFor(s.request);
        while (active.size() + joined.size() < maxBatch && !pending.isEmpty()) {
            Slot s = next();
            boolean alone = active.isEmpty() && joined.isEmpty();
            long need = pagesFor(s.request);
            if (!alone && reservePages && reserved + need > pagesTotal) break;
            try {
                s.seq = cache.createSequence(s.request.prompt(), s.request.salt());
            } catch (OutOfPagesException e) {
                if (alone) throw e;
                break; // wait for running requests to finish
            }
            long cached = s.seq.numCached();
            if (deferToShare && sharedWithJoiners(s.request, joined) >= cached + DEFER_MIN_GAIN) {
                s.seq.close(); // wait for the co-joiner's prefix to be computed
                s.seq = null;
                deferrals++;
                break;
            }
            take(s);
            s.admittedAt = System.nanoTime();
            if (s.queuedNanos < 0) {
                s.queuedNanos = s.admittedAt - runStart;
                admissionOrder.add(s.index);
            }
            s.cached = cached;
            for (Tier tier : Tier.values()) s.loaded[tier.code()] = s.seq.loadedTokens(tier);
            s.tokens = new IntList(s.request.prompt());
            s.generated = 0;
            s.ttftNanos = -1;
            s.logits = recordLogits ? new ArrayList<>() : List.of();
            s.rng = sampler.streamFor(s.index);
            reserved += need;
            joined.add(s);
        }
        return joined;
    }

    /**
     * The waiting request to admit next: the first in file order (FCFS), or (LPM) the one with the
     * longest prefix cached now, unless a request has been bypassed agingBound times: then the
     * oldest such one. Preempted requests wait at the front, so FCFS retries them first.
     */
    private Slot next() {
        if (schedule == SchedulePolicy.FCFS) return pending.peekFirst();
        Slot best = null;
        long bestMatch = -1;
        for (Slot s : pending) {
            if (s.bypassed >= agingBound) return s; // aged: its turn, whatever it would reuse
            long match = cache.matchLength(s.request.prompt(), s.request.salt());
            if (match > bestMatch) {
                best = s;
                bestMatch = match;
            }
        }
        return best;
    }

    /** Removes `s` from the waiting requests; every earlier-arriving one still waiting was bypassed. */
    private void take(Slot s) {
        pending.remove(s);
        if (s.queuedNanos >= 0) return; // a preempted request coming back bypasses no one
        for (Slot waiting : pending) if (waiting.index < s.index && waiting.queuedNanos < 0) waiting.bypassed++;
    }

    /** Longest prompt prefix r shares with a request joining in this step under the same salt. */
    private static long sharedWithJoiners(Request r, List<Slot> joined) {
        long best = 0;
        int[] p = r.prompt();
        for (Slot j : joined) {
            if (!j.request.salt().equals(r.salt())) continue;
            int[] q = j.request.prompt();
            int n = Math.min(p.length - 1, q.length); // the last prompt token is always computed
            int i = 0;
            while (i < n && p[i] == q[i]) i++;
            best = Math.max(best, i);
        }
        return best;
    }

    /** One batch with the uncached prompt positions of every joining request. */
    private void prefill(List<Slot> joined, PagedKvAttention attention) {
        long t0 = System.nanoTime();
        float[][] logits;
        int[] rowOwner;
        try (Batch batch = cache.batch(joined.stream().map(s -> s.seq).toList())) {
            int[] qo = batch.qoIndptr();
            int total = Math.toIntExact(batch.numQoTokens());
            int[] tokens = new int[total];
            int[] positions = new int[total];
            IntList rows = new IntList(joined.size());
            IntList owners = new IntList(joined.size());
            for (int i = 0; i < joined.size(); i++) {
                Slot s = joined.get(i);
                int n = qo[i + 1] - qo[i];
                int first = s.tokens.size() - n; // = numComputed: positions first..numTokens-1 are the queries
                for (int j = 0; j < n; j++) {
                    tokens[qo[i] + j] = s.tokens.get(first + j);
                    positions[qo[i] + j] = first + j;
                }
                if (s.request.maxNewTokens() > 0) {
                    rows.add(qo[i + 1] - 1);
                    owners.add(i);
                }
            }
            PagedKvAttention.Kernel kernel = batch.sharedPrefixPages() > 0 ? PagedKvAttention.Kernel.CASCADE
                    : PagedKvAttention.Kernel.PREFILL;
            logits = attention.forward(model, batch, kernel, tokens, positions, rows.toArray());
            batch.commit(); // the batch is stale from here: nothing uses it before it is closed
            rowOwner = owners.toArray();
            countStep(kernel);
        }
        active.addAll(joined); // before sampling: an append short of pages may preempt any running request
        for (Slot s : joined) if (s.request.maxNewTokens() == 0) s.ttftNanos = System.nanoTime() - s.admittedAt;
        for (int r = 0; r < rowOwner.length; r++) {
            Slot s = joined.get(rowOwner[r]);
            if (s.seq != null) accept(s, logits[r]);
        }
        prefillNanos += System.nanoTime() - t0;
        afterStep();
    }

    /** One batch with the last appended token of every running request. */
    private void decode(PagedKvAttention attention) {
        long t0 = System.nanoTime();
        List<Slot> step = new ArrayList<>(active);
        float[][] logits;
        try (Batch batch = cache.batch(step.stream().map(s -> s.seq).toList())) {
            if (batch.numQoTokens() != step.size()) {
                throw new IllegalStateException("decode step expected one query token per sequence, the batch has "
                        + batch.numQoTokens() + " for " + step.size());
            }
            int[] tokens = new int[step.size()];
            int[] positions = new int[step.size()];
            int[] rows = new int[step.size()];
            for (int i = 0; i < step.size(); i++) {
                Slot s = step.get(i);
                positions[i] = s.tokens.size() - 1;
                tokens[i] = s.tokens.get(positions[i]);
                rows[i] = i;
            }
            PagedKvAttention.Kernel kernel = batch.sharedPrefixPages() > 0 ? PagedKvAttention.Kernel.CASCADE
                    : PagedKvAttention.Kernel.DECODE;
            logits = attention.forward(model, batch, kernel, tokens, positions, rows);
            batch.commit(); // the batch is stale from here: nothing uses it before it is closed
            countStep(kernel);
        }
        for (int i = 0; i < step.size(); i++) {
            Slot s = step.get(i);
            if (s.seq == null) continue; // preempted by an earlier append of this step
            accept(s, logits[i]);
            decodeTokens++;
        }
        decodeNanos += System.nanoTime() - t0;
        afterStep();
    }

    /** Samples the next token of a request from its logits and, unless it is done, appends it. */
    private void accept(Slot s, float[] logits) {
        int token = sampler.sample(logits, s.tokens.raw(), s.tokens.size(), s.rng);
        if (recordLogits) s.logits.add(logits);
        if (s.generated == 0) s.ttftNanos = System.nanoTime() - s.admittedAt;
        s.generated++;
        s.tokens.add(token);
        generatedTotal++;
        if (!s.done()) append(s, token);
    }

    private void append(Slot s, int token) {
        while (true) {
            try {
                s.seq.append(token);
                return;
            } catch (OutOfPagesException e) {
                Slot victim = null;
                for (Slot other : active) if (other != s && other.seq != null) victim = other; // most recent
                if (victim == null) throw e;
                preempt(victim);
            }
        }
    }

    /** Releases a running request and queues it again at the front; it restarts from its prompt. */
    private void preempt(Slot victim) {
        closeQuietly(victim);
        victim.seq = null;
        active.remove(victim);
        generatedTotal -= victim.generated;
        pending.addFirst(victim);
        preemptions++;
    }

    private void retireFinished() {
        for (var it = active.iterator(); it.hasNext(); ) {
            Slot s = it.next();
            if (!s.done()) continue;
            int[] generated = s.tokens.toArray(s.request.prompt().length, s.tokens.size());
            s.result = new RequestResult(s.request, s.cached, generated, s.ttftNanos, List.copyOf(s.logits),
                    s.queuedNanos, s.loaded.clone());
            s.seq.close();
            s.seq = null;
            s.tokens = null;
            s.logits = null;
            it.remove();
            finished++;
        }
    }

    private void countStep(PagedKvAttention.Kernel kernel) {
        steps++;
        if (kernel == PagedKvAttention.Kernel.CASCADE) cascadeSteps++;
    }

    private void afterStep() {
        peakPagesInUse = Math.max(peakPagesInUse, cache.stats().pagesInUse());
        if (progress != null) progress.update(finished, finished + active.size() + pending.size(), generatedTotal);
    }

    private static void closeQuietly(Slot s) {
        if (s.seq == null) return;
        try {
            s.seq.close();
        } catch (RuntimeException ignored) {
            // Cleaning up after a failure: the original exception matters, not this one.
        }
    }
}
