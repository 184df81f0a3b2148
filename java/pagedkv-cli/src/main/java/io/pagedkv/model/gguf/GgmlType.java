package io.pagedkv.model.gguf;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * The tensor element types of GGML that this engine reads, with their block geometry: a row of
 * {@code n} elements takes {@code n / blockSize * blockBytes} bytes. Ids are GGML's.
 */
public enum GgmlType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),
    Q8_0(8, 32, 34),
    Q4_K(12, 256, 144),
    Q6_K(14, 256, 210),
    BF16(30, 1, 2),
    // After the others, so the test models seeded by ordinal stay the ones earlier sessions measured.
    Q5_0(6, 32, 22),
    Q5_1(7, 32, 24);

    // GGML's names for the ids we do not serve, so an error can say what the file holds.
    private static final String[] KNOWN_NAMES = {
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
        "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4", "Q4_0_4_8",
        "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"
    };

    private final int id;
    private final int blockSize;
    private final int blockBytes;

    GgmlType(int id, int blockSize, int blockBytes) {
        this.id = id;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    public int id() {
        return id;
    }

    /** Elements per block. */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int blockBytes() {
        return blockBytes;
    }

    /** Bytes of {@code elements} elements (a multiple of the block size). */
    public long bytes(long elements) {
        if (elements % blockSize != 0) {
            throw new IllegalArgumentException(elements + " elements are not a whole number of " + this + " blocks of " + blockSize);
        }
        return elements / blockSize * blockBytes;
    }

    /** The type with GGML id {@code id}; throws naming the type and what is supported when unknown. */
    public static GgmlType of(int id, String tensor) {
        for (GgmlType t : values()) if (t.id == id) return t;
        String name = id >= 0 && id < KNOWN_NAMES.length ? KNOWN_NAMES[id] : "unknown type id " + id;
        throw new GgufException("tensor '" + tensor + "' has type " + name + " (id " + id + "), which is not supported; supported: " + supported());
    }

    /** The supported types, for messages. */
    public static String supported() {
        return Arrays.stream(values()).map(Enum::name).collect(Collectors.joining(", "));
    }
}
