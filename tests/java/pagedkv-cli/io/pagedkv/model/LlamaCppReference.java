package io.pagedkv.model;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * llama.cpp's outputs for the model tests. Where the oracle installs, they come from llama.cpp
 * itself and each is checked against its committed golden file ({@link GoldenOutputs}): a golden
 * file that no longer equals llama.cpp's output, or a comparison without one, fails — the golden
 * outputs cannot go stale silently. Where the npm registry is unreachable (the install exits 3),
 * or with {@code PAGEDKV_LLAMA_ORACLE=off}, they come from the golden files, so the comparisons
 * still run offline. {@code PAGEDKV_GOLDEN=write} (scripts/llama-oracle/regen-golden) writes the
 * golden files from llama.cpp instead of checking them. Thread-safe enough for tests run one at a time.
 */
public final class LlamaCppReference {
    private static LlamaCppReference instance;

    private final LlamaCppOracle oracle; // null: golden outputs only
    private final String offlineReason;
    private final GoldenOutputs golden = GoldenOutputs.committed();
    private final boolean writeGolden = "write".equals(System.getenv("PAGEDKV_GOLDEN"));

    private LlamaCppReference(LlamaCppOracle oracle, String offlineReason) {
        this.oracle = oracle;
        this.offlineReason = offlineReason;
    }

    /** The live oracle when it installs, else the golden outputs. */
    public static synchronized LlamaCppReference get() {
        if (instance != null) return instance;
        if ("off".equals(System.getenv("PAGEDKV_LLAMA_ORACLE"))) {
            instance = new LlamaCppReference(null, "PAGEDKV_LLAMA_ORACLE=off");
        } else {
            LlamaCppOracle oracle = LlamaCppOracle.get();
            instance = new LlamaCppReference(oracle, oracle == null ? LlamaCppOracle.unavailable() : null);
        }
        if (instance.oracle == null && instance.writeGolden) throw new IllegalStateException("PAGEDKV_GOLDEN=write needs llama.cpp: " + instance.offlineReason);
        return instance;
    }

    /** Whether llama.cpp itself runs (else: golden outputs). */
    public boolean live() {
        return oracle != null;
    }

    /** Why only golden outputs are used (null when live). */
    public String offlineReason() {
        return offlineReason;
    }

    /** llama.cpp's vocabulary-only GGUFs and tokenizer vectors (live only: they come with its source from npm). */
    public Path vocabularies() {
        if (oracle == null) throw new IllegalStateException("llama.cpp's vocabularies are not available: " + offlineReason);
        return oracle.vocabularies();
    }

    /**
     * {@link LlamaCppOracle#logits}, or its golden output; {@code label} names the golden file. Rows
     * before {@code firstRow} (of every run) are null: a test that compares only the later rows keeps
     * its golden file small.
     */
    public List<LlamaCppOracle.Run> logits(String label, Path model, int decode, int firstRow, int[]... prompts)
            throws IOException, InterruptedException {
        String arguments = decode + ":" + firstRow + ":" + Arrays.stream(prompts).map(Arrays::toString).collect(Collectors.joining(";"));
        Path file = golden.file(label, GoldenOutputs.digest("logits", model, arguments));
        if (oracle == null) return golden.readRuns(existing(file));
        List<LlamaCppOracle.Run> live = oracle.logits(model, decode, prompts);
        for (LlamaCppOracle.Run run : live) Arrays.fill(run.logits(), 0, firstRow, null);
        if (writeGolden) {
            golden.writeRuns(file, live);
        } else {
            String difference = GoldenOutputs.difference(golden.readRuns(existing(file)), live);
            if (difference != null) throw new AssertionError("golden output " + file.getFileName() + " is stale (" + difference + "): " + REGENERATE);
        }
        return live;
    }

    /** {@link LlamaCppOracle#tokenize}, or its golden output; {@code label} names the golden file. */
    public List<int[]> tokenize(String label, Path model, List<String> texts, boolean addSpecial, boolean parseSpecial)
            throws IOException, InterruptedException {
        String arguments = addSpecial + ":" + parseSpecial + ":" + String.join("\0", texts);
        Path file = golden.file(label, GoldenOutputs.digest("tokenize", model, arguments));
        if (oracle == null) return golden.readTokens(existing(file));
        List<int[]> live = oracle.tokenize(model, texts, addSpecial, parseSpecial);
        if (writeGolden) {
            golden.writeTokens(file, live);
        } else {
            List<int[]> stored = golden.readTokens(existing(file));
            boolean same = stored.size() == live.size();
            for (int i = 0; same && i < live.size(); i++) same = Arrays.equals(stored.get(i), live.get(i));
            if (!same) throw new AssertionError("golden output " + file.getFileName() + " is stale (tokens differ): " + REGENERATE);
        }
        return live;
    }

    private static final String REGENERATE = "regenerate with scripts/llama-oracle/regen-golden";

    private Path existing(Path file) {
        if (!Files.exists(file)) {
            throw new AssertionError("no golden output " + file.getFileName() + " for this comparison"
                    + (oracle == null ? " (llama.cpp unavailable: " + offlineReason + ")" : "") + "; " + REGENERATE);
        }
        return file;
    }
}
