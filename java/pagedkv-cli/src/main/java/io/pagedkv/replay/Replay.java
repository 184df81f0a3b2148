package io.pagedkv.replay;

import io.pagedkv.model.Model;

import io.pagedkv.KvEventPublisher;
import io.pagedkv.PagedKvCache;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A workload through the model loop, with prefix reuse and without it, side by side; optionally
 * verified against a from-scratch recomputation. This is what {@code pagedkv replay} runs.
 *
 * <p>Not thread-safe: one replay at a time per instance of its inputs.
 */
public final class Replay {
    /** Which runs to make. */
    public enum Mode {
        /** Reuse on, then the same workload with reuse off, for the speed-up. */
        COMPARE,
        /** Only reuse on. */
        REUSE_ONLY,
        /** Only reuse off. */
        NO_REUSE_ONLY
    }

    /**
     * Where the run with reuse publishes its KV events (vLLM's ZeroMQ wire format).
     *
     * @param endpoint       PUB socket, e.g. {@code tcp://*:5557}
     * @param replayEndpoint ROUTER replay socket, or null
     * @param topic          first frame of every message
     */
    public record KvEventsOptions(String endpoint, String replayEndpoint, String topic) {
        /** The topic when none is given. */
        public static final String DEFAULT_TOPIC = "kv@pagedkv";

        public KvEventsOptions {
            Objects.requireNonNull(endpoint);
            Objects.requireNonNull(topic);
        }
    }

    /**
     * @param cache      how caches are built
     * @param batch      requests served at once (continuous batching)
     * @param sampling   how tokens are chosen
     * @param model      the model (the built-in tiny Llama or a GGUF file's)
     * @param mode       which runs to make
     * @param verify     recompute every request without reuse and compare logits
     * @param tolerance  bound on |logit difference| for verify; NaN = the KV dtype's default
     * @param schedule   which waiting request joins next; with LPM and reuse, an FCFS run with reuse
     *                   is made too, for the comparison
     * @param agingBound LPM: later requests admitted ahead of a waiting one before it goes regardless
     * @param kvEvents   where the first run with reuse publishes its KV events, or null
     * @param scoreTokens length of the fixed stream {@link TokenScorer} scores after the runs; 0 = none
     */
    public record Options(CacheOptions cache, int batch, SamplingOptions sampling, Model model, Mode mode,
                          boolean verify, double tolerance, SchedulePolicy schedule, int agingBound,
                          KvEventsOptions kvEvents, int scoreTokens) {
        public Options {
            Objects.requireNonNull(cache);
            Objects.requireNonNull(sampling);
            Objects.requireNonNull(model);
            Objects.requireNonNull(mode);
            Objects.requireNonNull(schedule);
            if (batch < 1) throw new IllegalArgumentException("batch must be >= 1");
            if (agingBound < 0) throw new IllegalArgumentException("agingBound must be >= 0");
            if (scoreTokens < 0 || scoreTokens == 1) throw new IllegalArgumentException("scoreTokens must be 0 or >= 2");
        }

        /** No token stream scored. */
        public Options(CacheOptions cache, int batch, SamplingOptions sampling, Model model, Mode mode,
                       boolean verify, double tolerance, SchedulePolicy schedule, int agingBound,
                       KvEventsOptions kvEvents) {
            this(cache, batch, sampling, model, mode, verify, tolerance, schedule, agingBound, kvEvents, 0);
        }

        /** FCFS, no events. */
        public Options(CacheOptions cache, int batch, SamplingOptions sampling, Model model, Mode mode,
                       boolean verify, double tolerance) {
            this(cache, batch, sampling, model, mode, verify, tolerance, SchedulePolicy.FCFS,
                    Scheduler.DEFAULT_AGING_BOUND, null);
        }

        public double effectiveTolerance() {
            return Double.isNaN(tolerance) ? Verifier.defaultTolerance(cache.kvDtype()) : tolerance;
        }
    }

    /**
     * What a replay found.
     *
     * @param workload name of the workload
     * @param requests the requests
     * @param options  the options
     * @param reuse    the run with reuse (under the chosen schedule), or null
     * @param noReuse  the run without reuse, or null
     * @param verify   the verification, or null
     * @param fcfs     with an LPM schedule: the same run with reuse in FCFS order, or null
     * @param events   what the KV-event publisher of the run with reuse did, or null
     * @param score    the fixed token stream's scores, or null
     */
    public record Report(String workload, List<Request> requests, Options options, RunResult reuse, RunResult noReuse,
                         Verifier.Result verify, RunResult fcfs, KvEventPublisher.Stats events, TokenScorer.Result score) {
        /** The run reported per request: with reuse when made, else without. */
        public RunResult primary() {
            return reuse != null ? reuse : noReuse;
        }

        /** Whether both runs generated the same tokens for every request (null unless both ran). */
        public Boolean outputsMatch() {
            if (reuse == null || noReuse == null) return null;
            for (int i = 0; i < reuse.requests().size(); i++) {
                if (!Arrays.equals(reuse.requests().get(i).generated(), noReuse.requests().get(i).generated())) return false;
            }
            return true;
        }
    }

    /** Progress of the phases of a replay. */
    public interface Listener {
        /** A phase ("reuse on", "reuse off", "verify") starts. */
        void phase(String name);

        /** Within the current phase. */
        void update(int finishedRequests, int totalRequests, long tokens);

        /** The current phase ended. */
        void phaseDone();
    }

    private Replay() {}

    /**
     * Rejects requests the cache could never hold: a message naming the request's line.
     *
     * @throws TraceException for the first request whose prompt and generated tokens need more
     *                        pages than the cache has
     */
    public static void checkCapacity(String source, List<Request> requests, CacheOptions cache) {
        for (Request r : requests) {
            long pages = (r.maxKvPositions() + cache.pageSize() - 1) / cache.pageSize();
            if (pages > cache.pages()) {
                throw new TraceException(source, r.line(), String.format(
                        "request \"%s\" is longer than the cache can ever hold: %d prompt tokens + %d to generate need %d pages of %d tokens, the cache has %d (--pages)",
                        r.id(), r.prompt().length, r.maxNewTokens(), pages, cache.pageSize(), cache.pages()));
            }
        }
    }

    /** Runs the workload as {@code options} say. */
    public static Report run(String workload, String source, List<Request> requests, Options options, Listener listener) {
        checkCapacity(source, requests, options.cache());
        Sampler sampler = new Sampler(options.sampling(), options.model().vocab());
        Model model = options.model();
        warmUp(model, options.cache());
        boolean verify = options.verify();
        boolean lpm = options.schedule() == SchedulePolicy.LPM;
        RunResult reuse = null;
        RunResult noReuse = null;
        RunResult fcfs = null;
        KvEventPublisher.Stats[] events = {null};
        if (options.mode() != Mode.NO_REUSE_ONLY) {
            reuse = runOnce(model, options, sampler, requests, true, options.schedule(), verify,
                    lpm ? "reuse on, lpm" : "reuse on", listener, events);
            if (lpm) fcfs = runOnce(model, options, sampler, requests, true, SchedulePolicy.FCFS, false,
                    "reuse on, fcfs", listener, null);
        }
        if (options.mode() != Mode.REUSE_ONLY) {
            noReuse = runOnce(model, options, sampler, requests, false, SchedulePolicy.FCFS, verify && reuse == null,
                    "reuse off", listener, null);
        }
        Verifier.Result check = null;
        if (verify) {
            RunResult checked = reuse != null ? reuse : noReuse;
            phase(listener, "verify");
            CacheOptions recompute = options.cache().withKvDtype(Verifier.recomputeDtype(options.cache().kvDtype()));
            try (PagedKvCache scratch = recompute.build(options.model(), false)) {
                check = Verifier.verify(model, scratch, checked.requests(), options.effectiveTolerance(),
                        progressOf(listener));
            }
            phaseDone(listener);
        }
        TokenScorer.Result score = null;
        if (options.scoreTokens() > 0) {
            phase(listener, "score");
            score = TokenScorer.score(model, options.cache(),
                    TokenScorer.sample(model, options.cache(), options.scoreTokens()));
            phaseDone(listener);
        }
        return new Report(workload, requests, options, reuse, noReuse, check, fcfs, events[0], score);
    }

    /** One run; with {@code events} non-null and KV events asked for, publishes them and keeps the stats. */
    private static RunResult runOnce(Model model, Options options, Sampler sampler, List<Request> requests,
                                     boolean reuse, SchedulePolicy schedule, boolean record, String name,
                                     Listener listener, KvEventPublisher.Stats[] events) {
        phase(listener, name);
        KvEventsOptions publish = events == null ? null : options.kvEvents();
        try (PagedKvCache cache = options.cache().build(options.model(), reuse);
             KvEventPublisher publisher = publish == null ? null : publisher(publish, cache)) {
            RunResult result = new Scheduler(model, cache, sampler, options.batch(), record, progressOf(listener))
                    .deferToShare(reuse)
                    .schedule(schedule, options.agingBound())
                    .run(requests);
            if (publisher != null) events[0] = publisher.stats();
            return result;
        } finally {
            phaseDone(listener);
        }
    }

    private static KvEventPublisher publisher(KvEventsOptions o, PagedKvCache cache) {
        KvEventPublisher.Builder builder = KvEventPublisher.builder(o.endpoint()).topic(o.topic());
        if (o.replayEndpoint() != null) builder.replayEndpoint(o.replayEndpoint());
        return builder.start(cache);
    }

    /**
     * Runs a few prefill and decode steps on a throwaway cache, so the JIT has compiled the model
     * before anything is timed and neither run of the comparison pays for it alone.
     */
    private static void warmUp(Model model, CacheOptions cacheOptions) {
        int vocab = model.vocab();
        SplitMix64 rng = new SplitMix64(1);
        int capacity = cacheOptions.pages() * cacheOptions.pageSize();
        int promptLength = Math.max(1, Math.min(128, capacity / 4));
        int newTokens = Math.max(1, Math.min(128, capacity / 4 - promptLength));
        int[] prompt = new int[promptLength];
        for (int i = 0; i < prompt.length; i++) prompt[i] = (int) ((rng.nextLong() >>> 1) % vocab);
        List<Request> warm = List.of(new Request("warm-up-1", 0, prompt, newTokens, ""),
                new Request("warm-up-2", 0, prompt, newTokens, ""));
        Sampler greedy = new Sampler(SamplingOptions.GREEDY, vocab);
        for (int round = 0; round < 3; round++) {
            try (PagedKvCache cache = cacheOptions.build(model, round != 1)) {
                new Scheduler(model, cache, greedy, 1 + round % 2, false, null).run(warm);
            }
        }
    }

    private static Scheduler.Progress progressOf(Listener listener) {
        return listener == null ? null : listener::update;
    }

    private static void phase(Listener listener, String name) {
        if (listener != null) listener.phase(name);
    }

    private static void phaseDone(Listener listener) {
        if (listener != null) listener.phaseDone();
    }
}
