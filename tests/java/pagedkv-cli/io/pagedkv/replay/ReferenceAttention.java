package io.pagedkv.replay;

import io.pagedkv.model.Attention;
import io.pagedkv.model.Model;

import java.util.Arrays;

/**
 * Plain-Java causal GQA attention over one sequence's keys and values, kept in arrays: the oracle
 * the paged path is compared with. Each call appends the step's K/V of its layer, then lets query
 * token t (absolute position past + t) attend to positions [0, past + t].
 */
final class ReferenceAttention implements Attention {
    private final Model cfg;
    private final float[][] keys;
    private final float[][] values;
    private final int[] length;

    ReferenceAttention(Model cfg) {
        this.cfg = cfg;
        keys = new float[cfg.layers()][0];
        values = new float[cfg.layers()][0];
        length = new int[cfg.layers()];
    }

    @Override
    public void attend(int layer, int numTokens, float[][] q, float[][] k, float[][] v, float[][] out) {
        int kvDim = cfg.kvHeads() * cfg.headDim();
        int d = cfg.headDim();
        int past = length[layer];
        keys[layer] = Arrays.copyOf(keys[layer], (past + numTokens) * kvDim);
        values[layer] = Arrays.copyOf(values[layer], (past + numTokens) * kvDim);
        for (int t = 0; t < numTokens; t++) {
            System.arraycopy(k[t], 0, keys[layer], (past + t) * kvDim, kvDim);
            System.arraycopy(v[t], 0, values[layer], (past + t) * kvDim, kvDim);
        }
        length[layer] = past + numTokens;
        int group = cfg.heads() / cfg.kvHeads();
        double scale = 1.0 / Math.sqrt(d);
        for (int t = 0; t < numTokens; t++) {
            int visible = past + t + 1;
            for (int h = 0; h < cfg.heads(); h++) {
                int kvh = h / group;
                double[] scores = new double[visible];
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p < visible; p++) {
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += (double) q[t][h * d + i] * keys[layer][p * kvDim + kvh * d + i];
                    scores[p] = dot * scale;
                    max = Math.max(max, scores[p]);
                }
                double sum = 0;
                for (int p = 0; p < visible; p++) sum += scores[p] = Math.exp(scores[p] - max);
                for (int i = 0; i < d; i++) {
                    double acc = 0;
                    for (int p = 0; p < visible; p++) acc += scores[p] * values[layer][p * kvDim + kvh * d + i];
                    out[t][h * d + i] = (float) (acc / sum);
                }
            }
        }
    }
}
