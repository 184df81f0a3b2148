package io.pagedkv.model.tensor;

/** IEEE half (F16) and bfloat16 (BF16) conversions with GGML's rounding (nearest, ties to even). */
public final class HalfFloats {
    private HalfFloats() {}

    public static short toF16(float f) {
        return Float.floatToFloat16(f);
    }

    public static float fromF16(short h) {
        return Float.float16ToFloat(h);
    }

    /** GGML's FP32→BF16: round to nearest even, NaN kept quiet. */
    public static short toBf16(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (short) ((u >>> 16) | 64);
        return (short) ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16);
    }

    public static float fromBf16(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    /** f rounded through F16 and back: what GGML's F16 dot products see of an activation. */
    public static float roundF16(float f) {
        return fromF16(toF16(f));
    }

    public static float roundBf16(float f) {
        return fromBf16(toBf16(f));
    }
}
