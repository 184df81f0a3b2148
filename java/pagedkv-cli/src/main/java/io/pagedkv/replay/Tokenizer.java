package io.pagedkv.replay;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The byte-level tokenizer of the tiny model: token ids 0..255 are the UTF-8 bytes, followed by
 * the special tokens {@code <|endoftext|>}, {@code <|im_start|>} and {@code <|im_end|>} (ChatML).
 * Plain text never produces a special token: the characters of {@code "<|im_end|>"} in a
 * {@code text} field are ten byte tokens. Immutable and thread-safe (all static).
 */
public final class Tokenizer {
    public static final int END_OF_TEXT = 256;
    public static final int IM_START = 257;
    public static final int IM_END = 258;
    /** Number of token ids: 256 bytes and the specials. */
    public static final int VOCAB_SIZE = 259;

    private static final List<String> SPECIAL_NAMES = List.of("<|endoftext|>", "<|im_start|>", "<|im_end|>");

    private Tokenizer() {}

    /** The UTF-8 bytes of {@code text} as token ids. Rejects unpaired surrogates. */
    public static int[] encode(String text) {
        ByteBuffer bytes;
        try {
            bytes = StandardCharsets.UTF_8.newEncoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .encode(java.nio.CharBuffer.wrap(text));
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("text is not valid Unicode (unpaired surrogate)", e);
        }
        int[] ids = new int[bytes.remaining()];
        for (int i = 0; i < ids.length; i++) ids[i] = bytes.get() & 0xff;
        return ids;
    }

    /**
     * Text for token ids: byte runs decoded as UTF-8 (invalid sequences become U+FFFD), specials
     * written by name.
     */
    public static String decode(int[] ids) {
        StringBuilder sb = new StringBuilder();
        ByteArrayOutputStream run = new ByteArrayOutputStream();
        for (int id : ids) {
            if (id >= 0 && id < 256) {
                run.write(id);
                continue;
            }
            sb.append(run.toString(StandardCharsets.UTF_8));
            run.reset();
            sb.append(tokenName(id));
        }
        return sb.append(run.toString(StandardCharsets.UTF_8)).toString();
    }

    /** A readable name for one token id: the byte as {@code <0xNN>} or the special's name. */
    public static String tokenName(int id) {
        if (id >= 0 && id < 256) return String.format("<0x%02X>", id);
        if (id >= 256 && id < VOCAB_SIZE) return SPECIAL_NAMES.get(id - 256);
        return "<invalid " + id + ">";
    }
}
