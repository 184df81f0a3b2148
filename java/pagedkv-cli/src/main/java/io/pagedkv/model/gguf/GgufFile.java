package io.pagedkv.model.gguf;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A GGUF (version 2 or 3) file mapped read-only into memory: its metadata and its tensors, whose
 * data are slices of the mapping (the weights are never copied onto the Java heap). Closing the file
 * unmaps it; tensors read afterwards throw {@link IllegalStateException}.
 *
 * <p>Metadata values are Java objects: {@code Long} for every integer type, {@code Double} for
 * floats, {@code Boolean}, {@code String}, and {@code List<Object>} for arrays.
 *
 * <p>Immutable once opened; readable from any thread until closed ({@link #close()} is not
 * thread-safe with concurrent reads).
 */
public final class GgufFile implements AutoCloseable {
    static final int MAGIC = 0x46554747; // "GGUF" little-endian
    static final int DEFAULT_ALIGNMENT = 32;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;

    private final Path path;
    private final Arena arena;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, GgufTensor> tensors;
    private final long alignment;

    private GgufFile(Path path, Arena arena, int version, Map<String, Object> metadata,
                     Map<String, GgufTensor> tensors, long alignment) {
        this.path = path;
        this.arena = arena;
        this.version = version;
        this.metadata = metadata;
        this.tensors = tensors;
        this.alignment = alignment;
    }

    /** Maps and parses {@code path}. */
    public static GgufFile open(Path path) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
            GgufFile parsed = parse(path, arena, file);
            return parsed;
        } catch (IOException | RuntimeException e) {
            arena.close();
            if (e instanceof GgufException g) throw new GgufException(path + ": " + g.getMessage(), g);
            throw e;
        }
    }

    private static GgufFile parse(Path path, Arena arena, MemorySegment file) {
        Cursor in = new Cursor(file);
        int magic = in.i32("the magic number");
        if (magic != MAGIC) throw new GgufException(String.format("not a GGUF file (magic 0x%08x, expected 'GGUF')", magic));
        int version = in.i32("the version");
        if (version != 2 && version != 3) throw new GgufException("GGUF version " + version + " is not supported (2 and 3 are)");
        long tensorCount = in.count("the tensor count");
        long kvCount = in.count("the metadata count");
        Map<String, Object> metadata = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            String key = in.string("a metadata key");
            GgufValueType type = GgufValueType.of(in.i32("the type of '" + key + "'"), key);
            metadata.put(key, in.value(type, key));
        }
        long alignment = DEFAULT_ALIGNMENT;
        if (metadata.get("general.alignment") instanceof Long a) {
            if (a <= 0 || Long.bitCount(a) != 1) throw new GgufException("general.alignment " + a + " is not a power of two");
            alignment = a;
        }
        record Info(String name, long[] dims, int type, long offset) {}
        Info[] infos = new Info[Math.toIntExact(tensorCount)];
        for (int i = 0; i < infos.length; i++) {
            String name = in.string("a tensor name");
            int nDims = in.i32("the rank of '" + name + "'");
            if (nDims < 1 || nDims > 4) throw new GgufException("tensor '" + name + "' has rank " + nDims + " (1 to 4 allowed)");
            long[] dims = new long[nDims];
            for (int d = 0; d < nDims; d++) dims[d] = in.count("a dimension of '" + name + "'");
            infos[i] = new Info(name, dims, in.i32("the type of '" + name + "'"), in.count("the offset of '" + name + "'"));
        }
        long dataStart = align(in.position, alignment);
        Map<String, GgufTensor> tensors = new LinkedHashMap<>();
        for (Info info : infos) {
            GgmlType type = GgmlType.of(info.type, info.name);
            GgufTensor probe = new GgufTensor(info.name, type, info.dims, MemorySegment.NULL);
            if (probe.rowLength() % type.blockSize() != 0) {
                throw new GgufException("tensor '" + info.name + "' rows of " + probe.rowLength() + " are not whole " + type + " blocks of " + type.blockSize());
            }
            long bytes = type.bytes(probe.elements());
            long start = dataStart + info.offset;
            if (info.offset % alignment != 0) throw new GgufException("tensor '" + info.name + "' offset " + info.offset + " is not aligned to " + alignment);
            if (start + bytes > file.byteSize()) {
                throw new GgufException("truncated: tensor '" + info.name + "' needs bytes " + start + ".." + (start + bytes)
                        + " but the file has " + file.byteSize());
            }
            if (tensors.put(info.name, new GgufTensor(info.name, type, info.dims, file.asSlice(start, bytes))) != null) {
                throw new GgufException("tensor '" + info.name + "' appears twice");
            }
        }
        return new GgufFile(path, arena, version, Collections.unmodifiableMap(metadata), Collections.unmodifiableMap(tensors), alignment);
    }

    static long align(long offset, long alignment) {
        return (offset + alignment - 1) / alignment * alignment;
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public long alignment() {
        return alignment;
    }

    /** Every metadata entry, in file order. */
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** Every tensor, in file order. */
    public Map<String, GgufTensor> tensors() {
        return tensors;
    }

    /** The tensor named {@code name}, or throws naming the file. */
    public GgufTensor tensor(String name) {
        GgufTensor t = tensors.get(name);
        if (t == null) throw new GgufException(path + ": tensor '" + name + "' is missing");
        return t;
    }

    /** The tensor named {@code name}, or null. */
    public GgufTensor optionalTensor(String name) {
        return tensors.get(name);
    }

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    public String string(String key) {
        return typed(key, String.class);
    }

    public long integer(String key) {
        return typed(key, Long.class);
    }

    public long integer(String key, long otherwise) {
        return has(key) ? integer(key) : otherwise;
    }

    public double real(String key, double otherwise) {
        if (!has(key)) return otherwise;
        Object v = metadata.get(key);
        if (v instanceof Double d) return d;
        if (v instanceof Long l) return l;
        throw wrongType(key, "a number", v);
    }

    /** An array entry, or null when absent. */
    public List<?> array(String key) {
        return has(key) ? typed(key, List.class) : null;
    }

    private <T> T typed(String key, Class<T> type) {
        Object v = metadata.get(key);
        if (v == null) throw new GgufException(path + ": metadata '" + key + "' is missing");
        if (!type.isInstance(v)) throw wrongType(key, type.getSimpleName(), v);
        return type.cast(v);
    }

    private GgufException wrongType(String key, String wanted, Object v) {
        return new GgufException(path + ": metadata '" + key + "' is " + v.getClass().getSimpleName() + ", expected " + wanted);
    }

    @Override
    public void close() {
        arena.close();
    }

    /** Reads the header with bounds checks, so a truncated file says where it ends. */
    private static final class Cursor {
        private final MemorySegment file;
        long position;

        Cursor(MemorySegment file) {
            this.file = file;
        }

        private void need(long bytes, String what) {
            if (position + bytes > file.byteSize()) {
                throw new GgufException("truncated: the file ends at byte " + file.byteSize() + " while reading " + what);
            }
        }

        int i32(String what) {
            need(4, what);
            int v = file.get(INT, position);
            position += 4;
            return v;
        }

        long i64(String what) {
            need(8, what);
            long v = file.get(LONG, position);
            position += 8;
            return v;
        }

        long count(String what) {
            long v = i64(what);
            if (v < 0 || v > file.byteSize() * 8 + (1L << 32)) throw new GgufException(what + " " + Long.toUnsignedString(v) + " is impossible for this file");
            return v;
        }

        String string(String what) {
            long n = count("the length of " + what);
            need(n, what);
            byte[] bytes = file.asSlice(position, n).toArray(ValueLayout.JAVA_BYTE);
            position += n;
            return new String(bytes, StandardCharsets.UTF_8);
        }

        Object value(GgufValueType type, String key) {
            String what = "the value of '" + key + "'";
            return switch (type) {
                case UINT8 -> { need(1, what); yield (long) Byte.toUnsignedInt(file.get(ValueLayout.JAVA_BYTE, position++)); }
                case INT8 -> { need(1, what); yield (long) file.get(ValueLayout.JAVA_BYTE, position++); }
                case BOOL -> { need(1, what); yield file.get(ValueLayout.JAVA_BYTE, position++) != 0; }
                case UINT16 -> (long) Short.toUnsignedInt(i16(what));
                case INT16 -> (long) i16(what);
                case UINT32 -> Integer.toUnsignedLong(i32(what));
                case INT32 -> (long) i32(what);
                case UINT64, INT64 -> i64(what);
                case FLOAT32 -> (double) Float.intBitsToFloat(i32(what));
                case FLOAT64 -> Double.longBitsToDouble(i64(what));
                case STRING -> string(what);
                case ARRAY -> {
                    GgufValueType element = GgufValueType.of(i32("the element type of '" + key + "'"), key);
                    long n = count("the length of '" + key + "'");
                    Object[] items = new Object[Math.toIntExact(n)];
                    for (int i = 0; i < items.length; i++) items[i] = value(element, key);
                    yield List.of(items);
                }
            };
        }

        private short i16(String what) {
            need(2, what);
            short v = file.get(ValueLayout.JAVA_SHORT_UNALIGNED, position);
            position += 2;
            return v;
        }
    }
}
