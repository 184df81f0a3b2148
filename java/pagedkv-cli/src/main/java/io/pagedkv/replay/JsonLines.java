package io.pagedkv.replay;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;

/**
 * One JSON object per line, written with Jackson's streaming generator: the report's {@code --json}
 * lines and the traces {@link Workloads#toJsonl} writes. Thread-safe (stateless).
 */
public final class JsonLines {
    private static final JsonFactory JSON = new JsonFactory();

    private JsonLines() {}

    /** Writes an object's fields. */
    @FunctionalInterface
    public interface Fields {
        void write(JsonGenerator g) throws IOException;
    }

    /** The object {@code fields} writes, on one line without the newline. */
    public static String object(Fields fields) {
        StringWriter text = new StringWriter();
        try (JsonGenerator g = JSON.createGenerator(text)) {
            g.writeStartObject();
            fields.write(g);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException("writing to a StringWriter cannot fail", e);
        }
        return text.toString();
    }

    /** A number field, or null when {@code value} is not finite (JSON has no NaN or infinity). */
    public static void number(JsonGenerator g, String key, double value) throws IOException {
        if (Double.isFinite(value)) {
            g.writeNumberField(key, value);
        } else {
            g.writeNullField(key);
        }
    }
}
