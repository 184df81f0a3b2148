package io.pagedkv.model.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import io.pagedkv.model.Architecture;
import io.pagedkv.model.GgufModel;
import io.pagedkv.model.LlamaCppOracle;
import io.pagedkv.model.LlamaCppReference;
import io.pagedkv.model.ModelShape;
import io.pagedkv.model.RandomModelWriter;
import io.pagedkv.model.SequenceRunner;
import io.pagedkv.model.gguf.GgmlType;
import io.pagedkv.replay.Sampler;
import io.pagedkv.replay.SamplingOptions;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A three-turn greedy chat on a random-weight GGUF: every turn's prompt extends the previous one,
 * pagedkv reuses all of the previous turn's computed positions, and each reply is llama.cpp's greedy
 * continuation of the whole conversation computed from scratch.
 */
class ChatSessionTest {
    private static final int MAX_TOKENS = 6;

    @TempDir
    Path dir;

    @Test
    void turnsReuseThePreviousTurnsAndRepliesAreLlamaCppsGreedyTokens() throws Exception {
        LlamaCppReference llamaCpp = LlamaCppReference.get();
        ModelShape shape = new ModelShape(Architecture.QWEN2, 2, 256, 4, 2, 64, 512, 300, 512, 1e-6f, 1000000f, 1f, 64);
        Path file = dir.resolve("chat.gguf");
        new RandomModelWriter(shape, GgmlType.F32, false, 3f, 7).write(file);
        try (GgufModel model = GgufModel.open(file, 2);
             PagedKvCache cache = PagedKvCache.builder().layers(shape.layers()).kvHeads(shape.kvHeads()).headDim(shape.headDim())
                     .pageSize(8).pages(256).kvDtype(KvDtype.F32).build();
             SequenceRunner runner = new SequenceRunner(model.transformer(), cache)) {
            ChatFormat format = ChatFormat.of(model.chatTemplate());
            assertEquals(ChatFormat.CHATML, format);
            ChatSession chat = new ChatSession(runner, model.tokenizer(), format,
                    new Sampler(SamplingOptions.GREEDY, shape.vocab()), "You are terse.", MAX_TOKENS);
            int cachedBefore = 0;
            for (String message : List.of("hello there", "and what about the weather?", "thanks")) {
                int[] before = chat.conversation();
                StringBuilder text = new StringBuilder();
                ChatSession.Turn turn = chat.send(message, text::append);
                int[] after = chat.conversation();
                int[] prompt = Arrays.copyOf(after, turn.promptTokens());
                assertArrayEquals(before, Arrays.copyOf(prompt, before.length), "the prompt extends the conversation");
                assertEquals(cachedBefore, turn.reused(), "positions reused: everything the previous turns computed");
                int[] reply = Arrays.copyOfRange(after, prompt.length, prompt.length + turn.generated());
                LlamaCppOracle.Run expected = llamaCpp.logits("chat-turn", file, turn.generated() - 1, prompt.length - 1, prompt).get(0);
                for (int i = 0; i < reply.length; i++) {
                    float[] row = expected.logits()[prompt.length - 1 + i];
                    int want = i == 0 ? argmax(row) : expected.greedy()[i - 1];
                    if (reply[i] != want) {
                        float margin = row[want] - row[reply[i]];
                        int step = i;
                        assertTrue(margin <= 1e-4, () -> "reply token " + step + ": " + reply[step] + ", llama.cpp " + want);
                    }
                }
                assertEquals(model.tokenizer().decode(reply), text.toString(), "streamed text = the reply's tokens");
                // Cached now: the prompt and every generated token that was fed back (all but the last).
                cachedBefore = prompt.length + turn.generated() - 1;
            }
            chat.reset();
            ChatSession.Turn again = chat.send("hello there", s -> {});
            assertTrue(again.reused() > 0, "after /reset the same opening is still cached");
        }
    }

    private static int argmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
        return best;
    }
}
