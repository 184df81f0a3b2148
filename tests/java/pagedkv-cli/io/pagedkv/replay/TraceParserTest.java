package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class TraceParserTest {
    private static List<Request> parse(String text) {
        return TraceParser.parse("t.jsonl", text.getBytes(StandardCharsets.UTF_8), 5);
    }

    @Test
    void readsTokensTextAndMessages() {
        List<Request> rs = parse("""
                {"id": "a", "tokens": [1, 2, 258], "max_new_tokens": 3, "salt": "x"}

                {"text": "hé"}
                {"id": 7, "messages": [{"role": "user", "content": "hi"}]}
                """);
        assertEquals(3, rs.size());
        assertEquals("a", rs.get(0).id());
        assertArrayEquals(new int[] {1, 2, 258}, rs.get(0).prompt());
        assertEquals(3, rs.get(0).maxNewTokens());
        assertEquals("x", rs.get(0).salt());
        assertEquals(1, rs.get(0).line());
        assertEquals("line-3", rs.get(1).id());
        assertArrayEquals(new int[] {'h', 0xC3, 0xA9}, rs.get(1).prompt());
        assertEquals(5, rs.get(1).maxNewTokens(), "default max_new_tokens");
        assertEquals("", rs.get(1).salt());
        assertEquals("7", rs.get(2).id());
        assertEquals(4, rs.get(2).line());
    }

    /**
     * Random traces written by Jackson's databind (an independent writer: escapes, non-ASCII and
     * astral characters, keys in random order, optional keys left out) read back field for field.
     */
    @ParameterizedTest(name = "{0} requests")
    @ValueSource(ints = {1, 17, 300})
    void randomTracesWrittenByAnotherWriterReadBack(int n) throws IOException {
        Random random = new Random(n);
        ObjectMapper writer = new ObjectMapper();
        StringBuilder trace = new StringBuilder();
        List<Request> expected = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            List<Map.Entry<String, Object>> fields = new ArrayList<>();
            int[] prompt;
            switch (random.nextInt(3)) {
                case 0 -> {
                    prompt = random.ints(1 + random.nextInt(40), 0, Tokenizer.VOCAB_SIZE).toArray();
                    fields.add(Map.entry("tokens", prompt));
                }
                case 1 -> {
                    String text = randomText(random, 1 + random.nextInt(30));
                    prompt = unsignedBytes(text.getBytes(StandardCharsets.UTF_8));
                    fields.add(Map.entry("text", text));
                }
                default -> {
                    List<ChatTemplate.Message> messages = new ArrayList<>();
                    List<Map<String, String>> written = new ArrayList<>();
                    for (int m = 0, count = 1 + random.nextInt(3); m < count; m++) {
                        String role = random.nextBoolean() ? "user" : randomText(random, 1 + random.nextInt(5));
                        String content = randomText(random, random.nextInt(20));
                        messages.add(new ChatTemplate.Message(role, content));
                        Map<String, String> message = new LinkedHashMap<>();
                        if (random.nextBoolean()) {
                            message.put("role", role);
                            message.put("content", content);
                        } else {
                            message.put("content", content);
                            message.put("role", role);
                        }
                        written.add(message);
                    }
                    prompt = ChatTemplate.render(messages);
                    fields.add(Map.entry("messages", written));
                }
            }
            String id = "line-" + (i + 1);
            if (random.nextBoolean()) {
                id = "r" + i + randomText(random, random.nextInt(6));
                fields.add(Map.entry("id", id));
            }
            int maxNew = 5;
            if (random.nextBoolean()) {
                maxNew = random.nextInt(1000);
                fields.add(Map.entry("max_new_tokens", maxNew));
            }
            String salt = "";
            if (random.nextBoolean()) {
                salt = randomText(random, random.nextInt(8));
                fields.add(Map.entry("salt", salt));
            }
            Collections.shuffle(fields, random);
            Map<String, Object> object = new LinkedHashMap<>();
            for (Map.Entry<String, Object> field : fields) object.put(field.getKey(), field.getValue());
            trace.append(writer.writeValueAsString(object)).append('\n');
            expected.add(new Request(id, i + 1, prompt, maxNew, salt));
        }
        List<Request> parsed = parse(trace.toString());
        assertEquals(expected.size(), parsed.size());
        for (int i = 0; i < n; i++) {
            Request want = expected.get(i);
            Request got = parsed.get(i);
            assertEquals(want.id(), got.id());
            assertEquals(want.line(), got.line());
            assertArrayEquals(want.prompt(), got.prompt(), want.id());
            assertEquals(want.maxNewTokens(), got.maxNewTokens());
            assertEquals(want.salt(), got.salt());
        }
    }

    /** Text with what JSON must escape, non-ASCII and characters outside the BMP. */
    private static String randomText(Random random, int length) {
        String[] pieces = {"a", "Z", "7", " ", "\"", "\\", "/", "\n", "\t", "\u0001", "\u001f", "é", "ß", "中", "😀", "\u2028", "{", "]", ","};
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < length; i++) sb.append(pieces[random.nextInt(pieces.length)]);
        return sb.toString();
    }

    private static int[] unsignedBytes(byte[] bytes) {
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) ids[i] = bytes[i] & 0xFF;
        return ids;
    }

    @Test
    void chatMlTemplate() {
        int[] rendered = ChatTemplate.render(List.of(new ChatTemplate.Message("system", "S"), new ChatTemplate.Message("user", "U")));
        String expected = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n";
        assertEquals(expected, Tokenizer.decode(rendered));
        assertEquals(Tokenizer.IM_START, rendered[0]);
        // Special tokens are single ids; the same characters in plain text are bytes.
        assertEquals(10, Tokenizer.encode("<|im_end|>").length);
    }

    @Test
    void bundledExamplesParse() {
        for (String name : List.of("exllamav2.jsonl", "chat.jsonl", "few-shot.jsonl")) {
            List<Request> rs = TraceParser.parse(Path.of("examples", name), 16);
            assertTrue(rs.size() >= 3, name);
        }
    }

    @Test
    void bundledExllamav2FileMatchesTheBuiltInScenario() {
        List<Request> file = TraceParser.parse(Path.of("examples", "exllamav2.jsonl"), 16);
        List<Request> builtIn = Workloads.exllamav2();
        assertEquals(builtIn.size(), file.size());
        for (int i = 0; i < file.size(); i++) {
            assertArrayEquals(builtIn.get(i).prompt(), file.get(i).prompt());
            assertEquals(builtIn.get(i).maxNewTokens(), file.get(i).maxNewTokens());
            assertEquals(builtIn.get(i).id(), file.get(i).id());
        }
        assertEquals(Workloads.toJsonl(builtIn), Workloads.toJsonl(file));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "malformed        | {\"tokens\": [1, 2]                          | 18 | malformed JSON: Unexpected end-of-input",
            "unknown key      | {\"tokens\": [1], \"temperature\": 1}        | 17 | unknown key \"temperature\" (allowed: id, tokens, text, messages, max_new_tokens, salt)",
            "outside vocab    | {\"tokens\": [1, 259]}                       | 16 | token 259 at \"tokens\"[1] is outside the vocabulary [0, 259)",
            "negative token   | {\"tokens\": [-1]}                           | 13 | token -1 at \"tokens\"[0] is outside the vocabulary",
            "huge token       | {\"tokens\": [123456789012345678901234]}     | 13 | token 123456789012345678901234 at \"tokens\"[0] is outside",
            "fraction token   | {\"tokens\": [1.5]}                          | 13 | \"tokens\"[0] must be an integer token id, found 1.5",
            "tokens type      | {\"tokens\": \"1 2\"}                        | 12 | \"tokens\" must be an array of token ids, found a string",
            "empty prompt     | {\"tokens\": []}                             |  0 | empty prompt",
            "no prompt        | {\"id\": \"x\"}                              | 11 | missing prompt: give one of \"tokens\", \"text\" or \"messages\"",
            "two prompts      | {\"tokens\": [1], \"text\": \"a\"}           | 17 | give only one of",
            "not an object    | [1, 2]                                       |  1 | expected a JSON object, found an array",
            "two objects      | {\"tokens\": [1]} {\"tokens\": [2]}          | 17 | found an object after the request's object (one request per line)",
            "bad max_new      | {\"tokens\": [1], \"max_new_tokens\": -1}    | 35 | \"max_new_tokens\" is out of range: -1 is not in [0, 1048576]",
            "string max_new   | {\"tokens\": [1], \"max_new_tokens\": \"3\"} | 35 | \"max_new_tokens\" must be an integer in [0, 1048576], found a string",
            "salt type        | {\"tokens\": [1], \"salt\": 3}               | 25 | \"salt\" must be a string, found 3",
            "id type          | {\"tokens\": [1], \"id\": true}              | 23 | \"id\" must be a string, found true",
            "message key      | {\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"name\": \"b\"}]} | 48 | unknown key \"name\" in \"messages\"[0] (allowed: role, content)",
            "message role     | {\"messages\": [{\"content\": \"a\"}]}       | 30 | \"messages\"[0].role must be a non-empty string, found nothing",
            "no messages      | {\"messages\": []}                           | 15 | \"messages\" must be a non-empty array",
            "duplicate key    | {\"tokens\": [1], \"tokens\": [2]}           | 17 | duplicate key \"tokens\"",
            "duplicate id     | {\"id\": \"a\", \"tokens\": [1]}             |  0 | duplicate id \"a\"",
            "trailing comma   | {\"tokens\": [1],}                           | 16 | malformed JSON: Unexpected character ('}'",
            "leading zero     | {\"tokens\": [01]}                           | 14 | malformed JSON: Invalid numeric value: Leading zeroes not allowed",
    })
    void badLinesNameTheLineColumnAndProblem(String name, String line, int column, String expected) {
        String text = "{\"id\": \"a\", \"tokens\": [5]}\n" + line.trim() + "\n";
        TraceException e = assertThrows(TraceException.class, () -> parse(text));
        assertEquals(2, e.line());
        assertEquals(column, e.column(), e.getMessage());
        String where = column > 0 ? "t.jsonl:2:" + column + ": " : "t.jsonl:2: ";
        assertTrue(e.getMessage().startsWith(where + expected), e.getMessage());
    }

    @Test
    void aUtf8ByteOrderMarkIsSkipped() {
        byte[] text = "{\"id\": \"a\", \"tokens\": [5]}\n".getBytes(StandardCharsets.UTF_8);
        byte[] withBom = new byte[text.length + 3];
        withBom[0] = (byte) 0xEF;
        withBom[1] = (byte) 0xBB;
        withBom[2] = (byte) 0xBF;
        System.arraycopy(text, 0, withBom, 3, text.length);
        assertEquals("a", TraceParser.parse("t.jsonl", withBom, 1).get(0).id());
    }

    @Test
    void invalidUtf8IsNamed() {
        byte[] bytes = {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xC3, '"', '}'};
        TraceException e = assertThrows(TraceException.class, () -> TraceParser.parse("t.jsonl", bytes, 1));
        assertEquals("t.jsonl:1:10: not valid UTF-8 (byte 0xC3)", e.getMessage());
    }

    @Test
    void emptyFileIsAnError() {
        TraceException e = assertThrows(TraceException.class, () -> parse("\n\n"));
        assertTrue(e.getMessage().contains("no requests"), e.getMessage());
    }
}
