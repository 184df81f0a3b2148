/* The README's C example: two requests sharing a prefix, K/V written, attention run, then a decode
 * step. Built by CMake as pagedkv_c_example and run by ctest, and by CI against the installed
 * library (pkg-config and find_package), so the README's code stays true.
 *
 * Sizes: LAYERS layers, KV_HEADS key/value heads and Q_HEADS query heads (grouped-query attention)
 * of HEAD_DIM floats; pages of 16 tokens, 64 of them. T, a batch's query tokens, is the number of
 * positions to compute this step: the prompt minus what the cache already holds, then 1 per decode. */
#include <stdio.h>
#include <stdlib.h>

#include "pagedkv.h"

#define CHECK(call)                                                                          \
    do {                                                                                     \
        int32_t status_ = (call);                                                            \
        if (status_ != PAGEDKV_OK) {                                                         \
            fprintf(stderr, "%s failed: %s\n", #call, pagedkv_last_error());                 \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

enum { LAYERS = 2, KV_HEADS = 2, Q_HEADS = 8, HEAD_DIM = 64, PROMPT = 100 };

/* One model step for `seq`: write K/V of its T positions to compute, attend, commit. k and v are
 * [T, KV_HEADS, HEAD_DIM], q and out [T, Q_HEADS, HEAD_DIM] (a model's projections would fill them). */
static void step(pagedkv_cache* cache, int64_t seq) {
    pagedkv_batch* batch;
    pagedkv_batch_info info = {.struct_size = sizeof info};
    CHECK(pagedkv_batch_create(cache, &seq, 1, &batch));
    CHECK(pagedkv_batch_get_info(batch, &info));
    int64_t t = info.num_qo_tokens;
    float* kv = malloc(sizeof(float) * t * KV_HEADS * HEAD_DIM);
    float* q = malloc(sizeof(float) * t * Q_HEADS * HEAD_DIM);
    float* out = malloc(sizeof(float) * t * Q_HEADS * HEAD_DIM);
    for (int64_t i = 0; i < t * KV_HEADS * HEAD_DIM; i++) kv[i] = (float)((i * 7919) % 1000) / 1000.0f;
    for (int64_t i = 0; i < t * Q_HEADS * HEAD_DIM; i++) q[i] = (float)((i * 104729) % 1000) / 1000.0f;
    pagedkv_attention_params params = {.struct_size = sizeof params, .num_qo_heads = Q_HEADS};
    for (int32_t layer = 0; layer < LAYERS; layer++) {
        CHECK(pagedkv_write_kv(cache, batch, layer, kv, kv, PAGEDKV_DTYPE_F32, &params));
        if (t == 1) /* a decode step: one new token attends to everything before it */
            CHECK(pagedkv_decode_attention(cache, batch, layer, &params, q, out, NULL));
        else        /* a prefill: the T new tokens attend causally */
            CHECK(pagedkv_prefill_attention(cache, batch, layer, &params, q, out, NULL));
    }
    CHECK(pagedkv_batch_commit(cache, batch));
    CHECK(pagedkv_batch_destroy(batch));
    free(kv), free(q), free(out);
}

int main(void) {
    pagedkv_cache_config config = {.struct_size = sizeof config, .num_layers = LAYERS, .num_kv_heads = KV_HEADS,
                                   .head_dim = HEAD_DIM, .page_size = 16, .num_pages = 64,
                                   .kv_dtype = PAGEDKV_DTYPE_BF16, .device_type = PAGEDKV_DEVICE_CPU};
    pagedkv_cache* cache;
    CHECK(pagedkv_cache_create(&config, &cache));

    int32_t prompt[PROMPT];
    for (int i = 0; i < PROMPT; i++) prompt[i] = 1000 + i;
    int64_t first, second, cached;
    CHECK(pagedkv_sequence_create(cache, prompt, PROMPT, NULL, 0, &first, &cached));
    step(cache, first);                       /* computes all 100 positions */
    CHECK(pagedkv_sequence_release(cache, first));

    prompt[PROMPT - 1] = 7;                   /* same prompt but the last token */
    CHECK(pagedkv_sequence_create(cache, prompt, PROMPT, NULL, 0, &second, &cached));
    step(cache, second);                      /* computes only the last position */

    int32_t next = 42;                        /* the token the model sampled */
    CHECK(pagedkv_sequence_append(cache, second, &next, 1));
    step(cache, second);                      /* decode: T = 1 */

    pagedkv_cache_stats stats = {.struct_size = sizeof stats};
    CHECK(pagedkv_cache_get_stats(cache, &stats));
    printf("second request reused %lld of %d tokens; hit rate %.1f%%; then decoded 1 token\n", (long long)cached,
           PROMPT, 100.0 * stats.reused_tokens / stats.prompt_tokens);
    CHECK(pagedkv_sequence_release(cache, second));
    CHECK(pagedkv_cache_destroy(cache));
    return cached == PROMPT - 1 ? 0 : 1;
}
