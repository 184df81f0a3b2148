package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.PagedKvCache;
import io.pagedkv.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The command line through {@link Main#run}, which returns the exit status instead of exiting. */
class CliTest {
    @TempDir
    Path dir;

    private record Outcome(int status, String out, String err) {}

    private static Outcome cli(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8), false);
        return new Outcome(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private Path trace(String content) throws IOException {
        Path file = dir.resolve("trace.jsonl");
        Files.writeString(file, content);
        return file;
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "malformed line  | {\"tokens\": [1, 2]                      | trace.jsonl:2: malformed JSON",
            "unknown key     | {\"tokens\": [1], \"prompt\": \"x\"}     | trace.jsonl:2: unknown key \"prompt\"",
            "outside vocab   | {\"tokens\": [1, 300]}                   | trace.jsonl:2: token 300 at \"tokens\"[1] is outside the vocabulary [0, 259)",
            "too long        | {\"id\": \"big\", \"text\": \"%LONG%\"}  | trace.jsonl:2: request \"big\" is longer than the cache can ever hold",
    })
    void badInputNamesTheLineAndExitsWith2WithoutAStackTrace(String name, String line, String expected) throws IOException {
        String second = line.trim().replace("%LONG%", "x".repeat(200));
        Path file = trace("{\"id\": \"first\", \"tokens\": [1, 2, 3]}\n" + second + "\n");
        Outcome o = cli("replay", "--pages", "8", "--page-size", "16", file.toString());
        assertEquals(2, o.status(), o.err());
        assertTrue(o.err().contains(expected), o.err());
        assertFalse(o.err().contains("\tat "), "no stack trace without --debug: " + o.err());
        assertEquals("", o.out());
    }

    @Test
    void debugShowsTheStackTrace() throws IOException {
        Path file = trace("{\"tokens\": [1], \"bogus\": 1}\n");
        Outcome o = cli("replay", "--debug", file.toString());
        assertEquals(2, o.status());
        assertTrue(o.err().contains("\tat "), o.err());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "unknown option   | replay --frobnicate        | unknown option --frobnicate",
            "missing value    | replay --batch             | --batch needs a value",
            "bad number       | replay --batch two         | --batch needs an integer",
            "bad dtype        | replay --kv-dtype fp8      | --kv-dtype must be f32, f16 or bf16",
            "bad device       | replay --device tpu        | --device must be cpu, cuda or cuda:N",
            "bad disallow     | replay --disallow 999      | --disallow: token 999 is outside the vocabulary",
            "two files        | replay a.jsonl b.jsonl     | at most one trace file",
            "unknown command  | frobnicate                 | unknown command 'frobnicate'",
            "missing file     | replay /nonexistent.jsonl  | /nonexistent.jsonl: cannot read",
            "bad schedule     | replay --schedule sjf      | --schedule must be fcfs or lpm",
            "topic alone      | replay --kv-events-topic t | --kv-events-topic needs --kv-events",
            "three endpoints  | replay --kv-events a,b,c   | --kv-events takes ENDPOINT or ENDPOINT,REPLAY_ENDPOINT",
            "events, no reuse | replay --no-reuse --kv-events ipc:///tmp/x | --no-reuse makes none",
    })
    void badUsageExitsWith2(String name, String args, String expected) {
        Outcome o = cli(args.trim().split("\\s+"));
        assertEquals(2, o.status(), o.err());
        assertTrue(o.err().contains(expected), o.err());
        assertFalse(o.err().contains("\tat "), o.err());
    }

    @Test
    void helpAndVersion() {
        Outcome help = cli("replay", "--help");
        assertEquals(0, help.status());
        assertTrue(help.out().contains("--repetition-penalty"));
        assertEquals(0, cli("help").status());
        Outcome version = cli("--version");
        assertEquals(0, version.status());
        assertEquals("pagedkv " + PagedKvCache.versionString(), version.out().trim());
    }

    @Test
    void infoPrintsVersionBackendsAndDevices() {
        Outcome o = cli("info");
        assertEquals(0, o.status(), o.err());
        assertTrue(o.out().startsWith("pagedkv " + PagedKvCache.versionString()), o.out());
        assertTrue(o.out().contains("backends: cpu"), o.out());
        assertTrue(o.out().contains("\ncpu: "), o.out());
        assertTrue(o.out().contains("\ncuda"), o.out());
    }

    @Test
    void cudaWithoutADeviceIsAClearFailure() throws IOException {
        if (PagedKvCache.cudaDeviceCount() > 0) return; // covered by the GPU run of the replay instead
        Path file = trace("{\"tokens\": [1, 2, 3], \"max_new_tokens\": 1}\n");
        Outcome o = cli("replay", "--device", "cuda", file.toString());
        assertEquals(1, o.status(), o.err());
        assertTrue(o.err().startsWith("pagedkv: "), o.err());
        assertFalse(o.err().contains("\tat "), o.err());
    }

    @Test
    void jsonWritesOneObjectPerRequestAndASummary() throws IOException {
        Path file = trace("""
                {"id": "a", "text": "The quick brown fox jumps over the lazy dog.", "max_new_tokens": 3}
                {"id": "b", "text": "The quick brown fox jumps over the lazy cat.", "max_new_tokens": 2}
                {"id": "c", "text": "The quick brown fox", "max_new_tokens": 0, "salt": "other"}
                """);
        Outcome o = cli("replay", "--json", "--verify", file.toString());
        assertEquals(0, o.status(), o.err());
        List<Map<?, ?>> lines = new ArrayList<>();
        for (String line : o.out().strip().split("\n")) lines.add(assertInstanceOf(Map.class, JsonParser.parse(line)));
        assertEquals(4, lines.size(), o.out());
        Map<?, ?> b = lines.get(1);
        for (String key : List.of("id", "prompt_tokens", "cached_tokens", "computed_tokens", "generated_tokens")) {
            assertTrue(b.containsKey(key), key);
        }
        assertEquals("b", b.get("id"));
        assertEquals(44L, b.get("prompt_tokens"));
        assertEquals(40L, b.get("cached_tokens"), "'The quick brown fox jumps over the lazy ' is shared");
        assertEquals(4L, b.get("computed_tokens"));
        assertEquals(2L, b.get("generated_tokens"));
        assertEquals(0L, lines.get(2).get("cached_tokens"), "another salt shares nothing");
        Map<?, ?> summary = lines.get(3);
        assertEquals("summary", summary.get("type"));
        assertEquals(3L, summary.get("requests"));
        assertEquals(107L, summary.get("prompt_tokens"));
        assertEquals(40L, summary.get("cached_tokens"));
        assertEquals(40.0 / 107, ((BigDecimal) summary.get("hit_rate")).doubleValue(), 1e-6);
        Map<?, ?> noReuse = assertInstanceOf(Map.class, summary.get("no_reuse"));
        assertEquals(0L, noReuse.get("cached_tokens"));
        Map<?, ?> verify = assertInstanceOf(Map.class, summary.get("verify"));
        assertSame(Boolean.TRUE, verify.get("ok"));
    }

    @Test
    void noReuseRunsOnlyWithoutReuse() throws IOException {
        Path file = trace("{\"text\": \"abcdefgh\", \"max_new_tokens\": 1}\n{\"text\": \"abcdefgh\", \"max_new_tokens\": 1}\n");
        Outcome o = cli("replay", "--json", "--no-reuse", file.toString());
        assertEquals(0, o.status(), o.err());
        String[] lines = o.out().strip().split("\n");
        Map<?, ?> summary = assertInstanceOf(Map.class, JsonParser.parse(lines[lines.length - 1]));
        assertEquals(0L, summary.get("cached_tokens"));
        assertSame(Boolean.FALSE, summary.get("reuse"));
        assertFalse(summary.containsKey("no_reuse"));
    }

    @Test
    void textReportOfTheChatExampleWithVerify() {
        Outcome o = cli("replay", "--verify", "--max-new-tokens", "4", "--batch", "2", "examples/chat.jsonl");
        assertEquals(0, o.status(), o.err());
        assertTrue(o.out().contains("turn-5"), o.out());
        assertTrue(o.out().contains("reuse on"), o.out());
        assertTrue(o.out().contains("reuse off"), o.out());
        assertTrue(o.out().contains("speed-up with reuse"), o.out());
        assertTrue(o.out().contains("verify: ") && o.out().contains(": OK"), o.out());
        assertEquals("", o.err(), "no progress bar when stderr is not a terminal");
    }

    @Test
    void aFailedVerificationExitsWith3() throws IOException {
        Path file = trace("{\"text\": \"hello hello hello\", \"max_new_tokens\": 3}\n{\"text\": \"hello hello world\", \"max_new_tokens\": 3}\n");
        Outcome o = cli("replay", "--verify", "--tolerance", "0", "--kv-dtype", "bf16", "--batch", "2", file.toString());
        // With tolerance 0 any last-bit difference fails; if the kernels agree bit for bit, it passes.
        if (o.status() != 0) {
            assertEquals(3, o.status(), o.err());
            assertTrue(o.err().contains("verification FAILED"), o.err());
            assertTrue(o.out().contains("FAILED"), o.out());
        }
    }
}
