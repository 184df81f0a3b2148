package io.pagedkv.replay;

import io.pagedkv.model.BuiltinModel;
import io.pagedkv.model.GgufModel;
import io.pagedkv.model.Transformer;
import java.io.IOException;
import java.io.UncheckedIOException;

/** The built-in model as the replay runs it (its GGUF loaded by the engine), opened once for the tests. */
final class BuiltinModels {
    private static final GgufModel MODEL = open();

    private BuiltinModels() {}

    static GgufModel model() {
        return MODEL;
    }

    static Transformer transformer() {
        return MODEL.transformer();
    }

    private static GgufModel open() {
        try {
            return BuiltinModel.open(2);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
