#include "cache/cache_config.h"

#include <climits>
#include <string>

#include "common/dtype.h"
#include "common/error.h"
#include "device/cuda_device.h"
#include "quant/kv_format.h"

namespace pagedkv {

namespace {
constexpr int32_t kMaxPageSize = 4096;
constexpr int32_t kMaxHeadDim = 256;

void require_positive(int32_t value, const char* field) {
    PAGEDKV_REQUIRE(value >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "config.", field, " must be >= 1, got ", value);
}

__int128 page_bytes_wide(const pagedkv_cache_config& c) {
    const int64_t runs = kv_run_geometry(c.kv_dtype, 0, c.head_dim, c.page_size).run_bytes +
                         kv_run_geometry(c.kv_dtype, 1, c.head_dim, c.page_size).run_bytes;
    return __int128(c.num_layers) * c.num_kv_heads * runs;
}

void require_format(const pagedkv_cache_config& c) {
    PAGEDKV_REQUIRE(is_kv_dtype(c.kv_dtype), PAGEDKV_ERR_INVALID_ARGUMENT, "config.kv_dtype ", c.kv_dtype,
                    " is not a pagedkv_dtype (0 = f32, 1 = f16, 2 = bf16, 3 = fp8_e4m3, 4 = q8, 5 = q6, 6 = q4)");
    PAGEDKV_REQUIRE(!is_group_dtype(c.kv_dtype) || c.head_dim % kQuantGroup == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.kv_dtype ", dtype_name(c.kv_dtype), " quantizes groups of ", kQuantGroup,
                    " dims: config.head_dim must be a multiple of ", kQuantGroup, ", got ", c.head_dim);
    PAGEDKV_REQUIRE(!(c.flags & PAGEDKV_CACHE_HADAMARD) || is_group_dtype(c.kv_dtype), PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.flags PAGEDKV_CACHE_HADAMARD needs a group format (q8, q6, q4), not ",
                    dtype_name(c.kv_dtype));
}
}  // namespace

int64_t page_bytes_of(const pagedkv_cache_config& config) { return int64_t(page_bytes_wide(config)); }

pagedkv_cache_config validated_config(const pagedkv_cache_config& config) {
    pagedkv_cache_config c = config;
    require_positive(c.num_layers, "num_layers");
    require_positive(c.num_kv_heads, "num_kv_heads");
    require_positive(c.head_dim, "head_dim");
    // What every kernel serves, checked here rather than at the first kernel call.
    PAGEDKV_REQUIRE(c.head_dim % 8 == 0 && c.head_dim <= kMaxHeadDim, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.head_dim must be a multiple of 8 in [8, ", kMaxHeadDim, "] (the kernels' head dims), got ",
                    c.head_dim);
    PAGEDKV_REQUIRE(c.page_size >= 1 && c.page_size <= kMaxPageSize, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.page_size must be in [1, ", kMaxPageSize, "], got ", c.page_size);
    require_format(c);
    PAGEDKV_REQUIRE(c.vocab_size >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "config.vocab_size must be >= 0, got ",
                    c.vocab_size);
    constexpr uint32_t kKnownFlags = PAGEDKV_CACHE_NO_REUSE | PAGEDKV_CACHE_HADAMARD;
    PAGEDKV_REQUIRE((c.flags & ~kKnownFlags) == 0, PAGEDKV_ERR_INVALID_ARGUMENT, "config.flags has unknown bits 0x",
                    std::hex, c.flags & ~kKnownFlags);

    __int128 page_bytes = page_bytes_wide(c);
    PAGEDKV_REQUIRE(page_bytes <= INT64_MAX, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "one page would exceed 2^63 bytes; reduce num_layers, num_kv_heads, head_dim or page_size");
    PAGEDKV_REQUIRE(c.num_pages >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "config.num_pages must be >= 0, got ",
                    c.num_pages);
    if (c.num_pages == 0) {
        PAGEDKV_REQUIRE(c.byte_budget > 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "config.num_pages is 0, so config.byte_budget must be > 0, got ", c.byte_budget);
        int64_t pages = c.byte_budget / int64_t(page_bytes);
        PAGEDKV_REQUIRE(pages >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "config.byte_budget ", c.byte_budget,
                        " holds no page of ", int64_t(page_bytes), " bytes");
        PAGEDKV_REQUIRE(pages <= INT32_MAX, PAGEDKV_ERR_INVALID_ARGUMENT, "config.byte_budget ", c.byte_budget,
                        " gives ", pages, " pages, more than the int32 page ids allow");
        c.num_pages = int32_t(pages);
    }
    PAGEDKV_REQUIRE(page_bytes * c.num_pages <= INT64_MAX, PAGEDKV_ERR_INVALID_ARGUMENT, c.num_pages,
                    " pages of ", int64_t(page_bytes), " bytes exceed 2^63 bytes");

    if (c.device_type == PAGEDKV_DEVICE_CPU) {
        PAGEDKV_REQUIRE(c.device_index == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "config.device_index must be 0 for the CPU, got ", c.device_index);
    } else if (c.device_type == PAGEDKV_DEVICE_CUDA) {
        std::string reason;
        int32_t count = device::cuda_device_count(&reason);
        PAGEDKV_REQUIRE(count > 0, PAGEDKV_ERR_NO_DEVICE, "a CUDA cache was asked for: ", reason);
        PAGEDKV_REQUIRE(c.device_index >= 0 && c.device_index < count, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "config.device_index ", c.device_index, " out of range [0, ", count, ")");
    } else {
        fail(PAGEDKV_ERR_INVALID_ARGUMENT, "config.device_type ", c.device_type,
             " is not a pagedkv_device_type (0 = CPU, 1 = CUDA)");
    }
    return c;
}

}  // namespace pagedkv
