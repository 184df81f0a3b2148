package io.pagedkv.replay;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.exc.StreamReadException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Reads a JSONL workload trace, one request per line:
 * <pre>{"id": "r1", "tokens": [12, 7], "max_new_tokens": 8, "salt": "tenant-a"}</pre>
 * with exactly one of {@code tokens} (token ids), {@code text} (UTF-8 bytes) or {@code messages}
 * (a list of {@code {"role", "content"}} rendered with the chat template), both tokenized by the
 * model's {@link PromptEncoder} (default: the tiny model's bytes and ChatML); {@code id},
 * {@code max_new_tokens} and {@code salt} are optional. Blank lines are skipped; a UTF-8
 * byte-order mark at the start is skipped. Anything else — malformed JSON, an unknown or duplicate
 * key, a wrong type, a number out of range, a token outside the vocabulary, an empty prompt, a
 * repeated id — is a {@link TraceException} naming the line and the column. Each line is read with
 * Jackson's streaming parser. Thread-safe (stateless).
 */
public final class TraceParser {
    private static final String KEY_LIST = "id, tokens, text, messages, max_new_tokens, salt";
    private static final String PROMPT_KEYS = "\"tokens\", \"text\" or \"messages\"";
    /** Generous bound on one request's generation, to catch typos before allocating. */
    static final int MAX_NEW_TOKENS_LIMIT = 1 << 20;
    /** The file name that means standard input. */
    public static final String STDIN = "-";

    private static final JsonFactory JSON = new JsonFactory();
    private static final byte[] UTF8_BOM = {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF};

    private TraceParser() {}

    /** Parses a trace file ({@link #STDIN} reads {@code stdin}); {@code defaultMaxNewTokens} applies to lines without the key. */
    public static List<Request> parse(Path file, int defaultMaxNewTokens) {
        return parse(file, defaultMaxNewTokens, PromptEncoder.BYTES);
    }

    /** Parses a trace file, {@code text} and {@code messages} tokenized by {@code encoder}. */
    public static List<Request> parse(Path file, int defaultMaxNewTokens, PromptEncoder encoder) {
        return parse(file.toString(), read(file), defaultMaxNewTokens, encoder);
    }

    /** Parses a whole stream, e.g. standard input, named {@code source} in messages. */
    public static List<Request> parse(String source, InputStream in, int defaultMaxNewTokens) {
        return parse(source, in, defaultMaxNewTokens, PromptEncoder.BYTES);
    }

    /** Parses a whole stream, {@code text} and {@code messages} tokenized by {@code encoder}. */
    public static List<Request> parse(String source, InputStream in, int defaultMaxNewTokens, PromptEncoder encoder) {
        try {
            return parse(source, in.readAllBytes(), defaultMaxNewTokens, encoder);
        } catch (IOException e) {
            throw new TraceException(source, 0, "cannot read: " + e.getMessage());
        }
    }

    /** Parses trace content; {@code source} names it in messages. */
    public static List<Request> parse(String source, byte[] content, int defaultMaxNewTokens) {
        return parse(source, content, defaultMaxNewTokens, PromptEncoder.BYTES);
    }

    /** Parses trace content, {@code text} and {@code messages} tokenized by {@code encoder}. */
    public static List<Request> parse(String source, byte[] content, int defaultMaxNewTokens, PromptEncoder encoder) {
        List<Request> requests = new ArrayList<>();
        Set<String> ids = new HashSet<>();
        int start = startOfText(source, content);
        int lineNo = 0;
        while (start < content.length) {
            int end = start;
            while (end < content.length && content[end] != '\n') end++;
            lineNo++;
            String line = decodeLine(source, lineNo, content, start, end);
            start = end + 1;
            if (line.isBlank()) continue;
            Request r = parseLine(source, lineNo, line, defaultMaxNewTokens, encoder);
            if (!ids.add(r.id())) throw new TraceException(source, lineNo, "duplicate id \"" + r.id() + "\"");
            requests.add(r);
        }
        if (requests.isEmpty()) throw new TraceException(source, 0, "no requests (the file is empty)");
        return requests;
    }

    /** Parses one line (number {@code lineNo}) into a request. */
    public static Request parseLine(String source, int lineNo, String line, int defaultMaxNewTokens) {
        return parseLine(source, lineNo, line, defaultMaxNewTokens, PromptEncoder.BYTES);
    }

    /** Parses one line, {@code text} and {@code messages} tokenized by {@code encoder}. */
    public static Request parseLine(String source, int lineNo, String line, int defaultMaxNewTokens, PromptEncoder encoder) {
        try (JsonParser p = JSON.createParser(line)) {
            return new LineReader(source, lineNo, p, encoder).request(defaultMaxNewTokens);
        } catch (StreamReadException e) {
            JsonLocation at = e.getLocation();
            throw new TraceException(source, lineNo, at == null ? 0 : at.getColumnNr(), "malformed JSON: " + syntaxProblem(e));
        } catch (IOException e) {
            throw new UncheckedIOException("reading a String cannot fail", e);
        }
    }

    private static byte[] read(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new TraceException(file.toString(), 0, "no such file");
        } catch (AccessDeniedException e) {
            throw new TraceException(file.toString(), 0, "permission denied");
        } catch (IOException e) {
            if (Files.isDirectory(file)) throw new TraceException(file.toString(), 0, "is a directory, not a JSONL file");
            throw new TraceException(file.toString(), 0, "cannot read: " + e.getMessage());
        }
    }

    /** Where the text starts: after a UTF-8 byte-order mark; UTF-16 and UTF-32 are named, not guessed at. */
    private static int startOfText(String source, byte[] content) {
        if (content.length >= 3 && content[0] == UTF8_BOM[0] && content[1] == UTF8_BOM[1] && content[2] == UTF8_BOM[2]) {
            return 3;
        }
        if (content.length >= 2 && ((content[0] == (byte) 0xFF && content[1] == (byte) 0xFE)
                || (content[0] == (byte) 0xFE && content[1] == (byte) 0xFF))) {
            throw new TraceException(source, 1, "starts with a UTF-16 byte-order mark; traces are UTF-8 (save the file as UTF-8)");
        }
        return 0;
    }

    /** Jackson's description of a syntax error, without its location (the caller gives line and column). */
    private static String syntaxProblem(StreamReadException e) {
        String message = e.getOriginalMessage();
        // "(start marker at [Source: ...; line: 1, column: 1])" names where an unclosed object began.
        message = message.replaceAll("\\s*\\(start marker at \\[Source: [^\\]]*; line: \\d+, column: (\\d+)]\\)",
                " (opened at column $1)");
        return message.replaceAll("\\s*\\n.*", "").strip();
    }

    /** Reads one line's object token by token; errors name the line and the column of the value at fault. */
    private static final class LineReader {
        private final String source;
        private final int line;
        private final JsonParser p;
        private final PromptEncoder encoder;

        LineReader(String source, int line, JsonParser p, PromptEncoder encoder) {
            this.source = source;
            this.line = line;
            this.p = p;
            this.encoder = encoder;
        }

        Request request(int defaultMaxNewTokens) throws IOException {
            if (p.nextToken() != JsonToken.START_OBJECT) throw error("expected a JSON object, found " + found());
            Set<String> keys = new HashSet<>();
            String id = null;
            int[] prompt = null;
            int maxNew = defaultMaxNewTokens;
            String salt = "";
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                if (!keys.add(key)) throw error("duplicate key \"" + key + "\"");
                boolean isPrompt = key.equals("tokens") || key.equals("text") || key.equals("messages");
                if (isPrompt && prompt != null) throw error("give only one of " + PROMPT_KEYS);
                if (!isPrompt && !key.equals("id") && !key.equals("max_new_tokens") && !key.equals("salt")) {
                    throw error("unknown key \"" + key + "\" (allowed: " + KEY_LIST + ")");
                }
                p.nextToken();
                switch (key) {
                    case "id" -> id = id();
                    case "tokens" -> prompt = tokens();
                    case "text" -> prompt = encoder.text(string("text"));
                    case "messages" -> prompt = encoder.chat(messages());
                    case "max_new_tokens" -> maxNew = boundedInt("max_new_tokens", 0, MAX_NEW_TOKENS_LIMIT);
                    default -> salt = string("salt");
                }
            }
            if (prompt == null) throw error("missing prompt: give one of " + PROMPT_KEYS);
            if (prompt.length == 0) throw new TraceException(source, line, "empty prompt");
            if (p.nextToken() != null) throw error("found " + found() + " after the request's object (one request per line)");
            return new Request(id != null ? id : "line-" + line, line, prompt, maxNew, salt);
        }

        private String id() throws IOException {
            if (p.currentToken() == JsonToken.VALUE_STRING) {
                if (p.getText().isEmpty()) throw error("\"id\" is empty");
                return p.getText();
            }
            if (p.currentToken() == JsonToken.VALUE_NUMBER_INT) return p.getText();
            throw error("\"id\" must be a string, found " + found());
        }

        private String string(String key) throws IOException {
            if (p.currentToken() != JsonToken.VALUE_STRING) throw error("\"" + key + "\" must be a string, found " + found());
            return p.getText();
        }

        private int boundedInt(String key, int min, int max) throws IOException {
            String range = "[" + min + ", " + max + "]";
            if (p.currentToken() != JsonToken.VALUE_NUMBER_INT) {
                throw error("\"" + key + "\" must be an integer in " + range + ", found " + found());
            }
            if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER || p.getLongValue() < min || p.getLongValue() > max) {
                throw error("\"" + key + "\" is out of range: " + p.getText() + " is not in " + range);
            }
            return p.getIntValue();
        }

        private int[] tokens() throws IOException {
            if (p.currentToken() != JsonToken.START_ARRAY) {
                throw error("\"tokens\" must be an array of token ids, found " + found());
            }
            IntList ids = new IntList(16);
            for (int i = 0; p.nextToken() != JsonToken.END_ARRAY; i++) {
                if (p.currentToken() != JsonToken.VALUE_NUMBER_INT) {
                    throw error("\"tokens\"[" + i + "] must be an integer token id, found " + found());
                }
                if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER || p.getLongValue() < 0
                        || p.getLongValue() >= encoder.vocab()) {
                    throw error("token " + p.getText() + " at \"tokens\"[" + i + "] is outside the vocabulary [0, "
                            + encoder.vocab() + ")");
                }
                ids.add(p.getIntValue());
            }
            return ids.toArray();
        }

        private List<ChatTemplate.Message> messages() throws IOException {
            String shape = "\"messages\" must be a non-empty array of {\"role\", \"content\"} objects";
            if (p.currentToken() != JsonToken.START_ARRAY) throw error(shape + ", found " + found());
            List<ChatTemplate.Message> out = new ArrayList<>();
            for (int i = 0; p.nextToken() != JsonToken.END_ARRAY; i++) {
                out.add(message(i));
            }
            if (out.isEmpty()) throw error(shape + ", found an empty array");
            return out;
        }

        private ChatTemplate.Message message(int i) throws IOException {
            String at = "\"messages\"[" + i + "]";
            if (p.currentToken() != JsonToken.START_OBJECT) throw error(at + " must be an object, found " + found());
            String role = null;
            String content = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                if (!key.equals("role") && !key.equals("content")) {
                    throw error("unknown key \"" + key + "\" in " + at + " (allowed: role, content)");
                }
                if (key.equals("role") ? role != null : content != null) throw error("duplicate key \"" + key + "\" in " + at);
                p.nextToken();
                if (key.equals("role")) {
                    if (p.currentToken() != JsonToken.VALUE_STRING || p.getText().isEmpty()) {
                        throw error(at + ".role must be a non-empty string, found " + found());
                    }
                    role = p.getText();
                } else {
                    if (p.currentToken() != JsonToken.VALUE_STRING) throw error(at + ".content must be a string, found " + found());
                    content = p.getText();
                }
            }
            if (role == null) throw error(at + ".role must be a non-empty string, found nothing");
            if (content == null) throw error(at + ".content must be a string, found nothing");
            return new ChatTemplate.Message(role, content);
        }

        /** The current token as a phrase: "a string", "an array", or the number or literal itself. */
        private String found() throws IOException {
            JsonToken t = p.currentToken();
            if (t == null) return "nothing";
            return switch (t) {
                case START_OBJECT -> "an object";
                case START_ARRAY -> "an array";
                case VALUE_STRING -> "a string";
                case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT, VALUE_TRUE, VALUE_FALSE, VALUE_NULL -> p.getText();
                default -> t.asString() != null ? "'" + t.asString() + "'" : t.name();
            };
        }

        /** A problem at the current token's column. */
        private TraceException error(String problem) {
            return new TraceException(source, line, p.currentTokenLocation().getColumnNr(), problem);
        }
    }

    /** The line as text; invalid UTF-8 is named with the column where it starts. */
    private static String decodeLine(String source, int lineNo, byte[] content, int start, int end) {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(content, start, end - start);
        CharBuffer out = CharBuffer.allocate(end - start); // UTF-8 never decodes to more chars than bytes
        CoderResult result = decoder.decode(in, out, true);
        if (!result.isError()) result = decoder.flush(out);
        if (result.isError()) {
            throw new TraceException(source, lineNo, out.position() + 1,
                    String.format("not valid UTF-8 (byte 0x%02X)", content[in.position()] & 0xFF));
        }
        return out.flip().toString();
    }
}
