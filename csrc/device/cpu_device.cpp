// The host as a device: the pool is ordinary memory, copies are memcpy, nothing is asynchronous.
#include <cstring>

#include "common/error.h"
#include "device/device.h"
#include "kernels/kernels.h"
#include "pagedkv.h"
#include "pool/host_memory.h"

namespace pagedkv::device {

namespace {

class CpuDevice final : public Device {
public:
    int32_t type() const override { return PAGEDKV_DEVICE_CPU; }
    int32_t index() const override { return 0; }

    void* alloc(int64_t bytes) override {
        void* ptr = host_aligned_alloc(bytes, 256);
        PAGEDKV_REQUIRE(ptr != nullptr, PAGEDKV_ERR_OUT_OF_MEMORY, "cannot allocate ", bytes, " bytes of host memory");
        return ptr;
    }
    void free(void* ptr) noexcept override { host_aligned_free(ptr); }
    void* alloc_host(int64_t bytes) override { return alloc(bytes); }
    void free_host(void* ptr) noexcept override { free(ptr); }
    void copy(void* dst, const void* src, int64_t bytes, int32_t) override {
        if (bytes > 0) std::memmove(dst, src, size_t(bytes));
    }
    void synchronize() override {}

    void copy_page_runs(const PageGeometry& g, const int32_t* src, const int32_t* dst, int32_t count,
                        int32_t tokens) override {
        auto* pool = static_cast<unsigned char*>(g.pool_base);
        const size_t run = size_t(tokens) * size_t(g.token_bytes);
        for (int32_t i = 0; i < count; ++i) {
            if (src[i] == dst[i] || tokens == 0) continue;
            const unsigned char* from = pool + int64_t(src[i]) * g.page_bytes;
            unsigned char* to = pool + int64_t(dst[i]) * g.page_bytes;
            if (g.quant.used) {
                copy_quant_runs(g.quant, g.rows, from, to, tokens);
                continue;
            }
            for (int64_t row = 0; row < g.rows; ++row) std::memcpy(to + row * g.row_bytes, from + row * g.row_bytes, run);
        }
    }

    // The first `tokens` positions of every (layer, K|V, head) run of a quantized page.
    static void copy_quant_runs(const PageGeometry::QuantRuns& q, int64_t layer_heads, const unsigned char* from,
                                unsigned char* to, int32_t tokens) {
        const int64_t heads = q.heads, layer_bytes = heads * (q.run_bytes[0] + q.run_bytes[1]);
        for (int64_t index = 0; index < layer_heads; ++index)
            for (int32_t kv = 0; kv < 2; ++kv) {
                const int64_t layer = index / heads, head = index % heads;
                const int64_t at = layer * layer_bytes + (kv ? heads * q.run_bytes[0] : 0) + head * q.run_bytes[kv];
                std::memcpy(to + at, from + at, size_t(tokens * q.code_bytes[kv]));
                std::memcpy(to + at + q.scales_at[kv], from + at + q.scales_at[kv], size_t(tokens * q.scale_bytes));
                std::memcpy(to + at + q.tail_at[kv], from + at + q.tail_at[kv], size_t(q.tail_bytes));
            }
    }
    void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src, const int32_t* dst, int32_t count,
                    void*) override {
        kernels::cpu::copy_pages(pool_base, page_bytes, src, dst, count);
    }

    Metadata place_metadata(const void* host, int64_t, void*) override {
        return Metadata{const_cast<void*>(host), -1};
    }
    void release_metadata(const Metadata&, void*) noexcept override {}
};

}  // namespace

std::unique_ptr<Device> make_device(int32_t device_type, int32_t device_index) {
    if (device_type == PAGEDKV_DEVICE_CPU) return std::make_unique<CpuDevice>();
    PAGEDKV_REQUIRE(device_type == PAGEDKV_DEVICE_CUDA, PAGEDKV_ERR_INVALID_ARGUMENT, "device_type ", device_type,
                    " is not a pagedkv_device_type (0 = CPU, 1 = CUDA)");
    return make_cuda_device(device_index);
}

}  // namespace pagedkv::device
