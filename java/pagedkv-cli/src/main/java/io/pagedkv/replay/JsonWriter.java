package io.pagedkv.replay;

import java.util.Locale;

/**
 * Writes one JSON object on one line, keys in the order they are added:
 * {@code new JsonWriter().field("id", "r1").field("n", 3).toString()}. Strings are escaped per
 * RFC 8259; non-finite doubles become {@code null} (JSON has no NaN). Not thread-safe.
 */
public final class JsonWriter {
    private final StringBuilder sb = new StringBuilder("{");
    private boolean first = true;

    public JsonWriter field(String key, String value) {
        key(key);
        if (value == null) {
            sb.append("null");
        } else {
            quote(sb, value);
        }
        return this;
    }

    public JsonWriter field(String key, long value) {
        key(key);
        sb.append(value);
        return this;
    }

    public JsonWriter field(String key, boolean value) {
        key(key);
        sb.append(value);
        return this;
    }

    /** A double with up to 6 significant decimals, trailing zeros dropped. */
    public JsonWriter field(String key, double value) {
        key(key);
        sb.append(number(value));
        return this;
    }

    public JsonWriter field(String key, int[] values) {
        key(key);
        sb.append('[');
        for (int i = 0; i < values.length; i++) {
            if (i > 0) sb.append(',');
            sb.append(values[i]);
        }
        sb.append(']');
        return this;
    }

    /** Nests another object written with a JsonWriter. */
    public JsonWriter field(String key, JsonWriter object) {
        key(key);
        sb.append(object);
        return this;
    }

    @Override
    public String toString() {
        return sb + "}";
    }

    /** A JSON number for {@code value}, or {@code null} when it is not finite. */
    public static String number(double value) {
        if (!Double.isFinite(value)) return "null";
        if (value == Math.rint(value) && Math.abs(value) < 1e15) return Long.toString((long) value);
        double abs = Math.abs(value);
        String s = abs >= 1e-4 && abs < 1e15
                ? String.format(Locale.ROOT, "%.6f", value)
                : String.format(Locale.ROOT, "%.6e", value);
        if (s.contains("e")) {
            String mantissa = s.substring(0, s.indexOf('e')).replaceAll("0+$", "").replaceAll("\\.$", "");
            return mantissa + s.substring(s.indexOf('e'));
        }
        return s.replaceAll("0+$", "").replaceAll("\\.$", "");
    }

    /** Appends {@code s} as a quoted, escaped JSON string. */
    public static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c == 0x7f || (Character.isSurrogate(c) && !validPairAt(s, i))) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    private static boolean validPairAt(String s, int i) {
        char c = s.charAt(i);
        if (Character.isHighSurrogate(c)) return i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
        return i > 0 && Character.isHighSurrogate(s.charAt(i - 1));
    }

    private void key(String key) {
        if (!first) sb.append(',');
        first = false;
        quote(sb, key);
        sb.append(':');
    }
}
