package io.pagedkv.replay;

import java.util.List;

/**
 * How a trace's {@code text} and {@code messages} become token ids, and which ids {@code tokens}
 * may hold: the model's vocabulary and chat template.
 */
public interface PromptEncoder {
    /** Token ids lie in [0, vocab()). */
    int vocab();

    /** Plain text (no special tokens recognized in it). */
    int[] text(String text);

    /** A conversation rendered with the chat template, ending with the assistant's generation prompt. */
    int[] chat(List<ChatTemplate.Message> messages);

    /** The built-in tiny model's: UTF-8 bytes, ChatML with single-token markers. */
    PromptEncoder BYTES = new PromptEncoder() {
        @Override
        public int vocab() {
            return Tokenizer.VOCAB_SIZE;
        }

        @Override
        public int[] text(String text) {
            return Tokenizer.encode(text);
        }

        @Override
        public int[] chat(List<ChatTemplate.Message> messages) {
            return ChatTemplate.render(messages);
        }
    };
}
