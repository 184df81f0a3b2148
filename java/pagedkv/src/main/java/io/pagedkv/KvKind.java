package io.pagedkv;

/** Which half of a layer's page data: keys or values. */
public enum KvKind {
    K,
    V;

    /** 0 for K, 1 for V: the {@code kv} index of the page layout in pagedkv.h. */
    public int index() {
        return ordinal();
    }
}
