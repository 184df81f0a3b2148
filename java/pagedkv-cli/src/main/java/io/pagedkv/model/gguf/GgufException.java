package io.pagedkv.model.gguf;

/** A GGUF file that cannot be read or served: truncated, malformed, or asking for what is not supported. */
public final class GgufException extends RuntimeException {
    public GgufException(String message) {
        super(message);
    }

    public GgufException(String message, Throwable cause) {
        super(message, cause);
    }
}
