// The C functions of the kernels: every argument is checked here, at the boundary, then exactly
// one kernel of the cache's device runs (kernels::cpu with the batch's host arrays, kernels::cuda
// with its device arrays). Kernels assume valid input; nothing is written when a check fails.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "capi/guard.h"
#include "capi/handles.h"
#include "common/dtype.h"
#include "kernels/kernels.h"
#include "pagedkv.h"

namespace pagedkv::capi {
namespace {

// Everything a kernel call needs, validated. The batch was checked when it was built, so a call
// checks only its own arguments and that the batch is still valid (one lookup, no loops).
struct KernelCall {
    CacheAndBatch handles;
    kernels::PagedLayer layer;
    kernels::AttentionOptions options;
    bool cuda;
    Cache::BatchUse use;  // members cannot change until the call returns
    const Batch& batch() const { return handles.batch(); }
    const kernels::BatchArrays& arrays() const { return batch().device_arrays(); }
};

// The caller's params, zero-padded past its struct_size; fields up to out_dtype are required.
pagedkv_attention_params read_params(const pagedkv_attention_params* params) {
    PAGEDKV_REQUIRE_NOT_NULL(params);
    PAGEDKV_REQUIRE_STRUCT(params, pagedkv_attention_params, out_dtype);
    const pagedkv_attention_params value = read_struct(params);
    PAGEDKV_REQUIRE(value.num_threads >= 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "params->num_threads must be >= 0 (0 = all cores), got ", value.num_threads);
    PAGEDKV_REQUIRE(value.kv_split_size >= -1, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "params->kv_split_size must be -1 (never), 0 (auto) or a token count, got ", value.kv_split_size);
    return value;
}

KernelCall begin_call(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                      const pagedkv_attention_params* params) {
    CacheAndBatch handles = checked(cache, batch);
    const pagedkv_attention_params p = read_params(params);
    kernels::PagedLayer paged = handles.cache->layer(layer);  // INVALID_ARGUMENT outside [0, num_layers)
    kernels::AttentionOptions options{p.num_qo_heads, p.sm_scale, p.q_dtype, p.out_dtype,
                                      p.num_threads,  p.kv_split_size, p.cuda_stream};
    const bool cuda = handles.cache->device_type() == PAGEDKV_DEVICE_CUDA;
    Cache& impl = *handles.cache;
    Batch& batch_impl = handles.batch();
    return KernelCall{std::move(handles), paged, options, cuda, impl.use_batch(batch_impl)};
}

// The checks only attention needs: heads, scale, dtypes.
void check_attention(KernelCall& call, const void* q, const void* out) {
    PAGEDKV_REQUIRE_NOT_NULL(q);
    PAGEDKV_REQUIRE_NOT_NULL(out);
    kernels::AttentionOptions& options = call.options;
    const int32_t kv_heads = call.layer.num_kv_heads, head_dim = call.layer.head_dim;
    PAGEDKV_REQUIRE(options.num_qo_heads >= 1 && options.num_qo_heads % kv_heads == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "params->num_qo_heads must be a positive multiple of the cache's num_kv_heads (", kv_heads,
                    "), got ", options.num_qo_heads);
    PAGEDKV_REQUIRE(std::isfinite(options.sm_scale) && options.sm_scale >= 0.0f, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "params->sm_scale must be finite and > 0 (0 = 1/sqrt(head_dim)), got ", options.sm_scale);
    if (options.sm_scale == 0.0f) options.sm_scale = 1.0f / std::sqrt(float(head_dim));
    PAGEDKV_REQUIRE(is_valid_dtype(options.q_dtype), PAGEDKV_ERR_INVALID_ARGUMENT, "params->q_dtype ",
                    options.q_dtype, " is not a pagedkv_dtype");
    PAGEDKV_REQUIRE(is_valid_dtype(options.out_dtype), PAGEDKV_ERR_INVALID_ARGUMENT, "params->out_dtype ",
                    options.out_dtype, " is not a pagedkv_dtype");
}

using AttentionKernel = void (*)(const kernels::PagedLayer&, const kernels::BatchArrays&,
                                 const kernels::AttentionOptions&, const void*, void*, float*);

void run_attention(const KernelCall& call, AttentionKernel cpu_kernel, AttentionKernel cuda_kernel, const void* q,
                   void* out, float* lse) {
    (call.cuda ? cuda_kernel : cpu_kernel)(call.layer, call.arrays(), call.options, q, out, lse);
}

}  // namespace
}  // namespace pagedkv::capi

using pagedkv::capi::checked;
using pagedkv::capi::guarded;
namespace kernels = pagedkv::kernels;

extern "C" {

int32_t pagedkv_write_kv(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer, const void* k,
                         const void* v, int32_t src_dtype, const pagedkv_attention_params* params) {
    return guarded(__func__, [&] {
        pagedkv::capi::KernelCall call = pagedkv::capi::begin_call(cache, batch, layer, params);
        PAGEDKV_REQUIRE_NOT_NULL(k);
        PAGEDKV_REQUIRE_NOT_NULL(v);
        const int32_t kv_dtype = call.layer.kv_dtype;
        PAGEDKV_REQUIRE(src_dtype == PAGEDKV_DTYPE_F32 || (src_dtype == kv_dtype && pagedkv::is_valid_dtype(src_dtype)),
                        PAGEDKV_ERR_INVALID_ARGUMENT, "src_dtype must be f32 or the cache's KV dtype if that is f16 or "
                        "bf16 (the cache's is ", pagedkv::dtype_name(kv_dtype), "), got ", src_dtype);
        if (kv_dtype == PAGEDKV_DTYPE_FP8_E4M3) {  // the layer's first write fixes unset scales
            pagedkv::KvScales& scales = call.handles.cache->kv_scales(layer);
            const int64_t tokens = call.arrays().num_qo_tokens;
            if (!call.cuda) {
                scales.estimate_if_unset(layer, static_cast<const float*>(k), static_cast<const float*>(v), tokens,
                                         call.layer.head_dim);
            } else if (tokens > 0 && !scales.is_fixed(layer)) {  // k, v are device memory: reduce there
                std::vector<float> amax(size_t(2 * call.layer.num_kv_heads));
                kernels::cuda::kv_abs_max(call.layer, call.arrays(), k, v, amax.data(), call.options.cuda_stream);
                scales.estimate_from_abs_max_if_unset(layer, amax.data());
            }
        }
        if (call.cuda) kernels::cuda::write_kv(call.layer, call.arrays(), k, v, src_dtype, call.options.cuda_stream);
        else kernels::cpu::write_kv(call.layer, call.arrays(), k, v, src_dtype, call.options.num_threads);
    });
}

int32_t pagedkv_decode_attention(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                                 const pagedkv_attention_params* params, const void* q, void* out, float* lse) {
    return guarded(__func__, [&] {
        pagedkv::capi::KernelCall call = pagedkv::capi::begin_call(cache, batch, layer, params);
        pagedkv::capi::check_attention(call, q, out);
        if (!call.batch().one_query_per_sequence()) {
            const int32_t seq = call.batch().first_non_decode_member();
            const kernels::BatchArrays& host = call.batch().host_arrays();
            pagedkv::fail(PAGEDKV_ERR_INVALID_ARGUMENT, "decode needs exactly one query token per sequence; batch sequence ",
                 seq, " (seq id ", call.batch().members()[size_t(seq)].seq_id, ") has ",
                 host.qo_indptr[seq + 1] - host.qo_indptr[seq], " (use pagedkv_prefill_attention)");
        }
        pagedkv::capi::run_attention(call, kernels::cpu::decode_attention, kernels::cuda::decode_attention, q, out,
                                     lse);
    });
}

int32_t pagedkv_prefill_attention(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                                  const pagedkv_attention_params* params, const void* q, void* out, float* lse) {
    return guarded(__func__, [&] {
        pagedkv::capi::KernelCall call = pagedkv::capi::begin_call(cache, batch, layer, params);
        pagedkv::capi::check_attention(call, q, out);
        pagedkv::capi::run_attention(call, kernels::cpu::prefill_attention, kernels::cuda::prefill_attention, q, out,
                                     lse);
    });
}

int32_t pagedkv_cascade_attention(pagedkv_cache* cache, const pagedkv_batch* batch, int32_t layer,
                                  const pagedkv_attention_params* params, const void* q, void* out, float* lse) {
    return guarded(__func__, [&] {
        pagedkv::capi::KernelCall call = pagedkv::capi::begin_call(cache, batch, layer, params);
        pagedkv::capi::check_attention(call, q, out);
        pagedkv::capi::run_attention(call, kernels::cpu::cascade_attention, kernels::cuda::cascade_attention, q, out,
                                     lse);
    });
}

int32_t pagedkv_copy_pages(pagedkv_cache* cache, const int32_t* src_pages, const int32_t* dst_pages,
                           int32_t num_pages, void* cuda_stream) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE(num_pages >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "num_pages must be >= 0, got ", num_pages);
        if (num_pages == 0) return;
        PAGEDKV_REQUIRE_NOT_NULL(src_pages);
        PAGEDKV_REQUIRE_NOT_NULL(dst_pages);
        const int32_t pool_pages = impl->num_pages();
        for (int32_t i = 0; i < num_pages; ++i) {
            PAGEDKV_REQUIRE(src_pages[i] >= 0 && src_pages[i] < pool_pages, PAGEDKV_ERR_NOT_FOUND, "src_pages[", i,
                            "] = ", src_pages[i], " is not a page of this cache [0, ", pool_pages, ")");
            PAGEDKV_REQUIRE(dst_pages[i] >= 0 && dst_pages[i] < pool_pages, PAGEDKV_ERR_NOT_FOUND, "dst_pages[", i,
                            "] = ", dst_pages[i], " is not a page of this cache [0, ", pool_pages, ")");
        }
        impl->device().copy_pages(impl->pool_base(), impl->page_bytes(), src_pages, dst_pages, num_pages, cuda_stream);
    });
}

int32_t pagedkv_merge_states(pagedkv_cache* cache, const float* a, const float* lse_a, const float* b,
                             const float* lse_b, int64_t n, int32_t num_heads, int32_t head_dim, float* out,
                             float* out_lse, void* cuda_stream) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE(n >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "n must be >= 0, got ", n);
        PAGEDKV_REQUIRE(num_heads >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_heads must be >= 1, got ", num_heads);
        PAGEDKV_REQUIRE(head_dim >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "head_dim must be >= 1, got ", head_dim);
        PAGEDKV_REQUIRE(n <= std::numeric_limits<int64_t>::max() / (int64_t(num_heads) * head_dim),
                        PAGEDKV_ERR_INVALID_ARGUMENT, "n * num_heads * head_dim overflows");
        if (n == 0) return;
        PAGEDKV_REQUIRE_NOT_NULL(a);
        PAGEDKV_REQUIRE_NOT_NULL(lse_a);
        PAGEDKV_REQUIRE_NOT_NULL(b);
        PAGEDKV_REQUIRE_NOT_NULL(lse_b);
        PAGEDKV_REQUIRE_NOT_NULL(out);
        PAGEDKV_REQUIRE_NOT_NULL(out_lse);
        if (impl->device_type() == PAGEDKV_DEVICE_CUDA)
            kernels::cuda::merge_states(a, lse_a, b, lse_b, n, num_heads, head_dim, out, out_lse, cuda_stream);
        else kernels::cpu::merge_states(a, lse_a, b, lse_b, n, num_heads, head_dim, out, out_lse);
    });
}

}  // extern "C"
