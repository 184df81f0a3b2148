package io.pagedkv.model.tokenizer;

import io.pagedkv.model.gguf.GgufException;
import io.pagedkv.model.gguf.GgufFile;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Text to token ids and back, as llama.cpp tokenizes with the vocabulary in a GGUF file:
 * SentencePiece-style ({@code tokenizer.ggml.model = llama}: score-driven merges, byte fallback) or
 * GPT-2-style BPE ({@code gpt2}: the pre-tokenizer regex of Llama 3 or Qwen2, ranked merges).
 * Special tokens in the text are matched first (control tokens only when asked to).
 * Thread-safe (immutable).
 */
public abstract sealed class Tokenizer permits SentencePieceTokenizer, BpeTokenizer {
    final Vocabulary vocab;
    private final List<Integer> specials;

    Tokenizer(Vocabulary vocab) {
        this.vocab = vocab;
        this.specials = vocab.specialTokens();
    }

    /** The tokenizer the file's metadata describes. */
    public static Tokenizer of(GgufFile file) {
        Vocabulary vocab = new Vocabulary(file);
        return switch (vocab.model()) {
            case "llama" -> new SentencePieceTokenizer(vocab);
            case "gpt2" -> new BpeTokenizer(vocab, file.array("tokenizer.ggml.merges"));
            default -> throw new GgufException("tokenizer model '" + vocab.model() + "' is not supported (llama, gpt2 are)");
        };
    }

    public Vocabulary vocabulary() {
        return vocab;
    }

    /**
     * The tokens of {@code text}.
     *
     * @param addSpecial   add BOS/EOS as the vocabulary asks
     * @param parseSpecial match control tokens written in the text (e.g. chat template markers)
     */
    public int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
        List<Object> fragments = partition(Vocabulary.byteString(text), parseSpecial);
        List<Integer> out = new ArrayList<>();
        encodeFragments(fragments, addSpecial, out);
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Raw-text fragments (byte strings) and special token ids (Integer), in order. */
    private List<Object> partition(String text, boolean parseSpecial) {
        List<Object> fragments = new ArrayList<>();
        if (!text.isEmpty()) fragments.add(text);
        for (int id : specials) {
            if (!parseSpecial && (vocab.type(id) == Vocabulary.CONTROL || vocab.type(id) == Vocabulary.UNKNOWN)) continue;
            String special = vocab.text(id);
            if (special.isEmpty()) continue;
            List<Object> next = new ArrayList<>();
            for (Object f : fragments) {
                if (!(f instanceof String raw)) {
                    next.add(f);
                    continue;
                }
                int from = 0;
                for (int at; (at = raw.indexOf(special, from)) >= 0; from = at + special.length()) {
                    if (at > from) next.add(raw.substring(from, at));
                    next.add(id);
                }
                if (from < raw.length()) next.add(raw.substring(from));
            }
            fragments = next;
        }
        return fragments;
    }

    abstract void encodeFragments(List<Object> fragments, boolean addSpecial, List<Integer> out);

    /** The bytes a token stands for (control tokens: none unless {@code special}). */
    public abstract byte[] tokenBytes(int id, boolean special);

    /** The text of {@code tokens} (control tokens left out). Invalid UTF-8 becomes U+FFFD. */
    public String decode(int[] tokens) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int t : tokens) out.writeBytes(tokenBytes(t, false));
        return out.toString(StandardCharsets.UTF_8);
    }
}
