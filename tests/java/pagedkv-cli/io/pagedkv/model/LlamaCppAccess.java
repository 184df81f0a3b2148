package io.pagedkv.model;

import java.nio.file.Path;
import java.util.List;

/** The llama.cpp oracle for tests outside this package (tokenizer). */
public final class LlamaCppAccess {
    private LlamaCppAccess() {}

    /** The folder of llama.cpp's vocabulary-only GGUFs, or null when the oracle is unavailable. */
    public static Path vocabularies() {
        LlamaCppOracle oracle = LlamaCppOracle.get();
        return oracle == null ? null : oracle.vocabularies();
    }

    public static String unavailable() {
        return LlamaCppOracle.unavailable();
    }

    public static List<int[]> tokenize(Path model, List<String> texts, boolean addSpecial, boolean parseSpecial) throws Exception {
        return LlamaCppOracle.get().tokenize(model, texts, addSpecial, parseSpecial);
    }
}
