package io.pagedkv.cli;

import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.replay.CacheOptions;
import io.pagedkv.replay.ModelConfig;
import io.pagedkv.replay.Replay;
import io.pagedkv.replay.Request;
import io.pagedkv.replay.SamplingOptions;
import io.pagedkv.replay.SchedulePolicy;
import io.pagedkv.replay.Scheduler;
import io.pagedkv.replay.Tokenizer;
import io.pagedkv.replay.TraceParser;
import io.pagedkv.replay.Workloads;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/** {@code pagedkv replay}: parses the options, runs {@link Replay}, prints the report. */
final class ReplayCommand {
    static final String HELP = """
            Usage: pagedkv replay [OPTIONS] [FILE.jsonl]

            Replays a workload through a tiny Llama-style model whose keys and values live in pagedkv
            (projections in Java, K/V writes and attention by pagedkv's kernels), first with prefix reuse,
            then with reuse off, and prints what reuse saved. Without FILE: the ExLlamaV2 scenario
            (examples/exllamav2.jsonl). A trace has one JSON object per line:
              {"id": "r1", "tokens": [12, 7], "max_new_tokens": 8, "salt": "tenant-a"}
            with "text" (UTF-8 bytes) or "messages" ([{"role", "content"}], ChatML) instead of "tokens";
            id, max_new_tokens and salt are optional.

            Workload:
              --batch N               serve up to N requests at once, continuous batching (default 1)
              --max-new-tokens N      for lines without max_new_tokens (default 16)
            Sampling (default: greedy):
              --temperature T         0 = greedy; T > 0 samples from softmax(logits / T)
                                      (default 0, or 1 when --top-k or --top-p is given)
              --top-k K               sample among the K most likely tokens (0 = all)
              --top-p P               ... among the most likely tokens covering probability P (1 = all)
              --repetition-penalty R  penalize tokens already in the prompt or output (1 = off)
              --seed S                seed of the draws (default 0); each request has its own stream
              --disallow ID[,ID...]   token ids never generated (repeatable)
            Cache:
              --page-size N           tokens per page (default 16)
              --pages N               capacity in pages (default: 16384 tokens' worth); small values show eviction
              --kv-dtype f32|f16|bf16 stored K/V type (default f32)
              --device cpu|cuda[:N]   where the pages live and the kernels run (default cpu)
            Scheduling:
              --schedule fcfs|lpm     which waiting request joins next: file order (default), or the one
                                      with the longest prefix cached now (pagedkv_match_length); lpm also
                                      runs fcfs with reuse and compares prefill tokens saved and TTFT
              --aging-bound N         lpm: a request that N later ones were admitted ahead of goes next,
                                      whatever its match (default 8), so nothing starves
            KV events (vLLM's ZeroMQ wire format, published by the first run with reuse):
              --kv-events ENDPOINT[,REPLAY_ENDPOINT]
                                      PUB socket (e.g. tcp://*:5557) and optional ROUTER replay socket
              --kv-events-topic T     topic of every message (default kv@pagedkv)
            Runs and output:
              --no-reuse              run only with reuse off
              --verify                also compute every request from scratch without reuse and fail
                                      (exit 3) if the logits of a generated position differ by more
                                      than the tolerance; prints the largest difference
              --tolerance X           bound for --verify (default 1e-3 f32, 1e-2 f16, 5e-2 bf16)
              --json                  one JSON object per request, then a summary object
              --debug                 stack traces on errors

            Reported per request: prompt tokens, tokens reused from the cache, prompt tokens computed,
            tokens generated, and the time to first token (ttft), from the request's admission (its
            sequence created) to its first generated token; the summary also gives it from arrival
            (every request arrives at the start, so the queue counts). Requests that share a prefix with
            one joining in the same step wait one step to reuse it (counted as deferrals in --json).

            Exit status: 0 ok, 1 runtime failure, 2 bad usage or input, 3 verification failed.
            """;

    private static final Set<String> FLAGS = Set.of("no-reuse", "verify", "json", "debug", "help");
    private static final Set<String> OPTIONS = Set.of("batch", "max-new-tokens", "temperature", "top-k", "top-p",
            "repetition-penalty", "seed", "disallow", "page-size", "pages", "kv-dtype", "device", "tolerance",
            "schedule", "aging-bound", "kv-events", "kv-events-topic");

    private final PrintStream out;
    private final PrintStream err;
    private final boolean terminal;

    ReplayCommand(PrintStream out, PrintStream err, boolean terminal) {
        this.out = out;
        this.err = err;
        this.terminal = terminal;
    }

    int run(String[] argv) {
        List<String> withoutHelpAlias = new ArrayList<>();
        for (String a : argv) withoutHelpAlias.add(a.equals("-h") ? "--help" : a);
        Args args = new Args(withoutHelpAlias.toArray(String[]::new), FLAGS, OPTIONS);
        if (args.flag("help")) {
            out.print(HELP);
            return Main.OK;
        }
        if (args.positional().size() > 1) throw new UsageException("replay takes at most one trace file, got " + args.positional());
        Replay.Options options = options(args);
        int defaultMaxNew = args.intValue("max-new-tokens", 16, 0, 1 << 20);

        String workload;
        String source;
        List<Request> requests;
        if (args.positional().isEmpty()) {
            workload = Workloads.EXLLAMAV2_NAME;
            source = "exllamav2";
            requests = Workloads.exllamav2();
        } else {
            Path file = Path.of(args.positional().get(0));
            workload = file.toString();
            source = file.toString();
            requests = TraceParser.parse(file, defaultMaxNew);
        }
        Replay.checkCapacity(source, requests, options.cache());

        ProgressBar bar = terminal ? new ProgressBar(err) : null;
        Replay.Report report = Replay.run(workload, source, requests, options, bar);
        ReportPrinter printer = new ReportPrinter(out);
        if (args.flag("json")) {
            printer.json(report);
        } else {
            printer.text(report);
        }
        out.flush();
        if (report.verify() != null && !report.verify().ok()) {
            err.println("pagedkv: verification FAILED: " + ReportPrinter.verifySentence(report.verify()));
            return Main.VERIFY_FAILED;
        }
        return Main.OK;
    }

    private static Replay.Options options(Args args) {
        int pageSize = args.intValue("page-size", 16, 1, 4096);
        KvDtype dtype = switch (lower(args.value("kv-dtype"), "f32")) {
            case "f32", "fp32", "float32" -> KvDtype.F32;
            case "f16", "fp16", "float16" -> KvDtype.F16;
            case "bf16", "bfloat16" -> KvDtype.BF16;
            default -> throw new UsageException("--kv-dtype must be f32, f16 or bf16, got '" + args.value("kv-dtype") + "'");
        };
        Device device = device(lower(args.value("device"), "cpu"));
        int pages = args.has("pages") ? args.intValue("pages", 0, 1, Integer.MAX_VALUE)
                : CacheOptions.defaults(pageSize, dtype, device).pages();
        CacheOptions cache = new CacheOptions(pageSize, pages, dtype, device);
        int batch = args.intValue("batch", 1, 1, 4096);

        boolean sampling = args.has("top-k") || args.has("top-p");
        double temperature = args.doubleValue("temperature", sampling ? 1.0 : 0.0);
        if (temperature < 0) throw new UsageException("--temperature must be >= 0");
        int topK = args.intValue("top-k", 0, 0, Integer.MAX_VALUE);
        double topP = args.doubleValue("top-p", 1.0);
        if (!(topP > 0 && topP <= 1)) throw new UsageException("--top-p must be in (0, 1], got " + args.value("top-p"));
        double penalty = args.doubleValue("repetition-penalty", 1.0);
        if (!(penalty > 0)) throw new UsageException("--repetition-penalty must be > 0");
        long seed = args.longValue("seed", 0);
        int[] disallowed = disallowed(args.all("disallow"), ModelConfig.DEFAULT.vocab());
        if (java.util.Arrays.stream(disallowed).distinct().count() >= ModelConfig.DEFAULT.vocab()) {
            throw new UsageException("--disallow covers the whole vocabulary; nothing could be generated");
        }
        SamplingOptions samplingOptions = new SamplingOptions((float) temperature, topK, (float) topP, (float) penalty,
                seed, disallowed);

        Replay.Mode mode = args.flag("no-reuse") ? Replay.Mode.NO_REUSE_ONLY : Replay.Mode.COMPARE;
        if (mode == Replay.Mode.NO_REUSE_ONLY && args.has("kv-events"))
            throw new UsageException("--kv-events publishes the run with reuse; --no-reuse makes none");
        double tolerance = args.doubleValue("tolerance", Double.NaN);
        if (args.has("tolerance") && tolerance < 0) throw new UsageException("--tolerance must be >= 0");
        SchedulePolicy schedule = switch (lower(args.value("schedule"), "fcfs")) {
            case "fcfs" -> SchedulePolicy.FCFS;
            case "lpm" -> SchedulePolicy.LPM;
            default -> throw new UsageException("--schedule must be fcfs or lpm, got '" + args.value("schedule") + "'");
        };
        int agingBound = args.intValue("aging-bound", Scheduler.DEFAULT_AGING_BOUND, 0, Integer.MAX_VALUE);
        return new Replay.Options(cache, batch, samplingOptions, ModelConfig.DEFAULT, mode, args.flag("verify"), tolerance,
                schedule, agingBound, kvEvents(args));
    }

    /** --kv-events ENDPOINT[,REPLAY_ENDPOINT] and --kv-events-topic, or null without --kv-events. */
    private static Replay.KvEventsOptions kvEvents(Args args) {
        String topic = args.value("kv-events-topic");
        if (!args.has("kv-events")) {
            if (topic != null) throw new UsageException("--kv-events-topic needs --kv-events ENDPOINT");
            return null;
        }
        String[] endpoints = args.value("kv-events").split(",", -1);
        if (endpoints.length > 2 || endpoints[0].isBlank() || (endpoints.length == 2 && endpoints[1].isBlank())) {
            throw new UsageException("--kv-events takes ENDPOINT or ENDPOINT,REPLAY_ENDPOINT (e.g. tcp://*:5557,tcp://*:5558),"
                    + " got '" + args.value("kv-events") + "'");
        }
        return new Replay.KvEventsOptions(endpoints[0].trim(), endpoints.length == 2 ? endpoints[1].trim() : null,
                topic == null ? Replay.KvEventsOptions.DEFAULT_TOPIC : topic);
    }

    private static Device device(String s) {
        if (s.equals("cpu")) return Device.cpu();
        if (s.equals("cuda") || s.equals("gpu")) return Device.cuda(0);
        if (s.startsWith("cuda:")) {
            try {
                int index = Integer.parseInt(s.substring(5));
                if (index >= 0) return Device.cuda(index);
            } catch (NumberFormatException ignored) {
                // fall through to the message
            }
        }
        throw new UsageException("--device must be cpu, cuda or cuda:N, got '" + s + "'");
    }

    private static int[] disallowed(List<String> values, int vocab) {
        List<Integer> ids = new ArrayList<>();
        for (String v : values) {
            for (String part : v.split(",")) {
                String p = part.trim();
                if (p.isEmpty()) continue;
                int id;
                try {
                    id = Integer.parseInt(p);
                } catch (NumberFormatException e) {
                    throw new UsageException("--disallow needs token ids, got '" + p + "'");
                }
                if (id < 0 || id >= vocab) {
                    throw new UsageException("--disallow: token " + id + " is outside the vocabulary [0, " + vocab + ")"
                            + " (" + Tokenizer.VOCAB_SIZE + " tokens: bytes 0-255, then the ChatML specials)");
                }
                ids.add(id);
            }
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private static String lower(String s, String defaultValue) {
        return s == null ? defaultValue : s.trim().toLowerCase(Locale.ROOT);
    }
}
