// llama-oracle: llama.cpp (through its C API) as the reference the Java model engine is checked
// against. Built and installed by scripts/llama-oracle/install; GGML_BACKEND_DIR names the folder
// of the ggml CPU backends.
//
//   llama-oracle logits MODEL OUT N_DECODE PROMPT...
//       For each PROMPT (comma-separated token ids), from an empty cache: logits after every prompt
//       position, then N_DECODE greedy steps (argmax, fed back), logits after each. f32 KV cache,
//       flash attention off, one thread, the whole prompt in one batch: comparable to f32 math.
//       OUT (little-endian): int32 n_vocab, then per prompt int32 n_prompt, int32 n_decode,
//       (n_prompt + n_decode) rows of n_vocab float32, n_decode int32 greedy tokens.
//   llama-oracle tokenize MODEL ADD_SPECIAL PARSE_SPECIAL
//       Reads UTF-8 texts from stdin, separated by NUL bytes; prints one line per text: its token
//       ids separated by spaces (the vocabulary only is loaded, once).
//   llama-oracle bench MODEL THREADS PROMPT_LEN DECODE_LEN
//       Prefill PROMPT_LEN tokens in one batch, then DECODE_LEN single-token steps; prints
//       "prefill_tok_s X" and "decode_tok_s Y" (same KV and attention settings as logits).
//
// Exit status: 0 on success, 1 on a llama.cpp failure, 2 on bad arguments.
#define _POSIX_C_SOURCE 200809L
#include "ggml-backend.h"
#include "llama.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int verbose;

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (verbose || level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static void die(const char *what) {
    fprintf(stderr, "llama-oracle: %s\n", what);
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: llama-oracle logits MODEL OUT N_DECODE PROMPT...\n"
                    "       llama-oracle tokenize MODEL ADD_SPECIAL PARSE_SPECIAL < text\n"
                    "       llama-oracle bench MODEL THREADS PROMPT_LEN DECODE_LEN\n");
    exit(2);
}

static struct llama_model *load_model(const char *path, int vocab_only) {
    struct llama_model_params params = llama_model_default_params();
    params.vocab_only = vocab_only;
    params.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(path, params);
    if (!model) die("cannot load the model");
    return model;
}

static struct llama_context *make_context(struct llama_model *model, int n_ctx, int threads) {
    struct llama_context_params params = llama_context_default_params();
    params.n_ctx = (uint32_t)n_ctx;
    params.n_batch = (uint32_t)n_ctx;
    params.n_ubatch = (uint32_t)n_ctx;
    params.n_seq_max = 1;
    params.n_threads = threads;
    params.n_threads_batch = threads;
    params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    params.type_k = GGML_TYPE_F32;
    params.type_v = GGML_TYPE_F32;
    params.no_perf = 1;
    struct llama_context *ctx = llama_init_from_model(model, params);
    if (!ctx) die("cannot create the context");
    return ctx;
}

static int parse_tokens(const char *text, llama_token **out) {
    int cap = 16, n = 0;
    llama_token *tokens = malloc(sizeof *tokens * (size_t)cap);
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) usage();
        if (n == cap) tokens = realloc(tokens, sizeof *tokens * (size_t)(cap *= 2));
        tokens[n++] = (llama_token)v;
        p = *end == ',' ? end + 1 : end;
    }
    *out = tokens;
    return n;
}

static void decode_or_die(struct llama_context *ctx, struct llama_batch batch) {
    if (llama_decode(ctx, batch) != 0) die("llama_decode failed");
}

static int argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

static int run_logits(int argc, char **argv) {
    if (argc < 6) usage();
    struct llama_model *model = load_model(argv[2], 0);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    int n_decode = atoi(argv[4]);
    int longest = 0;
    for (int p = 5; p < argc; p++) {
        llama_token *t;
        int n = parse_tokens(argv[p], &t);
        if (n > longest) longest = n;
        free(t);
    }
    struct llama_context *ctx = make_context(model, longest + n_decode + 1, 1);
    FILE *out = fopen(argv[3], "wb");
    if (!out) die("cannot open the output file");
    fwrite(&n_vocab, sizeof n_vocab, 1, out);
    struct llama_batch batch = llama_batch_init(longest + 1, 0, 1);
    llama_token *greedy = malloc(sizeof *greedy * (size_t)(n_decode + 1));
    for (int p = 5; p < argc; p++) {
        llama_token *prompt;
        int n = parse_tokens(argv[p], &prompt);
        if (n == 0) die("empty prompt");
        llama_memory_clear(llama_get_memory(ctx), 1);
        fwrite(&n, sizeof n, 1, out);
        fwrite(&n_decode, sizeof n_decode, 1, out);
        batch.n_tokens = n;
        for (int i = 0; i < n; i++) {
            batch.token[i] = prompt[i];
            batch.pos[i] = i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        decode_or_die(ctx, batch);
        for (int i = 0; i < n; i++) fwrite(llama_get_logits_ith(ctx, i), sizeof(float), (size_t)n_vocab, out);
        const float *last = llama_get_logits_ith(ctx, n - 1);
        for (int s = 0; s < n_decode; s++) {
            greedy[s] = argmax(last, n_vocab);
            batch.n_tokens = 1;
            batch.token[0] = greedy[s];
            batch.pos[0] = n + s;
            batch.logits[0] = 1;
            decode_or_die(ctx, batch);
            last = llama_get_logits_ith(ctx, 0);
            fwrite(last, sizeof(float), (size_t)n_vocab, out);
        }
        fwrite(greedy, sizeof *greedy, (size_t)n_decode, out);
        free(prompt);
    }
    if (fclose(out) != 0) die("cannot write the output file");
    free(greedy);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

static int run_tokenize(int argc, char **argv) {
    if (argc != 5) usage();
    struct llama_model *model = load_model(argv[2], 1);
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    size_t cap = 1 << 16, len = 0, got;
    char *input = malloc(cap);
    while ((got = fread(input + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) input = realloc(input, cap *= 2);
    }
    int add_special = atoi(argv[3]) != 0, parse_special = atoi(argv[4]) != 0;
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && input[end] != 0) end++;
        if (end == len && start == len && len > 0) break; // nothing after the last separator
        int max = (int)(end - start) + 16;
        llama_token *tokens = malloc(sizeof *tokens * (size_t)max);
        int n = llama_tokenize(vocab, input + start, (int32_t)(end - start), tokens, max, add_special, parse_special);
        if (n < 0 && n != INT32_MIN) { // -n tokens needed (a byte-fallback space is 3 tokens)
            max = -n;
            tokens = realloc(tokens, sizeof *tokens * (size_t)max);
            n = llama_tokenize(vocab, input + start, (int32_t)(end - start), tokens, max, add_special, parse_special);
        }
        if (n < 0) die("llama_tokenize failed");
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", tokens[i]);
        printf("\n");
        free(tokens);
        start = end + 1;
    }
    free(input);
    llama_model_free(model);
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run_bench(int argc, char **argv) {
    if (argc != 6) usage();
    int threads = atoi(argv[3]), prompt_len = atoi(argv[4]), decode_len = atoi(argv[5]);
    if (threads < 1 || prompt_len < 1 || decode_len < 1) usage();
    struct llama_model *model = load_model(argv[2], 0);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_context *ctx = make_context(model, prompt_len + decode_len + 1, threads);
    struct llama_batch batch = llama_batch_init(prompt_len, 0, 1);
    srand(1);
    // One warm-up prefill (page faults of the mapped weights, thread pool start), then the timed run.
    for (int round = 0; round < 2; round++) {
        llama_memory_clear(llama_get_memory(ctx), 1);
        batch.n_tokens = prompt_len;
        for (int i = 0; i < prompt_len; i++) {
            batch.token[i] = rand() % n_vocab;
            batch.pos[i] = i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = i == prompt_len - 1;
        }
        double t0 = now_seconds();
        decode_or_die(ctx, batch);
        double prefill = now_seconds() - t0;
        if (round == 0) continue;
        llama_token next = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
        t0 = now_seconds();
        for (int s = 0; s < decode_len; s++) {
            batch.n_tokens = 1;
            batch.token[0] = next;
            batch.pos[0] = prompt_len + s;
            batch.logits[0] = 1;
            decode_or_die(ctx, batch);
            next = argmax(llama_get_logits_ith(ctx, 0), n_vocab);
        }
        double decode = now_seconds() - t0;
        printf("prefill_tok_s %.3f\ndecode_tok_s %.3f\n", prompt_len / prefill, decode_len / decode);
    }
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    verbose = getenv("LLAMA_ORACLE_VERBOSE") != NULL;
    llama_log_set(quiet_log, NULL);
    const char *backends = getenv("GGML_BACKEND_DIR");
    if (!backends) die("GGML_BACKEND_DIR is not set (the folder holding libggml-cpu-*.so)");
    ggml_backend_load_all_from_path(backends);
    llama_backend_init();
    int rc;
    if (strcmp(argv[1], "logits") == 0) rc = run_logits(argc, argv);
    else if (strcmp(argv[1], "tokenize") == 0) rc = run_tokenize(argc, argv);
    else if (strcmp(argv[1], "bench") == 0) rc = run_bench(argc, argv);
    else usage();
    llama_backend_free();
    return rc;
}
