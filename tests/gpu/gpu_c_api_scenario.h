// A CUDA cache through the public C API, end to end, for one KV format: prompt A (50 tokens) written
// from f32 by pagedkv_write_kv and committed; prompt B sharing its first 40 tokens (two full pages
// shared, 8 positions copied from A's third page by the device's partial copy); one decode step for
// both. Prefill, extend, decode and cascade each run through the C API and are compared with the
// reference kernels over a host copy of the pool. fp8: the scales the device estimated from layer
// 0's first write must equal the CPU formula (2 max|x| / 448 per head). Used by test_gpu_kernels
// (f32, f16, bf16 KV) and test_gpu_quant (fp8 and the integer formats).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "gpu_fixture.h"
#include "kernel_fixture.h"
#include "pagedkv.h"
#include "quant/layer_geometry.h"

namespace gpu_fixture {

namespace reference = pagedkv::kernels::reference;
using fixture::AttentionOptions;
using fixture::close;

struct KvFormat {
    const char* name;
    int32_t dtype;
    bool hadamard;
};

// f32 values: uniform magnitudes in [0.05, 1) * range, and two outlier channels 20x larger (as real K has).
inline std::vector<float> random_kv_values(std::mt19937& rng, int64_t rows, int32_t head_dim, float range) {
    Tensor t(PAGEDKV_DTYPE_F32, rows * head_dim);
    t.fill_random(rng, range);
    std::vector<float> x(static_cast<const float*>(t.data()), static_cast<const float*>(t.data()) + t.size);
    for (int64_t r = 0; r < rows; ++r)
        for (int32_t d : {1, head_dim / 2 + 3}) x[size_t(r * head_dim + d)] *= 20.0f;
    return x;
}

inline void check_c_api_end_to_end(const KvFormat& format, double tolerance) {
    constexpr int32_t kLayers = 2, kKvHeads = 2, kHeadDim = 128, kPageSize = 16, kQoHeads = 8;
    pagedkv_cache_config config{};
    config.struct_size = sizeof config;
    config.num_layers = kLayers;
    config.num_kv_heads = kKvHeads;
    config.head_dim = kHeadDim;
    config.page_size = kPageSize;
    config.num_pages = 32;
    config.kv_dtype = format.dtype;
    config.flags = format.hadamard ? PAGEDKV_CACHE_HADAMARD : 0;
    config.device_type = PAGEDKV_DEVICE_CUDA;
    pagedkv_cache* cache = nullptr;
    if (!ok(pagedkv_cache_create(&config, &cache), "pagedkv_cache_create")) {
        CHECK(false);
        return;
    }
    pagedkv_cache_layout layout{};
    layout.struct_size = sizeof layout;
    REQUIRE(ok(pagedkv_cache_get_layout(cache, &layout), "pagedkv_cache_get_layout"));
    std::mt19937 rng(7 + format.dtype * 2 + format.hadamard);
    pagedkv_attention_params params{};
    params.struct_size = sizeof params;
    params.num_qo_heads = kQoHeads;
    params.q_dtype = params.out_dtype = PAGEDKV_DTYPE_F32;
    std::vector<void*> allocations;
    auto device_copy = [&](const void* host, int64_t bytes) -> void* {
        void* ptr = nullptr;
        if (!ok(pagedkv_device_alloc(cache, bytes, &ptr), "pagedkv_device_alloc")) return nullptr;
        allocations.push_back(ptr);
        ok(pagedkv_memcpy(cache, ptr, host, bytes, PAGEDKV_COPY_HOST_TO_DEVICE), "pagedkv_memcpy");
        return ptr;
    };
    std::vector<float> first_k, first_v;  // layer 0's first write, for the fp8 estimate
    auto write_new_kv = [&](pagedkv_batch* batch, int64_t tokens) {
        for (int32_t layer = 0; layer < kLayers; ++layer) {
            const std::vector<float> k = random_kv_values(rng, tokens * kKvHeads, kHeadDim, 1.0f);
            const std::vector<float> v = random_kv_values(rng, tokens * kKvHeads, kHeadDim, 0.7f);
            if (layer == 0 && first_k.empty()) first_k = k, first_v = v;
            const int64_t bytes = int64_t(k.size() * sizeof(float));
            if (!ok(pagedkv_write_kv(cache, batch, layer, device_copy(k.data(), bytes), device_copy(v.data(), bytes),
                                     PAGEDKV_DTYPE_F32, &params),
                    "pagedkv_write_kv"))
                return false;
        }
        return true;
    };
    std::vector<float> host_scales(size_t(2 * kKvHeads));
    auto check_kernel = [&](const char* name, auto kernel, pagedkv_batch* batch) {
        pagedkv_batch_info info{};
        info.struct_size = sizeof info;
        if (!ok(pagedkv_batch_get_info(batch, &info), "pagedkv_batch_get_info")) return;
        const int64_t rows = info.num_qo_tokens * kQoHeads;
        Tensor q(PAGEDKV_DTYPE_F32, rows * kHeadDim), want(PAGEDKV_DTYPE_F32, rows * kHeadDim);
        Tensor want_lse(PAGEDKV_DTYPE_F32, rows), got(PAGEDKV_DTYPE_F32, rows * kHeadDim), got_lse(PAGEDKV_DTYPE_F32, rows);
        q.fill_random(rng, 2.5f);
        got.fill_nan();
        got_lse.fill_nan();
        void* dq = device_copy(q.data(), int64_t(q.bytes.size()));
        void* dout = device_copy(got.data(), int64_t(got.bytes.size()));
        void* dlse = device_copy(got_lse.data(), rows * 4);
        CHECK(ok(kernel(cache, batch, 1, &params, dq, dout, static_cast<float*>(dlse)), name));
        CHECK(ok(pagedkv_synchronize(cache), "pagedkv_synchronize"));
        ok(pagedkv_memcpy(cache, got.data(), dout, int64_t(got.bytes.size()), PAGEDKV_COPY_DEVICE_TO_HOST), "memcpy");
        ok(pagedkv_memcpy(cache, got_lse.data(), dlse, rows * 4, PAGEDKV_COPY_DEVICE_TO_HOST), "memcpy");
        std::vector<uint8_t> pool(size_t(layout.pool_bytes));
        ok(pagedkv_memcpy(cache, pool.data(), layout.pool_base, layout.pool_bytes, PAGEDKV_COPY_DEVICE_TO_HOST), "memcpy");
        PagedLayer host_layer{};
        host_layer.pool_base = pool.data();
        host_layer.layer = 1;
        host_layer.page_size = kPageSize;
        host_layer.num_kv_heads = kKvHeads;
        host_layer.head_dim = kHeadDim;
        host_layer.kv_dtype = format.dtype;
        host_layer.hadamard = format.hadamard;
        host_layer = pagedkv::with_byte_geometry(host_layer, kLayers);
        CHECK_EQ(host_layer.page_bytes, layout.page_bytes);
        const BatchArrays host_batch{info.num_seqs,  info.num_pages, info.shared_prefix_pages, info.num_qo_tokens,
                                     info.max_kv_len, info.max_qo_len, info.kv_indptr, info.kv_page_indices,
                                     info.kv_last_page_len, info.qo_indptr, info.slot_mapping, info.kv_len};
        const AttentionOptions options{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_F32,
                                       PAGEDKV_DTYPE_F32, 0, 0, nullptr};
        reference::attention(host_layer, host_batch, options, q.data(), want.data(), static_cast<float*>(want_lse.data()));
        const std::string what = std::string(name) + " (C API, " + format.name + ")";
        CHECK(close(what + " out", got, want, tolerance));
        CHECK(close(what + " lse", got_lse, want_lse, tolerance));
    };

    std::vector<int32_t> prompt_a(50), prompt_b(45);
    for (auto& token : prompt_a) token = int32_t(rng() % 1000);
    std::copy_n(prompt_a.begin(), 40, prompt_b.begin());
    for (size_t i = 40; i < prompt_b.size(); ++i) prompt_b[i] = 1000 + int32_t(i);
    int64_t seq_a = 0, seq_b = 0, cached_a = -1, cached_b = -1;
    REQUIRE(ok(pagedkv_sequence_create(cache, prompt_a.data(), 50, nullptr, 0, &seq_a, &cached_a), "sequence_create"));
    CHECK_EQ(cached_a, int64_t(0));
    pagedkv_batch* batch = nullptr;
    REQUIRE(ok(pagedkv_batch_create(cache, &seq_a, 1, &batch), "pagedkv_batch_create"));
    REQUIRE(write_new_kv(batch, 50));
    if (format.dtype == PAGEDKV_DTYPE_FP8_E4M3) {  // estimated on the device: 2 max|x| / 448 per head
        std::vector<float> k_scales(kKvHeads), v_scales(kKvHeads);
        CHECK(ok(pagedkv_cache_get_kv_scales(cache, 0, k_scales.data(), v_scales.data()), "get_kv_scales"));
        for (int32_t h = 0; h < kKvHeads; ++h) {
            float k_max = 0.0f, v_max = 0.0f;
            for (int64_t t = 0; t < 50; ++t)
                for (int32_t d = 0; d < kHeadDim; ++d) {
                    k_max = std::fmax(k_max, std::fabs(first_k[size_t((t * kKvHeads + h) * kHeadDim + d)]));
                    v_max = std::fmax(v_max, std::fabs(first_v[size_t((t * kKvHeads + h) * kHeadDim + d)]));
                }
            CHECK_EQ(k_scales[size_t(h)], 2.0f * k_max / 448.0f);
            CHECK_EQ(v_scales[size_t(h)], 2.0f * v_max / 448.0f);
        }
    }
    check_kernel("prefill", pagedkv_prefill_attention, batch);
    REQUIRE(ok(pagedkv_batch_commit(cache, batch), "pagedkv_batch_commit"));
    pagedkv_batch_destroy(batch);

    REQUIRE(ok(pagedkv_sequence_create(cache, prompt_b.data(), 45, nullptr, 0, &seq_b, &cached_b), "sequence_create"));
    CHECK_EQ(cached_b, int64_t(40));  // two shared pages and 8 positions copied on the device
    REQUIRE(ok(pagedkv_batch_create(cache, &seq_b, 1, &batch), "pagedkv_batch_create"));
    REQUIRE(write_new_kv(batch, 45 - cached_b));
    check_kernel("extend after a partial copy", pagedkv_prefill_attention, batch);
    REQUIRE(ok(pagedkv_batch_commit(cache, batch), "pagedkv_batch_commit"));
    pagedkv_batch_destroy(batch);

    const int32_t next_token = 7;
    REQUIRE(ok(pagedkv_sequence_append(cache, seq_a, &next_token, 1), "pagedkv_sequence_append"));
    REQUIRE(ok(pagedkv_sequence_append(cache, seq_b, &next_token, 1), "pagedkv_sequence_append"));
    const int64_t both[2] = {seq_a, seq_b};
    REQUIRE(ok(pagedkv_batch_create(cache, both, 2, &batch), "pagedkv_batch_create"));
    pagedkv_batch_info info{};
    info.struct_size = sizeof info;
    REQUIRE(ok(pagedkv_batch_get_info(batch, &info), "pagedkv_batch_get_info"));
    CHECK(info.shared_prefix_pages >= 2);  // cascade has a shared prefix to attend once
    REQUIRE(write_new_kv(batch, 2));
    check_kernel("decode", pagedkv_decode_attention, batch);
    check_kernel("cascade", pagedkv_cascade_attention, batch);
    pagedkv_batch_destroy(batch);
    for (void* ptr : allocations) pagedkv_device_free(cache, ptr);
    CHECK(ok(pagedkv_cache_destroy(cache), "pagedkv_cache_destroy"));
}

}  // namespace gpu_fixture
