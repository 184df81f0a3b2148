package io.pagedkv.model.gguf;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes GGUF version 3 files: typed metadata, then tensors whose bytes the caller encodes (see
 * {@link io.pagedkv.model.tensor.Quantizer}). Used for the built-in demonstration model and the
 * random-weight test models. Not thread-safe.
 */
public final class GgufWriter {
    private record Entry(String key, GgufValueType type, Object value) {}

    private record Tensor(String name, GgmlType type, long[] dims, byte[] data) {}

    private final List<Entry> entries = new ArrayList<>();
    private final List<Tensor> tensors = new ArrayList<>();

    public GgufWriter putString(String key, String value) {
        return put(key, GgufValueType.STRING, value);
    }

    public GgufWriter putUint32(String key, long value) {
        if (value < 0 || value > 0xffffffffL) throw new IllegalArgumentException(key + ": " + value + " is not a uint32");
        return put(key, GgufValueType.UINT32, value);
    }

    public GgufWriter putInt32(String key, int value) {
        return put(key, GgufValueType.INT32, (long) value);
    }

    public GgufWriter putFloat32(String key, float value) {
        return put(key, GgufValueType.FLOAT32, (double) value);
    }

    public GgufWriter putBool(String key, boolean value) {
        return put(key, GgufValueType.BOOL, value);
    }

    public GgufWriter putStrings(String key, List<String> values) {
        return put(key, GgufValueType.ARRAY, new Object[] {GgufValueType.STRING, List.copyOf(values)});
    }

    public GgufWriter putFloats(String key, float[] values) {
        List<Object> boxed = new ArrayList<>(values.length);
        for (float v : values) boxed.add((double) v);
        return put(key, GgufValueType.ARRAY, new Object[] {GgufValueType.FLOAT32, boxed});
    }

    public GgufWriter putInts(String key, int[] values) {
        List<Object> boxed = new ArrayList<>(values.length);
        for (int v : values) boxed.add((long) v);
        return put(key, GgufValueType.ARRAY, new Object[] {GgufValueType.INT32, boxed});
    }

    private GgufWriter put(String key, GgufValueType type, Object value) {
        entries.removeIf(e -> e.key.equals(key));
        entries.add(new Entry(key, type, value));
        return this;
    }

    /** Adds a tensor; {@code dims[0]} is the row length, {@code data} its encoded bytes. */
    public GgufWriter addTensor(String name, GgmlType type, long[] dims, byte[] data) {
        long elements = 1;
        for (long d : dims) elements *= d;
        if (type.bytes(elements) != data.length) {
            throw new IllegalArgumentException(name + ": " + data.length + " bytes for " + elements + " " + type + " elements");
        }
        tensors.add(new Tensor(name, type, dims.clone(), data));
        return this;
    }

    /** Writes the file (replacing it). */
    public void write(Path path) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(path), 1 << 16)) {
            Sink sink = new Sink(out);
            sink.i32(GgufFile.MAGIC);
            sink.i32(3);
            sink.i64(tensors.size());
            sink.i64(entries.size());
            for (Entry e : entries) {
                sink.string(e.key);
                sink.i32(e.type.ordinal());
                sink.value(e.type, e.value);
            }
            long offset = 0;
            for (Tensor t : tensors) {
                sink.string(t.name);
                sink.i32(t.dims.length);
                for (long d : t.dims) sink.i64(d);
                sink.i32(t.type.id());
                sink.i64(offset);
                offset = GgufFile.align(offset + t.data.length, GgufFile.DEFAULT_ALIGNMENT);
            }
            sink.pad();
            for (Tensor t : tensors) {
                sink.bytes(t.data);
                sink.pad();
            }
        }
    }

    /** Little-endian output that knows its position (for alignment padding). */
    private static final class Sink {
        private final OutputStream out;
        private final ByteBuffer scratch = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        private long position;

        Sink(OutputStream out) {
            this.out = out;
        }

        void bytes(byte[] b) throws IOException {
            out.write(b);
            position += b.length;
        }

        void i32(int v) throws IOException {
            scratch.clear().putInt(v);
            bytes(slice(4));
        }

        private byte[] slice(int n) {
            byte[] b = new byte[n];
            System.arraycopy(scratch.array(), 0, b, 0, n);
            return b;
        }

        void i64(long v) throws IOException {
            scratch.clear().putLong(v);
            bytes(slice(8));
        }

        void string(String s) throws IOException {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            i64(b.length);
            bytes(b);
        }

        void pad() throws IOException {
            long aligned = GgufFile.align(position, GgufFile.DEFAULT_ALIGNMENT);
            bytes(new byte[(int) (aligned - position)]);
        }

        @SuppressWarnings("unchecked")
        void value(GgufValueType type, Object v) throws IOException {
            switch (type) {
                case STRING -> string((String) v);
                case UINT32, INT32 -> i32((int) (long) (Long) v);
                case FLOAT32 -> i32(Float.floatToRawIntBits((float) (double) (Double) v));
                case BOOL -> bytes(new byte[] {(byte) ((Boolean) v ? 1 : 0)});
                case ARRAY -> {
                    Object[] typed = (Object[]) v;
                    GgufValueType element = (GgufValueType) typed[0];
                    List<Object> items = (List<Object>) typed[1];
                    i32(element.ordinal());
                    i64(items.size());
                    for (Object item : items) value(element, item);
                }
                default -> throw new IllegalStateException("the writer does not emit " + type);
            }
        }
    }
}
