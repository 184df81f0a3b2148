package io.pagedkv.model.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Field unpacking of the K-quant super-blocks, shared by dequantization and the dot products. */
final class KQuants {
    private KQuants() {}

    /** Q4_K's twelve packed bytes at {@code at}: eight 6-bit scales and eight 6-bit mins. */
    static void q4kScales(MemorySegment data, long at, int[] sc, int[] m) {
        int[] b = new int[12];
        for (int i = 0; i < 12; i++) b[i] = data.get(ValueLayout.JAVA_BYTE, at + i) & 0xff;
        for (int j = 0; j < 4; j++) {
            sc[j] = b[j] & 63;
            m[j] = b[j + 4] & 63;
            sc[j + 4] = (b[j + 8] & 0xF) | (b[j] >> 6) << 4;
            m[j + 4] = (b[j + 8] >> 4) | (b[j + 4] >> 6) << 4;
        }
    }

    /** Q6_K's 256 six-bit values of the block at {@code at}, minus 32. */
    static void q6kValues(MemorySegment data, long at, int[] q) {
        for (int half = 0; half < 2; half++) {
            long ql = at + 64 * half, qh = at + 128 + 32 * half;
            int base = 128 * half;
            for (int l = 0; l < 32; l++) {
                int lo = data.get(ValueLayout.JAVA_BYTE, ql + l) & 0xff;
                int lo2 = data.get(ValueLayout.JAVA_BYTE, ql + 32 + l) & 0xff;
                int hi = data.get(ValueLayout.JAVA_BYTE, qh + l) & 0xff;
                q[base + l] = ((lo & 0xF) | (hi & 3) << 4) - 32;
                q[base + 32 + l] = ((lo2 & 0xF) | ((hi >> 2) & 3) << 4) - 32;
                q[base + 64 + l] = ((lo >> 4) | ((hi >> 4) & 3) << 4) - 32;
                q[base + 96 + l] = ((lo2 >> 4) | ((hi >> 6) & 3) << 4) - 32;
            }
        }
    }
}
