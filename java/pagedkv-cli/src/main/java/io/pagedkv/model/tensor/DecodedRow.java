package io.pagedkv.model.tensor;

import io.pagedkv.model.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One weight row of a 32-element block type (Q8_0, Q4_0, Q5_0, Q5_1) decoded once into its integer
 * codes (as floats, exact) and per-block scales, so a step of several tokens multiplies each token
 * with the decoded row instead of unpacking the blocks again for every token. The products use the
 * same operations in the same order as {@link DotProducts}' per-token kernels, so a token's result
 * is bit-identical whichever path computes it (one token or many). Not thread-safe: one per worker.
 */
final class DecodedRow {
    private final GgmlType type;
    /** Codes in element order: Q8_0 q, Q4_0 nibble - 8, Q5_0 q - 16, Q5_1 q. */
    final float[] codes;
    /** Per block: the weight scale d. */
    final float[] scales;
    /** Per block (Q5_1): the weight minimum m. */
    final float[] mins;

    DecodedRow(GgmlType type, int cols) {
        this.type = type;
        this.codes = new float[cols];
        this.scales = new float[cols / 32];
        this.mins = type == GgmlType.Q5_1 ? new float[cols / 32] : null;
    }

    /** Whether rows of {@code type} are decoded this way. */
    static boolean serves(GgmlType type) {
        return switch (type) {
            case Q8_0, Q4_0, Q5_0, Q5_1 -> true;
            default -> false;
        };
    }

    /** Decodes the row at byte {@code off} of {@code w}. */
    void decode(MemorySegment w, long off) {
        int blocks = scales.length;
        long bytes = type.blockBytes();
        for (int b = 0; b < blocks; b++, off += bytes) {
            scales[b] = Float.float16ToFloat(w.get(ValueLayout.JAVA_SHORT_UNALIGNED, off));
            int at = 32 * b;
            switch (type) {
                case Q8_0 -> { for (int i = 0; i < 32; i++) codes[at + i] = w.get(ValueLayout.JAVA_BYTE, off + 2 + i); }
                case Q4_0 -> {
                    for (int i = 0; i < 16; i++) {
                        int q = w.get(ValueLayout.JAVA_BYTE, off + 2 + i) & 0xff;
                        codes[at + i] = (q & 0xF) - 8;
                        codes[at + 16 + i] = (q >> 4) - 8;
                    }
                }
                case Q5_0, Q5_1 -> {
                    boolean q51 = type == GgmlType.Q5_1;
                    if (q51) mins[b] = Float.float16ToFloat(w.get(ValueLayout.JAVA_SHORT_UNALIGNED, off + 2));
                    long qhAt = off + (q51 ? 4 : 2);
                    int qh = w.get(ValueLayout.JAVA_INT_UNALIGNED, qhAt), bias = q51 ? 0 : 16;
                    for (int j = 0; j < 16; j++) {
                        int q = w.get(ValueLayout.JAVA_BYTE, qhAt + 4 + j) & 0xff;
                        codes[at + j] = ((q & 0xF) | (qh >>> j & 1) << 4) - bias;
                        codes[at + 16 + j] = ((q >> 4) | (qh >>> (j + 16) & 1) << 4) - bias;
                    }
                }
                default -> throw new IllegalStateException(type + " rows are not decoded");
            }
        }
    }

    /** The decoded row times the prepared activation row at {@code xo} (block scales from {@code so}). */
    float dot(Activations a, int xo, int so) {
        return switch (type) {
            case Q8_0, Q4_0 -> DotProducts.blocks32(codes, scales, a.values, xo, a.scales, so);
            case Q5_0 -> DotProducts.fiveBitBlocks(codes, scales, null, a.values, xo, a.scales, null, so);
            case Q5_1 -> DotProducts.fiveBitBlocks(codes, scales, mins, a.values, xo, a.scales, a.sums, so);
            default -> throw new IllegalStateException(type + " rows are not decoded");
        };
    }
}
