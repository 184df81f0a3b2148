package io.pagedkv.replay;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads a JSONL workload trace, one request per line:
 * <pre>{"id": "r1", "tokens": [12, 7], "max_new_tokens": 8, "salt": "tenant-a"}</pre>
 * with exactly one of {@code tokens} (token ids), {@code text} (UTF-8 bytes) or {@code messages}
 * (a list of {@code {"role", "content"}} rendered with {@link ChatTemplate}); {@code id},
 * {@code max_new_tokens} and {@code salt} are optional. Blank lines are skipped. Anything else —
 * malformed JSON, an unknown or duplicate key, a wrong type, a token outside the vocabulary, an
 * empty prompt, a repeated id — is a {@link TraceException} naming the line. Thread-safe (stateless).
 */
public final class TraceParser {
    private static final Set<String> KEYS = Set.of("id", "tokens", "text", "messages", "max_new_tokens", "salt");
    private static final String KEY_LIST = "id, tokens, text, messages, max_new_tokens, salt";
    private static final Set<String> MESSAGE_KEYS = Set.of("role", "content");
    /** Generous bound on one request's generation, to catch typos before allocating. */
    static final int MAX_NEW_TOKENS_LIMIT = 1 << 20;

    private TraceParser() {}

    /** Parses a trace file; {@code defaultMaxNewTokens} applies to lines without the key. */
    public static List<Request> parse(Path file, int defaultMaxNewTokens) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new TraceException(file.toString(), 0, "cannot read: " + e.getMessage());
        }
        return parse(file.toString(), bytes, defaultMaxNewTokens);
    }

    /** Parses trace content; {@code source} names it in messages. */
    public static List<Request> parse(String source, byte[] content, int defaultMaxNewTokens) {
        List<Request> requests = new ArrayList<>();
        Set<String> ids = new HashSet<>();
        int lineNo = 0;
        int start = 0;
        while (start < content.length) {
            int end = start;
            while (end < content.length && content[end] != '\n') end++;
            lineNo++;
            String line = decodeLine(source, lineNo, content, start, end);
            start = end + 1;
            if (line.isBlank()) continue;
            Request r = parseLine(source, lineNo, line, defaultMaxNewTokens);
            if (!ids.add(r.id())) throw new TraceException(source, lineNo, "duplicate id \"" + r.id() + "\"");
            requests.add(r);
        }
        if (requests.isEmpty()) throw new TraceException(source, 0, "no requests (the file is empty)");
        return requests;
    }

    /** Parses one line (number {@code lineNo}) into a request. */
    public static Request parseLine(String source, int lineNo, String line, int defaultMaxNewTokens) {
        Object value;
        try {
            value = JsonParser.parse(line);
        } catch (JsonParser.JsonException e) {
            throw new TraceException(source, lineNo, "malformed JSON: " + e.getMessage());
        }
        if (!(value instanceof Map<?, ?> map)) {
            throw new TraceException(source, lineNo, "expected a JSON object, found " + typeName(value));
        }
        for (Object key : map.keySet()) {
            if (!KEYS.contains(key)) {
                throw new TraceException(source, lineNo, "unknown key \"" + key + "\" (allowed: " + KEY_LIST + ")");
            }
        }
        Field f = new Field(source, lineNo);
        String id = map.containsKey("id") ? f.id(map.get("id")) : "line-" + lineNo;
        int present = (map.containsKey("tokens") ? 1 : 0) + (map.containsKey("text") ? 1 : 0)
                + (map.containsKey("messages") ? 1 : 0);
        if (present != 1) {
            throw new TraceException(source, lineNo, present == 0
                    ? "missing prompt: give one of \"tokens\", \"text\" or \"messages\""
                    : "give only one of \"tokens\", \"text\" or \"messages\"");
        }
        int[] prompt;
        if (map.containsKey("tokens")) {
            prompt = f.tokens(map.get("tokens"));
        } else if (map.containsKey("text")) {
            prompt = Tokenizer.encode(f.string("text", map.get("text")));
        } else {
            prompt = ChatTemplate.render(f.messages(map.get("messages")));
        }
        if (prompt.length == 0) throw new TraceException(source, lineNo, "empty prompt");
        int maxNew = map.containsKey("max_new_tokens")
                ? f.boundedInt("max_new_tokens", map.get("max_new_tokens"), 0, MAX_NEW_TOKENS_LIMIT)
                : defaultMaxNewTokens;
        String salt = map.containsKey("salt") ? f.string("salt", map.get("salt")) : "";
        return new Request(id, lineNo, prompt, maxNew, salt);
    }

    /** Typed access to field values, with errors naming the line. */
    private record Field(String source, int line) {
        String id(Object v) {
            if (v instanceof String s) {
                if (s.isEmpty()) throw error("\"id\" is empty");
                return s;
            }
            if (v instanceof Long n) return Long.toString(n);
            throw error("\"id\" must be a string, found " + typeName(v));
        }

        String string(String key, Object v) {
            if (v instanceof String s) return s;
            throw error("\"" + key + "\" must be a string, found " + typeName(v));
        }

        int boundedInt(String key, Object v, int min, int max) {
            if (!(v instanceof Long n) || n < min || n > max) {
                throw error("\"" + key + "\" must be an integer in [" + min + ", " + max + "], found " + show(v));
            }
            return (int) (long) n;
        }

        int[] tokens(Object v) {
            if (!(v instanceof List<?> list)) throw error("\"tokens\" must be an array of token ids, found " + typeName(v));
            int[] ids = new int[list.size()];
            for (int i = 0; i < ids.length; i++) {
                Object t = list.get(i);
                if (!(t instanceof Long n)) {
                    throw error("\"tokens\"[" + i + "] must be an integer token id, found " + show(t));
                }
                if (n < 0 || n >= Tokenizer.VOCAB_SIZE) {
                    throw error("token " + n + " at \"tokens\"[" + i + "] is outside the vocabulary [0, "
                            + Tokenizer.VOCAB_SIZE + ")");
                }
                ids[i] = (int) (long) n;
            }
            return ids;
        }

        List<ChatTemplate.Message> messages(Object v) {
            if (!(v instanceof List<?> list) || list.isEmpty()) {
                throw error("\"messages\" must be a non-empty array of {\"role\", \"content\"} objects");
            }
            List<ChatTemplate.Message> out = new ArrayList<>();
            for (int i = 0; i < list.size(); i++) {
                if (!(list.get(i) instanceof Map<?, ?> m)) {
                    throw error("\"messages\"[" + i + "] must be an object, found " + typeName(list.get(i)));
                }
                for (Object key : m.keySet()) {
                    if (!MESSAGE_KEYS.contains(key)) {
                        throw error("unknown key \"" + key + "\" in \"messages\"[" + i + "] (allowed: role, content)");
                    }
                }
                if (!(m.get("role") instanceof String role) || role.isEmpty()) {
                    throw error("\"messages\"[" + i + "].role must be a non-empty string");
                }
                if (!(m.get("content") instanceof String content)) {
                    throw error("\"messages\"[" + i + "].content must be a string");
                }
                out.add(new ChatTemplate.Message(role, content));
            }
            return out;
        }

        TraceException error(String problem) {
            return new TraceException(source, line, problem);
        }
    }

    private static String decodeLine(String source, int lineNo, byte[] content, int start, int end) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(content, start, end - start))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new TraceException(source, lineNo, "not valid UTF-8");
        }
    }

    private static String show(Object v) {
        if (v instanceof Long || v instanceof BigDecimal || v instanceof Boolean) return v.toString();
        return typeName(v);
    }

    private static String typeName(Object v) {
        if (v instanceof Map) return "an object";
        if (v instanceof List) return "an array";
        if (v instanceof String) return "a string";
        if (v instanceof Long || v instanceof BigDecimal) return "a number";
        if (v instanceof Boolean) return "a boolean";
        return "null";
    }
}
