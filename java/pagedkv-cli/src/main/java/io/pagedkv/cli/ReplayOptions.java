package io.pagedkv.cli;

import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.replay.CacheOptions;
import io.pagedkv.model.Model;
import io.pagedkv.replay.Replay;
import io.pagedkv.replay.SamplingOptions;
import io.pagedkv.replay.TierOptions;
import io.pagedkv.replay.SchedulePolicy;
import io.pagedkv.replay.Scheduler;
import io.pagedkv.replay.Tokenizer;
import io.pagedkv.replay.TraceParser;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParameterException;

/**
 * Every option of {@code pagedkv replay}, grouped as its help shows them, and their translation into
 * {@link Replay.Options}. To add an option: a field in its group (or a new group), then its use in
 * {@link #toReplayOptions}; parsing, help and the usage errors come from picocli.
 */
final class ReplayOptions {
    @Parameters(arity = "0..*", paramLabel = "[FILE.jsonl | -]", hideParamSyntax = true,
            description = "the workload, one JSON object per line; '" + TraceParser.STDIN + "' reads standard input"
                    + " (default: the ExLlamaV2 scenario)")
    List<String> files = new ArrayList<>();

    @ArgGroup(validate = false, heading = "Workload:%n", order = 1)
    Workload workload = new Workload();

    @ArgGroup(validate = false, heading = "Sampling (default: greedy):%n", order = 2)
    Sampling sampling = new Sampling();

    @ArgGroup(validate = false, heading = "Cache:%n", order = 3)
    Cache cache = new Cache();

    @ArgGroup(validate = false, heading = "Tiers below the pool (the run with reuse only):%n", order = 3)
    Tiers tiers = new Tiers();

    @ArgGroup(validate = false, heading = "Scheduling:%n", order = 4)
    Scheduling scheduling = new Scheduling();

    @ArgGroup(validate = false, heading = "KV events (vLLM's ZeroMQ wire format, published by the first run with reuse):%n",
            order = 5)
    KvEvents kvEvents = new KvEvents();

    @ArgGroup(validate = false, heading = "Runs and output:%n", order = 6)
    Output output = new Output();

    static final class Workload {
        @Option(names = "--model", paramLabel = "FILE.gguf",
                description = "a GGUF model (llama or qwen2) instead of the built-in tiny one; \"text\" and \"messages\""
                        + " are tokenized with its vocabulary and chat template")
        java.nio.file.Path model;

        @Option(names = "--threads", paramLabel = "N", description = "worker threads of the model's matrix products (default: all cores)")
        int threads = Runtime.getRuntime().availableProcessors();

        @Option(names = "--batch", paramLabel = "N", description = "serve up to N requests at once, continuous batching (default 1)")
        int batch = 1;

        @Option(names = "--max-new-tokens", paramLabel = "N", description = "for lines without max_new_tokens (default 16)")
        int maxNewTokens = 16;
    }

    static final class Sampling {
        @Option(names = "--temperature", paramLabel = "T",
                description = "0 = greedy; T > 0 samples from softmax(logits / T) (default 0, or 1 when --top-k or --top-p is given)")
        Double temperature;

        @Option(names = "--top-k", paramLabel = "K", description = "sample among the K most likely tokens (0 = all)")
        Integer topK;

        @Option(names = "--top-p", paramLabel = "P",
                description = "... among the most likely tokens covering probability P (1 = all)")
        Double topP;

        @Option(names = "--repetition-penalty", paramLabel = "R",
                description = "penalize tokens already in the prompt or output (1 = off)")
        double repetitionPenalty = 1.0;

        @Option(names = "--seed", paramLabel = "S", description = "seed of the draws (default 0); each request has its own stream")
        long seed;

        @Option(names = "--disallow", paramLabel = "ID", split = ",", splitSynopsisLabel = ",",
                description = "token ids never generated (repeatable)")
        List<Integer> disallow = new ArrayList<>();
        /** The options as the sampler takes them; a usage error names the option and what it allows. */
        SamplingOptions toOptions(CommandLine commandLine, int vocab, String vocabularyNote) {
            boolean sampled = topK != null || topP != null;
            double t = temperature == null ? (sampled ? 1.0 : 0.0)
                    : OptionValues.require(commandLine, "--temperature", temperature, temperature >= 0, ">= 0");
            int k = topK == null ? 0 : OptionValues.inRange(commandLine, "--top-k", topK, 0, Integer.MAX_VALUE);
            double p = topP == null ? 1.0 : OptionValues.require(commandLine, "--top-p", topP, topP > 0 && topP <= 1, "in (0, 1]");
            double penalty = OptionValues.require(commandLine, "--repetition-penalty", repetitionPenalty, repetitionPenalty > 0, "> 0");
            for (int id : disallow) {
                if (id < 0 || id >= vocab) {
                    throw new ParameterException(commandLine, "--disallow: token " + id + " is outside the vocabulary [0, " + vocab
                            + ")" + vocabularyNote);
                }
            }
            int[] disallowed = disallow.stream().mapToInt(Integer::intValue).toArray();
            if (Arrays.stream(disallowed).distinct().count() >= vocab) {
                throw new ParameterException(commandLine, "--disallow covers the whole vocabulary; nothing could be generated");
            }
            return new SamplingOptions((float) t, k, (float) p, (float) penalty, seed, disallowed);
        }
    }

    static final class Cache {
        @Option(names = "--page-size", paramLabel = "N", description = "tokens per page (default 16)")
        int pageSize = 16;

        @Option(names = "--pages", paramLabel = "N",
                description = "capacity in pages (default: 16384 tokens' worth); small values show eviction")
        Integer pages;

        @Option(names = "--kv-dtype", paramLabel = "f32|f16|bf16|fp8|q8|q6|q4",
                converter = OptionValues.KvDtypeConverter.class,
                description = "stored K/V type (default f32); fp8, q8, q6 (K 8-bit, V 4-bit), q4 are quantized "
                        + "pages, and --verify then compares with a recompute over f32 KV")
        KvDtype kvDtype = KvDtype.F32;

        @Option(names = "--kv-hadamard",
                description = "q8/q6/q4: rotate each group of 32 dims by a Hadamard transform before quantizing")
        boolean hadamard;

        @Option(names = "--device", paramLabel = "cpu|cuda[:N]", converter = OptionValues.DeviceConverter.class,
                description = "where the pages live and the kernels run (default cpu)")
        Device device = Device.cpu();
    }

    static final class Tiers {
        @Option(names = "--host-tier", paramLabel = "SIZE",
                description = "keep evicted full pages in SIZE of host memory (e.g. 512MiB, 2GiB)")
        String hostTier;

        @Option(names = "--disk-tier", paramLabel = "DIR[:SIZE]",
                description = "keep page objects in files under DIR, at most SIZE (default 4GiB); a later run reuses them")
        String diskTier;

        @Option(names = "--remote", paramLabel = "redis://HOST:PORT[,HOST:PORT...]",
                description = "share page objects through Redis (several addresses: a Redis Cluster's seed nodes)")
        String remote;

        @Option(names = "--namespace", paramLabel = "NAME",
                description = "who may share page objects through disk and Redis (default: the model's name)")
        String namespace;
    }

    static final class Scheduling {
        @Option(names = "--schedule", paramLabel = "fcfs|lpm", converter = OptionValues.ScheduleConverter.class,
                description = {"which waiting request joins next: file order (default), or the one with the longest"
                        + " prefix cached now (pagedkv_match_length); lpm also runs fcfs with reuse and compares"
                        + " prefill tokens saved and TTFT"})
        SchedulePolicy schedule = SchedulePolicy.FCFS;

        @Option(names = "--aging-bound", paramLabel = "N",
                description = "lpm: a request that N later ones were admitted ahead of goes next, whatever its match"
                        + " (default " + Scheduler.DEFAULT_AGING_BOUND + "), so nothing starves")
        int agingBound = Scheduler.DEFAULT_AGING_BOUND;
    }

    static final class KvEvents {
        @Option(names = "--kv-events", paramLabel = "ENDPOINT[,REPLAY_ENDPOINT]",
                description = "PUB socket (e.g. tcp://*:5557) and optional ROUTER replay socket")
        String endpoints;

        @Option(names = "--kv-events-topic", paramLabel = "T",
                description = "topic of every message (default " + Replay.KvEventsOptions.DEFAULT_TOPIC + ")")
        String topic;
    }

    static final class Output {
        @Option(names = "--no-reuse", description = "run only with reuse off")
        boolean noReuse;

        @Option(names = "--verify", description = "also compute every request from scratch without reuse and fail (exit 3)"
                + " if the logits of a generated position differ by more than the tolerance; prints the largest difference")
        boolean verify;

        @Option(names = "--tolerance", paramLabel = "X", description = "bound for --verify (default 1e-3 f32, 1e-2 f16, 5e-2 bf16)")
        Double tolerance;

        @Option(names = "--score-tokens", paramLabel = "N",
                description = "after the runs, score a fixed stream of N tokens the model samples itself with f32 KV (fed as 8 requests that reuse each"
                        + " other's pages): mean negative log-likelihood of each next token with this --kv-dtype and with"
                        + " f32 KV, |logit difference| and top-1 agreement vs f32 KV (default 0: none)")
        int scoreTokens;

        @Option(names = "--json", description = "one JSON object per request, then a summary object")
        boolean json;
    }

    /** The trace file named, or null for the built-in scenario. */
    String file(CommandLine commandLine) {
        if (files.size() > 1) throw new ParameterException(commandLine, "replay takes at most one trace file, got " + files);
        return files.isEmpty() ? null : files.get(0);
    }

    /**
     * The options as {@link Replay} takes them, for {@code model} (the built-in one or --model's),
     * named {@code modelName} (the default --namespace); a usage error names the option and what it allows.
     */
    Replay.Options toReplayOptions(CommandLine commandLine, Model model, String modelName) {
        int pageSize = OptionValues.inRange(commandLine, "--page-size", cache.pageSize, 1, 4096);
        int pages = cache.pages != null
                ? OptionValues.inRange(commandLine, "--pages", cache.pages, 1, Integer.MAX_VALUE)
                : CacheOptions.defaults(pageSize, cache.kvDtype, cache.device).pages();
        CacheOptions cacheOptions = new CacheOptions(pageSize, pages, cache.kvDtype, cache.device, cache.hadamard,
                tierOptions(commandLine, modelName));
        int batch = OptionValues.inRange(commandLine, "--batch", workload.batch, 1, 4096);

        Replay.Mode mode = output.noReuse ? Replay.Mode.NO_REUSE_ONLY : Replay.Mode.COMPARE;
        double tolerance = output.tolerance == null ? Double.NaN
                : OptionValues.require(commandLine, "--tolerance", output.tolerance, output.tolerance >= 0, ">= 0");
        int agingBound = OptionValues.inRange(commandLine, "--aging-bound", scheduling.agingBound, 0, Integer.MAX_VALUE);
        String note = workload.model == null ? " (" + Tokenizer.VOCAB_SIZE + " tokens: bytes 0-255, then the ChatML specials)" : "";
        long capacity = (long) pages * pageSize;
        int scoreTokens = output.scoreTokens == 0 ? 0
                : (int) OptionValues.require(commandLine, "--score-tokens", output.scoreTokens,
                        output.scoreTokens >= 2 && output.scoreTokens <= capacity,
                        "0 or in [2, " + capacity + "] (the cache's tokens: --pages x --page-size)");
        return new Replay.Options(cacheOptions, batch, sampling.toOptions(commandLine, model.vocab(), note), model, mode,
                output.verify, tolerance, scheduling.schedule, agingBound, kvEventsOptions(commandLine, mode), scoreTokens);
    }

    /** --threads, checked. */
    int threads(CommandLine commandLine) {
        return OptionValues.inRange(commandLine, "--threads", workload.threads, 1, 1024);
    }

    int maxNewTokens(CommandLine commandLine) {
        return OptionValues.inRange(commandLine, "--max-new-tokens", workload.maxNewTokens, 0, 1 << 20);
    }

    /** --host-tier, --disk-tier, --remote and --namespace (default {@code modelName}), checked. */
    private TierOptions tierOptions(CommandLine commandLine, String modelName) {
        long host = tiers.hostTier == null ? 0 : OptionValues.byteSize(commandLine, "--host-tier", tiers.hostTier);
        Path disk = null;
        long diskBytes = 0;
        if (tiers.diskTier != null) {
            // DIR[:SIZE]: the size is what follows the last ':' when it reads as a size.
            String spec = tiers.diskTier;
            int colon = spec.lastIndexOf(':');
            diskBytes = TierOptions.DEFAULT_DISK_BYTES;
            if (colon >= 0 && OptionValues.looksLikeByteSize(spec.substring(colon + 1))) {
                diskBytes = OptionValues.byteSize(commandLine, "--disk-tier", spec.substring(colon + 1));
                spec = spec.substring(0, colon);
            }
            if (spec.isEmpty()) throw new ParameterException(commandLine, "--disk-tier needs a directory, got '" + tiers.diskTier + "'");
            disk = Path.of(spec);
        }
        if (tiers.remote != null && !tiers.remote.startsWith("redis://")) {
            throw new ParameterException(commandLine,
                    "--remote needs redis://HOST:PORT[,HOST:PORT...], got '" + tiers.remote + "'");
        }
        TierOptions options = new TierOptions(host, disk, diskBytes, tiers.remote,
                tiers.namespace != null ? tiers.namespace : modelName);
        if (tiers.namespace != null && !options.any())
            throw new ParameterException(commandLine, "--namespace names who shares the disk and Redis tiers; give --disk-tier or --remote");
        if (options.any() && output.noReuse)
            throw new ParameterException(commandLine, "the tiers serve the run with reuse; --no-reuse makes none");
        return options;
    }

    /** --kv-events ENDPOINT[,REPLAY_ENDPOINT] and --kv-events-topic, or null without --kv-events. */
    private Replay.KvEventsOptions kvEventsOptions(CommandLine commandLine, Replay.Mode mode) {
        if (kvEvents.endpoints == null) {
            if (kvEvents.topic != null) throw new ParameterException(commandLine, "--kv-events-topic needs --kv-events ENDPOINT");
            return null;
        }
        if (mode == Replay.Mode.NO_REUSE_ONLY) {
            throw new ParameterException(commandLine, "--kv-events publishes the run with reuse; --no-reuse makes none");
        }
        String[] endpoints = kvEvents.endpoints.split(",", -1);
        if (endpoints.length > 2 || endpoints[0].isBlank() || (endpoints.length == 2 && endpoints[1].isBlank())) {
            throw new ParameterException(commandLine, "--kv-events takes ENDPOINT or ENDPOINT,REPLAY_ENDPOINT"
                    + " (e.g. tcp://*:5557,tcp://*:5558), got '" + kvEvents.endpoints + "'");
        }
        return new Replay.KvEventsOptions(endpoints[0].trim(), endpoints.length == 2 ? endpoints[1].trim() : null,
                kvEvents.topic == null ? Replay.KvEventsOptions.DEFAULT_TOPIC : kvEvents.topic);
    }
}
