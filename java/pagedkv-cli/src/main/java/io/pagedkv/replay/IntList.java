package io.pagedkv.replay;

import java.util.Arrays;

/** A growable list of ints without boxing. Not thread-safe. */
final class IntList {
    private int[] data;
    private int size;

    IntList(int capacity) {
        data = new int[Math.max(capacity, 4)];
    }

    IntList(int[] initial) {
        data = Arrays.copyOf(initial, Math.max(initial.length * 2, 4));
        size = initial.length;
    }

    void add(int value) {
        if (size == data.length) data = Arrays.copyOf(data, data.length * 2);
        data[size++] = value;
    }

    void addAll(int[] values) {
        if (size + values.length > data.length) data = Arrays.copyOf(data, Math.max(data.length * 2, size + values.length));
        System.arraycopy(values, 0, data, size, values.length);
        size += values.length;
    }

    int get(int index) {
        return data[index];
    }

    int size() {
        return size;
    }

    void clear() {
        size = 0;
    }

    /** The backing array; valid up to {@link #size()} until the next add. */
    int[] raw() {
        return data;
    }

    int[] toArray() {
        return Arrays.copyOf(data, size);
    }

    int[] toArray(int from, int to) {
        return Arrays.copyOfRange(data, from, to);
    }
}
