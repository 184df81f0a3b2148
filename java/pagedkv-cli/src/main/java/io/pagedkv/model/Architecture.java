package io.pagedkv.model;

import io.pagedkv.model.gguf.GgufException;

/** The decoder architectures served, by their GGUF {@code general.architecture} name. */
public enum Architecture {
    /** Llama 2/3, TinyLlama, Mistral-style GQA: rotary on adjacent pairs (GGUF permutes Q/K rows for it). */
    LLAMA("llama", false, false),
    /** Qwen2: biases on Q, K and V; NEOX rotary (first half with second half). */
    QWEN2("qwen2", true, true);

    private final String ggufName;
    private final boolean qkvBias;
    private final boolean neoxRope;

    Architecture(String ggufName, boolean qkvBias, boolean neoxRope) {
        this.ggufName = ggufName;
        this.qkvBias = qkvBias;
        this.neoxRope = neoxRope;
    }

    public String ggufName() {
        return ggufName;
    }

    public boolean qkvBias() {
        return qkvBias;
    }

    public boolean neoxRope() {
        return neoxRope;
    }

    public static Architecture of(String name) {
        for (Architecture a : values()) if (a.ggufName.equals(name)) return a;
        throw new GgufException("architecture '" + name + "' is not supported; supported: llama, qwen2");
    }
}
