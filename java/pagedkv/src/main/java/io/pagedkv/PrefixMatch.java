package io.pagedkv;

import java.util.Map;

/**
 * What {@link PagedKvCache#matchPrefix} found: how much of a prompt a new sequence would reuse
 * now, and from which tiers.
 *
 * @param cachedTokens   what {@link PagedKvCache#createSequence} would report as
 *                       {@link Sequence#numCached()} (with room to spare)
 * @param sharedPages    leading full pages a create would share by reference
 * @param partialTokens  of {@code cachedTokens}, the run a create would copy from a partly matching page
 * @param tokensByMedium {@code cachedTokens} by the tier holding them (tiers holding none left out)
 */
public record PrefixMatch(long cachedTokens, int sharedPages, long partialTokens, Map<Medium, Long> tokensByMedium) {
    public PrefixMatch {
        tokensByMedium = Map.copyOf(tokensByMedium);
    }
}
