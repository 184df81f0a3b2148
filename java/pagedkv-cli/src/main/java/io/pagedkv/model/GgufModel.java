package io.pagedkv.model;

import io.pagedkv.model.gguf.GgufFile;
import io.pagedkv.model.tensor.Parallel;
import io.pagedkv.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A GGUF model ready to run: the mapped file, its {@link Transformer} on a pool of worker threads,
 * and its {@link Tokenizer}. Closing it stops the workers and unmaps the file. Thread-safe to read;
 * close once.
 */
public final class GgufModel implements AutoCloseable {
    private final GgufFile file;
    private final Parallel parallel;
    private final Transformer transformer;
    private final Tokenizer tokenizer;

    private GgufModel(GgufFile file, Parallel parallel) {
        this.file = file;
        this.parallel = parallel;
        this.transformer = new Transformer(file, parallel);
        this.tokenizer = Tokenizer.of(file);
    }

    /** Maps {@code path} and prepares the model with {@code threads} workers for its products. */
    public static GgufModel open(Path path, int threads) throws IOException {
        GgufFile file = GgufFile.open(path);
        Parallel parallel = null;
        try {
            parallel = new Parallel(threads);
            return new GgufModel(file, parallel);
        } catch (RuntimeException e) {
            if (parallel != null) parallel.close();
            file.close();
            throw e;
        }
    }

    public GgufFile file() {
        return file;
    }

    public Transformer transformer() {
        return transformer;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** The file's chat template, or null. */
    public String chatTemplate() {
        return file.has("tokenizer.chat_template") ? file.string("tokenizer.chat_template") : null;
    }

    /** The file's general.name, or its file name. */
    public String name() {
        return file.has("general.name") ? file.string("general.name") : file.path().getFileName().toString();
    }

    /** One line for reports: name, shape, weight type, threads. */
    public String describe() {
        return name() + " (" + transformer.shape().describe() + ", " + transformer.weightType() + " weights, "
                + parallel.threads() + " threads)";
    }

    @Override
    public void close() {
        parallel.close();
        file.close();
    }
}
