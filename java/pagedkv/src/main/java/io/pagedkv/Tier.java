package io.pagedkv;

/**
 * A level below a cache's page pool where evicted full pages are kept and loaded back from; see
 * {@link CacheBuilder#hostTier(long)}, {@link CacheBuilder#diskTier(java.nio.file.Path, long)} and
 * {@link CacheBuilder#remoteTier(String)}.
 */
public enum Tier {
    /** Host memory (pinned when the pool is on a GPU). */
    HOST(0),
    /** One file per page object in a directory. */
    DISK(1),
    /** Redis: one node or a Redis Cluster, shared by every cache pointed at it. */
    REMOTE(2);

    private final int code;

    Tier(int code) {
        this.code = code;
    }

    /** The native {@code pagedkv_tier} value. */
    public int code() {
        return code;
    }

    /** The name used in reports: {@code host}, {@code disk}, {@code remote}. */
    public String label() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
