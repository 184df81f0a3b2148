package io.pagedkv.bench.model;

import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.model.Architecture;
import io.pagedkv.model.GgufModel;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.RandomModelWriter;
import io.pagedkv.model.SequenceRunner;
import io.pagedkv.model.chat.ChatFormat;
import io.pagedkv.model.chat.ChatSession;
import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.replay.Sampler;
import io.pagedkv.replay.SamplingOptions;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * The GGUF engine's speed, for bench/model/run (which runs llama.cpp's side on the same files and
 * threads and prints the ratios):
 * <pre>
 *   write FILE TYPE SHAPE          a random-weight model: SHAPE 1b (Llama-3.2-1B-like, vocab 32000) or 100m
 *   speed FILE THREADS PROMPT N    prefill PROMPT tokens in one step, then N decode steps:
 *                                  prints prefill_tok_s and decode_tok_s (after a warm-up)
 *   chat FILE THREADS TURNS        TTFT of each turn of a chat (64-token messages, 16-token replies),
 *                                  with the cache reusing earlier turns and with reuse off
 * </pre>
 */
public final class ModelBenchmark {
    private ModelBenchmark() {}

    public static void main(String[] args) throws Exception {
        switch (args.length > 0 ? args[0] : "") {
            case "write" -> write(Path.of(args[1]), GgmlType.valueOf(args[2]), args[3]);
            case "speed" -> speed(Path.of(args[1]), Integer.parseInt(args[2]), Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            case "chat" -> chat(Path.of(args[1]), Integer.parseInt(args[2]), Integer.parseInt(args[3]));
            default -> {
                System.err.println("usage: ModelBenchmark write FILE TYPE 1b|100m | speed FILE THREADS PROMPT N | chat FILE THREADS TURNS");
                System.exit(2);
            }
        }
    }

    private static void write(Path file, GgmlType type, String size) throws Exception {
        ModelShape shape = switch (size) {
            case "1b" -> new ModelShape(Architecture.LLAMA, 16, 2048, 32, 8, 64, 8192, 32000, 4096, 1e-5f, 500000f, 1f, 64);
            case "100m" -> new ModelShape(Architecture.LLAMA, 8, 768, 12, 4, 64, 2048, 32000, 4096, 1e-5f, 500000f, 1f, 64);
            default -> throw new IllegalArgumentException("shape 1b or 100m, got " + size);
        };
        new RandomModelWriter(shape, type, false, 3f, 42).write(file);
    }

    private static PagedKvCache cache(ModelShape s, boolean reuse) {
        return PagedKvCache.builder().layers(s.layers()).kvHeads(s.kvHeads()).headDim(s.headDim()).pageSize(16)
                .pages(1024).kvDtype(KvDtype.F32).reuse(reuse).build();
    }

    private static int[] randomPrompt(SplittableRandom rng, int n, int vocab) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = 300 + rng.nextInt(vocab - 300);
        return p;
    }

    private static void speed(Path file, int threads, int promptLength, int decode) throws Exception {
        try (GgufModel model = GgufModel.open(file, threads)) {
            ModelShape s = model.transformer().shape();
            SplittableRandom rng = new SplittableRandom(1);
            for (int round = 0; round < 2; round++) { // the first round warms up the JIT and the page cache
                try (PagedKvCache cache = cache(s, false); SequenceRunner runner = new SequenceRunner(model.transformer(), cache)) {
                    int[] prompt = randomPrompt(rng, round == 0 ? Math.min(16, promptLength) : promptLength, s.vocab());
                    long t0 = System.nanoTime();
                    SequenceRunner.Prefill prefill = runner.prefill(prompt, false);
                    double prefillSeconds = (System.nanoTime() - t0) / 1e9;
                    int steps = round == 0 ? Math.min(4, decode) : decode;
                    try (var seq = prefill.sequence()) {
                        float[] logits = prefill.last();
                        t0 = System.nanoTime();
                        for (int i = 0; i < steps; i++) logits = runner.decode(seq, argmax(logits));
                    }
                    double decodeSeconds = (System.nanoTime() - t0) / 1e9;
                    if (round == 1) {
                        System.out.printf("prefill_tok_s %.3f%ndecode_tok_s %.3f%n", promptLength / prefillSeconds, decode / decodeSeconds);
                    }
                }
            }
        }
    }

    private static void chat(Path file, int threads, int turns) throws Exception {
        try (GgufModel model = GgufModel.open(file, threads)) {
            ModelShape s = model.transformer().shape();
            for (boolean reuse : new boolean[] {true, false}) {
                try (PagedKvCache cache = cache(s, reuse); SequenceRunner runner = new SequenceRunner(model.transformer(), cache)) {
                    ChatSession chat = new ChatSession(runner, model.tokenizer(), ChatFormat.CHATML,
                            new Sampler(SamplingOptions.GREEDY, s.vocab()), "You are a benchmark.", 16);
                    SplittableRandom rng = new SplittableRandom(7);
                    StringBuilder line = new StringBuilder(reuse ? "reuse on: " : "reuse off:");
                    for (int t = 1; t <= turns; t++) {
                        StringBuilder message = new StringBuilder();
                        for (int w = 0; w < 64; w++) message.append((char) ('a' + rng.nextInt(26)));
                        ChatSession.Turn turn = chat.send(message.toString(), x -> {});
                        line.append(String.format(" turn %d: prompt %d, reused %d, ttft %.0f ms;", t, turn.promptTokens(),
                                turn.reused(), turn.ttftMillis()));
                    }
                    System.out.println(line);
                }
            }
        }
    }

    private static int argmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
        return best;
    }
}
