package io.pagedkv.model.tokenizer;

import io.pagedkv.model.gguf.GgufException;
import io.pagedkv.model.gguf.GgufFile;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Set;
import java.util.List;
import java.util.Map;

/**
 * The vocabulary of a GGUF file ({@code tokenizer.ggml.*}): token texts, scores, types, and the
 * special ids. Texts are held as "byte strings" (each UTF-8 byte as one char 0..255) so that
 * tokenizers can cut them at byte boundaries as llama.cpp does. Immutable.
 */
public final class Vocabulary {
    /** GGUF token types. */
    static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    private final String model;
    private final String pre;
    private final String[] texts; // byte strings
    private final float[] scores;
    private final int[] types;
    private final Map<String, Integer> ids = new HashMap<>();
    /**
     * Texts llama.cpp treats as control tokens whatever their type in the file says (ends of turn
     * and generation, Qwen's fill-in-the-middle markers), so that they tokenize and stop alike.
     */
    private static final Set<String> CONTROL_LOOKING = Set.of(
            "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
            "<|end_of_text|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>",
            "<|file_sep|>");
    /** The end-of-generation texts among those (llama.cpp's EOG list for these families). */
    private static final Set<String> END_OF_GENERATION = Set.of(
            "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
            "<|end_of_text|>");

    private final int bos, eos, eot;
    private final Set<Integer> endOfGeneration = new HashSet<>();
    private final boolean addBos, addEos, addSpacePrefix;

    Vocabulary(GgufFile file) {
        model = file.string("tokenizer.ggml.model");
        pre = file.has("tokenizer.ggml.pre") ? file.string("tokenizer.ggml.pre") : "default";
        List<?> tokens = file.array("tokenizer.ggml.tokens");
        if (tokens == null) throw new GgufException("tokenizer.ggml.tokens is missing: the file has no vocabulary");
        texts = new String[tokens.size()];
        scores = new float[texts.length];
        types = new int[texts.length];
        List<?> s = file.array("tokenizer.ggml.scores");
        List<?> t = file.array("tokenizer.ggml.token_type");
        for (int i = 0; i < texts.length; i++) {
            texts[i] = byteString((String) tokens.get(i));
            scores[i] = s != null ? (float) (double) (Double) s.get(i) : 0f;
            types[i] = t != null ? (int) (long) (Long) t.get(i) : NORMAL;
            ids.putIfAbsent(texts[i], i);
            String text = (String) tokens.get(i);
            if (CONTROL_LOOKING.contains(text)) types[i] = CONTROL;
            if (END_OF_GENERATION.contains(text)) endOfGeneration.add(i);
        }
        boolean spm = model.equals("llama");
        bos = (int) file.integer("tokenizer.ggml.bos_token_id", spm ? 1 : -1);
        eos = (int) file.integer("tokenizer.ggml.eos_token_id", spm ? 2 : -1);
        int eotId = (int) file.integer("tokenizer.ggml.eot_token_id", -1);
        if (eotId < 0) eotId = idOf("<|eot_id|>", idOf("<|im_end|>", idOf("<|end_of_turn|>", -1)));
        eot = eotId;
        if (eos >= 0) endOfGeneration.add(eos);
        if (eot >= 0) endOfGeneration.add(eot);
        boolean llama3 = Set.of("llama3", "llama-v3", "llama-bpe").contains(pre);
        addBos = bool(file, "tokenizer.ggml.add_bos_token", spm || llama3);
        addEos = bool(file, "tokenizer.ggml.add_eos_token", false);
        addSpacePrefix = bool(file, "tokenizer.ggml.add_space_prefix", spm);
    }

    private int idOf(String text, int otherwise) {
        return ids.getOrDefault(byteString(text), otherwise);
    }

    private static boolean bool(GgufFile file, String key, boolean otherwise) {
        return file.has(key) ? (Boolean) file.metadata().get(key) : otherwise;
    }

    /** The UTF-8 bytes of {@code s}, one char per byte. */
    static String byteString(String s) {
        return new String(s.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
    }

    public String model() {
        return model;
    }

    public String pre() {
        return pre;
    }

    public int size() {
        return texts.length;
    }

    /** The id of a byte-string text, or -1. */
    int id(String byteText) {
        return ids.getOrDefault(byteText, -1);
    }

    String text(int id) {
        return texts[id];
    }

    float score(int id) {
        return scores[id];
    }

    int type(int id) {
        return types[id];
    }

    /** Tokens matched in text before tokenizing: control, user-defined and unknown ones, longest first. */
    List<Integer> specialTokens() {
        List<Integer> special = new ArrayList<>();
        for (int i = 0; i < texts.length; i++) {
            if (types[i] == CONTROL || types[i] == USER_DEFINED || types[i] == UNKNOWN) special.add(i);
        }
        special.sort((a, b) -> Integer.compare(texts[b].length(), texts[a].length()));
        return special;
    }

    public int bos() {
        return bos;
    }

    public int eos() {
        return eos;
    }

    /** End of turn (Llama 3's {@code <|eot_id|>}, ChatML's {@code <|im_end|>}), or -1. */
    public int eot() {
        return eot;
    }

    /** Generation stops here: EOS, end of turn, or another end-of-generation token of the vocabulary. */
    public boolean isEndOfGeneration(int id) {
        return endOfGeneration.contains(id);
    }

    public boolean isControl(int id) {
        return types[id] == CONTROL;
    }

    boolean addBos() {
        return addBos;
    }

    boolean addEos() {
        return addEos;
    }

    boolean addSpacePrefix() {
        return addSpacePrefix;
    }
}
