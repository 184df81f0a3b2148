package io.pagedkv.model.tokenizer;

/**
 * GPT-2's byte alphabet ({@code bytes_to_unicode}): the character a byte-level BPE vocabulary
 * writes for each byte. Printable bytes stand for themselves, the others map to U+0100 onwards in
 * byte order. Thread-safe (immutable).
 */
public final class ByteAlphabet {
    private static final char[] CHARS = new char[256];

    static {
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            CHARS[b] = (char) (printable ? b : next++);
        }
    }

    private ByteAlphabet() {}

    /** The character standing for byte {@code b} (0..255). */
    public static char of(int b) {
        return CHARS[b];
    }
}
