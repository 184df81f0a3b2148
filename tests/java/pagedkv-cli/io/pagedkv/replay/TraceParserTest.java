package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

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
            "malformed        | {\"tokens\": [1, 2]                          | 2 | malformed JSON",
            "unknown key      | {\"tokens\": [1], \"temperature\": 1}        | 2 | unknown key \"temperature\"",
            "outside vocab    | {\"tokens\": [1, 259]}                       | 2 | token 259 at \"tokens\"[1] is outside the vocabulary",
            "negative token   | {\"tokens\": [-1]}                           | 2 | outside the vocabulary",
            "fraction token   | {\"tokens\": [1.5]}                          | 2 | must be an integer token id",
            "empty prompt     | {\"tokens\": []}                             | 2 | empty prompt",
            "no prompt        | {\"id\": \"x\"}                              | 2 | missing prompt",
            "two prompts      | {\"tokens\": [1], \"text\": \"a\"}           | 2 | only one of",
            "not an object    | [1, 2]                                       | 2 | expected a JSON object",
            "bad max_new      | {\"tokens\": [1], \"max_new_tokens\": -1}    | 2 | max_new_tokens",
            "string max_new   | {\"tokens\": [1], \"max_new_tokens\": \"3\"} | 2 | max_new_tokens",
            "salt type        | {\"tokens\": [1], \"salt\": 3}               | 2 | \"salt\" must be a string",
            "message key      | {\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"name\": \"b\"}]} | 2 | unknown key \"name\" in \"messages\"[0]",
            "message role     | {\"messages\": [{\"content\": \"a\"}]}       | 2 | role must be a non-empty string",
            "duplicate key    | {\"tokens\": [1], \"tokens\": [2]}           | 2 | duplicate key",
            "duplicate id     | {\"id\": \"a\", \"tokens\": [1]}             | 2 | duplicate id \"a\"",
    })
    void badLinesNameTheLineAndTheProblem(String name, String line, int lineNo, String expected) {
        String text = "{\"id\": \"a\", \"tokens\": [5]}\n" + line.trim() + "\n";
        TraceException e = assertThrows(TraceException.class, () -> parse(text));
        assertEquals(lineNo, e.line());
        assertTrue(e.getMessage().startsWith("t.jsonl:" + lineNo + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    void invalidUtf8IsNamed() {
        byte[] bytes = {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xC3, '"', '}'};
        TraceException e = assertThrows(TraceException.class, () -> TraceParser.parse("t.jsonl", bytes, 1));
        assertTrue(e.getMessage().contains("t.jsonl:1: not valid UTF-8"), e.getMessage());
    }

    @Test
    void emptyFileIsAnError() {
        TraceException e = assertThrows(TraceException.class, () -> parse("\n\n"));
        assertTrue(e.getMessage().contains("no requests"), e.getMessage());
    }
}
