package io.pagedkv.replay;

/**
 * One request of a workload: its prompt as token ids, how many tokens to generate, and the
 * isolation key under which its prefix may be shared ({@code ""} for none).
 *
 * @param id           the request's name in reports
 * @param line         1-based line of the trace it came from (0 for built-in workloads)
 * @param prompt       token ids, at least one, each in {@code [0, Tokenizer.VOCAB_SIZE)}
 * @param maxNewTokens tokens to generate (0 = prefill only)
 * @param salt         isolation key; prefixes are reused only between equal salts
 */
public record Request(String id, int line, int[] prompt, int maxNewTokens, String salt) {
    public Request {
        if (prompt.length == 0) throw new IllegalArgumentException("empty prompt");
        if (maxNewTokens < 0) throw new IllegalArgumentException("negative max_new_tokens");
        if (salt == null) salt = "";
    }

    /** Same request generating {@code n} tokens instead. */
    public Request withMaxNewTokens(int n) {
        return new Request(id, line, prompt, n, salt);
    }

    /** KV positions the request occupies at most: the prompt and every generated token but the last. */
    public long maxKvPositions() {
        return prompt.length + Math.max(0, maxNewTokens - 1);
    }
}
