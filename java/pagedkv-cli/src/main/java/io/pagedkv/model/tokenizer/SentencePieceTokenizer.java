package io.pagedkv.model.tokenizer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * SentencePiece-style tokenization as llama.cpp's SPM tokenizer does it: spaces become U+2581 (and
 * a leading one is added where the vocabulary asks), the text is split into characters, and the
 * adjacent pair whose merge is a vocabulary token with the highest score is merged until none is
 * left; pieces that are not tokens are split back along their merges, then into byte tokens
 * ({@code <0xXX>}).
 */
final class SentencePieceTokenizer extends Tokenizer {
    private static final String SPACE = Vocabulary.byteString("\u2581");

    SentencePieceTokenizer(Vocabulary vocab) {
        super(vocab);
    }

    @Override
    void encodeFragments(List<Object> fragments, boolean addSpecial, List<Integer> out) {
        boolean previousSpecial = true;
        if (addSpecial && vocab.addBos()) out.add(vocab.bos());
        for (Object f : fragments) {
            if (f instanceof String raw) {
                String text = (vocab.addSpacePrefix() && previousSpecial ? " " : "") + raw;
                tokenize(text.replace(" ", SPACE), out);
                previousSpecial = false;
            } else {
                out.add((Integer) f);
                previousSpecial = true;
            }
        }
        if (addSpecial && vocab.addEos()) out.add(vocab.eos());
    }

    private record Bigram(int left, int right, float score, int size) {}

    private void tokenize(String text, List<Integer> out) {
        int n = 0;
        List<int[]> symbols = new ArrayList<>(); // {start, length, prev, next}
        for (int offset = 0; offset < text.length(); n++) {
            int len = Math.min(Utf8.length(text.charAt(offset)), text.length() - offset);
            symbols.add(new int[] {offset, len, n - 1, offset + len == text.length() ? -1 : n + 1});
            offset += len;
        }
        PriorityQueue<Bigram> queue = new PriorityQueue<>((a, b) -> a.score != b.score ? Float.compare(b.score, a.score) : Integer.compare(a.left, b.left));
        Map<String, int[]> reverseMerges = new HashMap<>();
        for (int i = 1; i < symbols.size(); i++) addBigram(text, symbols, i - 1, i, queue, reverseMerges);
        while (!queue.isEmpty()) {
            Bigram b = queue.poll();
            int[] left = symbols.get(b.left), right = symbols.get(b.right);
            if (left[1] == 0 || right[1] == 0 || left[1] + right[1] != b.size) continue;
            left[1] += right[1];
            right[1] = 0;
            left[3] = right[3];
            if (right[3] >= 0) symbols.get(right[3])[2] = b.left;
            addBigram(text, symbols, left[2], b.left, queue, reverseMerges);
            addBigram(text, symbols, b.left, left[3], queue, reverseMerges);
        }
        if (symbols.isEmpty()) return;
        for (int i = 0; i != -1; i = symbols.get(i)[3]) resegment(text, symbols, symbols.get(i), reverseMerges, out);
    }

    private void addBigram(String text, List<int[]> symbols, int left, int right, PriorityQueue<Bigram> queue, Map<String, int[]> reverseMerges) {
        if (left == -1 || right == -1) return;
        int[] l = symbols.get(left), r = symbols.get(right);
        String merged = text.substring(l[0], l[0] + l[1] + r[1]);
        int id = vocab.id(merged);
        if (id < 0) return;
        queue.add(new Bigram(left, right, vocab.score(id), merged.length()));
        reverseMerges.put(merged, new int[] {left, right});
    }

    private void resegment(String text, List<int[]> symbols, int[] symbol, Map<String, int[]> reverseMerges, List<Integer> out) {
        String piece = text.substring(symbol[0], symbol[0] + symbol[1]);
        int id = vocab.id(piece);
        if (id >= 0) {
            out.add(id);
            return;
        }
        int[] merge = reverseMerges.get(piece);
        if (merge == null) {
            for (int i = 0; i < piece.length(); i++) out.add(byteToken(piece.charAt(i)));
            return;
        }
        resegment(text, symbols, symbols.get(merge[0]), reverseMerges, out);
        resegment(text, symbols, symbols.get(merge[1]), reverseMerges, out);
    }

    private int byteToken(char b) {
        int id = vocab.id(String.format("<0x%02X>", (int) b));
        if (id < 0) id = vocab.id(String.valueOf(b));
        if (id < 0) throw new IllegalStateException(String.format("the vocabulary has no token for byte 0x%02X", (int) b));
        return id;
    }

    @Override
    public byte[] tokenBytes(int id, boolean special) {
        int type = vocab.type(id);
        String text = vocab.text(id);
        if (type == Vocabulary.BYTE && text.length() == 6 && text.startsWith("<0x")) {
            return new byte[] {(byte) Integer.parseInt(text.substring(3, 5), 16)};
        }
        if ((type == Vocabulary.CONTROL || type == Vocabulary.UNKNOWN) && !special) return new byte[0];
        return latin1(text.replace(SPACE, " "));
    }

    static byte[] latin1(String byteString) {
        return byteString.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1);
    }
}
