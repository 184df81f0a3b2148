package io.pagedkv.model.tokenizer;

import io.pagedkv.model.gguf.GgufException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * GPT-2-style byte-level BPE as llama.cpp does it: the text is split by the pre-tokenizer regex of
 * the vocabulary's {@code tokenizer.ggml.pre} (Llama 3, Qwen2), each piece's UTF-8 bytes are mapped
 * to GPT-2's printable byte alphabet, and the adjacent pair with the lowest merge rank is merged
 * until none is left. Llama 3 vocabularies take a piece that is a whole token as is ("ignore merges").
 */
final class BpeTokenizer extends Tokenizer {
    private static final String LLAMA3_SPLIT =
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final String QWEN2_SPLIT =
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    private final Pattern split;
    private final boolean ignoreMerges;
    private final Map<String, Integer> ranks = new HashMap<>();
    private final char[] byteToChar = new char[256];
    private final Map<Character, Byte> charToByte = new HashMap<>();

    BpeTokenizer(Vocabulary vocab, List<?> merges) {
        super(vocab);
        String regex = switch (vocab.pre()) {
            case "llama3", "llama-v3", "llama-bpe" -> LLAMA3_SPLIT;
            case "qwen2", "deepseek-r1-qwen" -> QWEN2_SPLIT;
            default -> throw new GgufException("BPE pre-tokenizer '" + vocab.pre() + "' is not supported (llama-bpe, qwen2 are)");
        };
        split = Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
        ignoreMerges = regex == LLAMA3_SPLIT;
        if (merges == null) throw new GgufException("tokenizer.ggml.merges is missing for a BPE vocabulary");
        for (int i = 0; i < merges.size(); i++) ranks.putIfAbsent(Vocabulary.byteString((String) merges.get(i)), i);
        for (int b = 0; b < 256; b++) {
            byteToChar[b] = ByteAlphabet.of(b);
            charToByte.put(byteToChar[b], (byte) b);
        }
    }

    @Override
    void encodeFragments(List<Object> fragments, boolean addSpecial, List<Integer> out) {
        if (addSpecial && vocab.addBos()) out.add(vocab.bos());
        for (Object f : fragments) {
            if (f instanceof String raw) {
                String text = new String(SentencePieceTokenizer.latin1(raw), java.nio.charset.StandardCharsets.UTF_8);
                Matcher m = split.matcher(text);
                while (m.find()) encodeWord(byteEncode(m.group()), out);
            } else {
                out.add((Integer) f);
            }
        }
        if (addSpecial && vocab.addEos()) out.add(vocab.eos());
    }

    /** The piece's UTF-8 bytes in GPT-2's byte alphabet, as a byte string (the vocabulary's form). */
    private String byteEncode(String piece) {
        StringBuilder sb = new StringBuilder();
        for (byte b : piece.getBytes(java.nio.charset.StandardCharsets.UTF_8)) sb.append(byteToChar[b & 0xff]);
        return Vocabulary.byteString(sb.toString());
    }

    private record Bigram(int left, int right, String text, int rank) {}

    private void encodeWord(String word, List<Integer> out) {
        if (ignoreMerges && vocab.id(word) >= 0) {
            out.add(vocab.id(word));
            return;
        }
        List<int[]> symbols = new ArrayList<>(); // {start, length, prev, next}
        int n = 0;
        for (int offset = 0; offset < word.length(); n++) {
            int len = Math.min(Utf8.length(word.charAt(offset)), word.length() - offset);
            symbols.add(new int[] {offset, len, n - 1, offset + len == word.length() ? -1 : n + 1});
            offset += len;
        }
        PriorityQueue<Bigram> queue = new PriorityQueue<>((a, b) -> a.rank != b.rank ? Integer.compare(a.rank, b.rank) : Integer.compare(a.left, b.left));
        for (int i = 1; i < symbols.size(); i++) addBigram(word, symbols, i - 1, i, queue);
        while (!queue.isEmpty()) {
            Bigram b = queue.poll();
            int[] left = symbols.get(b.left), right = symbols.get(b.right);
            if (left[1] == 0 || right[1] == 0) continue;
            if (!(text(word, left) + text(word, right)).equals(b.text)) continue;
            left[1] += right[1];
            right[1] = 0;
            left[3] = right[3];
            if (right[3] >= 0) symbols.get(right[3])[2] = b.left;
            addBigram(word, symbols, left[2], b.left, queue);
            addBigram(word, symbols, b.left, left[3], queue);
        }
        for (int[] s : symbols) {
            if (s[1] == 0) continue;
            String piece = text(word, s);
            int id = vocab.id(piece);
            if (id >= 0) {
                out.add(id);
                continue;
            }
            for (int i = 0; i < piece.length(); i++) {
                int single = vocab.id(String.valueOf(piece.charAt(i)));
                if (single >= 0) out.add(single);
            }
        }
    }

    private static String text(String word, int[] symbol) {
        return word.substring(symbol[0], symbol[0] + symbol[1]);
    }

    private void addBigram(String word, List<int[]> symbols, int left, int right, PriorityQueue<Bigram> queue) {
        if (left == -1 || right == -1) return;
        String l = text(word, symbols.get(left)), r = text(word, symbols.get(right));
        Integer rank = ranks.get(l + " " + r);
        if (rank != null) queue.add(new Bigram(left, right, l + r, rank));
    }

    @Override
    public byte[] tokenBytes(int id, boolean special) {
        int type = vocab.type(id);
        if ((type == Vocabulary.CONTROL || type == Vocabulary.UNKNOWN) && !special) return new byte[0];
        String text = new String(SentencePieceTokenizer.latin1(vocab.text(id)), java.nio.charset.StandardCharsets.UTF_8);
        if (type == Vocabulary.USER_DEFINED || type == Vocabulary.CONTROL) return text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        byte[] bytes = new byte[text.length()];
        int n = 0;
        for (int i = 0; i < text.length(); i++) {
            Byte b = charToByte.get(text.charAt(i));
            if (b != null) bytes[n++] = b;
        }
        return java.util.Arrays.copyOf(bytes, n);
    }
}
