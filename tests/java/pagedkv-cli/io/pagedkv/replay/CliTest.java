package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pagedkv.PagedKvCache;
import io.pagedkv.cli.Main;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The command line through {@link Main#run}, which returns the exit status instead of exiting. */
class CliTest {
    @TempDir
    Path dir;

    /** Jackson's databind reads the output: a reader independent of the streaming writer that wrote it. */
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Outcome(int status, String out, String err) {}

    private static Outcome cli(String... args) {
        return cliWithInput(new byte[0], args);
    }

    private static Outcome cliWithInput(byte[] stdin, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        InputStream in = new ByteArrayInputStream(stdin);
        int status = Main.run(args, in, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8), false);
        return new Outcome(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static List<JsonNode> jsonLines(String out) throws IOException {
        List<JsonNode> lines = new ArrayList<>();
        for (String line : out.strip().split("\n")) lines.add(JSON.readTree(line));
        return lines;
    }

    private Path trace(String content) throws IOException {
        Path file = dir.resolve("trace.jsonl");
        Files.writeString(file, content);
        return file;
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "malformed line  | {\"tokens\": [1, 2]                      | trace.jsonl:2:18: malformed JSON: Unexpected end-of-input",
            "unknown key     | {\"tokens\": [1], \"prompt\": \"x\"}     | trace.jsonl:2:17: unknown key \"prompt\" (allowed: id, tokens,",
            "outside vocab   | {\"tokens\": [1, 300]}                   | trace.jsonl:2:16: token 300 at \"tokens\"[1] is outside the vocabulary [0, 259)",
            "max_new range   | {\"tokens\": [1], \"max_new_tokens\": 9999999999} | trace.jsonl:2:35: \"max_new_tokens\" is out of range: 9999999999 is not in [0, 1048576]",
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
            "unknown option   | replay --frobnicate        | Unknown option: '--frobnicate'",
            "missing value    | replay --batch             | Missing required parameter for option '--batch' (N)",
            "bad number       | replay --batch two         | --batch needs an integer, got 'two'",
            "batch too large  | replay --batch 5000        | --batch 5000 is out of range [1, 4096]",
            "pages past int   | replay --pages 99999999999 | --pages 99999999999 is out of range (at most 2147483647)",
            "negative pages   | replay --pages 0           | --pages 0 is out of range [1, 2147483647]",
            "page size        | replay --page-size=0       | --page-size 0 is out of range [1, 4096]",
            "max-new-tokens   | replay --max-new-tokens -1 | --max-new-tokens -1 is out of range [0, 1048576]",
            "aging bound      | replay --aging-bound -3    | --aging-bound -3 is out of range [0, 2147483647]",
            "bad seed         | replay --seed 1.5          | --seed needs an integer, got '1.5'",
            "top-p range      | replay --top-p 1.5         | --top-p must be in (0, 1], got 1.5",
            "temperature      | replay --temperature -1    | --temperature must be >= 0, got -1",
            "not a number     | replay --temperature hot   | --temperature needs a number, got 'hot'",
            "bad dtype        | replay --kv-dtype fp4      | --kv-dtype must be f32, f16, bf16, fp8, q8, q6 or q4, got 'fp4'",
            "bad device       | replay --device tpu        | --device must be cpu, cuda or cuda:N, got 'tpu'",
            "bad disallow     | replay --disallow 999      | --disallow: token 999 is outside the vocabulary",
            "disallow syntax  | replay --disallow 1,x      | --disallow needs an integer, got 'x'",
            "two files        | replay a.jsonl b.jsonl     | replay takes at most one trace file, got [a.jsonl, b.jsonl]",
            "unknown command  | frobnicate                 | unknown command 'frobnicate' (commands: replay, chat, info, help)",
            "info arguments   | info extra                 | Unmatched argument at index 1: 'extra'",
            "missing file     | replay /nonexistent.jsonl  | /nonexistent.jsonl: no such file",
            "a directory      | replay examples            | examples: is a directory, not a JSONL file",
            "bad schedule     | replay --schedule sjf      | --schedule must be fcfs or lpm, got 'sjf'",
            "topic alone      | replay --kv-events-topic t | --kv-events-topic needs --kv-events",
            "three endpoints  | replay --kv-events a,b,c   | --kv-events takes ENDPOINT or ENDPOINT,REPLAY_ENDPOINT",
            "events, no reuse | replay --no-reuse --kv-events ipc:///tmp/x | --no-reuse makes none",
            "bad host tier    | replay --host-tier 2XB      | --host-tier needs a size like 512MiB or 2GiB, got '2XB'",
            "zero host tier   | replay --host-tier 0        | --host-tier must be at least 1 byte",
            "disk, no dir     | replay --disk-tier :1GiB    | --disk-tier needs a directory, got ':1GiB'",
            "remote scheme    | replay --remote http://x:1  | --remote needs redis://HOST:PORT[,HOST:PORT...], got 'http://x:1'",
            "namespace alone  | replay --namespace m        | --namespace names who shares the disk and Redis tiers",
            "tiers, no reuse  | replay --no-reuse --host-tier 1MiB | the tiers serve the run with reuse; --no-reuse makes none",
            "score one token  | replay --score-tokens 1    | --score-tokens must be 0 or in [2, 16384] (the cache's tokens: --pages x --page-size), got 1",
            "score negative   | replay --score-tokens -5   | --score-tokens must be 0 or in [2, 16384]",
            "score past cache | replay --pages 4 --score-tokens 65 | --score-tokens must be 0 or in [2, 64] (the cache's tokens",
            "score not a number | replay --score-tokens many | --score-tokens needs an integer, got 'many'",
    })
    void badUsageExitsWith2(String name, String args, String expected) {
        Outcome o = cli(args.trim().split("\\s+"));
        assertEquals(2, o.status(), o.err());
        assertTrue(o.err().startsWith("pagedkv: "), o.err());
        assertTrue(o.err().contains(expected), o.err());
        assertFalse(o.err().contains("\tat "), o.err());
        assertEquals("", o.out());
    }

    @Test
    void unknownOptionsGetSuggestionsAndThePointerToHelp() {
        Outcome o = cli("replay", "--kv-event", "tcp://*:5557");
        assertEquals(2, o.status(), o.err());
        assertTrue(o.err().contains("--kv-events"), "picocli suggests the option meant: " + o.err());
        assertTrue(o.err().contains("Try 'pagedkv replay --help'."), o.err());
    }

    @Test
    void theLastValueOfARepeatedOptionWinsAndDisallowAccumulates() throws IOException {
        Path file = trace("{\"text\": \"abcdefgh\", \"max_new_tokens\": 2}\n");
        Outcome o = cli("replay", "--json", "--batch", "3", "--batch", "1", "--disallow", "1,2", "--disallow", "3", file.toString());
        assertEquals(0, o.status(), o.err());
        JsonNode summary = jsonLines(o.out()).getLast();
        assertEquals(1, summary.get("config").get("batch").asInt());
        assertTrue(summary.get("config").get("sampling").asText().contains("disallowed [1, 2, 3]"), summary.toString());
    }

    @Test
    void dashReadsTheTraceFromStandardInput() throws IOException {
        byte[] trace = "{\"id\": \"piped\", \"text\": \"hello\", \"max_new_tokens\": 1}\n".getBytes(StandardCharsets.UTF_8);
        Outcome o = cliWithInput(trace, "replay", "--json", "-");
        assertEquals(0, o.status(), o.err());
        List<JsonNode> lines = jsonLines(o.out());
        assertEquals("piped", lines.get(0).get("id").asText());
        assertEquals("stdin", lines.getLast().get("workload").asText());
        Outcome bare = cliWithInput(trace, "-", "--no-reuse");
        assertEquals(0, bare.status(), "'pagedkv -' is the replay: " + bare.err());
        Outcome bad = cliWithInput("{\"text\": 5}\n".getBytes(StandardCharsets.UTF_8), "replay", "-");
        assertEquals(2, bad.status());
        assertTrue(bad.err().contains("stdin:1:10: \"text\" must be a string, found 5"), bad.err());
    }

    @Test
    void aUtf8ByteOrderMarkIsAcceptedAndUtf16IsNamed() throws IOException {
        Path bom = dir.resolve("bom.jsonl");
        Files.write(bom, concat(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF},
                "{\"text\": \"hi\", \"max_new_tokens\": 1}\n".getBytes(StandardCharsets.UTF_8)));
        Outcome ok = cli("replay", "--no-reuse", bom.toString());
        assertEquals(0, ok.status(), ok.err());
        Path utf16 = dir.resolve("utf16.jsonl");
        Files.write(utf16, concat(new byte[] {(byte) 0xFF, (byte) 0xFE},
                "{\"text\": \"hi\"}\n".getBytes(StandardCharsets.UTF_16LE)));
        Outcome bad = cli("replay", utf16.toString());
        assertEquals(2, bad.status(), bad.err());
        assertTrue(bad.err().contains("utf16.jsonl:1: starts with a UTF-16 byte-order mark"), bad.err());
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] all = new byte[a.length + b.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    @Test
    void helpAndVersion() {
        Outcome help = cli("replay", "--help");
        assertEquals(0, help.status());
        for (String option : List.of("--batch", "--max-new-tokens", "--temperature", "--top-k", "--top-p",
                "--repetition-penalty", "--seed", "--disallow", "--page-size", "--pages", "--kv-dtype", "--kv-hadamard", "--device",
                "--schedule", "--aging-bound", "--kv-events", "--kv-events-topic", "--no-reuse", "--verify",
                "--tolerance", "--score-tokens", "--json", "--debug")) {
            assertTrue(help.out().contains(option), option + " in:\n" + help.out());
        }
        for (String heading : List.of("Workload:", "Sampling", "Cache:", "Scheduling:", "KV events", "Runs and output:", "Exit status")) {
            assertTrue(help.out().contains(heading), heading + " in:\n" + help.out());
        }
        Outcome top = cli("help");
        assertEquals(0, top.status());
        assertTrue(top.out().contains("replay") && top.out().contains("info"), top.out());
        assertEquals(0, cli("--help").status());
        assertEquals(help.out(), cli("help", "replay").out());
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
        // In words first, the CUDA runtime's reason after: no driver, no device, or no CUDA in this build.
        assertTrue(o.err().matches("(?s).*(no NVIDIA driver found \\(cudaGetDeviceCount: |no CUDA device|"
                + "the NVIDIA driver is older than|no usable CUDA device \\(|built without CUDA).*"), o.err());
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
        List<JsonNode> lines = jsonLines(o.out());
        assertEquals(4, lines.size(), o.out());
        JsonNode b = lines.get(1);
        for (String key : List.of("id", "prompt_tokens", "cached_tokens", "computed_tokens", "generated_tokens")) {
            assertTrue(b.has(key), key);
        }
        assertEquals("b", b.get("id").asText());
        assertEquals(44, b.get("prompt_tokens").asInt());
        assertEquals(40, b.get("cached_tokens").asInt(), "'The quick brown fox jumps over the lazy ' is shared");
        assertEquals(4, b.get("computed_tokens").asInt());
        assertEquals(2, b.get("generated_tokens").asInt());
        assertEquals(2, b.get("output_tokens").size());
        assertEquals(0, lines.get(2).get("cached_tokens").asInt(), "another salt shares nothing");
        assertEquals("other", lines.get(2).get("salt").asText());
        JsonNode summary = lines.get(3);
        assertEquals("summary", summary.get("type").asText());
        assertEquals(3, summary.get("requests").asInt());
        assertEquals(107, summary.get("prompt_tokens").asInt());
        assertEquals(40, summary.get("cached_tokens").asInt());
        assertEquals(40.0 / 107, summary.get("hit_rate").asDouble(), 1e-9);
        assertEquals(0, summary.get("no_reuse").get("cached_tokens").asInt());
        assertTrue(summary.get("verify").get("ok").isBoolean() && summary.get("verify").get("ok").asBoolean());
        // The tiny model: 2 layers x 2 KV heads x 64 dims x (K + V) x 4 bytes.
        assertEquals(2048.0, summary.get("kv_bytes_per_token").asDouble());
        assertEquals(1.0, summary.get("top1_agreement").asDouble());
        assertTrue(summary.get("max_logit_diff").asDouble() <= 1e-3);
    }

    @Test
    void theHostTierServesTheBundledWorkloadWhoseWorkingSetExceedsThePool() throws IOException {
        Outcome o = cli("replay", "--json", "--verify", "--pages", "48", "--host-tier", "16MiB",
                "--max-new-tokens", "2", "examples/host-tier.jsonl");
        assertEquals(0, o.status(), o.err());
        List<JsonNode> lines = jsonLines(o.out());
        long loaded = 0;
        for (JsonNode request : lines.subList(0, lines.size() - 1)) {
            JsonNode tiers = request.get("loaded_tokens");
            List<String> names = new ArrayList<>();
            tiers.fieldNames().forEachRemaining(names::add);
            assertEquals(List.of("host", "disk", "remote"), names);
            assertTrue(tiers.get("host").asLong() <= request.get("cached_tokens").asLong());
            assertEquals(0, tiers.get("host").asLong() % 16, "only full pages come from below");
            loaded += tiers.get("host").asLong();
        }
        JsonNode summary = lines.getLast();
        JsonNode host = summary.get("tiers").get("host");
        assertTrue(loaded > 0, o.out());
        assertEquals(loaded, host.get("loaded_tokens").asLong());
        assertTrue(host.get("hits").asLong() > 0);
        assertEquals(0, host.get("verify_failures").asLong());
        assertTrue(summary.get("verify").get("ok").asBoolean(), "the loaded pages give the same logits");
        assertEquals(0, summary.get("no_reuse").get("cached_tokens").asInt(), "the baseline reads no tier");
        assertTrue(summary.get("evictions").asLong() > 0, "the pool is too small for the working set");
    }

    @Test
    void aSecondReplayReusesTheDiskTierOfTheFirst(@TempDir Path tiers) throws IOException {
        Path file = trace("{\"text\": \"" + "The same long document. ".repeat(8) + "\", \"max_new_tokens\": 1}\n");
        String disk = tiers.resolve("kv") + ":64MiB";
        Outcome first = cli("replay", "--json", "--pages", "64", "--disk-tier", disk, "--namespace", "cli-test", file.toString());
        assertEquals(0, first.status(), first.err());
        assertEquals(0, jsonLines(first.out()).getFirst().get("loaded_tokens").get("disk").asLong());
        Outcome second = cli("replay", "--json", "--pages", "64", "--disk-tier", disk, "--namespace", "cli-test", file.toString());
        assertEquals(0, second.status(), second.err());
        JsonNode request = jsonLines(second.out()).getFirst();
        assertTrue(request.get("loaded_tokens").get("disk").asLong() >= 16 * 11, second.out());
        assertEquals(request.get("cached_tokens").asLong(), request.get("loaded_tokens").get("disk").asLong());
    }

    @Test
    void noReuseRunsOnlyWithoutReuse() throws IOException {
        Path file = trace("{\"text\": \"abcdefgh\", \"max_new_tokens\": 1}\n{\"text\": \"abcdefgh\", \"max_new_tokens\": 1}\n");
        Outcome o = cli("replay", "--json", "--no-reuse", file.toString());
        assertEquals(0, o.status(), o.err());
        JsonNode summary = jsonLines(o.out()).getLast();
        assertEquals(0, summary.get("cached_tokens").asInt());
        assertTrue(summary.get("reuse").isBoolean() && !summary.get("reuse").asBoolean());
        assertFalse(summary.has("no_reuse"));
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
        assertFalse(o.err().contains("\r"), "no progress bar when stderr is not a terminal: " + o.err());
        assertTrue(o.out().startsWith("pagedkv " + PagedKvCache.versionString() + " replay: examples/chat.jsonl, 5 requests\n"
                + "model: "), "the header comes first: " + o.out());
        assertTrue(o.out().contains("pages (16384 tokens, 32.0 MiB), f32 KV"), "pool size in bytes, for people: " + o.out());
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

    @Test
    void scoreTokensReportsTheStreamsNllInTheJsonSummary() throws IOException {
        Path file = trace("{\"text\": \"hello\", \"max_new_tokens\": 2}\n");
        Outcome o = cli("replay", "--json", "--no-reuse", "--kv-dtype", "q4", "--kv-hadamard", "--score-tokens", "300", file.toString());
        assertEquals(0, o.status(), o.err());
        JsonNode score = jsonLines(o.out()).getLast().get("score");
        assertEquals(299, score.get("positions").asLong(), o.out());
        assertEquals(TokenScorer.REQUESTS, score.get("requests").asInt());
        assertTrue(score.get("reused_positions").asLong() > 0, o.out());
        double nll = score.get("mean_nll").asDouble();
        double nllF32 = score.get("mean_nll_f32").asDouble();
        assertTrue(nll > 0 && Math.abs(nll - nllF32) < 0.1, o.out());
        assertTrue(score.get("max_logit_diff").asDouble() > 0, "q4 differs from f32 KV: " + o.out());
        assertTrue(score.get("mean_logit_diff").asDouble() <= score.get("max_logit_diff").asDouble(), o.out());
        double top1 = score.get("top1_agreement").asDouble();
        assertTrue(top1 > 0.5 && top1 <= 1, o.out());
        Outcome text = cli("replay", "--no-reuse", "--score-tokens", "40", file.toString());
        assertEquals(0, text.status(), text.err());
        assertTrue(text.out().contains("score: fixed stream of 39 positions in 8 requests"), text.out());
    }
}
