package io.pagedkv.model.tokenizer;

/** UTF-8 helpers over byte strings (one char per byte). */
final class Utf8 {
    private static final int[] LENGTH_BY_HIGH_NIBBLE = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};

    private Utf8() {}

    /** Bytes of the character starting with byte {@code first} (llama.cpp's unicode_len_utf8). */
    static int length(char first) {
        return LENGTH_BY_HIGH_NIBBLE[(first & 0xff) >> 4];
    }
}
