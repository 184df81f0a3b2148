package io.pagedkv;

import io.pagedkv.internal.ffi.PagedKvNative;
import java.util.Objects;

/**
 * Where a cache keeps its pages: host memory ({@link #cpu()}) or one CUDA device ({@link #cuda(int)}).
 *
 * @param type the kind of device
 * @param index the CUDA device ordinal; always 0 for the CPU
 */
public record Device(Type type, int index) {
    /** Kinds of device. */
    public enum Type {
        CPU(PagedKvNative.PAGEDKV_DEVICE_CPU()),
        CUDA(PagedKvNative.PAGEDKV_DEVICE_CUDA());

        private final int code;

        Type(int code) {
            this.code = code;
        }

        /** The {@code pagedkv_device_type} value. */
        public int code() {
            return code;
        }

        static Type ofCode(int code) {
            for (Type type : values()) if (type.code == code) return type;
            throw new IllegalArgumentException("unknown pagedkv_device_type " + code);
        }
    }

    public Device {
        Objects.requireNonNull(type, "type");
        if (index < 0) throw new IllegalArgumentException("device index must be >= 0, got " + index);
        if (type == Type.CPU && index != 0) throw new IllegalArgumentException("the CPU device index is 0, got " + index);
    }

    /** Host memory and CPU kernels. */
    public static Device cpu() {
        return new Device(Type.CPU, 0);
    }

    /** CUDA device {@code index}. */
    public static Device cuda(int index) {
        return new Device(Type.CUDA, index);
    }

    /** Whether this is a CUDA device (whose memory Java cannot dereference). */
    public boolean isCuda() {
        return type == Type.CUDA;
    }

    /** {@code "cpu"} or {@code "cuda:N"}. */
    @Override
    public String toString() {
        return type == Type.CPU ? "cpu" : "cuda:" + index;
    }
}
