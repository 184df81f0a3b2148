package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SamplerTest {
    private static final int VOCAB = 50;
    private static final int[] NO_HISTORY = new int[0];

    private static float[] randomLogits(long seed) {
        SplitMix64 rng = new SplitMix64(seed);
        float[] l = new float[VOCAB];
        for (int i = 0; i < VOCAB; i++) l[i] = (float) (rng.nextDouble() * 6 - 3);
        return l;
    }

    private static int argmax(float[] l) {
        int best = 0;
        for (int i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
        return best;
    }

    private static SamplingOptions opts(float t, int k, float p, float penalty, long seed, int... disallowed) {
        return new SamplingOptions(t, k, p, penalty, seed, disallowed);
    }

    @Test
    void greedyIsArgmax() {
        Sampler s = new Sampler(SamplingOptions.GREEDY, VOCAB);
        for (long seed = 0; seed < 50; seed++) {
            float[] l = randomLogits(seed);
            assertEquals(argmax(l), s.sample(l, NO_HISTORY, 0, new SplitMix64(seed)));
        }
    }

    @Test
    void topKOneIsGreedy() {
        Sampler s = new Sampler(opts(1.5f, 1, 1f, 1f, 7), VOCAB);
        SplitMix64 rng = s.streamFor(0);
        for (long seed = 0; seed < 50; seed++) {
            float[] l = randomLogits(seed);
            assertEquals(argmax(l), s.sample(l, NO_HISTORY, 0, rng));
        }
    }

    @Test
    void topKKeepsOnlyTheKMostLikely() {
        float[] l = randomLogits(3);
        double[] p = new Sampler(opts(1f, 5, 1f, 1f, 0), VOCAB).probabilities(l, NO_HISTORY, 0);
        int kept = 0;
        float[] sorted = l.clone();
        java.util.Arrays.sort(sorted);
        float fifth = sorted[VOCAB - 5];
        for (int i = 0; i < VOCAB; i++) {
            if (p[i] > 0) {
                kept++;
                assertTrue(l[i] >= fifth);
            }
        }
        assertEquals(5, kept);
        assertEquals(1.0, java.util.Arrays.stream(p).sum(), 1e-9);
    }

    @Test
    void topPKeepsTheSmallestSetReachingP() {
        float[] l = new float[VOCAB];
        java.util.Arrays.fill(l, -10f);
        l[3] = 5f;
        l[4] = 4.5f;
        l[5] = 4f;
        double[] full = new Sampler(opts(1f, 0, 1f, 1f, 0), VOCAB).probabilities(l, NO_HISTORY, 0);
        double[] p = new Sampler(opts(1f, 0, (float) (full[3] + full[4] * 0.5), 1f, 0), VOCAB).probabilities(l, NO_HISTORY, 0);
        assertTrue(p[3] > 0 && p[4] > 0, "tokens 3 and 4 are needed to reach p");
        for (int i = 0; i < VOCAB; i++) if (i != 3 && i != 4) assertEquals(0.0, p[i]);
    }

    @Test
    void disallowedTokensAreNeverSampled() {
        int[] banned = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        for (float t : new float[] {0f, 0.7f, 5f}) {
            Sampler s = new Sampler(opts(t, 0, 1f, 1f, 1, banned), VOCAB);
            SplitMix64 rng = s.streamFor(0);
            for (int trial = 0; trial < 2000; trial++) {
                float[] l = randomLogits(trial);
                l[trial % 11] = 100f; // a banned token is by far the most likely
                int token = s.sample(l, NO_HISTORY, 0, rng);
                assertTrue(token > 10, "temperature " + t + " sampled banned token " + token);
            }
        }
    }

    @Test
    void sameSeedSameTokensOtherSeedOtherTokens() {
        float[] l = randomLogits(11);
        int[] a = draw(new Sampler(opts(1f, 0, 1f, 1f, 42), VOCAB), l);
        int[] b = draw(new Sampler(opts(1f, 0, 1f, 1f, 42), VOCAB), l);
        int[] c = draw(new Sampler(opts(1f, 0, 1f, 1f, 43), VOCAB), l);
        assertArrayEquals(a, b);
        assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(c));
        Set<Integer> distinct = new HashSet<>();
        for (int t : a) distinct.add(t);
        assertTrue(distinct.size() > 5, "temperature 1 should spread over several tokens");
    }

    private static int[] draw(Sampler s, float[] l) {
        SplitMix64 rng = s.streamFor(3);
        int[] out = new int[200];
        for (int i = 0; i < out.length; i++) out[i] = s.sample(l, NO_HISTORY, 0, rng);
        return out;
    }

    @Test
    void requestStreamsAreIndependent() {
        Sampler s = new Sampler(opts(1f, 0, 1f, 1f, 42), VOCAB);
        assertNotEquals(s.streamFor(0).nextLong(), s.streamFor(1).nextLong());
        SplitMix64 zero = s.streamFor(0);
        zero.nextLong();
        assertNotEquals(zero.nextLong(), s.streamFor(1).nextLong(), "stream 1 must not be stream 0 shifted by one");
    }

    @Test
    void lowTemperatureIsGreedy() {
        Sampler s = new Sampler(opts(1e-4f, 0, 1f, 1f, 5), VOCAB);
        SplitMix64 rng = s.streamFor(0);
        for (long seed = 0; seed < 50; seed++) {
            float[] l = randomLogits(seed);
            assertEquals(argmax(l), s.sample(l, NO_HISTORY, 0, rng));
        }
    }

    @Test
    void repetitionPenaltyLowersARepeatedTokensProbability() {
        float[] l = randomLogits(9);
        int positive = argmax(l);
        int negative = 0;
        for (int i = 0; i < VOCAB; i++) if (l[i] < 0) negative = i;
        int[] history = {positive, negative, positive};
        double[] before = new Sampler(opts(1f, 0, 1f, 1f, 0), VOCAB).probabilities(l, history, history.length);
        double[] after = new Sampler(opts(1f, 0, 1f, 1.5f, 0), VOCAB).probabilities(l, history, history.length);
        assertTrue(after[positive] < before[positive], "positive logit: " + before[positive] + " -> " + after[positive]);
        assertTrue(after[negative] < before[negative], "negative logit: " + before[negative] + " -> " + after[negative]);
        int other = (positive + 1) % VOCAB == negative ? (positive + 2) % VOCAB : (positive + 1) % VOCAB;
        assertTrue(after[other] > before[other], "tokens not in the history gain probability");
        // It also changes the greedy choice when the penalty is strong enough.
        float[] two = new float[VOCAB];
        two[7] = 2f;
        two[8] = 1.9f;
        int[] seen = {7};
        assertEquals(7, new Sampler(SamplingOptions.GREEDY, VOCAB).sample(two, seen, 1, null));
        assertEquals(8, new Sampler(opts(0f, 0, 1f, 1.2f, 0), VOCAB).sample(two, seen, 1, null));
    }

    @Test
    void rejectsImpossibleOptions() {
        assertThrows(IllegalArgumentException.class, () -> new Sampler(opts(1f, 0, 1f, 1f, 0, VOCAB), VOCAB));
        int[] all = new int[VOCAB];
        for (int i = 0; i < VOCAB; i++) all[i] = i;
        assertThrows(IllegalArgumentException.class, () -> new Sampler(opts(1f, 0, 1f, 1f, 0, all), VOCAB));
        assertThrows(IllegalArgumentException.class, () -> opts(-1f, 0, 1f, 1f, 0));
        assertThrows(IllegalArgumentException.class, () -> opts(1f, 0, 0f, 1f, 0));
        assertThrows(IllegalArgumentException.class, () -> opts(1f, 0, 1f, 0f, 0));
    }
}
