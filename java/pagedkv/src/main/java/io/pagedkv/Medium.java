package io.pagedkv;

/**
 * Where cached positions live, in vLLM's KV-event terms. A cache's pool is one tier: {@link #GPU}
 * for a CUDA cache, {@link #CPU} for a host cache; {@link #DISK} and {@link #REMOTE} name lower
 * tiers; a page loaded from them is in the pool, so blocks and matches name the pool.
 */
public enum Medium {
    GPU(0), CPU(1), DISK(2), REMOTE(3);

    private final int code;

    Medium(int code) {
        this.code = code;
    }

    /** The native {@code pagedkv_medium} value. */
    public int code() {
        return code;
    }

    static Medium ofCode(int code) {
        for (Medium m : values()) if (m.code == code) return m;
        throw new IllegalArgumentException("unknown pagedkv_medium " + code);
    }
}
