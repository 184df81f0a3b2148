package io.pagedkv.cli;

import io.pagedkv.CacheStats;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.model.GgufModel;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.SequenceRunner;
import io.pagedkv.model.chat.ChatFormat;
import io.pagedkv.model.chat.ChatSession;
import io.pagedkv.replay.Sampler;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pagedkv chat --model FILE.gguf}: an interactive multi-turn chat in the terminal. Every
 * turn's prompt is the whole conversation, so pagedkv reuses the previous turns' pages and only the
 * new message is computed; each turn reports positions reused, time to first token and tokens/s.
 */
@Command(name = "chat", sortOptions = false, mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        header = "chat with a GGUF model (Llama, Qwen2) whose KV cache is pagedkv",
        description = {"Reads one message per line and streams the model's reply. Every turn's prompt is the whole"
                + " conversation (ChatML or Llama 3 template, from the file), so the pages of earlier turns are reused"
                + " and only the new message is computed. After each reply: prompt tokens, positions reused, time to"
                + " first token and decode tokens/s.",
            "Commands: /reset forgets the conversation (its pages stay cached), /stats shows the cache, /quit ends"
                + " (so does end of input).", ""},
        footer = {"", Main.EXIT_STATUS})
final class ChatCommand implements Callable<Integer> {
    /** Default bound on the conversation: the cache holds twice this (the conversation and its previous turn). */
    static final int DEFAULT_CONTEXT = 8192;

    @Option(names = "--model", required = true, paramLabel = "FILE.gguf", description = "the model (llama or qwen2 architecture)")
    Path model;

    @Option(names = "--system", paramLabel = "TEXT", description = "system message at the start of the conversation")
    String system;

    @Option(names = "--max-tokens", paramLabel = "N", description = "longest reply (default 512)")
    int maxTokens = 512;

    @Option(names = "--threads", paramLabel = "N", description = "worker threads of the matrix products (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Option(names = "--page-size", paramLabel = "N", description = "tokens per page (default 16)")
    int pageSize = 16;

    @Option(names = "--context", paramLabel = "N",
            description = "longest conversation in tokens (default: the model's context, at most " + DEFAULT_CONTEXT + ")")
    Integer context;

    @ArgGroup(validate = false, heading = "Sampling (default: greedy):%n", order = 2)
    ReplayOptions.Sampling sampling = new ReplayOptions.Sampling();

    @Spec
    CommandSpec spec;

    private final Main.Streams streams;

    ChatCommand(Main.Streams streams) {
        this.streams = streams;
    }

    @Override
    public Integer call() throws IOException {
        CommandLine commandLine = spec.commandLine();
        int max = OptionValues.inRange(commandLine, "--max-tokens", maxTokens, 1, 1 << 20);
        int workers = OptionValues.inRange(commandLine, "--threads", threads, 1, 1024);
        int page = OptionValues.inRange(commandLine, "--page-size", pageSize, 1, 4096);
        PrintStream out = streams.out();
        try (GgufModel gguf = GgufModel.open(model, workers)) {
            ModelShape shape = gguf.transformer().shape();
            Sampler sampler = new Sampler(sampling.toOptions(commandLine, shape.vocab(), ""), shape.vocab());
            ChatFormat format = ChatFormat.of(gguf.chatTemplate());
            int limit = context != null ? OptionValues.inRange(commandLine, "--context", context, 1, shape.contextLength())
                    : Math.min(shape.contextLength(), DEFAULT_CONTEXT);
            int pages = (limit + page - 1) / page * 2 + 8; // the conversation and its previous version
            try (PagedKvCache cache = PagedKvCache.builder().layers(shape.layers()).kvHeads(shape.kvHeads())
                         .headDim(shape.headDim()).pageSize(page).pages(pages).kvDtype(KvDtype.F32).vocabSize(shape.vocab()).build();
                 SequenceRunner runner = new SequenceRunner(gguf.transformer(), cache)) {
                ChatSession chat = new ChatSession(runner, gguf.tokenizer(), format, sampler, system, max, limit);
                out.println("model: " + gguf.describe());
                out.println("chat template: " + format.name().toLowerCase(java.util.Locale.ROOT) + "; sampling: "
                        + sampler.options().describe() + "; /reset, /stats, /quit");
                converse(chat, cache, out);
            }
        }
        return Main.OK;
    }

    private void converse(ChatSession chat, PagedKvCache cache, PrintStream out) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(streams.in(), StandardCharsets.UTF_8));
        int turn = 0;
        while (true) {
            out.print("> ");
            out.flush();
            String line = in.readLine();
            if (line == null || line.strip().equals("/quit")) break;
            switch (line.strip()) {
                case "" -> {}
                case "/reset" -> {
                    chat.reset();
                    turn = 0;
                    out.println("(conversation forgotten; its pages stay cached)");
                }
                case "/stats" -> out.println(describe(cache.stats()));
                default -> {
                    ChatSession.Turn t = chat.send(line, text -> {
                        out.print(text);
                        out.flush();
                    });
                    out.println();
                    out.printf("[turn %d: %d prompt tokens, %d reused from the cache, %d computed; TTFT %.1f ms;"
                                    + " %d tokens, %.1f tok/s%s]%n", ++turn, t.promptTokens(), t.reused(),
                            t.promptTokens() - t.reused(), t.ttftMillis(), t.generated(), t.decodePerSecond(),
                            t.stoppedAtEnd() ? "" : "; stopped at --max-tokens");
                }
            }
        }
    }

    private static String describe(CacheStats s) {
        return String.format("cache: %d pages (%d free, %d cached, %d in use); prompts %d tokens, %d reused (%.0f%%), %d computed;"
                        + " %d evictions", s.pagesTotal(), s.pagesFree(), s.pagesCached(), s.pagesInUse(), s.promptTokens(),
                s.reusedTokens(), 100 * s.hitRate(), s.computedTokens(), s.evictions());
    }
}
