package io.pagedkv;

import io.pagedkv.internal.ffi.PagedKvNative;

/**
 * Element type of the keys and values stored in the cache, and of kernel inputs (F32, F16, BF16
 * only). The quantized formats are cache formats: K/V are written as F32 and quantized on the way
 * in; their byte layouts (codes and scales per head run of a page) are described in pagedkv.h.
 */
public enum KvDtype {
    /** IEEE binary32. */
    F32(PagedKvNative.PAGEDKV_DTYPE_F32(), 4),
    /** IEEE binary16. */
    F16(PagedKvNative.PAGEDKV_DTYPE_F16(), 2),
    /** bfloat16: the upper half of a binary32. */
    BF16(PagedKvNative.PAGEDKV_DTYPE_BF16(), 2),
    /** fp8 e4m3 codes with one scale per layer, K|V and KV head (caller-set or estimated). */
    FP8_E4M3(PagedKvNative.PAGEDKV_DTYPE_FP8_E4M3(), 1),
    /** 8-bit K and V codes, an fp16 scale per 32 dims (head dim a multiple of 32). */
    Q8(PagedKvNative.PAGEDKV_DTYPE_Q8(), 1),
    /** 8-bit K, 4-bit V codes, an fp16 scale per 32 dims. */
    Q6(PagedKvNative.PAGEDKV_DTYPE_Q6(), 1),
    /** 4-bit K and V codes, an fp16 scale per 32 dims. */
    Q4(PagedKvNative.PAGEDKV_DTYPE_Q4(), 1);

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

    /** Bytes per element; 1 for the quantized formats, whose layout is addressed in bytes. */
    public int bytes() {
        return bytes;
    }

    /** A cache-only format: quantized in write_kv, dequantized inside the attention kernels. */
    public boolean isQuantized() {
        return code >= PagedKvNative.PAGEDKV_DTYPE_FP8_E4M3();
    }

    /** The dtype with the given {@code pagedkv_dtype} value. */
    public static KvDtype ofCode(int code) {
        for (KvDtype dtype : values()) if (dtype.code == code) return dtype;
        throw new IllegalArgumentException("unknown pagedkv_dtype " + code);
    }
}
