package io.pagedkv;

import io.pagedkv.internal.ffi.PagedKvNative;
import java.util.EnumSet;
import java.util.Set;

/** What the loaded library can run on this machine; see {@link PagedKvCache#backends()}. */
public enum Backend {
    /** The portable CPU kernels; always present. */
    CPU(PagedKvNative.PAGEDKV_BACKEND_CPU()),
    /** The fast CPU kernels use AVX2 + F16C here. */
    CPU_AVX2(PagedKvNative.PAGEDKV_BACKEND_CPU_AVX2()),
    /** ... and AVX-512. */
    CPU_AVX512(PagedKvNative.PAGEDKV_BACKEND_CPU_AVX512()),
    /** The library was built with CUDA kernels. */
    CUDA_BUILT(PagedKvNative.PAGEDKV_BACKEND_CUDA_BUILT()),
    /** ... and at least one CUDA device is usable now. */
    CUDA_DEVICE(PagedKvNative.PAGEDKV_BACKEND_CUDA_DEVICE());

    private final int bit;

    Backend(int bit) {
        this.bit = bit;
    }

    /** The {@code pagedkv_backend_bits} value. */
    public int bit() {
        return bit;
    }

    static Set<Backend> fromMask(int mask) {
        EnumSet<Backend> set = EnumSet.noneOf(Backend.class);
        for (Backend backend : values()) if ((mask & backend.bit) != 0) set.add(backend);
        return set;
    }
}
