package io.pagedkv.model.chat;

import io.pagedkv.model.tokenizer.Tokenizer;
import io.pagedkv.replay.ChatTemplate;
import io.pagedkv.replay.PromptEncoder;
import java.util.List;

/**
 * A replay trace's prompts for a GGUF model: {@code text} through its tokenizer (BOS as the
 * vocabulary asks, no special tokens parsed in the text), {@code messages} rendered with its chat
 * template (markers parsed as special tokens; null when the model has none). Thread-safe (immutable).
 */
public record GgufPrompts(Tokenizer tokenizer, ChatFormat format) implements PromptEncoder {
    @Override
    public int vocab() {
        return tokenizer.vocabulary().size();
    }

    @Override
    public int[] text(String text) {
        return tokenizer.encode(text, true, false);
    }

    @Override
    public int[] chat(List<ChatTemplate.Message> messages) {
        if (format == null) throw new IllegalArgumentException("\"messages\" needs a chat template, and the model has none (use \"text\" or \"tokens\")");
        StringBuilder sb = new StringBuilder(format.bos());
        for (ChatTemplate.Message m : messages) sb.append(format.message(m.role(), m.content()));
        return tokenizer.encode(sb.append(format.assistantPrompt()).toString(), false, true);
    }
}
