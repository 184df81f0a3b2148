package io.pagedkv.replay;

import io.pagedkv.CacheBuilder;
import java.nio.file.Path;

/**
 * The tiers below the pool a replay's cache with reuse gets (the run without reuse never has
 * any, so it cannot read what the run with reuse stored). With a disk or Redis tier every
 * committed full page is written through, so a later replay (or another server) finds the
 * whole run there, not only what this one's pool happened to evict.
 *
 * @param hostBytes host-memory tier size (0: none)
 * @param diskDir   disk tier directory (null: none)
 * @param diskBytes disk tier budget
 * @param remote    {@code redis://HOST:PORT[,HOST:PORT...]} (null: none)
 * @param namespace who may share page objects (the model's name by default)
 */
public record TierOptions(long hostBytes, Path diskDir, long diskBytes, String remote, String namespace) {
    /** Default disk tier budget when {@code --disk-tier DIR} gives no size. */
    public static final long DEFAULT_DISK_BYTES = 4L << 30;

    /** No tiers. */
    public static final TierOptions NONE = new TierOptions(0, null, 0, null, "");

    public boolean any() {
        return hostBytes > 0 || diskDir != null || remote != null;
    }

    /** Adds the tiers to {@code builder}. */
    public CacheBuilder applyTo(CacheBuilder builder) {
        if (!any()) return builder;
        builder.tierNamespace(namespace);
        if (hostBytes > 0) builder.hostTier(hostBytes);
        if (diskDir != null) builder.diskTier(diskDir, diskBytes);
        if (remote != null) builder.remoteTier(remote);
        return builder.writeThrough(diskDir != null || remote != null);
    }

    /** One line for reports. */
    public String describe() {
        StringBuilder s = new StringBuilder();
        if (hostBytes > 0) s.append("host ").append(hostBytes >> 20).append(" MiB");
        if (diskDir != null) s.append(s.isEmpty() ? "" : ", ").append("disk ").append(diskDir).append(' ')
                .append(diskBytes >> 20).append(" MiB");
        if (remote != null) s.append(s.isEmpty() ? "" : ", ").append("remote ").append(remote);
        return s.isEmpty() ? "none" : s + " (namespace " + namespace + ")";
    }
}
