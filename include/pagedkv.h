/*
 * pagedkv.h — the C ABI of pagedkv, a paged KV cache with token-exact prefix reuse.
 *
 * This header is the whole public interface and its documentation; it is also the only input of
 * jextract (see java/.../internal/ffi/README.md).
 *
 * Conventions (true of every function below unless it says otherwise):
 *  - Every function returns a pagedkv_status (int32_t). PAGEDKV_OK is 0. On any other status nothing
 *    was changed, and pagedkv_last_error() returns a message for the calling thread.
 *  - No function crashes on bad input: null pointers, unknown or released ids, out-of-range values,
 *    sizes whose arithmetic would overflow, and destroyed handles are reported as
 *    PAGEDKV_ERR_INVALID_ARGUMENT or PAGEDKV_ERR_NOT_FOUND.
 *  - Handles (pagedkv_cache*, pagedkv_batch*) are entries of a table, not addresses: a handle
 *    value is never dereferenced and never reused for another object, so a destroyed handle
 *    (destroyed twice, used after destroy) is reported as INVALID_ARGUMENT and can never reach
 *    an object created later.
 *  - Tensor arguments (k, v, q, out, lse) carry no size: their shapes follow from the batch and
 *    the params, as each kernel states, and a smaller buffer is the caller's error (as with
 *    memcpy). The Java API checks every tensor's size before the call.
 *  - Only fixed-width integer types, so generated bindings do not depend on the platform.
 *  - Structs passed in or out start with `struct_size`, set by the caller to sizeof(the struct) as
 *    it knows it; the library reads or writes only that many bytes, so the ABI can grow at the end.
 *  - Threads: metadata functions (sequence, batch, stats) on one cache may be called from several
 *    threads at once; they serialize on the cache. Kernels may run concurrently on different CUDA
 *    streams, and on the CPU from different threads on disjoint outputs. A function that changes a
 *    sequence (commit, append, truncate, release) while a kernel call with a batch holding that
 *    sequence runs on another thread waits until that call returns, then invalidates the batch.
 *  - Ownership: handles returned through `out` parameters are owned by the caller and released
 *    with their matching destroy function. Pointers into the cache (pages, batch arrays) stay valid
 *    until the cache (or batch) is destroyed.
 *
 * Page byte layout (one page = one contiguous range of `page_bytes`):
 *    page[layer][kv][kv_head][token_in_page][head_dim]         kv: 0 = K, 1 = V
 * so the element (layer l, kv k, head h, token t, dim d) of page p is at element offset
 *    p*page_stride + (l*2 + k)*slab_stride + (h*page_size + t)*head_dim + d
 * with slab_stride = num_kv_heads*page_size*head_dim and page_stride = num_layers*2*slab_stride
 * (both in elements of the KV dtype). A token at sequence position i lives in page
 * block_table[i / page_size] at offset i % page_size; its slot is page*page_size + offset.
 *
 * Quantized formats (FP8_E4M3, Q8, Q6, Q4) keep the same order, page[layer][kv][kv_head], but a
 * (layer, kv, head) run of page_size tokens is a byte range of its own that carries its scales,
 * so a page stays one self-contained object (copy, offload, dedup move it as bytes):
 *    run  = codes[page_size][code_bytes] scales[page_size][head_dim/32] (fp16)   group formats
 *    run  = codes[page_size][head_dim]   scale (f32) + 12 zero bytes             FP8_E4M3
 * padded to a multiple of 16 bytes: k_run_bytes / v_run_bytes in pagedkv_cache_layout. The run
 * of (page p, layer l, kv k, head h) starts at byte
 *    p*page_bytes + l*Hkv*(k_run_bytes + v_run_bytes) + k*Hkv*k_run_bytes + h*(k ? v_run_bytes : k_run_bytes)
 *  - FP8_E4M3: code = e4m3(x / scale) (1 sign, 4 exponent bits biased by 7, 3 mantissa bits,
 *    finite only: 0x7f/0xff are NaN, the largest value 448; rounded to nearest even, saturating);
 *    x = e4m3 * scale with one scale per (layer, kv, kv_head) of the cache, set by
 *    pagedkv_cache_set_kv_scales or, when unset, by the layer's first write_kv as
 *    2 * max|x| / 448 per head (room for later, larger values). Every run stores the scale its
 *    codes were written with.
 *  - Q8 (K and V), Q6 (K as Q8, V as Q4), Q4 (K and V): head_dim is cut into groups of 32 dims;
 *    each group of a token has one fp16 scale s = max|x| / qmax (rounded up to an fp16 value)
 *    and symmetric integer codes c = round(x / s) in [-qmax, qmax], x ~ c * s. Q8: qmax = 127,
 *    one int8 byte per dim (code_bytes = head_dim). Q4: qmax = 7, stored as c + 8 in a nibble;
 *    byte i (0..15) of a group holds dim i in its low nibble and dim i + 16 in its high nibble
 *    (code_bytes = head_dim / 2). With PAGEDKV_CACHE_HADAMARD each group of 32 dims of K and V
 *    is multiplied by the orthonormal 32-point Hadamard matrix H (Sylvester order, / sqrt(32))
 *    before it is quantized: outliers spread over the group, so the scale fits the rest better.
 *    The kernels rotate q the same way (H is its own inverse, so q.k is unchanged) and rotate
 *    the weighted sum of V back.
 */
#ifndef PAGEDKV_H
#define PAGEDKV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define PAGEDKV_API __declspec(dllexport)
#else
#define PAGEDKV_API __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------------------------------------
 * Version, statuses, errors
 * ------------------------------------------------------------------------------------------- */

#define PAGEDKV_VERSION_MAJOR 0
#define PAGEDKV_VERSION_MINOR 1
#define PAGEDKV_VERSION_PATCH 0

/** Status codes. PAGEDKV_OK is the only success. */
enum pagedkv_status {
    PAGEDKV_OK = 0,
    PAGEDKV_ERR_INVALID_ARGUMENT = 1, /* null pointer, bad size, out-of-range value, bad shape */
    PAGEDKV_ERR_NOT_FOUND = 2,        /* unknown or released sequence id, unknown page */
    PAGEDKV_ERR_OUT_OF_PAGES = 3,     /* not enough free or evictable pages; nothing changed */
    PAGEDKV_ERR_OUT_OF_MEMORY = 4,    /* host or device allocation failed */
    PAGEDKV_ERR_UNSUPPORTED = 5,      /* valid request this build or device cannot serve */
    PAGEDKV_ERR_NO_DEVICE = 6,        /* CUDA requested but no CUDA device (or no CUDA build) */
    PAGEDKV_ERR_CUDA = 7,             /* a CUDA runtime call failed; the message has details */
    PAGEDKV_ERR_INTERNAL = 8,         /* a bug in pagedkv; please report the message */
    PAGEDKV_ERR_STALE_BATCH = 9       /* a batch used after one of its sequences changed: rebuild it */
};

/** Library version as MAJOR*10000 + MINOR*100 + PATCH; never fails. */
PAGEDKV_API int32_t pagedkv_version(void);

/** Static, human-readable name of a status ("out of pages", ...); never null. */
PAGEDKV_API const char* pagedkv_status_string(int32_t status);

/**
 * Message describing the last failure on the calling thread, or "" if none. The pointer stays
 * valid until the next pagedkv call on this thread. Never null.
 */
PAGEDKV_API const char* pagedkv_last_error(void);

/** A no-op that returns PAGEDKV_OK; used to measure the cost of one call through the ABI. */
PAGEDKV_API int32_t pagedkv_noop(void);

/* ---------------------------------------------------------------------------------------------
 * Backends and devices
 * ------------------------------------------------------------------------------------------- */

enum pagedkv_device_type {
    PAGEDKV_DEVICE_CPU = 0,
    PAGEDKV_DEVICE_CUDA = 1
};

/** Bits of pagedkv_backends(). */
enum pagedkv_backend_bits {
    PAGEDKV_BACKEND_CPU = 1,          /* always present */
    PAGEDKV_BACKEND_CPU_AVX2 = 2,     /* the fast CPU kernels use AVX2 + F16C on this machine */
    PAGEDKV_BACKEND_CPU_AVX512 = 4,   /* ... and AVX-512 */
    PAGEDKV_BACKEND_CUDA_BUILT = 8,   /* the library was built with CUDA kernels */
    PAGEDKV_BACKEND_CUDA_DEVICE = 16  /* ... and at least one CUDA device is usable now */
};

/** Writes a mask of pagedkv_backend_bits to *out_mask. */
PAGEDKV_API int32_t pagedkv_backends(uint32_t* out_mask);

/**
 * Number of usable CUDA devices in *out_count: 0 when the library has no CUDA support or no device
 * (driver missing, no GPU); this is not an error. The reason for 0 is in pagedkv_last_error().
 */
PAGEDKV_API int32_t pagedkv_cuda_device_count(int32_t* out_count);

/**
 * Writes a NUL-terminated description of a device ("cpu: 2 threads, avx2 avx512",
 * "cuda:0 NVIDIA H100 80GB HBM3, sm_90, 79 GiB") into buf (capacity bytes, truncated to fit).
 */
PAGEDKV_API int32_t pagedkv_device_describe(int32_t device_type, int32_t device_index, char* buf,
                                            int32_t capacity);

/* ---------------------------------------------------------------------------------------------
 * Cache
 * ------------------------------------------------------------------------------------------- */

enum pagedkv_dtype {
    PAGEDKV_DTYPE_F32 = 0,
    PAGEDKV_DTYPE_F16 = 1,
    PAGEDKV_DTYPE_BF16 = 2,
    /* KV formats only (kv_dtype of a cache; never q, out or write_kv's source): byte layouts at
       the top of this header. The group formats need head_dim % 32 == 0. */
    PAGEDKV_DTYPE_FP8_E4M3 = 3, /* 1 byte per value + one f32 scale per (layer, K|V, kv head) */
    PAGEDKV_DTYPE_Q8 = 4,       /* K and V: 8-bit codes, fp16 scale per 32 dims (1.0625 B/value) */
    PAGEDKV_DTYPE_Q6 = 5,       /* K 8-bit, V 4-bit codes, fp16 scale per 32 dims */
    PAGEDKV_DTYPE_Q4 = 6        /* K and V: 4-bit codes, fp16 scale per 32 dims (0.5625 B/value) */
};

/** Bits of pagedkv_cache_config.flags. */
enum pagedkv_cache_flags {
    PAGEDKV_CACHE_NO_REUSE = 1, /* never match prefixes (every prompt computed from scratch) */
    PAGEDKV_CACHE_HADAMARD = 2  /* Q8/Q6/Q4: rotate each group of 32 dims before quantizing */
};

typedef struct pagedkv_cache_config {
    uint32_t struct_size;   /* sizeof(pagedkv_cache_config) */
    int32_t num_layers;     /* >= 1 */
    int32_t num_kv_heads;   /* >= 1 */
    int32_t head_dim;       /* a multiple of 8 in [8, 256] (what every kernel serves; 64 and 128
                               run the CUDA tensor-core path); others are INVALID_ARGUMENT */
    int32_t page_size;      /* tokens per page, 1..4096 */
    int32_t num_pages;      /* capacity in pages; 0 = derive from byte_budget */
    int64_t byte_budget;    /* used when num_pages == 0: floor(byte_budget / page_bytes) pages */
    int32_t kv_dtype;       /* pagedkv_dtype */
    int32_t device_type;    /* pagedkv_device_type */
    int32_t device_index;   /* CUDA device ordinal; 0 for CPU */
    int32_t vocab_size;     /* > 0: token ids must lie in [0, vocab_size); 0: any id >= 0 */
    uint32_t flags;         /* pagedkv_cache_flags */

    /* Tiers below the pool (see "Tiers below the pool"); all zero: none. Strings are copied. */
    int64_t host_tier_bytes;        /* > 0: a host-memory tier of this many bytes (pinned on CUDA) */
    const char* disk_tier_path;     /* non-null, non-empty: a disk tier in this directory (created) */
    int64_t disk_tier_bytes;        /* the disk tier's byte budget (> 0 with disk_tier_path) */
    const char* remote_tier;        /* non-null, non-empty: "redis://HOST:PORT[,HOST:PORT...]" */
    const char* tier_namespace;     /* who may share page objects, e.g. the model id; null = "" */
    int32_t tp_rank;                /* tensor-parallel rank in [0, tp_size), part of the namespace */
    int32_t tp_size;                /* 0 is taken as 1 */
    int32_t tier_timeout_ms;        /* bound of every remote call; 0 = 1000 */
    int32_t remote_ttl_seconds;     /* > 0: Redis expires stored objects after this long */
    uint32_t tier_flags;            /* pagedkv_tier_flags */
} pagedkv_cache_config;

/** Bits of pagedkv_cache_config.tier_flags. */
enum pagedkv_tier_flags {
    PAGEDKV_TIER_WRITE_THROUGH = 1, /* store committed full pages in every tier at commit (in the
                                       background; default: write-back, evicted pages only) */
    PAGEDKV_TIER_DISK_NO_FSYNC = 2  /* rename disk objects into place without fsync first */
};

/** Opaque cache: one page pool on one device, one prefix index, the sequences. */
typedef struct pagedkv_cache pagedkv_cache;

/**
 * Creates a cache. Fails with INVALID_ARGUMENT on a bad config, NO_DEVICE when a CUDA device is
 * asked for and absent, OUT_OF_MEMORY when the pool cannot be allocated. *out_cache is set only
 * on success.
 */
PAGEDKV_API int32_t pagedkv_cache_create(const pagedkv_cache_config* config, pagedkv_cache** out_cache);

/**
 * Destroys a cache, its sequences, batches and pool. Null is accepted and ignored; a second destroy
 * of the same handle is INVALID_ARGUMENT. Calls that other threads are making on the cache at that
 * moment finish normally (kernel calls with its batches are waited for); calls that start later
 * fail with INVALID_ARGUMENT; the memory goes when the last of them returns. Its batches then
 * accept only pagedkv_batch_destroy.
 */
PAGEDKV_API int32_t pagedkv_cache_destroy(pagedkv_cache* cache);

/** Physical layout of the pool (see the top of this header). */
typedef struct pagedkv_cache_layout {
    uint32_t struct_size;
    int32_t num_layers;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t page_size;
    int32_t num_pages;
    int32_t kv_dtype;
    int32_t element_bytes;  /* 4 or 2; 1 for the quantized formats (whose strides are in bytes) */
    int32_t device_type;
    int32_t device_index;
    int64_t page_bytes;
    int64_t slab_stride;   /* elements; quantized formats: bytes of the K slab (Hkv * k_run_bytes) */
    int64_t page_stride;   /* elements; quantized formats: page_bytes */
    void* pool_base;       /* host pointer, or CUDA device pointer (not dereferenceable on host) */
    int64_t pool_bytes;
    int64_t k_run_bytes;   /* bytes of one head's K for page_size tokens, scales included */
    int64_t v_run_bytes;   /* the same for V */
    uint32_t flags;        /* the cache's pagedkv_cache_flags */
} pagedkv_cache_layout;

PAGEDKV_API int32_t pagedkv_cache_get_layout(const pagedkv_cache* cache, pagedkv_cache_layout* out_layout);

/**
 * FP8_E4M3 caches: sets the scales of `layer`, k_scales and v_scales [num_kv_heads] (finite,
 * > 0; x is stored as e4m3(x / scale)). Allowed once per layer and before its first write_kv
 * (which otherwise estimates them), since pages written earlier keep the scales they were
 * written with: a second call, a call after a write, or a cache of another format is
 * INVALID_ARGUMENT.
 */
PAGEDKV_API int32_t pagedkv_cache_set_kv_scales(pagedkv_cache* cache, int32_t layer, const float* k_scales,
                                                const float* v_scales);

/**
 * FP8_E4M3 caches: the scales of `layer` into k_scales, v_scales [num_kv_heads] (0 while unset).
 */
PAGEDKV_API int32_t pagedkv_cache_get_kv_scales(const pagedkv_cache* cache, int32_t layer, float* k_scales,
                                                float* v_scales);

/** Counters; cheap to read at any time. */
typedef struct pagedkv_cache_stats {
    uint32_t struct_size;
    int32_t pages_total;
    int32_t pages_free;       /* not holding anything */
    int32_t pages_cached;     /* indexed, held by no sequence: reusable, evictable */
    int32_t pages_in_use;     /* held by at least one sequence */
    int32_t index_nodes;      /* pages in the prefix index (full and partial) */
    int32_t live_sequences;
    int64_t prompt_tokens;    /* sum of prompt lengths at sequence creation */
    int64_t reused_tokens;    /* prompt positions served from the cache at creation */
    int64_t computed_tokens;  /* positions committed as newly computed */
    int64_t evictions;        /* pages reclaimed from the index */
    int64_t cow_copies;       /* page copies: partial-prefix copies and copy-on-write */
    int64_t dedup_hits;       /* committed pages replaced by an identical indexed page */
    double kv_bytes_per_token; /* page_bytes / page_size: all layers, K and V, scales included */
} pagedkv_cache_stats;

PAGEDKV_API int32_t pagedkv_cache_get_stats(const pagedkv_cache* cache, pagedkv_cache_stats* out_stats);

/* ---------------------------------------------------------------------------------------------
 * Tiers below the pool
 *
 * A cache may keep FULL pages past its pool in up to three tiers, in this order: host memory,
 * a disk directory, Redis (one node, or a Redis Cluster given by its seed nodes). An evicted full
 * page moves to the first tier, and each tier's own LRU eviction moves it to the next
 * (write-back); with PAGEDKV_TIER_WRITE_THROUGH every committed full page is stored in every tier
 * as it is committed (the caller never waits for a store). Partial pages never leave the pool.
 *
 * A page object's key is a chained SHA-256 over the namespace (tier_namespace, tp_rank,
 * tp_size), the layout (layers, KV heads, head dim, page size, KV dtype), the salt, the parent
 * page's key and the page's token ids; its value a header (magic, format version, layout
 * fingerprint, tokens, parent key, XXH3 checksum of the payload) and the page's bytes. A loaded
 * object is verified against what the walk expects; any mismatch is a miss (counted as a
 * verification failure) and never reaches the pool.
 *
 * pagedkv_sequence_create continues its walk into the tiers and reuses the leading run of
 * consecutive pages some tier holds intact, so every position it reports cached is in the pool.
 * Host memory is read in the calling thread. Disk and Redis are read on the cache's background
 * I/O thread (a batch per window of pages, one pipelined round trip per server): the create
 * waits for that load without the cache's lock (other threads keep using the cache), at most
 * tier_timeout_ms (0: 1000); what has not arrived by then is reported as not cached. A create
 * that finds a load of its pages in flight (pagedkv_prefetch) joins it instead of asking the
 * tiers again; pages it was promised stay in memory until it has them (no race shrinks the
 * run). A page no tier can hold (the host and disk tiers know their keys; Redis is always
 * asked) costs no I/O and no wait. A tier that
 * fails (Redis down, disk full or read-only, a corrupted file) is a miss and an error in its stats,
 * logged once to stderr; the cache keeps serving from its pool.
 * ------------------------------------------------------------------------------------------- */

enum pagedkv_tier { PAGEDKV_TIER_HOST = 0, PAGEDKV_TIER_DISK = 1, PAGEDKV_TIER_REMOTE = 2, PAGEDKV_TIER_COUNT = 3 };

typedef struct pagedkv_tier_stats {
    uint32_t struct_size;
    int32_t enabled;          /* 0: the cache has no such tier (every other field 0) */
    int64_t pages;            /* objects held (remote: stored by this cache) */
    int64_t bytes;            /* their bytes */
    int64_t capacity_bytes;   /* the byte budget (remote: 0) */
    int64_t hits;             /* pages loaded from this tier into the pool */
    int64_t misses;           /* pages asked for that this tier did not hold intact */
    int64_t verify_failures;  /* objects found but refused (header, tokens, size or checksum) */
    int64_t loads;            /* objects read */
    int64_t load_bytes;
    int64_t load_ns;          /* time spent reading them */
    int64_t stores;           /* objects written */
    int64_t store_bytes;
    int64_t store_ns;
    int64_t dropped_stores;   /* stores given up (queue full, no room, tier failing) */
    int64_t evictions;        /* objects this tier let go to make room (to the next tier) */
    int64_t errors;           /* I/O, connection and protocol errors */
} pagedkv_tier_stats;

/** Stats of tier `tier` (a pagedkv_tier); INVALID_ARGUMENT for another value. */
PAGEDKV_API int32_t pagedkv_cache_get_tier_stats(const pagedkv_cache* cache, int32_t tier, pagedkv_tier_stats* out_stats);

/**
 * Waits until the prefetches started so far have loaded and put their pages into the pool, and
 * the stores queued for the disk and remote tiers so far are done (a process that wants another
 * to find its pages calls it, or destroys the cache, which also waits for the stores; loads in
 * flight are dropped then). Not from a KV event listener (a load's events are delivered on the
 * I/O thread this call would wait for).
 */
PAGEDKV_API int32_t pagedkv_cache_flush_tiers(pagedkv_cache* cache);

/**
 * Starts bringing the cached prefix of `prompt` (under `salt`) from the tiers into the pool
 * before a sequence for it is created, so that its create finds it there (or joins the load
 * still in flight) and usually waits for nothing. It returns at once: disk and Redis loads run
 * on the cache's I/O thread (pagedkv_cache_flush_tiers waits for them); with a host tier alone
 * the pages are copied before it returns. It never fails for want of room: it loads at most
 * what the pool can take without evicting pages sequences hold, and the pages it loads are
 * ordinary cached pages (evictable). *out_loaded_tokens (may be null) gets the positions put in
 * the pool before the call returned (0 when the load runs in the background). Token ids are
 * checked as create checks them.
 */
PAGEDKV_API int32_t pagedkv_prefetch(pagedkv_cache* cache, const int32_t* prompt, int64_t num_tokens,
                                     const uint8_t* salt, int32_t salt_len, int64_t* out_loaded_tokens);

/**
 * Evicts every cached page no sequence holds (the index forgets them). Returns how many pages
 * were freed in *out_evicted (may be null).
 */
PAGEDKV_API int32_t pagedkv_cache_clear_unused(pagedkv_cache* cache, int32_t* out_evicted);

/**
 * Address of page `page_id` in *out_ptr (host pointer, or device pointer on CUDA).
 * NOT_FOUND for an id outside [0, num_pages).
 */
PAGEDKV_API int32_t pagedkv_cache_page_address(const pagedkv_cache* cache, int32_t page_id, void** out_ptr);

/* ---------------------------------------------------------------------------------------------
 * Sequences
 *
 * A sequence has tokens, a block table (page ids, one per page_size positions), a number of
 * computed positions (KV written and committed) and an isolation key (salt). Positions
 * [num_computed, num_tokens) are "to compute": their slots are reserved and exclusively owned.
 * ------------------------------------------------------------------------------------------- */

/**
 * Creates a sequence for `prompt` (num_tokens >= 1 token ids) under the isolation key
 * salt[0..salt_len) (salt may be null when salt_len == 0; prefixes are shared only under equal
 * salts). The longest computed prefix known to the index is reused: full pages shared, a partial
 * run copied into a fresh page; at least the last prompt token is left to compute. Pages for the
 * rest are reserved all-or-nothing (OUT_OF_PAGES: nothing changed). On success *out_seq_id is a
 * new id (> 0) and *out_cached_tokens (may be null) the number of reused positions.
 */
PAGEDKV_API int32_t pagedkv_sequence_create(pagedkv_cache* cache, const int32_t* prompt, int64_t num_tokens,
                                            const uint8_t* salt, int32_t salt_len, int64_t* out_seq_id,
                                            int64_t* out_cached_tokens);

typedef struct pagedkv_sequence_info {
    uint32_t struct_size;
    int32_t num_pages;        /* block table length */
    int64_t num_tokens;
    int64_t num_computed;     /* positions whose KV is written and committed */
    int64_t num_cached;       /* positions reused from the cache when the sequence was created */
    int64_t loaded_tokens[3]; /* of num_cached, those brought back from each pagedkv_tier */
} pagedkv_sequence_info;

PAGEDKV_API int32_t pagedkv_sequence_get_info(const pagedkv_cache* cache, int64_t seq_id,
                                              pagedkv_sequence_info* out_info);

/**
 * Copies up to `capacity` page ids of the block table into out_pages; *out_count (required) gets
 * the full length, so a call with capacity 0 asks for the size.
 */
PAGEDKV_API int32_t pagedkv_sequence_get_block_table(const pagedkv_cache* cache, int64_t seq_id,
                                                     int32_t* out_pages, int32_t capacity, int32_t* out_count);

/** Copies up to `capacity` token ids; *out_count gets the number of tokens. */
PAGEDKV_API int32_t pagedkv_sequence_get_tokens(const pagedkv_cache* cache, int64_t seq_id,
                                                int32_t* out_tokens, int64_t capacity, int64_t* out_count);

/**
 * Slots (page*page_size + offset) of the positions still to compute, [num_computed, num_tokens),
 * in order; *out_count gets their number.
 */
PAGEDKV_API int32_t pagedkv_sequence_get_slot_mapping(const pagedkv_cache* cache, int64_t seq_id,
                                                      int64_t* out_slots, int64_t capacity, int64_t* out_count);

/**
 * Declares positions [0, num_computed) computed (their KV written). num_computed must lie in
 * [current num_computed, num_tokens]. Full pages join the prefix index (a page identical to one
 * already indexed is replaced by it and freed); a partly computed last page becomes a donor.
 */
PAGEDKV_API int32_t pagedkv_sequence_commit(pagedkv_cache* cache, int64_t seq_id, int64_t num_computed);

/**
 * Appends tokens (decode steps, or a new user turn) to compute. Reserves pages all-or-nothing;
 * a shared last page is copied first (copy-on-write).
 */
PAGEDKV_API int32_t pagedkv_sequence_append(pagedkv_cache* cache, int64_t seq_id, const int32_t* tokens,
                                            int64_t num_tokens);

/**
 * Forks a sequence: the child has the same tokens, computed count and salt and shares every page
 * (no copy); a shared page is copied when either writes into it. Pages the parent still has to
 * compute are copied for the child at once (they cannot be shared while being written).
 */
PAGEDKV_API int32_t pagedkv_sequence_fork(pagedkv_cache* cache, int64_t seq_id, int64_t* out_child_id);

/** Rolls back to the first new_num_tokens tokens (1 <= new_num_tokens <= num_tokens). */
PAGEDKV_API int32_t pagedkv_sequence_truncate(pagedkv_cache* cache, int64_t seq_id, int64_t new_num_tokens);

/** Releases a sequence: its pages return to the pool; indexed ones stay cached. The id dies. */
PAGEDKV_API int32_t pagedkv_sequence_release(pagedkv_cache* cache, int64_t seq_id);

/* ---------------------------------------------------------------------------------------------
 * Batches: the arrays kernels need for a list of sequences, built once per step
 * ------------------------------------------------------------------------------------------- */

/**
 * Opaque batch: the kernel metadata of some sequences for one model step, on the cache's device.
 *
 * Validity rule. A batch is built for one step and is valid until any of its sequences changes:
 * a commit (pagedkv_sequence_commit, or pagedkv_batch_commit of this or another batch), an
 * append, a truncate or a release. From then on every kernel call and every commit with the
 * batch fails with PAGEDKV_ERR_STALE_BATCH and changes nothing, so a batch can never write KV
 * into pages its sequences no longer own, nor commit positions it did not cover. Forking a
 * member does not change it. pagedkv_batch_get_info and pagedkv_batch_destroy accept a stale
 * batch (its arrays stay readable until it is destroyed). A change of a member while a kernel
 * call with the batch runs on another thread waits for that call to return.
 * The typical step: create, for every layer write_kv + attention, pagedkv_batch_commit (which
 * makes the batch stale), destroy, then append the sampled tokens.
 */
typedef struct pagedkv_batch pagedkv_batch;

/**
 * Builds the kernel metadata for sequences seq_ids[0..num_seqs) (distinct, live) and checks it
 * once, so that the per-layer kernel calls only run. For sequence i, query positions are its
 * positions to compute [num_computed, num_tokens) (qo_len >= 0) and the KV is all of
 * [0, num_tokens). Also finds the number of leading pages shared by every sequence of the batch
 * (for cascade). On a CUDA cache the arrays are uploaded to the device and visible to kernels on
 * any stream when this returns (see pagedkv_batch_create_on_stream for the asynchronous form).
 * On CUDA, kernel calls return once queued: pages a released sequence held may be handed to
 * another sequence at once, so a caller using several streams orders them itself.
 */
PAGEDKV_API int32_t pagedkv_batch_create(pagedkv_cache* cache, const int64_t* seq_ids, int32_t num_seqs,
                                         pagedkv_batch** out_batch);

/**
 * pagedkv_batch_create for a CUDA step on `cuda_stream` (a cudaStream_t; null = the legacy default
 * stream): the arrays go through pinned staging memory into a device ring the cache allocated
 * once, with cudaMemcpyAsync on that stream, so building a batch neither allocates nor waits for
 * the GPU, and kernels queued on the same stream see the arrays. Run the batch's kernels on that
 * stream (or order other streams after it), and keep the stream alive until the batch is
 * destroyed (destroying it records an event there). On a CPU cache the stream is ignored.
 */
PAGEDKV_API int32_t pagedkv_batch_create_on_stream(pagedkv_cache* cache, const int64_t* seq_ids, int32_t num_seqs,
                                                   void* cuda_stream, pagedkv_batch** out_batch);

/**
 * Destroys a batch (stale or not). Null is accepted. A kernel call with the batch running on
 * another thread finishes first. A second destroy of the same handle is INVALID_ARGUMENT.
 */
PAGEDKV_API int32_t pagedkv_batch_destroy(pagedkv_batch* batch);

/**
 * Arrays of a batch, FlashInfer-style (int32 unless noted). Host copies are always filled; device
 * copies are non-null for a CUDA cache (device pointers) and equal to the host ones on the CPU.
 */
typedef struct pagedkv_batch_info {
    uint32_t struct_size;
    int32_t num_seqs;
    int32_t num_pages;            /* kv_indptr[num_seqs] */
    int32_t shared_prefix_pages;  /* leading full pages common to every sequence (0 if num_seqs < 2) */
    int64_t num_qo_tokens;        /* qo_indptr[num_seqs] */
    int64_t max_kv_len;
    int64_t max_qo_len;
    const int32_t* kv_indptr;         /* num_seqs + 1: pages of sequence i are kv_page_indices[kv_indptr[i]..) */
    const int32_t* kv_page_indices;   /* num_pages */
    const int32_t* kv_last_page_len;  /* num_seqs: tokens in the last page, 1..page_size (0 if no page) */
    const int32_t* qo_indptr;         /* num_seqs + 1: query tokens of sequence i */
    const int64_t* slot_mapping;      /* num_qo_tokens: slot of every query token */
    const int32_t* kv_len;            /* num_seqs: KV positions (= num_tokens) */
    const int32_t* d_kv_indptr;
    const int32_t* d_kv_page_indices;
    const int32_t* d_kv_last_page_len;
    const int32_t* d_qo_indptr;
    const int64_t* d_slot_mapping;
    const int32_t* d_kv_len;
} pagedkv_batch_info;

PAGEDKV_API int32_t pagedkv_batch_get_info(const pagedkv_batch* batch, pagedkv_batch_info* out_info);

/**
 * Commits every sequence of the batch to the length it had when the batch was built (the positions
 * the batch's write_kv calls covered). STALE_BATCH if any member changed since; afterwards the
 * batch itself is stale.
 */
PAGEDKV_API int32_t pagedkv_batch_commit(pagedkv_cache* cache, const pagedkv_batch* batch);

/* ---------------------------------------------------------------------------------------------
 * Kernels. All tensors are dense, row-major, on the cache's device (host memory for a CPU
 * cache, device memory for a CUDA cache). Shapes use T = batch num_qo_tokens,
 * Hq = num_qo_heads, Hkv = num_kv_heads, D = head_dim.
 * ------------------------------------------------------------------------------------------- */

typedef struct pagedkv_attention_params {
    uint32_t struct_size;
    int32_t num_qo_heads;     /* multiple of num_kv_heads (GQA; equal = MHA; Hkv = 1 = MQA) */
    float sm_scale;           /* softmax scale, finite and >= 0, where 0 means 1/sqrt(head_dim) */
    int32_t q_dtype;          /* dtype of q (F32 always; F16/BF16 where supported) */
    int32_t out_dtype;        /* dtype of out (F32 always; F16/BF16 where supported) */
    int32_t num_threads;      /* CPU: worker threads, 0 = all cores */
    int32_t kv_split_size;    /* split the KV length into chunks of this many tokens; 0 = auto, -1 = never */
    void* cuda_stream;        /* CUDA: cudaStream_t to run on; null = default stream */
} pagedkv_attention_params;

/**
 * Writes K and V of the batch's query tokens into their slots in `layer`.
 * k, v: [T, Hkv, D] of src_dtype (F32, or the cache's KV dtype if it is F16 or BF16). A
 * quantized cache quantizes each token's row on the way in (see the layout at the top).
 */
PAGEDKV_API int32_t pagedkv_write_kv(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                                     const void* k, const void* v, int32_t src_dtype,
                                     const pagedkv_attention_params* params);

/**
 * Decode attention: every sequence of the batch has exactly one query token (qo_len == 1), which
 * attends to all of its KV [0, kv_len). q: [num_seqs, Hq, D]; out: [num_seqs, Hq, D];
 * lse (may be null): [num_seqs, Hq] float32, natural-log log-sum-exp of the scaled scores.
 */
PAGEDKV_API int32_t pagedkv_decode_attention(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                                             const pagedkv_attention_params* params, const void* q, void* out,
                                             float* lse);

/**
 * Prefill / extend attention: query token j of sequence i (absolute position
 * p = kv_len - qo_len + j) attends causally to KV positions [0, p]. q, out: [T, Hq, D];
 * lse (may be null): [T, Hq].
 */
PAGEDKV_API int32_t pagedkv_prefill_attention(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                                              const pagedkv_attention_params* params, const void* q, void* out,
                                              float* lse);

/**
 * Shared-prefix (cascade) attention: same contract and result as pagedkv_prefill_attention (and
 * decode), but the batch's shared_prefix_pages are read once for all queries of the batch, the
 * rest of each sequence separately, and the two softmax states are merged through the LSE.
 */
PAGEDKV_API int32_t pagedkv_cascade_attention(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                                              const pagedkv_attention_params* params, const void* q, void* out,
                                              float* lse);

/**
 * Copies whole pages src_pages[i] -> dst_pages[i] on the cache's device (all layers, K and V).
 * The caller is responsible for not overwriting pages that others read.
 */
PAGEDKV_API int32_t pagedkv_copy_pages(pagedkv_cache* cache, const int32_t* src_pages, const int32_t* dst_pages,
                                       int32_t num_pages, void* cuda_stream);

/**
 * Merges two partial attention states (value + LSE) over disjoint KV ranges into one exact state:
 * a, b, out: [n, Hq, D] float32 on the cache's device; lse_a, lse_b, out_lse: [n, Hq].
 */
PAGEDKV_API int32_t pagedkv_merge_states(pagedkv_cache* cache, const float* a, const float* lse_a, const float* b,
                                         const float* lse_b, int64_t n, int32_t num_heads, int32_t head_dim,
                                         float* out, float* out_lse, void* cuda_stream);

/* ---------------------------------------------------------------------------------------------
 * Device memory helpers (for callers without a CUDA binding of their own, such as Java)
 * ------------------------------------------------------------------------------------------- */

enum pagedkv_copy_kind {
    PAGEDKV_COPY_HOST_TO_DEVICE = 0,
    PAGEDKV_COPY_DEVICE_TO_HOST = 1,
    PAGEDKV_COPY_DEVICE_TO_DEVICE = 2
};

/** Allocates `bytes` on the cache's device (host memory for a CPU cache), 256-byte aligned. */
PAGEDKV_API int32_t pagedkv_device_alloc(pagedkv_cache* cache, int64_t bytes, void** out_ptr);

/**
 * Frees memory from pagedkv_device_alloc. Null is accepted. On CUDA it does not wait for kernels
 * still queued that use the memory: synchronize their stream first.
 */
PAGEDKV_API int32_t pagedkv_device_free(pagedkv_cache* cache, void* ptr);

/** Copies bytes between host and the cache's device; synchronous. */
PAGEDKV_API int32_t pagedkv_memcpy(pagedkv_cache* cache, void* dst, const void* src, int64_t bytes, int32_t kind);

/** Waits for all work the library queued on the cache's device. */
PAGEDKV_API int32_t pagedkv_synchronize(pagedkv_cache* cache);

/* ---------------------------------------------------------------------------------------------
 * Prefix-match queries: what a new sequence would reuse, without creating anything
 * ------------------------------------------------------------------------------------------- */

/**
 * Where cached positions live. A cache's own pool is one tier: GPU for a CUDA cache, CPU for a
 * host cache. DISK and REMOTE name lower tiers (not produced by this version); the numbering is
 * stable, so arrays indexed by medium keep their meaning when tiers are added.
 */
enum pagedkv_medium {
    PAGEDKV_MEDIUM_GPU = 0,
    PAGEDKV_MEDIUM_CPU = 1,
    PAGEDKV_MEDIUM_DISK = 2,
    PAGEDKV_MEDIUM_REMOTE = 3,
    PAGEDKV_MEDIUM_COUNT = 4
};

/** What pagedkv_match_length found. */
typedef struct pagedkv_prefix_match {
    uint32_t struct_size;
    int32_t shared_pages;      /* leading FULL pages a create would share by reference */
    int64_t cached_tokens;     /* = *out_cached_tokens */
    int64_t partial_tokens;    /* of those, the run a create would copy from a partly matching page */
    int64_t tokens_by_medium[PAGEDKV_MEDIUM_COUNT]; /* cached_tokens by the tier holding them */
} pagedkv_prefix_match;

/**
 * How many positions of `prompt` a pagedkv_sequence_create with the same arguments would reuse
 * now, with room to spare: *out_cached_tokens is exactly the *out_cached_tokens that create would
 * report (a create short of pages may do without the partial run; never more). It runs the same
 * walk as create but pins nothing, leaves the eviction (LRU) order and the statistics as they
 * are, and creates no salt root. Token ids are checked as create checks them; a prompt longer
 * than the cache is not refused (create would refuse it with OUT_OF_PAGES). 0 when reuse is off.
 * out_match (may be null) receives the details, out_cached_tokens is required.
 */
PAGEDKV_API int32_t pagedkv_match_length(pagedkv_cache* cache, const int32_t* prompt, int64_t num_tokens,
                                         const uint8_t* salt, int32_t salt_len, int64_t* out_cached_tokens,
                                         pagedkv_prefix_match* out_match);

/* ---------------------------------------------------------------------------------------------
 * KV events: what enters and leaves the prefix index, in vLLM's KV-event terms
 *
 * A block is a FULL page of the index (page_size computed tokens); partly computed pages are not
 * blocks. A block is stored when a page becomes a FULL node (a commit, or a donor completed in
 * place) and removed when it leaves the index (eviction, pagedkv_cache_clear_unused, a full page
 * adopted by a create). A page identical to an indexed one is replaced by it at commit, so it
 * stores nothing.
 *
 * Block hashes are deterministic across processes and machines: the hash of a block chains the
 * hash of its parent block (for the first block of a prompt: a hash of the salt) and its
 * page_size token ids, so two servers with the same page size give the same prefix the same
 * hashes, and different salts never share one. They are int64 values in [0, 2^63), so consumers
 * reading them as int64 or as uint64 see the same number. They are computed only while someone
 * listens (a callback or a publisher), so commits cost nothing extra otherwise.
 * ------------------------------------------------------------------------------------------- */

enum pagedkv_event_type {
    PAGEDKV_EVENT_BLOCK_STORED = 0,      /* vLLM BlockStored: blocks joined the index */
    PAGEDKV_EVENT_BLOCK_REMOVED = 1,     /* vLLM BlockRemoved: blocks left the index */
    PAGEDKV_EVENT_ALL_BLOCKS_CLEARED = 2 /* vLLM AllBlocksCleared: pagedkv_cache_clear_unused left
                                            no block in the index (it replaces that call's removals) */
};

/** One event. Arrays point into library memory, valid during the callback only. */
typedef struct pagedkv_block_event {
    uint32_t struct_size;          /* sizeof(pagedkv_block_event) as the library knows it */
    int32_t type;                  /* pagedkv_event_type */
    int32_t medium;                /* pagedkv_medium holding the blocks */
    int32_t block_size;            /* tokens per block (the page size) */
    int32_t num_blocks;            /* entries of block_hashes (0 for ALL_BLOCKS_CLEARED) */
    int32_t has_parent;            /* STORED: 1 when parent_block_hash names the parent of the first
                                      block, 0 for the first block of a prompt (vLLM: None) */
    int64_t parent_block_hash;
    int32_t lora_id;               /* -1: none (pagedkv has no LoRA adapters; vLLM: None) */
    int32_t reserved;
    const int64_t* block_hashes;   /* STORED: a chain, each block the parent of the next */
    const int32_t* token_ids;      /* STORED: num_blocks * block_size ids, block by block; else null */
    int64_t num_token_ids;
} pagedkv_block_event;

/** The events of one API call (or of several, merged when calls overlap), in order. */
typedef struct pagedkv_event_batch {
    uint32_t struct_size;
    int32_t num_events;
    int64_t seq;                   /* per cache: 0 for the first batch delivered, then +1 */
    double timestamp;              /* seconds since the Unix epoch when the batch was closed */
    int32_t event_stride;          /* bytes from one event to the next (sizeof(pagedkv_block_event)) */
    int32_t reserved;
    const pagedkv_block_event* events;
} pagedkv_event_batch;

/**
 * Receives event batches. Threads and ordering: it is called after the cache's lock is released,
 * by one thread at a time, in the order the events happened (batch seq order), from a thread
 * that is inside a pagedkv call on this cache (the one whose call caused the events, or another
 * whose call is waiting behind it); every call returns only after its events were delivered.
 * It may call pagedkv functions on the cache (their events follow in later batches), but must not
 * set the callback, destroy the cache or a publisher of it, and must not block for long: the
 * cache's callers wait for it. The batch and everything it points to are valid during the call.
 */
typedef void (*pagedkv_event_callback)(const pagedkv_event_batch* batch, void* user_data);

/**
 * Sets (or with callback == null removes) the cache's event callback, replacing any previous
 * one. When this returns, a previous callback is not running and will not be called again.
 * Blocks already indexed are not announced: pagedkv_cache_snapshot lists them. Call it with no
 * other thread using the cache for a stream that starts exactly at the snapshot.
 */
PAGEDKV_API int32_t pagedkv_cache_set_event_callback(pagedkv_cache* cache, pagedkv_event_callback callback,
                                                     void* user_data);

/** One block of a snapshot. */
typedef struct pagedkv_snapshot_block {
    int64_t block_hash;
    int64_t parent_block_hash;     /* meaningful when has_parent */
    int32_t has_parent;            /* 0 for the first block of a prompt */
    int32_t medium;                /* pagedkv_medium */
} pagedkv_snapshot_block;

/**
 * Every block the cache holds now (all media; one per FULL page of the index), parents before
 * their children, with the same hashes the events carry. Copies up to `capacity` blocks into
 * out_blocks and, unless out_token_ids is null, their token ids into out_token_ids
 * (capacity * page_size entries, block i at [i * page_size, (i + 1) * page_size)); *out_count
 * (required) gets the number of blocks, so capacity 0 asks for the size (the index may change
 * before the next call: call again while *out_count > capacity). *out_next_batch_seq (may be
 * null) gets the seq of the next event batch: batches with seq >= it describe changes after the
 * snapshot, earlier ones changes it already shows.
 */
PAGEDKV_API int32_t pagedkv_cache_snapshot(pagedkv_cache* cache, pagedkv_snapshot_block* out_blocks,
                                           int32_t* out_token_ids, int32_t capacity, int32_t* out_count,
                                           int64_t* out_next_batch_seq);

/* ---------------------------------------------------------------------------------------------
 * KV events over ZeroMQ, the way vLLM publishes them (vllm/distributed/kv_events.py)
 *
 * Wire format. PUB socket: every batch is a message of three frames: topic, sequence number
 * (8 bytes, big-endian, from 0), payload. The payload is MessagePack: [ts, [event, ...],
 * data_parallel_rank] (vLLM's array-like EventBatch); every event is a map tagged by "type", as
 * vLLM >= 0.24 sends them (msgspec tagged structs without array_like):
 *   {"type": "BlockStored", "block_hashes": [int...], "parent_block_hash": int|nil,
 *    "token_ids": [int...], "block_size": int, "lora_id": nil, "medium": "GPU"|"CPU",
 *    "lora_name": nil, "extra_keys": [nil per block], "group_idx": 0,
 *    "kv_cache_spec_kind": "full_attention"}
 *   {"type": "BlockRemoved", "block_hashes": [int...], "medium": ..., "group_idx": 0}
 *   {"type": "AllBlocksCleared"}
 * (salts are not published: the hashes already separate them, and a salt may be a secret.)
 * ROUTER replay socket: a client sends an empty delimiter frame and the 8-byte big-endian sequence
 * number to start from (what a REQ socket sends for a one-frame message; a DEALER sends both
 * frames itself, and is the one to use, since a REQ socket takes a single reply); the publisher
 * answers with [empty, topic, seq, payload] for every batch still in its buffer from that number
 * on, then [empty, empty, seq -1, empty] to mark the end. Requests of another shape are ignored.
 *
 * Publishing never blocks the cache: the event callback copies a batch into a ring of
 * buffer_steps batches and a background thread encodes and sends it. When the thread is more
 * than max_queue_batches behind, it skips the oldest unsent batches (counted as dropped; their
 * seq numbers are skipped on the wire, and they stay replayable while the ring holds them).
 * ------------------------------------------------------------------------------------------- */

/** Opaque publisher handle (a handle-table value, like pagedkv_cache). */
typedef struct pagedkv_event_publisher pagedkv_event_publisher;

typedef struct pagedkv_event_publisher_config {
    uint32_t struct_size;
    const char* endpoint;          /* PUB socket, e.g. "tcp://127.0.0.1:5557": bound when it has a
                                      wildcard host ('*'), "::", or is ipc or inproc, connected
                                      otherwise (as vLLM does) */
    const char* replay_endpoint;   /* ROUTER, always bound; null = no replay */
    const char* topic;             /* first frame of every message; null = "" */
    int32_t data_parallel_rank;    /* sent in every batch; also offsets a tcp port by the rank
                                      (inproc/ipc endpoints get "_dp<rank>"), as vLLM; >= 0 */
    int32_t buffer_steps;          /* batches kept for replay; 0 = 10000 (vLLM's default) */
    int32_t max_queue_batches;     /* unsent batches before the oldest are skipped; 0 = buffer_steps */
    int32_t send_hwm;              /* ZeroMQ high-water mark of the PUB socket; 0 = 100000 */
} pagedkv_event_publisher_config;

/**
 * Starts publishing the cache's KV events (alongside any event callback). UNSUPPORTED when the
 * library was built without ZeroMQ and msgpack-c; INVALID_ARGUMENT for a bad endpoint (the
 * message has ZeroMQ's reason, e.g. "Address already in use").
 */
PAGEDKV_API int32_t pagedkv_event_publisher_create(pagedkv_cache* cache, const pagedkv_event_publisher_config* config,
                                                   pagedkv_event_publisher** out_publisher);

/**
 * Stops publishing: batches still queued are sent first (for at most one second, as vLLM), then
 * the sockets close. Null is accepted. Works after the cache was destroyed.
 */
PAGEDKV_API int32_t pagedkv_event_publisher_destroy(pagedkv_event_publisher* publisher);

typedef struct pagedkv_event_publisher_stats {
    uint32_t struct_size;
    int32_t reserved;
    int64_t batches_accepted;      /* handed to the publisher (the next seq to assign) */
    int64_t batches_sent;          /* sent on the PUB socket */
    int64_t batches_dropped;       /* skipped because the sender was too far behind */
    int64_t events_accepted;
    int64_t replay_requests;       /* requests served by the ROUTER socket */
    int64_t batches_replayed;
} pagedkv_event_publisher_stats;

PAGEDKV_API int32_t pagedkv_event_publisher_get_stats(const pagedkv_event_publisher* publisher,
                                                      pagedkv_event_publisher_stats* out_stats);

#ifdef __cplusplus
}
#endif

#endif /* PAGEDKV_H */
