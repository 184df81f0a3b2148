package io.pagedkv.model;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

/**
 * llama.cpp's outputs committed under {@code tests/golden/llama-cpp/}, so the comparisons still run
 * where the npm registry is unreachable. Each file is one oracle call, named by the test's label
 * and a digest of everything the call depends on (the model file's bytes, the prompts or texts,
 * the options): a changed model or prompt looks for a new file instead of reading a stale one.
 * Contents: gzip of big-endian ints and floats — logits runs (prompt rows, decode steps, first row
 * stored, vocabulary, the rows from the first stored, the greedy tokens) or token lists. Written by
 * {@code scripts/llama-oracle/regen-golden}.
 */
final class GoldenOutputs {
    /** Logits equal to this between a golden file and a live llama.cpp (its CPU variants may sum in other orders). */
    static final float SAME_LOGITS = 1e-3f;

    private final Path dir;

    GoldenOutputs(Path dir) {
        this.dir = dir;
    }

    static GoldenOutputs committed() {
        return new GoldenOutputs(LlamaCppOracle.repositoryRoot().resolve("tests/golden/llama-cpp"));
    }

    /** The file of one call: {@code label-digest.bin.gz}. */
    Path file(String label, String digest) {
        return dir.resolve(label + "-" + digest + ".bin.gz");
    }

    /** A digest of the call: the operation, the model file's bytes and the call's arguments. */
    static String digest(String operation, Path model, String arguments) throws IOException {
        try {
            var sha = java.security.MessageDigest.getInstance("SHA-256");
            sha.update(operation.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            sha.update(Files.readAllBytes(model));
            sha.update(arguments.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(sha.digest(), 0, 8);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    void writeRuns(Path file, List<LlamaCppOracle.Run> runs) throws IOException {
        write(file, out -> {
            out.writeInt(runs.size());
            for (LlamaCppOracle.Run run : runs) {
                out.writeInt(run.promptLength());
                out.writeInt(run.greedy().length);
                int first = 0;
                while (run.logits()[first] == null) first++;
                out.writeInt(first);
                out.writeInt(run.logits()[first].length);
                for (float[] row : run.logits()) if (row != null) for (float v : row) out.writeFloat(v);
                for (int t : run.greedy()) out.writeInt(t);
            }
        });
    }

    List<LlamaCppOracle.Run> readRuns(Path file) throws IOException {
        try (DataInputStream in = open(file)) {
            List<LlamaCppOracle.Run> runs = new ArrayList<>();
            for (int r = in.readInt(); r > 0; r--) {
                int n = in.readInt(), d = in.readInt(), first = in.readInt(), vocab = in.readInt();
                float[][] rows = new float[n + d][];
                for (int row = first; row < rows.length; row++) {
                    rows[row] = new float[vocab];
                    for (int i = 0; i < vocab; i++) rows[row][i] = in.readFloat();
                }
                int[] greedy = new int[d];
                for (int i = 0; i < d; i++) greedy[i] = in.readInt();
                runs.add(new LlamaCppOracle.Run(n, rows, greedy));
            }
            return runs;
        }
    }

    void writeTokens(Path file, List<int[]> tokens) throws IOException {
        write(file, out -> {
            out.writeInt(tokens.size());
            for (int[] t : tokens) {
                out.writeInt(t.length);
                for (int id : t) out.writeInt(id);
            }
        });
    }

    List<int[]> readTokens(Path file) throws IOException {
        try (DataInputStream in = open(file)) {
            List<int[]> tokens = new ArrayList<>();
            for (int r = in.readInt(); r > 0; r--) {
                int[] t = new int[in.readInt()];
                for (int i = 0; i < t.length; i++) t[i] = in.readInt();
                tokens.add(t);
            }
            return tokens;
        }
    }

    /** Where a golden logits run and a live one differ (null when they agree). */
    static String difference(List<LlamaCppOracle.Run> golden, List<LlamaCppOracle.Run> live) {
        if (golden.size() != live.size()) return golden.size() + " runs, llama.cpp gave " + live.size();
        for (int r = 0; r < golden.size(); r++) {
            LlamaCppOracle.Run g = golden.get(r), l = live.get(r);
            if (g.promptLength() != l.promptLength() || !java.util.Arrays.equals(g.greedy(), l.greedy())) {
                return "run " + r + ": greedy tokens " + java.util.Arrays.toString(g.greedy()) + ", llama.cpp " + java.util.Arrays.toString(l.greedy());
            }
            for (int i = 0; i < g.logits().length; i++) {
                if (g.logits()[i] == null || l.logits()[i] == null) {
                    if (g.logits()[i] != l.logits()[i]) return "run " + r + " row " + i + " stored in one only";
                    continue;
                }
                for (int v = 0; v < g.logits()[i].length; v++) {
                    float diff = Math.abs(g.logits()[i][v] - l.logits()[i][v]);
                    if (!(diff <= SAME_LOGITS)) return "run " + r + " row " + i + " logit " + v + " differs by " + diff;
                }
            }
        }
        return null;
    }

    private interface Body {
        void write(DataOutputStream out) throws IOException;
    }

    private static void write(Path file, Body body) throws IOException {
        Files.createDirectories(file.getParent());
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(new GZIPOutputStream(bytes))) {
            body.write(out);
        }
        Files.write(file, bytes.toByteArray());
    }

    private static DataInputStream open(Path file) throws IOException {
        InputStream in = new GZIPInputStream(Files.newInputStream(file));
        return new DataInputStream(new java.io.BufferedInputStream(in));
    }
}
