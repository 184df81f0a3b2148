package io.pagedkv.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pagedkv.model.Architecture;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.RandomModelWriter;
import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.model.gguf.GgufFile;
import io.pagedkv.model.tokenizer.Tokenizer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pagedkv replay --model FILE.gguf}: a trace of text and chat prompts tokenized by the
 * model's vocabulary and template, run with and without reuse, verified against recomputation.
 */
class ReplayModelTest {
    @TempDir
    Path dir;

    @Test
    void replaysTextAndChatPromptsThroughAGgufModel() throws Exception {
        Path model = dir.resolve("m.gguf");
        ModelShape shape = new ModelShape(Architecture.QWEN2, 2, 256, 2, 1, 128, 512, 320, 1024, 1e-6f, 1000000f, 1f, 128);
        new RandomModelWriter(shape, GgmlType.Q4_0, true, 3f, 5).write(model);
        Path trace = dir.resolve("t.jsonl");
        String system = "You are a careful assistant who answers in one short sentence, always.";
        Files.writeString(trace, String.join("\n",
                "{\"id\": \"a\", \"messages\": [{\"role\": \"system\", \"content\": \"" + system + "\"}, {\"role\": \"user\", \"content\": \"hi\"}], \"max_new_tokens\": 4}",
                "{\"id\": \"b\", \"messages\": [{\"role\": \"system\", \"content\": \"" + system + "\"}, {\"role\": \"user\", \"content\": \"and you?\"}], \"max_new_tokens\": 4}",
                "{\"id\": \"c\", \"text\": \"the quick brown fox\", \"max_new_tokens\": 3}") + "\n");
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int status = Main.run(new String[] {"replay", "--model", model.toString(), "--threads", "2", "--verify", "--json",
                        "--page-size", "8", trace.toString()}, new ByteArrayInputStream(new byte[0]),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8), false);
        assertEquals(0, status, err.toString(StandardCharsets.UTF_8));
        List<JsonNode> lines = new ArrayList<>();
        for (String line : out.toString(StandardCharsets.UTF_8).split("\n")) if (!line.isBlank()) lines.add(new ObjectMapper().readTree(line));
        int[] expectedA;
        try (GgufFile gguf = GgufFile.open(model)) {
            Tokenizer tokenizer = Tokenizer.of(gguf);
            expectedA = tokenizer.encode("<|im_start|>system\n" + system + "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", false, true);
        }
        JsonNode a = lines.stream().filter(n -> "a".equals(n.path("id").asText())).findFirst().orElseThrow();
        JsonNode b = lines.stream().filter(n -> "b".equals(n.path("id").asText())).findFirst().orElseThrow();
        assertEquals(expectedA.length, a.path("prompt_tokens").asInt(), a.toString());
        assertTrue(b.path("cached_tokens").asInt() >= 16, "the shared system message is reused: " + b);
        JsonNode summary = lines.get(lines.size() - 1);
        assertTrue(summary.path("verify").path("ok").asBoolean(), summary.toString());
        assertTrue(summary.path("model").asText().startsWith("pagedkv random qwen2 Q4_0 seed 5 (qwen2:"), summary.toString());
    }
}
