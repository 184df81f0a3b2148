package io.pagedkv.model.gguf;

/** The metadata value types of GGUF, in the order of their ids. */
enum GgufValueType {
    UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64;

    static GgufValueType of(int id, String key) {
        if (id < 0 || id >= values().length) throw new GgufException("metadata '" + key + "' has unknown value type " + id);
        return values()[id];
    }
}
