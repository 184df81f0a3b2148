// Library-wide C functions: version, statuses, errors, backends and devices.
#include <algorithm>
#include <cstring>
#include <string>

#include "capi/guard.h"
#include "device/cpu_features.h"
#include "device/cuda_device.h"
#include "pagedkv.h"

namespace pagedkv::capi {

namespace {
thread_local std::string last_error_message;
}

void set_last_error(int32_t, const char* message) noexcept {
    try {
        last_error_message = message;
    } catch (...) {
        last_error_message.clear();
    }
}

void clear_last_error() noexcept {
    if (!last_error_message.empty()) last_error_message.clear();
}

}  // namespace pagedkv::capi

using pagedkv::capi::guarded;

extern "C" {

int32_t pagedkv_version(void) {
    return PAGEDKV_VERSION_MAJOR * 10000 + PAGEDKV_VERSION_MINOR * 100 + PAGEDKV_VERSION_PATCH;
}

const char* pagedkv_status_string(int32_t status) {
    switch (status) {
        case PAGEDKV_OK: return "ok";
        case PAGEDKV_ERR_INVALID_ARGUMENT: return "invalid argument";
        case PAGEDKV_ERR_NOT_FOUND: return "not found";
        case PAGEDKV_ERR_OUT_OF_PAGES: return "out of pages";
        case PAGEDKV_ERR_OUT_OF_MEMORY: return "out of memory";
        case PAGEDKV_ERR_UNSUPPORTED: return "unsupported";
        case PAGEDKV_ERR_NO_DEVICE: return "no CUDA device";
        case PAGEDKV_ERR_CUDA: return "CUDA error";
        case PAGEDKV_ERR_INTERNAL: return "internal error";
        case PAGEDKV_ERR_STALE_BATCH: return "stale batch";
        default: return "unknown status";
    }
}

const char* pagedkv_last_error(void) { return pagedkv::capi::last_error_message.c_str(); }

int32_t pagedkv_noop(void) { return PAGEDKV_OK; }

int32_t pagedkv_backends(uint32_t* out_mask) {
    return guarded(__func__, [&] {
        PAGEDKV_REQUIRE_NOT_NULL(out_mask);
        uint32_t mask = PAGEDKV_BACKEND_CPU;
        if (pagedkv::device::cpu_has_avx2()) mask |= PAGEDKV_BACKEND_CPU_AVX2;
        if (pagedkv::device::cpu_has_avx512()) mask |= PAGEDKV_BACKEND_CPU_AVX512;
        if (pagedkv::device::cuda_built()) mask |= PAGEDKV_BACKEND_CUDA_BUILT;
        if (pagedkv::device::cuda_device_count(nullptr) > 0) mask |= PAGEDKV_BACKEND_CUDA_DEVICE;
        *out_mask = mask;
    });
}

int32_t pagedkv_cuda_device_count(int32_t* out_count) {
    std::string reason;
    int32_t count = 0;
    int32_t status = guarded(__func__, [&] {
        PAGEDKV_REQUIRE_NOT_NULL(out_count);
        count = pagedkv::device::cuda_device_count(&reason);
        *out_count = count;
    });
    // Zero devices is an answer, not a failure; the reason stays readable through last_error.
    if (status == PAGEDKV_OK && count == 0)
        pagedkv::capi::set_last_error(PAGEDKV_ERR_NO_DEVICE, reason.c_str());
    return status;
}

int32_t pagedkv_device_describe(int32_t device_type, int32_t device_index, char* buf, int32_t capacity) {
    return guarded(__func__, [&] {
        PAGEDKV_REQUIRE_NOT_NULL(buf);
        PAGEDKV_REQUIRE(capacity > 0, PAGEDKV_ERR_INVALID_ARGUMENT, "capacity must be > 0, got ", capacity);
        std::string text;
        if (device_type == PAGEDKV_DEVICE_CPU) {
            PAGEDKV_REQUIRE(device_index == 0, PAGEDKV_ERR_INVALID_ARGUMENT, "the CPU device index is 0, got ",
                            device_index);
            text = pagedkv::concat("cpu: ", pagedkv::device::cpu_thread_count(), " threads",
                                   pagedkv::device::cpu_has_avx2() ? ", avx2 f16c fma" : "",
                                   pagedkv::device::cpu_has_avx512() ? ", avx512" : "",
                                   pagedkv::device::cpu_has_avx512_bf16() ? " avx512_bf16" : "",
                                   pagedkv::device::cpu_has_avx512_vnni() ? " avx512_vnni" : "");
        } else if (device_type == PAGEDKV_DEVICE_CUDA) {
            std::string reason;
            int32_t count = pagedkv::device::cuda_device_count(&reason);
            PAGEDKV_REQUIRE(count > 0, PAGEDKV_ERR_NO_DEVICE, reason);
            PAGEDKV_REQUIRE(device_index >= 0 && device_index < count, PAGEDKV_ERR_INVALID_ARGUMENT,
                            "CUDA device index ", device_index, " out of range [0, ", count, ")");
            text = pagedkv::device::cuda_describe(device_index);
        } else {
            pagedkv::fail(PAGEDKV_ERR_INVALID_ARGUMENT, "unknown device type ", device_type);
        }
        size_t length = std::min<size_t>(text.size(), size_t(capacity) - 1);
        std::memcpy(buf, text.data(), length);
        buf[length] = '\0';
    });
}

}  // extern "C"
