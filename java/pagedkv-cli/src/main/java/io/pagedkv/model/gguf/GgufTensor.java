package io.pagedkv.model.gguf;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One tensor of a GGUF file: its name, element type, shape (GGML order: {@code dims[0]} is the
 * contiguous one, the row length) and its bytes, a slice of the mapped file (never copied).
 */
public record GgufTensor(String name, GgmlType type, long[] dims, MemorySegment data) {
    /** Elements in the tensor. */
    public long elements() {
        long n = 1;
        for (long d : dims) n *= d;
        return n;
    }

    /** Elements per row ({@code dims[0]}). */
    public long rowLength() {
        return dims[0];
    }

    /** Rows: the product of every dimension but the first. */
    public long rows() {
        return elements() / dims[0];
    }

    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(dims);
    }
}
