package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class JsonParserTest {
    @Test
    void parsesEveryKindOfValue() {
        Object v = JsonParser.parse(" {\"a\": [1, -2, 3.5, 1e3, true, false, null], \"s\": \"x\\n\\u00e9\\ud83d\\ude00\\\"\", \"o\": {}} ");
        Map<?, ?> m = assertInstanceOf(Map.class, v);
        List<?> a = assertInstanceOf(List.class, m.get("a"));
        assertEquals(1L, a.get(0));
        assertEquals(-2L, a.get(1));
        assertEquals(new BigDecimal("3.5"), a.get(2));
        assertEquals(new BigDecimal("1e3"), a.get(3));
        assertEquals(Boolean.TRUE, a.get(4));
        assertEquals(Boolean.FALSE, a.get(5));
        assertSame(JsonParser.NULL, a.get(6));
        assertEquals("x\n\u00e9\uD83D\uDE00\"", m.get("s"));
        assertEquals(Map.of(), m.get("o"));
        assertEquals(List.of("a", "s", "o"), List.copyOf(m.keySet()));
    }

    @Test
    void hugeIntegersBecomeDecimals() {
        assertEquals(new BigDecimal("123456789012345678901234567890"), JsonParser.parse("123456789012345678901234567890"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "{", "{\"a\":1,}", "[1,]", "[1 2]", "{'a':1}", "{\"a\" 1}", "01", "1.", ".5", "-",
            "+1", "1e", "tru", "nul", "\"abc", "\"a\tb\"", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "{\"a\":1} x",
            "{\"a\":1}{", "/* c */ 1", "{\"a\":1,\"a\":2}", "NaN", "[1] // comment", "\"\\u12G4\""})
    void rejectsInvalidJson(String text) {
        JsonParser.JsonException e = assertThrows(JsonParser.JsonException.class, () -> JsonParser.parse(text));
        assertTrue(e.getMessage().contains("column"), e.getMessage());
    }

    @Test
    void errorNamesTheColumn() {
        JsonParser.JsonException e = assertThrows(JsonParser.JsonException.class, () -> JsonParser.parse("{\"a\": [1, 2,]}"));
        assertEquals(13, e.column(), e.getMessage());
    }

    @Test
    void rejectsDeepNesting() {
        String deep = "[".repeat(100) + "]".repeat(100);
        assertThrows(JsonParser.JsonException.class, () -> JsonParser.parse(deep));
    }

    @Test
    void writerRoundTrips() {
        String s = new JsonWriter().field("id", "a\"b\\c\n\u0001é").field("n", 3).field("x", 0.25).field("t", new int[] {1, 2})
                .field("nan", Double.NaN).field("o", new JsonWriter().field("ok", true)).toString();
        Map<?, ?> m = assertInstanceOf(Map.class, JsonParser.parse(s));
        assertEquals("a\"b\\c\n\u0001é", m.get("id"));
        assertEquals(3L, m.get("n"));
        assertEquals(new BigDecimal("0.25"), m.get("x"));
        assertEquals(List.of(1L, 2L), m.get("t"));
        assertSame(JsonParser.NULL, m.get("nan"));
        assertEquals(Map.of("ok", true), m.get("o"));
    }
}
