package io.pagedkv.model;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * llama.cpp as the reference: the oracle program that scripts/llama-oracle/install builds against
 * the prebuilt libllama from npm. Found through $PAGEDKV_LLAMA_CACHE (or the install script's
 * default cache), installed on first use. {@link #unavailable()} says why when it cannot be had.
 */
public final class LlamaCppOracle {
    /** One prompt's run: logits after every prompt position and every greedy decode step. */
    public record Run(int promptLength, float[][] logits, int[] greedy) {}

    private static LlamaCppOracle instance;
    private static String unavailable;

    private final Path cache;
    private final Path program;
    private final String backendDir;

    private LlamaCppOracle(Path cache) throws IOException {
        this.cache = cache;
        this.program = cache.resolve("llama-oracle");
        this.backendDir = Files.readString(cache.resolve("backend-dir")).strip();
    }

    /** The oracle, installing it when needed; null when unavailable (see {@link #unavailable()}). */
    public static synchronized LlamaCppOracle get() {
        if (instance != null || unavailable != null) return instance;
        Path script = repositoryRoot().resolve("scripts/llama-oracle/install");
        try {
            Process p = new ProcessBuilder("bash", script.toString()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(15, TimeUnit.MINUTES)) throw new IOException("install timed out");
            if (p.exitValue() == 3) {
                unavailable = "llama.cpp oracle not installable (npm registry unreachable): " + out.strip();
                return null;
            }
            if (p.exitValue() != 0) throw new IllegalStateException(script + " failed (exit " + p.exitValue() + "):\n" + out);
            String[] lines = out.strip().split("\n");
            instance = new LlamaCppOracle(Path.of(lines[lines.length - 1]));
            return instance;
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException("running " + script, e);
        }
    }

    public static String unavailable() {
        return unavailable;
    }

    static Path repositoryRoot() {
        Path dir = Path.of("").toAbsolutePath();
        for (Path d = dir; d != null; d = d.getParent()) {
            if (Files.exists(d.resolve("scripts/llama-oracle/install"))) return d;
        }
        throw new IllegalStateException("no scripts/llama-oracle/install above " + dir);
    }

    /** The vocabulary-only GGUFs and tokenizer vectors of the llama.cpp source. */
    public Path vocabularies() {
        return cache.resolve("llama.cpp/models");
    }

    /** Runs each prompt from an empty cache: logits at every position, then {@code decode} greedy steps. */
    public List<Run> logits(Path model, int decode, int[]... prompts) throws IOException, InterruptedException {
        Path out = Files.createTempFile("llama-oracle", ".bin");
        try {
            List<String> cmd = new ArrayList<>(List.of(program.toString(), "logits", model.toString(), out.toString(), String.valueOf(decode)));
            for (int[] p : prompts) cmd.add(Arrays.stream(p).mapToObj(String::valueOf).collect(Collectors.joining(",")));
            run(cmd, null);
            ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(out)).order(ByteOrder.LITTLE_ENDIAN);
            int vocab = in.getInt();
            List<Run> runs = new ArrayList<>();
            for (int[] ignored : prompts) {
                int n = in.getInt(), d = in.getInt();
                float[][] rows = new float[n + d][vocab];
                for (float[] row : rows) {
                    for (int i = 0; i < vocab; i++) row[i] = in.getFloat();
                }
                int[] greedy = new int[d];
                for (int i = 0; i < d; i++) greedy[i] = in.getInt();
                runs.add(new Run(n, rows, greedy));
            }
            return runs;
        } finally {
            Files.deleteIfExists(out);
        }
    }

    /** llama.cpp's tokenization of each text with the vocabulary of {@code model}, in one process. */
    public List<int[]> tokenize(Path model, List<String> texts, boolean addSpecial, boolean parseSpecial) throws IOException, InterruptedException {
        ByteArrayOutputStream input = new ByteArrayOutputStream();
        for (String text : texts) {
            if (text.indexOf('\0') >= 0) throw new IllegalArgumentException("texts must not contain NUL");
            input.writeBytes(text.getBytes(StandardCharsets.UTF_8));
            input.write(0);
        }
        String out = run(List.of(program.toString(), "tokenize", model.toString(), addSpecial ? "1" : "0", parseSpecial ? "1" : "0"),
                input.toByteArray());
        String[] lines = out.split("\n", -1);
        List<int[]> result = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            String line = lines[i].strip();
            result.add(line.isEmpty() ? new int[0] : Arrays.stream(line.split(" ")).mapToInt(Integer::parseInt).toArray());
        }
        return result;
    }

    private String run(List<String> cmd, byte[] stdin) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("GGML_BACKEND_DIR", backendDir);
        pb.redirectError(ProcessBuilder.Redirect.INHERIT);
        Process p = pb.start();
        if (stdin != null) p.getOutputStream().write(stdin);
        p.getOutputStream().close();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (InputStream in = p.getInputStream()) {
            in.transferTo(buf);
        }
        if (p.waitFor() != 0) throw new IOException(String.join(" ", cmd) + " exited " + p.exitValue());
        return buf.toString(StandardCharsets.UTF_8);
    }
}
