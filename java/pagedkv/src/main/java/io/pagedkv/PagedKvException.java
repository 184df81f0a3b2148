package io.pagedkv;

/**
 * A failure reported by the native library: the status it returned and its message. Subclasses
 * name the kind of failure so callers can catch what they can handle (for example
 * {@link OutOfPagesException} to wait, evict or preempt, {@link StaleBatchException} to rebuild a
 * batch). Bad arguments detected on the Java side
 * before a call throw {@link IllegalArgumentException}; closed handles throw
 * {@link IllegalStateException}.
 */
public sealed class PagedKvException extends RuntimeException
        permits PagedKvException.InvalidArgument, PagedKvException.NotFound, OutOfPagesException,
                StaleBatchException, PagedKvException.DeviceFailure, PagedKvException.Internal {
    private static final long serialVersionUID = 1L;

    private final int status;

    PagedKvException(int status, String message) {
        super(message);
        this.status = status;
    }

    /** The native status code (see {@code pagedkv_status} in pagedkv.h). */
    public int status() {
        return status;
    }

    /** The native side rejected an argument (size, range, shape, dtype, vocabulary...). */
    public static final class InvalidArgument extends PagedKvException {
        private static final long serialVersionUID = 1L;

        InvalidArgument(int status, String message) {
            super(status, message);
        }
    }

    /** An unknown or released sequence, or an unknown page. */
    public static final class NotFound extends PagedKvException {
        private static final long serialVersionUID = 1L;

        NotFound(int status, String message) {
            super(status, message);
        }
    }

    /** No CUDA device, a CUDA error, out of device or host memory, or an unsupported request. */
    public static final class DeviceFailure extends PagedKvException {
        private static final long serialVersionUID = 1L;

        DeviceFailure(int status, String message) {
            super(status, message);
        }
    }

    /** A bug in pagedkv; the message says where. */
    public static final class Internal extends PagedKvException {
        private static final long serialVersionUID = 1L;

        Internal(int status, String message) {
            super(status, message);
        }
    }
}
