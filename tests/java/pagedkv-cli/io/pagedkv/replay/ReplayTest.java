package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

class ReplayTest {
    private static final io.pagedkv.model.Model MODEL = BuiltinModels.transformer();

    private static RunResult run(List<Request> requests, CacheOptions cacheOptions, int batch, boolean reuse) {
        try (PagedKvCache cache = cacheOptions.build(MODEL, reuse)) {
            return new Scheduler(MODEL, cache, new Sampler(SamplingOptions.GREEDY, MODEL.vocab()), batch, false, null)
                    .deferToShare(reuse)
                    .run(requests);
        }
    }

    private static Replay.Options options(CacheOptions cache, int batch, Replay.Mode mode, boolean verify) {
        return new Replay.Options(cache, batch, SamplingOptions.GREEDY, MODEL, mode, verify, Double.NaN);
    }

    @ParameterizedTest(name = "page size {0}")
    @ValueSource(ints = {16, 256})
    void exllamav2ScenarioReusesExactly600OfEachLaterPrompt(int pageSize) {
        List<Request> requests = Workloads.exllamav2();
        RunResult r = run(requests, CacheOptions.defaults(pageSize, KvDtype.F32, Device.cpu()), 1, true);
        long[] prompt = r.requests().stream().mapToLong(RequestResult::promptTokens).toArray();
        long[] cached = r.requests().stream().mapToLong(RequestResult::cachedTokens).toArray();
        long[] computed = r.requests().stream().mapToLong(RequestResult::computedTokens).toArray();
        assertArrayEquals(new long[] {680, 681, 682}, prompt);
        assertArrayEquals(new long[] {0, 600, 600}, cached);
        assertArrayEquals(new long[] {680, 81, 82}, computed);
        for (RequestResult rr : r.requests()) assertEquals(300, rr.generated().length);
        assertEquals(2043, r.promptTokens());
        assertEquals(1200, r.cachedTokens());
        assertEquals(1200, r.stats().reusedTokens());
        assertEquals(1200.0 / 2043, r.hitRate(), 1e-12);
        assertEquals(0, r.stats().evictions());
        // A hit is never rounded down to a page: at page size 256, 600 = 2 full pages + an 88-token copy.
        assertTrue(r.stats().cowCopies() >= 2, "partial-page copies: " + r.stats().cowCopies());
    }

    @Test
    void withoutReuseEverythingIsComputed() {
        RunResult r = run(Workloads.exllamav2().stream().map(q -> q.withMaxNewTokens(2)).toList(),
                CacheOptions.defaults(16, KvDtype.F32, Device.cpu()), 1, false);
        assertEquals(0, r.cachedTokens());
        assertEquals(2043, r.computedTokens());
    }

    /**
     * docs/semantics.md's rule (contract 1), with room to spare and max_new_tokens 0: each request reuses
     * min(len - 1, longest common prefix with an earlier request under the same salt).
     */
    @ParameterizedTest(name = "page size {0}")
    @ValueSource(ints = {1, 7, 16, 64})
    void randomTraceFollowsTheLongestPrefixRule(int pageSize) {
        SplitMix64 rng = new SplitMix64(1000 + pageSize);
        List<int[]> bases = new ArrayList<>();
        for (int b = 0; b < 4; b++) bases.add(randomTokens(rng, 300));
        String[] salts = {"", "tenant-a", "tenant-b"};
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            int[] base = bases.get((int) (rng.nextDouble() * bases.size()));
            int shared = (int) (rng.nextDouble() * 260);
            int tail = (int) (rng.nextDouble() * 40);
            int[] prompt = new int[Math.max(1, shared + tail)];
            System.arraycopy(base, 0, prompt, 0, Math.min(shared, prompt.length));
            int[] rest = randomTokens(rng, prompt.length);
            System.arraycopy(rest, 0, prompt, shared, prompt.length - shared);
            if (i % 7 == 3 && !requests.isEmpty()) prompt = requests.get(i - 1).prompt().clone(); // an exact repeat
            String salt = salts[(int) (rng.nextDouble() * salts.length)];
            requests.add(new Request("q" + i, i + 1, prompt, 0, salt));
        }
        int capacityTokens = requests.stream().mapToInt(q -> q.prompt().length).sum() + 64 * pageSize;
        RunResult r = run(requests, new CacheOptions(pageSize, capacityTokens / pageSize + 8, KvDtype.F32, Device.cpu()), 1,
                true);
        assertEquals(0, r.stats().evictions(), "the rule holds with room to spare");
        for (int i = 0; i < requests.size(); i++) {
            Request q = requests.get(i);
            int best = 0;
            for (int j = 0; j < i; j++) {
                if (requests.get(j).salt().equals(q.salt())) best = Math.max(best, commonPrefix(q.prompt(), requests.get(j).prompt()));
            }
            long expected = Math.min(q.prompt().length - 1, best);
            assertEquals(expected, r.requests().get(i).cachedTokens(), "request " + q.id() + " (salt '" + q.salt() + "')");
        }
    }

    private static int[] randomTokens(SplitMix64 rng, int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = (int) ((rng.nextLong() >>> 1) % Tokenizer.VOCAB_SIZE);
        return a;
    }

    private static int commonPrefix(int[] a, int[] b) {
        int n = Math.min(a.length, b.length);
        int i = 0;
        while (i < n && a[i] == b[i]) i++;
        return i;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"exllamav2.jsonl", "chat.jsonl", "few-shot.jsonl"})
    void verifyPassesOnTheBundledWorkloads(String name) {
        List<Request> requests = TraceParser.parse(Path.of("examples", name), 16).stream()
                .map(q -> q.withMaxNewTokens(Math.min(q.maxNewTokens(), 6))).toList();
        Replay.Report report = Replay.run(name, name, requests,
                options(CacheOptions.defaults(16, KvDtype.F32, Device.cpu()), 1, Replay.Mode.REUSE_ONLY, true), null);
        Verifier.Result v = report.verify();
        assertTrue(v.ok(), "max diff " + v.maxAbsDiff());
        assertEquals(requests.stream().mapToLong(Request::maxNewTokens).sum(), v.positions());
        assertTrue(report.reuse().cachedTokens() > 0, "the workload shares prefixes");
        assertNull(report.noReuse());
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(KvDtype.class)
    void verifyPassesForEveryKvDtypeWithBatchingAndCascade(KvDtype dtype) {
        List<Request> requests = TraceParser.parse(Path.of("examples", "few-shot.jsonl"), 16).stream()
                .map(q -> q.withMaxNewTokens(4)).toList();
        Replay.Report report = Replay.run("few-shot", "few-shot", requests,
                options(CacheOptions.defaults(16, dtype, Device.cpu()), 3, Replay.Mode.REUSE_ONLY, true), null);
        assertTrue(report.verify().ok(), dtype + ": max diff " + report.verify().maxAbsDiff());
        assertTrue(report.reuse().cascadeSteps() > 0, "a batch sharing the system prompt uses the cascade kernel");
        assertTrue(report.reuse().cachedTokens() > 0);
        // Quantized runs are compared with an f32 recompute: their error shows, but stays small.
        if (dtype.isQuantized()) assertTrue(report.verify().maxAbsDiff() > 0, dtype + " compared with f32 KV");
        else assertEquals(1.0, report.verify().top1Agreement());
    }

    @Test
    void quantizedPagesHoldFewerBytesAndTheHadamardRotationIsAccepted() {
        List<Request> requests = TraceParser.parse(Path.of("examples", "few-shot.jsonl"), 16).stream()
                .map(q -> q.withMaxNewTokens(3)).toList();
        Replay.Report f32 = Replay.run("few-shot", "few-shot", requests,
                options(CacheOptions.defaults(16, KvDtype.F32, Device.cpu()), 2, Replay.Mode.REUSE_ONLY, false), null);
        CacheOptions q4 = new CacheOptions(16, 1024, KvDtype.Q4, Device.cpu(), true);
        Replay.Report rotated = Replay.run("few-shot", "few-shot", requests,
                options(q4, 2, Replay.Mode.REUSE_ONLY, true), null);
        // q4: (32 bytes of codes + 4 of scales) per head and K|V, against 256 for f32.
        assertEquals(f32.reuse().stats().kvBytesPerToken() * 36 / 256, rotated.reuse().stats().kvBytesPerToken());
        assertTrue(rotated.verify().ok(), "max diff " + rotated.verify().maxAbsDiff());
        assertTrue(rotated.verify().top1Agreement() > 0.5);
    }

    @Test
    void continuousBatchingServesEveryRequestWithTheSameReuse() {
        List<Request> requests = TraceParser.parse(Path.of("examples", "few-shot.jsonl"), 16).stream()
                .map(q -> q.withMaxNewTokens(3 + q.line())).toList(); // different lengths: requests finish apart
        RunResult serial = run(requests, CacheOptions.defaults(16, KvDtype.F32, Device.cpu()), 1, true);
        RunResult batched = run(requests, CacheOptions.defaults(16, KvDtype.F32, Device.cpu()), 2, true);
        for (int i = 0; i < requests.size(); i++) {
            assertEquals(requests.get(i).maxNewTokens(), batched.requests().get(i).generated().length);
        }
        // Requests prefilled together could not reuse each other's prompt: the one that would gain waits a step.
        assertEquals(serial.cachedTokens(), batched.cachedTokens());
        assertTrue(batched.deferrals() > 0);
        assertTrue(batched.steps() < serial.steps(), batched.steps() + " vs " + serial.steps());
    }

    @Test
    void aSmallCacheEvictsAndStillVerifies() {
        List<Request> requests = TraceParser.parse(Path.of("examples", "chat.jsonl"), 16).stream()
                .map(q -> q.withMaxNewTokens(4)).toList();
        int longest = requests.stream().mapToInt(q -> q.prompt().length).max().orElseThrow();
        CacheOptions small = new CacheOptions(16, (longest + 3) / 16 + 2, KvDtype.F32, Device.cpu());
        Replay.Report report = Replay.run("chat", "chat", requests, options(small, 1, Replay.Mode.REUSE_ONLY, true), null);
        assertTrue(report.reuse().stats().evictions() > 0, "a cache the size of one request must evict");
        assertTrue(report.verify().ok());
    }

    @Test
    void runningOutOfPagesPreemptsAndRecomputes() {
        List<Request> requests = new ArrayList<>();
        SplitMix64 rng = new SplitMix64(77);
        int[] shared = randomTokens(rng, 40);
        for (int i = 0; i < 4; i++) {
            int[] prompt = new int[60];
            System.arraycopy(shared, 0, prompt, 0, 40);
            System.arraycopy(randomTokens(rng, 20), 0, prompt, 40, 20);
            requests.add(new Request("p" + i, i + 1, prompt, 40, ""));
        }
        // Each request needs 7 pages of 16 at the end; 12 pages hold two at most.
        CacheOptions tight = new CacheOptions(16, 12, KvDtype.F32, Device.cpu());
        RunResult preempting;
        try (PagedKvCache cache = tight.build(MODEL, true)) {
            preempting = new Scheduler(MODEL, cache, new Sampler(SamplingOptions.GREEDY, MODEL.vocab()), 4, true, null)
                    .optimisticAdmission().run(requests);
        }
        assertTrue(preempting.preemptions() > 0, "4 requests admitted into room for 2 must preempt");
        for (RequestResult r : preempting.requests()) assertEquals(40, r.generated().length);
        try (PagedKvCache scratch = tight.build(MODEL, false)) {
            Verifier.Result v = Verifier.verify(MODEL, scratch, preempting.requests(), 1e-3, null);
            assertTrue(v.ok(), "max diff " + v.maxAbsDiff());
        }
    }

    @Test
    void verifyCatchesLogitsThatDiffer() {
        List<Request> requests = List.of(new Request("a", 1, Tokenizer.encode("hello world"), 3, ""));
        CacheOptions options = CacheOptions.defaults(16, KvDtype.F32, Device.cpu());
        RunResult r;
        try (PagedKvCache cache = options.build(MODEL, true)) {
            r = new Scheduler(MODEL, cache, new Sampler(SamplingOptions.GREEDY, MODEL.vocab()), 1, true, null).run(requests);
        }
        RequestResult good = r.requests().get(0);
        assertEquals(3, good.logits().size());
        List<float[]> tampered = new ArrayList<>(good.logits());
        float[] bad = tampered.get(1).clone();
        bad[7] += 0.01f;
        tampered.set(1, bad);
        RequestResult wrong = new RequestResult(good.request(), good.cachedTokens(), good.generated(), good.ttftNanos(), tampered);
        try (PagedKvCache scratch = options.build(MODEL, false)) {
            Verifier.Result ok = Verifier.verify(MODEL, scratch, List.of(good), 1e-3, null);
            assertTrue(ok.ok(), "max diff " + ok.maxAbsDiff());
            Verifier.Result v = Verifier.verify(MODEL, scratch, List.of(wrong), 1e-3, null);
            assertFalse(v.ok());
            assertEquals("a", v.worstRequest());
            assertEquals(1, v.worstIndex());
            assertTrue(v.maxAbsDiff() > 0.009, "max diff " + v.maxAbsDiff());
        }
    }

    @Test
    void promptsLongerThanTheCacheAreRejectedNamingTheLine() {
        List<Request> requests = List.of(new Request("ok", 1, new int[] {1, 2, 3}, 1, ""),
                new Request("long", 2, new int[100], 10, ""));
        TraceException e = assertThrows(TraceException.class,
                () -> Replay.checkCapacity("t.jsonl", requests, new CacheOptions(16, 4, KvDtype.F32, Device.cpu())));
        assertEquals(2, e.line());
        assertTrue(e.getMessage().contains("\"long\" is longer than the cache can ever hold"), e.getMessage());
    }
}
