package io.pagedkv.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.model.Architecture;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.RandomModelWriter;
import io.pagedkv.model.gguf.GgmlType;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code pagedkv chat} end to end on a random-weight GGUF, with its commands and its usage errors. */
class ChatCommandTest {
    private static final Pattern TURN = Pattern.compile("\\[turn (\\d+): (\\d+) prompt tokens, (\\d+) reused from the cache, (\\d+) computed;");

    @TempDir
    Path dir;

    private record Result(int status, String out, String err) {}

    private static Result run(String stdin, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int status = Main.run(args, new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8), false);
        return new Result(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void turnsReuseTheConversationAndCommandsWork() throws Exception {
        Path model = dir.resolve("m.gguf");
        ModelShape shape = new ModelShape(Architecture.LLAMA, 2, 256, 4, 2, 64, 512, 320, 1024, 1e-5f, 10000f, 1f, 64);
        new RandomModelWriter(shape, GgmlType.Q8_0, false, 3f, 11).write(model);
        Result r = run("hello\nwhat next?\n/stats\n/reset\nhello\n/quit\n",
                "chat", "--model", model.toString(), "--max-tokens", "5", "--threads", "2", "--temperature", "0.7",
                "--top-k", "50", "--top-p", "0.8", "--repetition-penalty", "1.05", "--seed", "3");
        assertEquals(0, r.status(), r.err());
        Matcher m = TURN.matcher(r.out());
        int[][] turns = new int[3][];
        for (int i = 0; i < 3; i++) {
            assertTrue(m.find(), "turn line " + i + " in:\n" + r.out());
            turns[i] = new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3))};
        }
        assertEquals(0, turns[0][2], "first turn: nothing cached yet");
        assertTrue(turns[1][2] >= turns[0][1], "second turn reuses at least the first prompt: " + r.out());
        assertEquals(1, turns[2][0], "/reset starts the count again");
        assertEquals(turns[0][1] - 1, turns[2][2], "after /reset the same opening is cached but its last position");
        assertTrue(r.out().contains("cache: ") && r.out().contains("reused ("), r.out());
        assertTrue(r.out().contains("chat template: chatml"), r.out());
    }

    @Test
    void usageErrorsNameTheProblem() throws Exception {
        Result missing = run("", "chat");
        assertEquals(2, missing.status());
        assertTrue(missing.err().contains("--model"), missing.err());
        Result absent = run("", "chat", "--model", dir.resolve("nope.gguf").toString());
        assertEquals(1, absent.status());
        assertTrue(absent.err().contains("nope.gguf"), absent.err());
        Path text = dir.resolve("text.gguf");
        Files.writeString(text, "not a model");
        Result bad = run("", "chat", "--model", text.toString());
        assertEquals(1, bad.status());
        assertTrue(bad.err().contains("not a GGUF file"), bad.err());
    }
}
