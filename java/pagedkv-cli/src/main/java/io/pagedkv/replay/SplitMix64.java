package io.pagedkv.replay;

/**
 * SplitMix64, a small generator with a fixed, documented algorithm, so weights and samples are
 * the same on every JDK. Not thread-safe.
 */
public final class SplitMix64 {
    private long state;

    public SplitMix64(long seed) {
        state = seed;
    }

    /** A generator for stream {@code index} of {@code seed}: requests sample independently of batching. */
    public static SplitMix64 forStream(long seed, long index) {
        // The mixed value seeds the stream: neighbouring streams do not overlap.
        return new SplitMix64(new SplitMix64(seed + index * 0xD1B54A32D192ED03L).nextLong());
    }

    public long nextLong() {
        long z = (state += 0x9E3779B97F4A7C15L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Uniform in [0, 1). */
    public double nextDouble() {
        return (nextLong() >>> 11) * 0x1.0p-53;
    }
}
