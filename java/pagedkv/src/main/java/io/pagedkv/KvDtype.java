package io.pagedkv;

import io.pagedkv.internal.ffi.PagedKvNative;

/** Element type of the keys and values stored in the cache (and of kernel inputs). */
public enum KvDtype {
    /** IEEE binary32. */
    F32(PagedKvNative.PAGEDKV_DTYPE_F32(), 4),
    /** IEEE binary16. */
    F16(PagedKvNative.PAGEDKV_DTYPE_F16(), 2),
    /** bfloat16: the upper half of a binary32. */
    BF16(PagedKvNative.PAGEDKV_DTYPE_BF16(), 2);

    private final int code;
    private final int bytes;

    KvDtype(int code, int bytes) {
        this.code = code;
        this.bytes = bytes;
    }

    /** The {@code pagedkv_dtype} value. */
    public int code() {
        return code;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }

    /** The dtype with the given {@code pagedkv_dtype} value. */
    public static KvDtype ofCode(int code) {
        for (KvDtype dtype : values()) if (dtype.code == code) return dtype;
        throw new IllegalArgumentException("unknown pagedkv_dtype " + code);
    }
}
