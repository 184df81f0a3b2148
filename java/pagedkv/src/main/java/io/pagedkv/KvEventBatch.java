package io.pagedkv;

import java.util.List;

/**
 * The events of one call on a cache (or of several overlapping ones), in order.
 *
 * @param seq       0 for the first batch of the cache, then +1 each
 * @param timestamp seconds since the Unix epoch when the batch was closed
 * @param events    the events
 */
public record KvEventBatch(long seq, double timestamp, List<KvEvent> events) {
    public KvEventBatch {
        events = List.copyOf(events);
    }
}
