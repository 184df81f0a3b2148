package io.pagedkv.model.chat;

import io.pagedkv.model.SequenceRunner;
import io.pagedkv.model.tokenizer.Tokenizer;
import io.pagedkv.replay.Sampler;
import io.pagedkv.replay.SplitMix64;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * A multi-turn chat with a GGUF model on pagedkv. Each turn's prompt is the whole conversation so
 * far, built by appending tokens (never re-tokenizing earlier turns), so every turn reuses the
 * pages of the previous ones and computes only the new user message; the reply is sampled until an
 * end-of-generation token or the length limit. Confined to one thread.
 */
public final class ChatSession {
    /**
     * What one turn cost.
     *
     * @param promptTokens  the conversation's length when the turn started (its prompt)
     * @param reused        prompt positions whose K/V came from the cache
     * @param generated     tokens generated (the end-of-turn token included)
     * @param ttftMillis    from the user message to the first generated token
     * @param decodePerSecond generated tokens after the first, per second of decoding
     * @param stoppedAtEnd  generation ended at an end-of-generation token (not at the limit)
     */
    public record Turn(int promptTokens, int reused, int generated, double ttftMillis, double decodePerSecond, boolean stoppedAtEnd) {}

    private final SequenceRunner runner;
    private final Tokenizer tokenizer;
    private final ChatFormat format;
    private final Sampler sampler;
    private final String system;
    private final int maxTokens;
    private final int contextLength;
    private int[] conversation = new int[0];
    private long turns;

    /** A chat limited to the model's context length. */
    public ChatSession(SequenceRunner runner, Tokenizer tokenizer, ChatFormat format, Sampler sampler, String system, int maxTokens) {
        this(runner, tokenizer, format, sampler, system, maxTokens, runner.model().shape().contextLength());
    }

    /** A chat whose conversation may grow to {@code contextLength} tokens (at most the model's). */
    public ChatSession(SequenceRunner runner, Tokenizer tokenizer, ChatFormat format, Sampler sampler, String system, int maxTokens,
                       int contextLength) {
        if (maxTokens < 1) throw new IllegalArgumentException("max tokens must be at least 1");
        if (contextLength < 1 || contextLength > runner.model().shape().contextLength()) {
            throw new IllegalArgumentException("context " + contextLength + " outside [1, " + runner.model().shape().contextLength() + "]");
        }
        this.runner = runner;
        this.tokenizer = tokenizer;
        this.format = format;
        this.sampler = sampler;
        this.system = system;
        this.maxTokens = maxTokens;
        this.contextLength = contextLength;
        reset();
    }

    /** Forgets the conversation (its pages stay cached: a new one with the same start reuses them). */
    public void reset() {
        conversation = encode(format.begin(system));
    }

    /** The conversation's tokens so far. */
    public int[] conversation() {
        return conversation.clone();
    }

    /** Sends {@code message}, streams the reply's text to {@code onText}, returns the turn's costs. */
    public Turn send(String message, Consumer<String> onText) {
        long start = System.nanoTime();
        int[] prompt = concat(conversation, encode(format.userTurn(message)));
        if (prompt.length + maxTokens > contextLength) {
            throw new IllegalStateException("the conversation (" + prompt.length + " tokens + up to " + maxTokens
                    + " more) would pass the context of " + contextLength + "; /reset starts a new one");
        }
        int[] history = Arrays.copyOf(prompt, prompt.length + maxTokens + 1);
        int length = prompt.length;
        SplitMix64 rng = sampler.streamFor(turns++);
        TextStream text = new TextStream(onText);
        SequenceRunner.Prefill prefill = runner.prefill(prompt, false);
        double ttft = 0;
        long decodeStart = 0;
        boolean ended = false;
        try (var seq = prefill.sequence()) {
            float[] logits = prefill.last();
            for (int n = 0; n < maxTokens; n++) {
                int token = sampler.sample(logits, history, length, rng);
                history[length++] = token;
                if (n == 0) {
                    ttft = (System.nanoTime() - start) / 1e6;
                    decodeStart = System.nanoTime();
                }
                if (tokenizer.vocabulary().isEndOfGeneration(token)) {
                    ended = true;
                    break;
                }
                text.accept(tokenizer.tokenBytes(token, false));
                if (n + 1 < maxTokens) logits = runner.decode(seq, token);
            }
        }
        text.flush();
        int generated = length - prompt.length;
        double seconds = (System.nanoTime() - decodeStart) / 1e9;
        int[] reply = Arrays.copyOfRange(history, prompt.length, length);
        if (!ended) reply = concat(reply, encode(format.endOfTurn()));
        conversation = concat(concat(prompt, reply), encode(format.afterAssistant()));
        return new Turn(prompt.length, prefill.reused(), generated, ttft, generated > 1 ? (generated - 1) / seconds : 0, ended);
    }

    private int[] encode(String text) {
        return tokenizer.encode(text, false, true);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** Bytes of tokens to text, holding back an incomplete UTF-8 sequence until its end arrives. */
    private static final class TextStream {
        private final Consumer<String> sink;
        private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE);
        private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

        TextStream(Consumer<String> sink) {
            this.sink = sink;
        }

        void accept(byte[] bytes) {
            pending.writeBytes(bytes);
            ByteBuffer in = ByteBuffer.wrap(pending.toByteArray());
            CharBuffer out = CharBuffer.allocate(in.remaining() + 1);
            decoder.decode(in, out, false);
            out.flip();
            if (out.hasRemaining()) sink.accept(out.toString());
            byte[] rest = new byte[in.remaining()];
            in.get(rest);
            pending.reset();
            pending.writeBytes(rest);
        }

        void flush() {
            if (pending.size() > 0) sink.accept(new String(pending.toByteArray(), StandardCharsets.UTF_8));
            pending.reset();
        }
    }
}
