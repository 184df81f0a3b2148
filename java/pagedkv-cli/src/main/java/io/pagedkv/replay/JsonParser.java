package io.pagedkv.replay;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small strict JSON parser (RFC 8259), enough for workload traces without a library dependency.
 * Values map to {@code Map<String, Object>} (insertion ordered), {@code List<Object>}, {@code String},
 * {@code Long} (integer literals that fit), {@code BigDecimal} (other numbers), {@code Boolean} and
 * {@link #NULL}. Strict means: one value and nothing after it but whitespace, no trailing commas,
 * no comments, no single quotes, no leading zeros, no control characters in strings, no lone
 * surrogates, no duplicate keys. Errors are {@link JsonException}s naming the column.
 *
 * <p>Stateless apart from one call's input; not thread-safe per instance (use one per call).
 */
public final class JsonParser {
    /** The JSON {@code null}. */
    public static final Object NULL = new Object() {
        @Override
        public String toString() {
            return "null";
        }
    };

    /** Bounds recursion so a hostile line cannot overflow the stack. */
    private static final int MAX_DEPTH = 64;

    private final String text;
    private int pos;

    private JsonParser(String text) {
        this.text = text;
    }

    /** Parses exactly one JSON value from {@code text}. */
    public static Object parse(String text) {
        JsonParser p = new JsonParser(text);
        p.skipWhitespace();
        Object value = p.value(0);
        p.skipWhitespace();
        if (p.pos != text.length()) throw p.error("unexpected " + p.describeNext() + " after the value");
        return value;
    }

    /** A syntax error with the 1-based column where it was found. */
    public static final class JsonException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final int column;

        JsonException(String message, int column) {
            super(message + " at column " + column);
            this.column = column;
        }

        public int column() {
            return column;
        }
    }

    private Object value(int depth) {
        if (depth > MAX_DEPTH) throw error("nesting deeper than " + MAX_DEPTH);
        if (pos >= text.length()) throw error("unexpected end of input, expected a value");
        char c = text.charAt(pos);
        return switch (c) {
            case '{' -> object(depth);
            case '[' -> array(depth);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", NULL);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) yield number();
                throw error("unexpected " + describeNext() + ", expected a value");
            }
        };
    }

    private Map<String, Object> object(int depth) {
        Map<String, Object> map = new LinkedHashMap<>();
        pos++; // '{'
        skipWhitespace();
        if (peek() == '}') {
            pos++;
            return map;
        }
        while (true) {
            skipWhitespace();
            if (peek() != '"') throw error("expected a string key, found " + describeNext());
            int keyStart = pos;
            String key = string();
            skipWhitespace();
            expect(':');
            skipWhitespace();
            Object value = value(depth + 1);
            if (map.put(key, value) != null) {
                pos = keyStart;
                throw error("duplicate key \"" + key + "\"");
            }
            skipWhitespace();
            char c = peek();
            if (c == ',') {
                pos++;
            } else if (c == '}') {
                pos++;
                return map;
            } else {
                throw error("expected ',' or '}', found " + describeNext());
            }
        }
    }

    private List<Object> array(int depth) {
        List<Object> list = new ArrayList<>();
        pos++; // '['
        skipWhitespace();
        if (peek() == ']') {
            pos++;
            return list;
        }
        while (true) {
            skipWhitespace();
            list.add(value(depth + 1));
            skipWhitespace();
            char c = peek();
            if (c == ',') {
                pos++;
            } else if (c == ']') {
                pos++;
                return list;
            } else {
                throw error("expected ',' or ']', found " + describeNext());
            }
        }
    }

    private String string() {
        pos++; // opening quote
        StringBuilder sb = null;
        int runStart = pos;
        while (true) {
            if (pos >= text.length()) throw error("unterminated string");
            char c = text.charAt(pos);
            if (c == '"') {
                String result = sb == null ? text.substring(runStart, pos) : sb.append(text, runStart, pos).toString();
                pos++;
                return result;
            }
            if (c < 0x20) throw error("control character U+" + hex4(c) + " in a string (escape it)");
            if (Character.isSurrogate(c)) {
                if (!Character.isHighSurrogate(c) || pos + 1 >= text.length()
                        || !Character.isLowSurrogate(text.charAt(pos + 1))) {
                    throw error("invalid UTF-16 surrogate in a string");
                }
                pos += 2;
                continue;
            }
            if (c != '\\') {
                pos++;
                continue;
            }
            if (sb == null) sb = new StringBuilder();
            sb.append(text, runStart, pos);
            pos++;
            if (pos >= text.length()) throw error("unterminated escape");
            char e = text.charAt(pos++);
            switch (e) {
                case '"' -> sb.append('"');
                case '\\' -> sb.append('\\');
                case '/' -> sb.append('/');
                case 'b' -> sb.append('\b');
                case 'f' -> sb.append('\f');
                case 'n' -> sb.append('\n');
                case 'r' -> sb.append('\r');
                case 't' -> sb.append('\t');
                case 'u' -> appendUnicodeEscape(sb);
                default -> {
                    pos -= 2;
                    throw error("invalid escape \\" + e);
                }
            }
            runStart = pos;
        }
    }

    /** Reads the four hex digits after {@code \\u}; a surrogate must come as a valid pair. */
    private void appendUnicodeEscape(StringBuilder sb) {
        char c = hexChar();
        if (Character.isHighSurrogate(c)) {
            if (!text.startsWith("\\u", pos)) throw error("high surrogate \\u" + hex4(c) + " without its low half");
            pos += 2;
            char low = hexChar();
            if (!Character.isLowSurrogate(low)) throw error("high surrogate \\u" + hex4(c) + " without its low half");
            sb.append(c).append(low);
        } else if (Character.isLowSurrogate(c)) {
            throw error("lone low surrogate \\u" + hex4(c));
        } else {
            sb.append(c);
        }
    }

    private char hexChar() {
        if (pos + 4 > text.length()) throw error("truncated \\u escape");
        int v = 0;
        for (int i = 0; i < 4; i++) {
            int d = Character.digit(text.charAt(pos + i), 16);
            if (d < 0) throw error("invalid hex digit in \\u escape");
            v = v * 16 + d;
        }
        pos += 4;
        return (char) v;
    }

    private Object number() {
        int start = pos;
        boolean integer = true;
        if (peek() == '-') pos++;
        if (peek() == '0') {
            pos++;
            if (isDigit(peek())) throw error("leading zero in a number");
        } else if (isDigit(peek())) {
            while (isDigit(peek())) pos++;
        } else {
            throw error("expected a digit");
        }
        if (peek() == '.') {
            integer = false;
            pos++;
            if (!isDigit(peek())) throw error("expected a digit after '.'");
            while (isDigit(peek())) pos++;
        }
        if (peek() == 'e' || peek() == 'E') {
            integer = false;
            pos++;
            if (peek() == '+' || peek() == '-') pos++;
            if (!isDigit(peek())) throw error("expected a digit in the exponent");
            while (isDigit(peek())) pos++;
        }
        String literal = text.substring(start, pos);
        if (integer) {
            try {
                return Long.parseLong(literal);
            } catch (NumberFormatException tooLarge) {
                return new BigDecimal(literal);
            }
        }
        return new BigDecimal(literal);
    }

    private Object literal(String word, Object value) {
        if (!text.startsWith(word, pos)) throw error("unexpected " + describeNext() + ", expected a value");
        pos += word.length();
        return value;
    }

    private void expect(char c) {
        if (peek() != c) throw error("expected '" + c + "', found " + describeNext());
        pos++;
    }

    private char peek() {
        return pos < text.length() ? text.charAt(pos) : '\0';
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private void skipWhitespace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
            pos++;
        }
    }

    private String describeNext() {
        if (pos >= text.length()) return "end of input";
        char c = text.charAt(pos);
        return c < 0x20 || c == 0x7f ? "character U+" + hex4(c) : "'" + c + "'";
    }

    private static String hex4(char c) {
        return String.format("%04X", (int) c);
    }

    private JsonException error(String message) {
        return new JsonException(message, pos + 1);
    }
}
