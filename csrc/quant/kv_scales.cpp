#include "quant/kv_scales.h"

#include <cmath>

#include "common/error.h"
#include "quant/fp8.h"

namespace pagedkv {

KvScales::KvScales(int32_t num_layers, int32_t num_kv_heads)
    : heads_(num_kv_heads), values_(size_t(num_layers) * 2 * size_t(num_kv_heads), 0.0f), fixed_(size_t(num_layers)) {}

void KvScales::set(int32_t layer, const float* k_scales, const float* v_scales) {
    for (int32_t h = 0; h < heads_; ++h)
        for (const float* scales : {k_scales, v_scales})
            PAGEDKV_REQUIRE(std::isfinite(scales[h]) && scales[h] > 0.0f, PAGEDKV_ERR_INVALID_ARGUMENT,
                            "kv scales must be finite and > 0, got ", scales[h], " for kv head ", h);
    std::lock_guard lock(mutex_);
    PAGEDKV_REQUIRE(!fixed_[size_t(layer)], PAGEDKV_ERR_INVALID_ARGUMENT, "the kv scales of layer ", layer,
                    " are fixed already (set before, or estimated by its first write_kv): pages written with them "
                    "would be read with others");
    float* out = layer_scales(layer);
    for (int32_t h = 0; h < heads_; ++h) {
        out[h] = k_scales[h];
        out[heads_ + h] = v_scales[h];
    }
    fixed_[size_t(layer)] = true;
}

void KvScales::get(int32_t layer, float* k_scales, float* v_scales) const {
    std::lock_guard lock(mutex_);
    const float* in = values_.data() + int64_t(layer) * 2 * heads_;
    for (int32_t h = 0; h < heads_; ++h) {
        k_scales[h] = in[h];
        v_scales[h] = in[heads_ + h];
    }
}

void KvScales::estimate_if_unset(int32_t layer, const float* k, const float* v, int64_t tokens, int32_t head_dim) {
    if (tokens == 0) return;  // nothing to learn from
    std::lock_guard lock(mutex_);
    if (fixed_[size_t(layer)]) return;
    std::vector<float> amax(size_t(2 * heads_), 0.0f);
    for (int32_t kv = 0; kv < 2; ++kv)
        for (int32_t h = 0; h < heads_; ++h) {
            const float* x = kv == 0 ? k : v;
            float& m = amax[size_t(kv * heads_ + h)];
            for (int64_t t = 0; t < tokens; ++t)
                for (int32_t d = 0; d < head_dim; ++d) {
                    const float a = std::fabs(x[(t * heads_ + h) * head_dim + d]);
                    if (std::isfinite(a)) m = std::fmax(m, a);
                }
        }
    fix_from_abs_max(layer, amax.data());
}

void KvScales::estimate_from_abs_max_if_unset(int32_t layer, const float* amax) {
    std::lock_guard lock(mutex_);
    if (!fixed_[size_t(layer)]) fix_from_abs_max(layer, amax);
}

bool KvScales::is_fixed(int32_t layer) const {
    std::lock_guard lock(mutex_);
    return fixed_[size_t(layer)];
}

void KvScales::fix_from_abs_max(int32_t layer, const float* amax) {
    float* out = layer_scales(layer);
    for (int32_t i = 0; i < 2 * heads_; ++i) out[i] = amax[i] > 0.0f ? kHeadroom * amax[i] / kE4m3Max : 1.0f;
    fixed_[size_t(layer)] = true;
}

}  // namespace pagedkv
