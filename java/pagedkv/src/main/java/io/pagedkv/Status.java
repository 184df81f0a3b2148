package io.pagedkv;

import static io.pagedkv.internal.ffi.PagedKvNative.*;

import io.pagedkv.internal.NativeLibrary;
import java.lang.foreign.MemorySegment;

/**
 * The one place where native statuses become exceptions. Every call into the library that returns
 * a {@code pagedkv_status} goes through {@link #check(int)}, on the thread that made the call, so
 * the exception carries that call's {@code pagedkv_last_error()} message.
 */
final class Status {
    static {
        NativeLibrary.ensureLoaded();
    }

    private Status() {}

    /** Returns normally on {@code PAGEDKV_OK}; otherwise throws the matching exception. */
    static void check(int status) {
        if (status != PAGEDKV_OK()) throw error(status);
    }

    /** The exception for a failed status, with this thread's last error message. */
    static PagedKvException error(int status) {
        String message = text(pagedkv_last_error());
        if (message.isEmpty()) message = text(pagedkv_status_string(status));
        if (status == PAGEDKV_ERR_INVALID_ARGUMENT()) return new PagedKvException.InvalidArgument(status, message);
        if (status == PAGEDKV_ERR_NOT_FOUND()) return new PagedKvException.NotFound(status, message);
        if (status == PAGEDKV_ERR_OUT_OF_PAGES()) return new OutOfPagesException(status, message);
        if (status == PAGEDKV_ERR_STALE_BATCH()) return new StaleBatchException(status, message);
        if (status == PAGEDKV_ERR_OUT_OF_MEMORY() || status == PAGEDKV_ERR_UNSUPPORTED()
                || status == PAGEDKV_ERR_NO_DEVICE() || status == PAGEDKV_ERR_CUDA())
            return new PagedKvException.DeviceFailure(status, message);
        return new PagedKvException.Internal(status, "status " + status + ": " + message);
    }

    /** The static name of a status ("out of pages", ...). */
    static String name(int status) {
        return text(pagedkv_status_string(status));
    }

    /** Reads a NUL-terminated string the library returned (a zero-length segment). */
    static String text(MemorySegment cString) {
        return cString.equals(MemorySegment.NULL) ? "" : cString.reinterpret(Long.MAX_VALUE).getString(0);
    }
}
