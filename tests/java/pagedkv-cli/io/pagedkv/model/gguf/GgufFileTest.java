package io.pagedkv.model.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.model.Architecture;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.tensor.Dequantizer;
import io.pagedkv.model.tensor.Quantizer;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The GGUF reader and writer: round trips of metadata and every tensor type, and the errors of bad files. */
class GgufFileTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(GgmlType.class)
    void tensorsRoundTripThroughTheMappedFile(GgmlType type) throws IOException {
        SplittableRandom rng = new SplittableRandom(type.ordinal());
        for (int rows : new int[] {1, 3, 17}) {
            int cols = 256 * (1 + rng.nextInt(3));
            float[] values = new float[rows * cols];
            for (int i = 0; i < values.length; i++) values[i] = (float) rng.nextGaussian();
            byte[] encoded = Quantizer.encode(type, values);
            Path file = dir.resolve(type + "-" + rows + ".gguf");
            new GgufWriter().putString("general.architecture", "llama").putUint32("general.alignment", 32)
                    .putFloats("test.floats", new float[] {1.5f, -2f}).putStrings("test.strings", List.of("a", "\u2581b"))
                    .addTensor("small", GgmlType.F32, new long[] {3}, Quantizer.encode(GgmlType.F32, new float[] {1, 2, 3}))
                    .addTensor("w", type, new long[] {cols, rows}, encoded).write(file);
            try (GgufFile gguf = GgufFile.open(file)) {
                assertEquals(3, gguf.version());
                assertEquals("llama", gguf.string("general.architecture"));
                assertEquals(List.of(1.5, -2.0), gguf.array("test.floats"));
                assertEquals(List.of("a", "\u2581b"), gguf.array("test.strings"));
                GgufTensor w = gguf.tensor("w");
                assertEquals(type, w.type());
                assertEquals(rows, w.rows());
                assertEquals(0, w.data().address() % 32, "tensor data aligned");
                assertArrayEquals(encoded, w.data().toArray(ValueLayout.JAVA_BYTE));
                float[] decoded = Dequantizer.all(w);
                double err = 0, norm = 0;
                for (int i = 0; i < values.length; i++) {
                    err += (decoded[i] - values[i]) * (decoded[i] - values[i]);
                    norm += values[i] * values[i];
                }
                double relative = Math.sqrt(err / norm);
                double bound = switch (type) {
                    case F32 -> 0;
                    case F16 -> 1e-3;
                    case BF16, Q8_0 -> 1e-2;
                    case Q6_K -> 5e-2;
                    case Q5_0, Q5_1 -> 0.1;
                    case Q4_0, Q4_K -> 0.2;
                };
                assertTrue(relative <= bound, type + ": relative error " + relative + " of the encoding exceeds " + bound);
            }
        }
    }

    @Test
    void truncatedFileSaysWhereItEnds() throws IOException {
        Path file = dir.resolve("whole.gguf");
        new GgufWriter().putString("general.architecture", "llama")
                .addTensor("w", GgmlType.F32, new long[] {64, 4}, new byte[64 * 4 * 4]).write(file);
        byte[] bytes = Files.readAllBytes(file);
        for (int keep : new int[] {0, 3, 10, 30, bytes.length - 1}) {
            Path cut = dir.resolve("cut" + keep + ".gguf");
            Files.write(cut, java.util.Arrays.copyOf(bytes, keep));
            GgufException e = assertThrows(GgufException.class, () -> GgufFile.open(cut).close());
            assertTrue(e.getMessage().contains("truncated") || keep < 4, e.getMessage());
        }
    }

    @Test
    void notAGgufFile() throws IOException {
        Path file = dir.resolve("text.gguf");
        Files.writeString(file, "hello, this is not a model file");
        GgufException e = assertThrows(GgufException.class, () -> GgufFile.open(file).close());
        assertTrue(e.getMessage().contains("not a GGUF file"), e.getMessage());
    }

    @Test
    void unsupportedTensorTypeIsNamedWithWhatIsSupported() throws IOException {
        Path file = dir.resolve("q5k.gguf");
        new GgufWriter().putString("general.architecture", "llama")
                .addTensor("blk.0.ffn_up.weight", GgmlType.F32, new long[] {32}, new byte[128]).write(file);
        byte[] bytes = Files.readAllBytes(file);
        // Rewrite the tensor's type id (after its name, rank and dims) to 13, GGML's Q5_K.
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int at = indexOf(bytes, "blk.0.ffn_up.weight".getBytes()) + "blk.0.ffn_up.weight".length() + 4 + 8;
        buf.putInt(at, 13);
        Files.write(file, bytes);
        GgufException e = assertThrows(GgufException.class, () -> GgufFile.open(file).close());
        assertTrue(e.getMessage().contains("blk.0.ffn_up.weight") && e.getMessage().contains("Q5_K")
                && e.getMessage().contains("supported: F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, BF16, Q5_0, Q5_1"), e.getMessage());
    }

    @Test
    void unknownArchitectureIsRefused() throws IOException {
        Path file = dir.resolve("gemma.gguf");
        new GgufWriter().putString("general.architecture", "gemma").write(file);
        try (GgufFile gguf = GgufFile.open(file)) {
            GgufException e = assertThrows(GgufException.class, () -> ModelShape.of(gguf));
            assertTrue(e.getMessage().contains("'gemma' is not supported"), e.getMessage());
        }
        assertEquals(Architecture.QWEN2, Architecture.of("qwen2"));
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        throw new AssertionError("not found");
    }
}
