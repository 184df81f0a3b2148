package io.pagedkv.model.chat;

import io.pagedkv.model.gguf.GgufException;

/**
 * The chat templates served, chosen from {@code tokenizer.chat_template}: ChatML (Qwen2, the
 * dolphin models, the built-in demonstration model) and Llama 3's header format. Each renders the
 * pieces of a conversation as text with its control tokens written out (they are parsed as
 * special tokens), so that a conversation is built by appending: a turn's tokens never change the
 * tokens before it, and every turn's prompt extends the previous one (which pagedkv then reuses).
 */
public enum ChatFormat {
    CHATML {
        @Override
        public String bos() {
            return "";
        }

        @Override
        public String message(String role, String content) {
            return "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
        }

        @Override
        public String assistantPrompt() {
            return "<|im_start|>assistant\n";
        }

        @Override
        public String endOfTurn() {
            return "<|im_end|>";
        }

        @Override
        public String afterAssistant() {
            return "\n";
        }
    },
    LLAMA3 {
        @Override
        public String bos() {
            return "<|begin_of_text|>";
        }

        @Override
        public String message(String role, String content) {
            return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>";
        }

        @Override
        public String assistantPrompt() {
            return "<|start_header_id|>assistant<|end_header_id|>\n\n";
        }

        @Override
        public String endOfTurn() {
            return "<|eot_id|>";
        }

        @Override
        public String afterAssistant() {
            return "";
        }
    };

    /** What opens a conversation (Llama 3's BOS; nothing for ChatML). */
    public abstract String bos();

    /** One message of {@code role}, ended. */
    public abstract String message(String role, String content);

    /** The start of the assistant's reply: what the model continues. */
    public abstract String assistantPrompt();

    /** The conversation's opening: BOS where the format writes it, then the system message if any. */
    public String begin(String system) {
        return bos() + (system == null || system.isEmpty() ? "" : message("system", system));
    }

    /** A user message and the assistant's generation prompt. */
    public String userTurn(String message) {
        return message("user", message) + assistantPrompt();
    }

    /** The token that ends an assistant turn (appended when generation stops for length). */
    public abstract String endOfTurn();

    /** What follows an assistant turn's end before the next user turn. */
    public abstract String afterAssistant();

    /** The format of a GGUF chat template (Jinja text), or throws naming what is served. */
    public static ChatFormat of(String template) {
        if (template == null) throw new GgufException("the model has no tokenizer.chat_template; ChatML and Llama 3 templates are served");
        if (template.contains("<|im_start|>")) return CHATML;
        if (template.contains("<|start_header_id|>")) return LLAMA3;
        throw new GgufException("the model's chat template is neither ChatML nor Llama 3's, the two served");
    }
}
