package io.pagedkv.cli;

import io.pagedkv.model.BuiltinModel;
import io.pagedkv.model.GgufModel;
import io.pagedkv.model.Model;
import io.pagedkv.model.chat.ChatFormat;
import io.pagedkv.model.chat.GgufPrompts;
import io.pagedkv.replay.PromptEncoder;
import io.pagedkv.replay.Replay;
import io.pagedkv.replay.Request;
import io.pagedkv.replay.TraceParser;
import io.pagedkv.replay.Workloads;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** {@code pagedkv replay}: reads the workload, runs {@link Replay}, prints the report. */
@Command(name = "replay", sortOptions = false, mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        header = "replay a workload through a tiny model with and without prefix reuse (the default command)",
        customSynopsis = "pagedkv replay [OPTIONS] [FILE.jsonl | -]",
        description = {
            "Replays a workload through a model whose keys and values live in pagedkv (projections in Java, K/V"
                    + " writes and attention by pagedkv's kernels): --model FILE.gguf, or the built-in tiny Llama-style"
                    + " model (written as a GGUF file and loaded like one; its vocabulary is the UTF-8 bytes and ChatML's"
                    + " markers). It runs first with prefix reuse,"
                    + " then with reuse off, and prints what reuse saved. Without FILE: the ExLlamaV2 scenario"
                    + " (examples/exllamav2.jsonl). A trace has one JSON object per line:",
            "  {\"id\": \"r1\", \"tokens\": [12, 7], \"max_new_tokens\": 8, \"salt\": \"tenant-a\"}",
            "with \"text\" or \"messages\" ([{\"role\", \"content\"}], the model's chat template) instead of \"tokens\";"
                    + " id, max_new_tokens and salt are optional.",
            ""},
        footer = {
            "",
            "Reported per request: prompt tokens, tokens reused from the cache, prompt tokens computed, tokens generated,"
                    + " and the time to first token (ttft), from the request's admission (its sequence created) to its"
                    + " first generated token; the summary also gives it from arrival (every request arrives at the start,"
                    + " so the queue counts). Requests that share a prefix with one joining in the same step wait one"
                    + " step to reuse it (counted as deferrals in --json).",
            "",
            Main.EXIT_STATUS})
final class ReplayCommand implements Callable<Integer> {
    @Mixin
    ReplayOptions options;

    @Spec
    CommandSpec spec;

    /** Without a terminal, a plain progress line this often (a log shows the run is alive). */
    static final long PLAIN_PROGRESS_MILLIS = 10_000;

    private final Main.Streams streams;

    ReplayCommand(Main.Streams streams) {
        this.streams = streams;
    }

    @Override
    public Integer call() throws java.io.IOException {
        CommandLine commandLine = spec.commandLine();
        int threads = options.threads(commandLine);
        // Without --model, the built-in tiny model, written as a GGUF and loaded like any model file.
        try (GgufModel gguf = options.workload.model == null ? BuiltinModel.open(threads) : GgufModel.open(options.workload.model, threads)) {
            String template = gguf.chatTemplate();
            ChatFormat format = template == null ? null : ChatFormat.of(template);
            return replay(commandLine, gguf.transformer(), gguf.transformer().describe(),
                    new GgufPrompts(gguf.tokenizer(), format));
        }
    }

    /** {@code modelName} names the weights (the tiers' default namespace: only runs of one model share pages). */
    private int replay(CommandLine commandLine, Model model, String modelName, PromptEncoder encoder) {
        String file = options.file(commandLine);
        Replay.Options replayOptions = options.toReplayOptions(commandLine, model, modelName);
        int defaultMaxNew = options.maxNewTokens(commandLine);

        String workload;
        String source;
        List<Request> requests;
        if (file == null) {
            workload = Workloads.EXLLAMAV2_NAME;
            source = "exllamav2";
            requests = Workloads.exllamav2();
        } else if (file.equals(TraceParser.STDIN)) {
            workload = "stdin";
            source = "stdin";
            requests = TraceParser.parse(source, streams.in(), defaultMaxNew, encoder);
        } else {
            workload = file;
            source = file;
            requests = TraceParser.parse(Path.of(file), defaultMaxNew, encoder);
        }
        Replay.checkCapacity(source, requests, replayOptions.cache());

        // The header first, so a long run says what it is doing from the start (with --json on
        // stderr: stdout carries JSON only).
        ReportPrinter.header(options.output.json ? streams.err() : streams.out(), workload, requests.size(), replayOptions);
        Replay.Report report;
        try (ProgressReporter progress = new ProgressReporter(streams.err(), streams.terminal(), PLAIN_PROGRESS_MILLIS)) {
            report = Replay.run(workload, source, requests, replayOptions, progress);
        }
        ReportPrinter printer = new ReportPrinter(streams.out());
        if (options.output.json) {
            printer.json(report);
        } else {
            printer.text(report);
        }
        streams.out().flush();
        if (report.verify() != null && !report.verify().ok()) {
            streams.err().println("pagedkv: verification FAILED: " + ReportPrinter.verifySentence(report.verify()));
            return Main.VERIFY_FAILED;
        }
        return Main.OK;
    }
}
