package io.pagedkv.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pagedkv.model.Architecture;
import io.pagedkv.model.BuiltinModel;
import io.pagedkv.model.LlamaCppOracle;
import io.pagedkv.model.LlamaCppReference;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.RandomModelWriter;
import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The tokenizers against llama.cpp: the {@code .inp}/{@code .out} vectors shipped with llama.cpp's
 * vocabulary-only GGUFs (llama-spm, llama-bpe, qwen2) exactly, and random texts (mixed scripts,
 * whitespace runs, digits, emoji, chat-template markers) against the oracle's own tokenization,
 * with and without special tokens parsed. Those vocabularies come with llama.cpp's source from npm;
 * the project's own vocabularies (the random models' SentencePiece one, the built-in model's
 * byte-level BPE) are compared also offline, against committed golden outputs.
 */
class TokenizerVectorsTest {
    /** Tokenizers by vocabulary name, read once for both tests (qwen2's 152k tokens take a while). */
    private static final java.util.Map<String, Tokenizer> TOKENIZERS = new java.util.concurrent.ConcurrentHashMap<>();
    private static final String SEPARATOR = "\n__ggml_vocab_test__\n";
    private static final String[] PIECES = {
        "a", "b", "Hello", " world", "the", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "0", "12", "3456789",
        "'s", "'LL", "!", "?!", ".", ",", "...", "-", "(", ")", "é", "Äpfel", "ñ", "日本語", "中文", "нещо",
        "🦙", "😀", "ℹ️", "\u00a0", "\u2581", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|eot_id|>",
        "<|start_header_id|>", "<|end_header_id|>", "user", "assistant", "<0x0A>"
    };

    @ParameterizedTest
    @ValueSource(strings = {"llama-spm", "llama-bpe", "qwen2"})
    void reproducesLlamaCppsVectors(String name) throws Exception {
        LlamaCppReference llamaCpp = LlamaCppReference.get();
        assumeTrue(llamaCpp.live(), () -> "llama.cpp's vocabulary files come with its source from npm: " + llamaCpp.offlineReason());
        LlamaCppOracle oracle = LlamaCppOracle.get();
        Path models = oracle.vocabularies();
        Path gguf = models.resolve("ggml-vocab-" + name + ".gguf");
        String[] inputs = splitInputs(Files.readString(Path.of(gguf + ".inp"), StandardCharsets.UTF_8));
        List<String> outputs = Files.readAllLines(Path.of(gguf + ".out"), StandardCharsets.UTF_8);
        assertEquals(inputs.length, outputs.size(), "tests in .inp and .out");
        {
            Tokenizer tokenizer = tokenizer(name, gguf);
            for (int i = 0; i < inputs.length; i++) {
                String o = outputs.get(i).strip();
                int[] want = o.isEmpty() ? new int[0] : Arrays.stream(o.split(" ")).mapToInt(Integer::parseInt).toArray();
                int[] got = tokenizer.encode(inputs[i], false, false);
                String input = inputs[i];
                assertArrayEquals(want, got, () -> name + " vector '" + input + "'");
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-spm", "llama-bpe", "qwen2"})
    void randomTextsMatchLlamaCpp(String name) throws Exception {
        LlamaCppReference llamaCpp = LlamaCppReference.get();
        assumeTrue(llamaCpp.live(), () -> "llama.cpp's vocabulary files come with its source from npm: " + llamaCpp.offlineReason());
        LlamaCppOracle oracle = LlamaCppOracle.get();
        Path models = oracle.vocabularies();
        Path gguf = models.resolve("ggml-vocab-" + name + ".gguf");
        SplittableRandom rng = new SplittableRandom(name.hashCode());
        List<String> texts = new ArrayList<>();
        for (int length : new int[] {1, 2, 5, 20, 60}) {
            for (int round = 0; round < 4; round++) {
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < length; i++) sb.append(PIECES[rng.nextInt(PIECES.length)]);
                texts.add(sb.toString());
            }
        }
        {
            Tokenizer tokenizer = tokenizer(name, gguf);
            for (boolean addSpecial : new boolean[] {false, true}) {
                for (boolean parseSpecial : new boolean[] {false, true}) {
                    List<int[]> want = oracle.tokenize(gguf, texts, addSpecial, parseSpecial);
                    for (int i = 0; i < texts.size(); i++) {
                        String text = texts.get(i);
                        assertArrayEquals(want.get(i), tokenizer.encode(text, addSpecial, parseSpecial),
                                () -> name + " '" + text + "' addSpecial=" + addSpecial + " parseSpecial=" + parseSpecial);
                    }
                }
            }
            for (String text : texts) {
                // Decoding gives the text back (SentencePiece adds a leading space and reads U+2581 as one).
                String back = tokenizer.decode(tokenizer.encode(text, false, false));
                assertEquals(name.equals("llama-spm") ? " " + text.replace("\u2581", " ") : text, back, name + " round trip");
            }
        }
    }

    @TempDir
    Path dir;

    /** The vocabularies the project writes: llama.cpp's tokenization of random texts (golden outputs offline). */
    @ParameterizedTest
    @ValueSource(strings = {"random-spm", "builtin-bpe"})
    void theProjectsVocabulariesMatchLlamaCpp(String name) throws Exception {
        Path gguf = dir.resolve(name + ".gguf");
        if (name.equals("builtin-bpe")) {
            BuiltinModel.write(gguf);
        } else {
            new RandomModelWriter(new ModelShape(Architecture.LLAMA, 1, 64, 1, 1, 64, 64, 400, 256, 1e-5f, 10000f, 1f, 64),
                    GgmlType.F32, true, 1f, 5).write(gguf);
        }
        SplittableRandom rng = new SplittableRandom(name.hashCode());
        List<String> texts = new ArrayList<>();
        for (int length : new int[] {1, 3, 10, 40}) {
            for (int round = 0; round < 5; round++) {
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < length; i++) sb.append(PIECES[rng.nextInt(PIECES.length)]);
                texts.add(sb.toString());
            }
        }
        Tokenizer tokenizer;
        try (GgufFile file = GgufFile.open(gguf)) {
            tokenizer = Tokenizer.of(file);
        }
        LlamaCppReference llamaCpp = LlamaCppReference.get();
        for (boolean addSpecial : new boolean[] {false, true}) {
            for (boolean parseSpecial : new boolean[] {false, true}) {
                List<int[]> want = llamaCpp.tokenize("tokenize-" + name, gguf, texts, addSpecial, parseSpecial);
                for (int i = 0; i < texts.size(); i++) {
                    String text = texts.get(i);
                    assertArrayEquals(want.get(i), tokenizer.encode(text, addSpecial, parseSpecial),
                            () -> name + " '" + text + "' addSpecial=" + addSpecial + " parseSpecial=" + parseSpecial);
                }
            }
        }
    }

    private static Tokenizer tokenizer(String name, Path gguf) {
        return TOKENIZERS.computeIfAbsent(name, n -> {
            try (GgufFile file = GgufFile.open(gguf)) {
                return Tokenizer.of(file);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    private static String[] splitInputs(String raw) {
        List<String> parts = new ArrayList<>();
        int pos = 0;
        while (pos < raw.length()) {
            int next = raw.indexOf(SEPARATOR, pos);
            if (next < 0) {
                parts.add(raw.substring(pos));
                break;
            }
            parts.add(raw.substring(pos, next));
            pos = next + SEPARATOR.length();
        }
        return parts.toArray(String[]::new);
    }
}
