package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The admission policies: FCFS keeps file order; LPM saves prefill and never starves past its aging bound. */
class SchedulerTest {
    private static final io.pagedkv.model.Model MODEL = BuiltinModels.transformer();
    // Six interleaved three-turn conversations (the shape of examples/interleaved-chats.jsonl, kept
    // small for speed): every turn repeats its conversation's 96-token context and earlier turns.
    // 24 pages of 16 hold about two conversations, so FCFS finds every context evicted.
    private static final List<Request> CHATS = interleavedChats(6, 3, 96, 24);
    private static final CacheOptions SMALL = new CacheOptions(16, 24, KvDtype.F32, Device.cpu());

    private static List<Request> interleavedChats(int conversations, int turns, int context, int turnTokens) {
        java.util.Random random = new java.util.Random(3);
        int[][] prompts = new int[conversations][];
        for (int c = 0; c < conversations; c++) prompts[c] = random.ints(context, 0, 250).toArray();
        List<Request> requests = new ArrayList<>();
        for (int t = 0; t < turns; t++) {
            for (int c = 0; c < conversations; c++) {
                int[] grown = java.util.Arrays.copyOf(prompts[c], prompts[c].length + turnTokens);
                for (int i = prompts[c].length; i < grown.length; i++) grown[i] = random.nextInt(250);
                prompts[c] = grown;
                requests.add(new Request("chat" + c + "-turn" + t, 0, grown, 1, "user-" + c));
            }
        }
        return requests;
    }

    @Test
    void theBundledWorkloadInterleavesConversations() {
        List<Request> chats = TraceParser.parse(Path.of("examples/interleaved-chats.jsonl"), 16);
        assertEquals(32, chats.size());
        assertEquals("chat1-turn1", chats.get(0).id());
        assertEquals("chat2-turn1", chats.get(1).id());
        assertEquals("chat1-turn2", chats.get(8).id());
        // Turn 2 of a conversation repeats turn 1's prompt, under the conversation's salt.
        int[] first = chats.get(0).prompt();
        int[] second = chats.get(8).prompt();
        assertEquals(chats.get(0).salt(), chats.get(8).salt());
        assertTrue(java.util.Arrays.mismatch(first, second) > first.length - 8);
    }

    private static RunResult run(List<Request> requests, CacheOptions options, int batch, SchedulePolicy policy,
                                 int agingBound) {
        try (PagedKvCache cache = options.build(MODEL, true)) {
            return new Scheduler(MODEL, cache, new Sampler(SamplingOptions.GREEDY, MODEL.vocab()), batch, false, null)
                    .schedule(policy, agingBound)
                    .run(requests);
        }
    }

    @Test
    void fcfsAdmitsInFileOrder() {
        RunResult r = run(CHATS, SMALL, 2, SchedulePolicy.FCFS, 0);
        assertEquals(IntStream.range(0, CHATS.size()).boxed().toList(), r.admissionOrder());
        assertEquals(0, r.maxBypassed());
    }

    @Test
    void lpmOnInterleavedChatsComputesLessPrefillThanFcfs() {
        RunResult fcfs = run(CHATS, SMALL, 1, SchedulePolicy.FCFS, Scheduler.DEFAULT_AGING_BOUND);
        RunResult lpm = run(CHATS, SMALL, 1, SchedulePolicy.LPM, Scheduler.DEFAULT_AGING_BOUND);
        assertTrue(lpm.computedTokens() < fcfs.computedTokens() * 3 / 4,
                "lpm computed " + lpm.computedTokens() + ", fcfs " + fcfs.computedTokens());
        // The same requests generate the same tokens whatever the order (greedy, per-request streams).
        for (int i = 0; i < CHATS.size(); i++)
            assertEquals(List.of(fcfs.requests().get(i).generated().length), List.of(lpm.requests().get(i).generated().length));
    }

    @ParameterizedTest(name = "aging bound {0}")
    @ValueSource(ints = {0, 1, 3, 1000})
    void lpmNeverPassesOverARequestMoreThanTheAgingBound(int bound) {
        for (int batch : new int[] {1, 3}) {
            RunResult r = run(CHATS, SMALL, batch, SchedulePolicy.LPM, bound);
            assertEquals(CHATS.size(), r.admissionOrder().size());
            assertTrue(r.maxBypassed() <= bound, "bound " + bound + ", batch " + batch + ": " + r.maxBypassed());
            if (bound == 0) assertEquals(IntStream.range(0, CHATS.size()).boxed().toList(), r.admissionOrder());
        }
    }

    @Test
    void lpmStarvationIsBoundedEvenWhenOneRequestNeverMatches() {
        // One unrelated request first, then many requests sharing a prefix: without aging, LPM would
        // serve every sharer before it.
        List<Request> requests = new ArrayList<>();
        requests.add(new Request("loner", 0, IntStream.range(0, 40).map(i -> 200 + i % 7).toArray(), 1, "other"));
        int[] shared = IntStream.range(0, 64).map(i -> 3 + i % 50).toArray();
        for (int i = 0; i < 20; i++) {
            int[] prompt = java.util.Arrays.copyOf(shared, shared.length + 3);
            prompt[shared.length] = i;
            requests.add(new Request("sharer-" + i, 0, prompt, 1, ""));
        }
        RunResult r = run(requests, new CacheOptions(16, 64, KvDtype.F32, Device.cpu()), 1, SchedulePolicy.LPM, 4);
        assertTrue(r.maxBypassed() <= 4, "passed over " + r.maxBypassed());
        assertTrue(r.admissionOrder().indexOf(0) <= 5, "the loner was admitted " + r.admissionOrder().indexOf(0) + "th");
    }
}
