package io.pagedkv.replay;

import java.util.List;

/**
 * Renders chat messages with the ChatML template, each message as
 * {@code <|im_start|>role\ncontent<|im_end|>\n}, followed by the generation prompt
 * {@code <|im_start|>assistant\n}. {@code <|im_start|>} and {@code <|im_end|>} are single special
 * tokens; role and content are byte tokens. Thread-safe (stateless).
 */
public final class ChatTemplate {
    /** One chat message. */
    public record Message(String role, String content) {}

    private ChatTemplate() {}

    /** Token ids of the rendered conversation, ending with the assistant generation prompt. */
    public static int[] render(List<Message> messages) {
        IntList out = new IntList(256);
        for (Message m : messages) {
            out.add(Tokenizer.IM_START);
            out.addAll(Tokenizer.encode(m.role() + "\n" + m.content()));
            out.add(Tokenizer.IM_END);
            out.addAll(Tokenizer.encode("\n"));
        }
        out.add(Tokenizer.IM_START);
        out.addAll(Tokenizer.encode("assistant\n"));
        return out.toArray();
    }
}
