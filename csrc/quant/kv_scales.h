// The per-(layer, K|V, kv head) scales of an FP8 cache: set once per layer by the caller, or
// estimated from the layer's first write_kv. Every page run also stores the scale it was written
// with, so kernels read scales from the pages, never from here; this is only what writes use.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace pagedkv {

class KvScales {
public:
    KvScales(int32_t num_layers, int32_t num_kv_heads);

    // This layer's [2][num_kv_heads] scales (0 while unset), for write kernels.
    float* layer_scales(int32_t layer) { return values_.data() + int64_t(layer) * 2 * heads_; }

    // INVALID_ARGUMENT when the layer's scales are set already or a scale is not finite and > 0.
    void set(int32_t layer, const float* k_scales, const float* v_scales);
    void get(int32_t layer, float* k_scales, float* v_scales) const;

    // Before a write: estimates unset scales from the f32 k, v [tokens, num_kv_heads, head_dim]
    // as kHeadroom * max|x| / 448 per head (1 where a head is all zeros).
    void estimate_if_unset(int32_t layer, const float* k, const float* v, int64_t tokens, int32_t head_dim);
    // The same from amax [2][num_kv_heads], max|x| over the finite values of K and V per head
    // (computed where the values are: a CUDA write reduces on the device).
    void estimate_from_abs_max_if_unset(int32_t layer, const float* amax);
    bool is_fixed(int32_t layer) const;

    // Later values up to this factor above the first write's largest still fit.
    static constexpr float kHeadroom = 2.0f;

private:
    void fix_from_abs_max(int32_t layer, const float* amax);  // mutex_ held

    int32_t heads_;
    mutable std::mutex mutex_;
    std::vector<float> values_;
    std::vector<bool> fixed_;  // per layer
};

}  // namespace pagedkv
