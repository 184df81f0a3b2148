// The CUDA kernels against the double-precision CPU reference, on random pools and batches copied
// to the device: write_kv (bit-exact), decode / prefill / cascade attention (per-KV-dtype
// tolerances), merge_states, copy_pages, and the device helpers. Outputs are poisoned with NaN
// before every run, so an element the kernel forgot fails the comparison.
//
// Without a CUDA device it prints "SKIP: <reason>" and exits 77, which ctest reports as skipped.
//
// Tolerances (|got - want| <= tol * (1 + |want|), outputs and LSE alike):
//   f32 KV  1e-4   the generic fp32 kernel
//   f16 KV  4e-3   tensor cores: q and the softmax weights P are rounded to f16 (11-bit mantissa)
//   bf16 KV 1.6e-2 ... to bf16 (8-bit mantissa)
// plus the rounding of an f16 / bf16 output.
#include <cuda_runtime.h>

#include <functional>
#include <memory>

#include "common/error.h"
#include "device/cuda_device.h"
#include "gpu_c_api_scenario.h"
#include "gpu_fixture.h"
#include "kernel_fixture.h"
#include "pagedkv.h"

using namespace fixture;
using namespace gpu_fixture;
namespace cuda = pagedkv::kernels::cuda;
namespace reference = pagedkv::kernels::reference;
namespace device = pagedkv::device;

namespace {

double tolerance_for_kv(int32_t kv_dtype, int32_t out_dtype) {
    double kv = kv_dtype == PAGEDKV_DTYPE_BF16 ? 1.6e-2 : (kv_dtype == PAGEDKV_DTYPE_F16 ? 4e-3 : 1e-4);
    return std::max(kv, tolerance_for(out_dtype));
}

bool bytes_equal(const std::string& what, const Tensor& got, const Tensor& want) {
    for (size_t i = 0; i < want.bytes.size(); ++i) {
        if (got.bytes[i] != want.bytes[i]) {
            std::fprintf(stderr, "  %s: byte %zu differs (%d vs %d)\n", what.c_str(), i, got.bytes[i], want.bytes[i]);
            return false;
        }
    }
    return true;
}

const char* name_of(int32_t dtype) { return pagedkv::dtype_name(dtype); }

// ---- write_kv ----------------------------------------------------------------------------------------

void check_write_kv(int32_t kv_dtype, int32_t src_dtype, int32_t head_dim, int32_t page_size, bool misaligned) {
    std::mt19937 rng(11 + kv_dtype * 7 + src_dtype * 3 + head_dim + page_size);
    const std::vector<int32_t> kv_lens{37, 1, page_size + 1, 3 * page_size}, qo_lens{37, 1, 2, page_size};
    PoolShape shape;
    shape.kv_dtype = kv_dtype;
    shape.head_dim = head_dim;
    shape.page_size = page_size;
    shape.num_kv_heads = 3;
    shape.num_pages = pages_needed(kv_lens, page_size, 0) + 2;
    Pool pool(shape, rng);
    Batch batch = make_batch(rng, page_size, shape.num_pages, kv_lens, qo_lens);
    const int64_t elements = batch.num_qo_tokens() * shape.num_kv_heads * head_dim;
    Tensor k(src_dtype, elements), v(src_dtype, elements);
    k.fill_random(rng, 3.0f);
    v.fill_random(rng, 3.0f);

    auto device_pool = to_device(pool.memory);
    DeviceBatch device_batch(batch);
    // A source shifted by one element is element-aligned but not 16-byte aligned: the scalar path.
    const int64_t shift = misaligned ? pagedkv::dtype_bytes(src_dtype) : 0;
    DeviceBuffer device_k(int64_t(k.bytes.size()) + shift), device_v(int64_t(v.bytes.size()) + shift);
    device::cuda_memcpy(0, device_k.as<char>() + shift, k.data(), int64_t(k.bytes.size()), PAGEDKV_COPY_HOST_TO_DEVICE);
    device::cuda_memcpy(0, device_v.as<char>() + shift, v.data(), int64_t(v.bytes.size()), PAGEDKV_COPY_HOST_TO_DEVICE);

    const int32_t layer = shape.num_layers - 1;
    cuda::write_kv(on_device(pool.layer(layer), *device_pool), device_batch.arrays, device_k.as<char>() + shift,
                   device_v.as<char>() + shift, src_dtype, nullptr);
    reference::write_kv(pool.layer(layer), batch.arrays(), k.data(), v.data(), src_dtype);
    Tensor got(kv_dtype, pool.memory.size);
    device_pool->download(got.data());
    char what[160];
    std::snprintf(what, sizeof what, "write_kv[kv=%s src=%s D=%d ps=%d%s]", name_of(kv_dtype), name_of(src_dtype),
                  head_dim, page_size, misaligned ? " misaligned" : "");
    CHECK(bytes_equal(what, got, pool.memory));
}

TEST(gpu_write_kv_matches_reference_bit_for_bit) {
    for (int32_t kv_dtype : {PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16})
        for (int32_t src_dtype : {int32_t(PAGEDKV_DTYPE_F32), kv_dtype})
            for (int32_t head_dim : {64, 128})
                for (int32_t page_size : {1, 16, 7}) check_write_kv(kv_dtype, src_dtype, head_dim, page_size, false);
    check_write_kv(PAGEDKV_DTYPE_BF16, PAGEDKV_DTYPE_F32, 64, 16, true);
    check_write_kv(PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_F16, 128, 5, true);
    check_write_kv(PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F32, 72, 3, false);  // head dim not a multiple of 16
}

// ---- attention ---------------------------------------------------------------------------------------

enum class Op { decode, prefill, cascade };

const char* name_of(Op op) { return op == Op::decode ? "decode" : op == Op::prefill ? "prefill" : "cascade"; }

struct Case {
    Op op = Op::decode;
    int32_t kv_dtype = PAGEDKV_DTYPE_BF16;
    int32_t head_dim = 128;
    int32_t num_qo_heads = 8, num_kv_heads = 2;
    int32_t page_size = 16;
    std::vector<int32_t> kv_lens, qo_lens;
    int32_t shared_pages = 0;
    int32_t kv_split_size = 0;
    int32_t q_dtype = PAGEDKV_DTYPE_F32, out_dtype = PAGEDKV_DTYPE_F32;
    bool with_lse = true;
};

std::string describe(const Case& c) {
    std::string lens;
    for (size_t s = 0; s < c.kv_lens.size() && s < 6; ++s)
        lens += (s ? "," : "") + std::to_string(c.kv_lens[s]) + "/" + std::to_string(c.qo_lens[s]);
    if (c.kv_lens.size() > 6) lens += ",...(" + std::to_string(c.kv_lens.size()) + ")";
    char text[400];
    std::snprintf(text, sizeof text, "%s[kv=%s D=%d Hq=%d Hkv=%d ps=%d kv/qo=%s shared=%d split=%d q=%s out=%s]",
                  name_of(c.op), name_of(c.kv_dtype), c.head_dim, c.num_qo_heads, c.num_kv_heads, c.page_size,
                  lens.c_str(), c.shared_pages, c.kv_split_size, name_of(c.q_dtype), name_of(c.out_dtype));
    return text;
}

void check_attention(const Case& c, uint32_t seed, void* stream = nullptr) {
    std::mt19937 rng(seed);
    PoolShape shape;
    shape.kv_dtype = c.kv_dtype;
    shape.head_dim = c.head_dim;
    shape.page_size = c.page_size;
    shape.num_kv_heads = c.num_kv_heads;
    shape.num_pages = pages_needed(c.kv_lens, c.page_size, c.shared_pages) + 3;
    Pool pool(shape, rng);
    Batch batch = make_batch(rng, c.page_size, shape.num_pages, c.kv_lens, c.qo_lens, c.shared_pages);
    const int64_t rows = batch.num_qo_tokens() * c.num_qo_heads;
    Tensor q(c.q_dtype, rows * c.head_dim);
    q.fill_random(rng, 2.5f);  // scores spread over a few units: neither flat nor one-hot
    const AttentionOptions options{c.num_qo_heads, 1.0f / std::sqrt(float(c.head_dim)), c.q_dtype, c.out_dtype, 0,
                                   c.kv_split_size, stream};

    const int32_t layer = shape.num_layers - 1;
    Tensor want_out(c.out_dtype, rows * c.head_dim), want_lse(PAGEDKV_DTYPE_F32, rows);
    reference::attention(pool.layer(layer), batch.arrays(), options, q.data(), want_out.data(),
                         static_cast<float*>(want_lse.data()));

    auto device_pool = to_device(pool.memory);
    auto device_q = to_device(q);
    DeviceBatch device_batch(batch);
    DeviceBuffer out(int64_t(want_out.bytes.size())), lse(rows * 4);
    out.poison();
    lse.poison();
    const PagedLayer cache = on_device(pool.layer(layer), *device_pool);
    float* lse_ptr = c.with_lse ? lse.as<float>() : nullptr;
    switch (c.op) {
        case Op::decode: cuda::decode_attention(cache, device_batch.arrays, options, device_q->get(), out.get(), lse_ptr); break;
        case Op::prefill: cuda::prefill_attention(cache, device_batch.arrays, options, device_q->get(), out.get(), lse_ptr); break;
        case Op::cascade: cuda::cascade_attention(cache, device_batch.arrays, options, device_q->get(), out.get(), lse_ptr); break;
    }
    if (stream != nullptr) CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)) == cudaSuccess);
    Tensor got_out(c.out_dtype, rows * c.head_dim), got_lse(PAGEDKV_DTYPE_F32, rows);
    out.download(got_out.data());
    const double tolerance = tolerance_for_kv(c.kv_dtype, c.out_dtype);
    const std::string what = describe(c);
    CHECK(close(what + " out", got_out, want_out, tolerance));
    if (c.with_lse) {
        lse.download(got_lse.data());
        CHECK(close(what + " lse", got_lse, want_lse, tolerance));
    }
}

std::vector<int32_t> ones(size_t n) { return std::vector<int32_t>(n, 1); }

// Decode: KV lengths around the page boundaries, GQA 1 / 4 / 8, both head dims, every KV dtype,
// automatic and forced splits.
TEST(gpu_decode_matches_reference) {
    uint32_t seed = 100;
    for (int32_t kv_dtype : {PAGEDKV_DTYPE_BF16, PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_F32})
        for (int32_t head_dim : {64, 128})
            for (int32_t group : {1, 4, 8})
                for (int32_t page_size : {1, 16, 256}) {
                    if (page_size == 256 && group != 4) continue;
                    Case c;
                    c.op = Op::decode;
                    c.kv_dtype = kv_dtype;
                    c.head_dim = head_dim;
                    c.num_kv_heads = 2;
                    c.num_qo_heads = 2 * group;
                    c.page_size = page_size;
                    c.kv_lens = {1, std::max(1, page_size - 1), page_size, page_size + 1, 77, 1500};
                    c.qo_lens = ones(c.kv_lens.size());
                    check_attention(c, seed++);
                }
    // Split sizes: never, a prime, exactly one tile, and longer sequences that auto-split.
    for (int32_t split : {-1, 37, 64, 0}) {
        Case c;
        c.op = Op::decode;
        c.kv_lens = {4000, 1, 129, 2500};
        c.qo_lens = ones(4);
        c.kv_split_size = split;
        check_attention(c, seed++);
    }
    // One very long sequence (many chunks), MQA with a group of 16 and of 32 (two row tiles).
    {
        Case c;
        c.op = Op::decode;
        c.num_qo_heads = 16, c.num_kv_heads = 1;
        c.kv_lens = {20000};
        c.qo_lens = {1};
        check_attention(c, seed++);
        c.num_qo_heads = 32;
        c.kv_lens = {3000, 5};
        c.qo_lens = ones(2);
        check_attention(c, seed++);
    }
    // f16 / bf16 queries and outputs, no LSE.
    for (int32_t io : {PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16}) {
        Case c;
        c.op = Op::decode;
        c.kv_lens = {300, 17};
        c.qo_lens = ones(2);
        c.q_dtype = c.out_dtype = io;
        c.with_lse = false;
        check_attention(c, seed++);
    }
}

// Prefill and extend: whole prompts, new tokens over cached prefixes, sequences without query
// tokens, a single token, the three tile heights (rows = qo_len x group).
TEST(gpu_prefill_matches_reference) {
    uint32_t seed = 300;
    for (int32_t kv_dtype : {PAGEDKV_DTYPE_BF16, PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_F32})
        for (int32_t head_dim : {64, 128})
            for (int32_t group : {1, 4, 8}) {
                Case c;
                c.op = Op::prefill;
                c.kv_dtype = kv_dtype;
                c.head_dim = head_dim;
                c.num_kv_heads = 2;
                c.num_qo_heads = 2 * group;
                c.page_size = group == 4 ? 7 : 16;
                c.kv_lens = {150, 300, 33, 1, 16, 90};
                c.qo_lens = {150, 40, 0, 1, 3, 17};
                check_attention(c, seed++);
            }
    for (int32_t split : {-1, 100, 0}) {
        Case c;
        c.op = Op::prefill;
        c.num_qo_heads = 4, c.num_kv_heads = 4;  // MHA: 64-row tiles of 64 tokens
        c.kv_lens = {700, 2100};
        c.qo_lens = {200, 64};
        c.kv_split_size = split;
        check_attention(c, seed++);
    }
    for (int32_t io : {PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16}) {
        Case c;
        c.op = Op::prefill;
        c.kv_dtype = PAGEDKV_DTYPE_F16;
        c.kv_lens = {120, 64};
        c.qo_lens = {100, 64};
        c.q_dtype = c.out_dtype = io;
        check_attention(c, seed++);
    }
}

// Cascade: decode and extend batches sharing leading pages; queries inside the shared prefix; no
// own positions at all; the generic path (f32); nothing shared (plain prefill).
TEST(gpu_cascade_matches_reference) {
    uint32_t seed = 500;
    for (int32_t kv_dtype : {PAGEDKV_DTYPE_BF16, PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_F32})
        for (int32_t head_dim : {64, 128}) {
            Case c;
            c.op = Op::cascade;
            c.kv_dtype = kv_dtype;
            c.head_dim = head_dim;
            c.page_size = 16;
            c.shared_pages = 20;  // 320 shared positions
            c.kv_lens = {321, 400, 333, 700, 320 + 16, 500, 345, 999};
            c.qo_lens = ones(c.kv_lens.size());
            check_attention(c, seed++);
            c.qo_lens = {1, 30, 13, 64, 16, 0, 25, 2};  // extend: some queries deep in their own part
            check_attention(c, seed++);
        }
    Case c;
    c.op = Op::cascade;
    c.page_size = 8;
    c.shared_pages = 10;
    c.kv_lens = {80, 100, 81};
    c.qo_lens = {40, 30, 1};  // 40 queries start inside the shared prefix (positions 40..79)
    check_attention(c, seed++);
    c.kv_lens = {80, 80, 80};
    c.qo_lens = ones(3);  // no own positions anywhere
    check_attention(c, seed++);
    c.shared_pages = 0;
    c.kv_lens = {50, 60};
    c.qo_lens = {5, 60};
    check_attention(c, seed++);
    Case split;
    split.op = Op::cascade;
    split.num_qo_heads = 16, split.num_kv_heads = 2;
    split.shared_pages = 200;  // 3200 shared positions, forced small chunks in both passes
    split.kv_lens = std::vector<int32_t>(12, 3300);
    split.kv_lens[3] = 3200;
    split.kv_lens[7] = 4000;
    split.qo_lens = ones(12);
    split.kv_split_size = 333;
    check_attention(split, seed++);
}

TEST(gpu_attention_runs_on_the_given_stream) {
    cudaStream_t stream = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    Case c;
    c.kv_lens = {5000, 12, 700};
    c.qo_lens = ones(3);
    check_attention(c, 900, stream);
    c.op = Op::cascade;
    c.shared_pages = 30;
    c.kv_lens = {500, 481, 700};
    check_attention(c, 901, stream);
    c.op = Op::prefill;
    c.qo_lens = {100, 1, 31};
    check_attention(c, 902, stream);
    cudaStreamDestroy(stream);
}

// ---- merge_states, copy_pages ----------------------------------------------------------------------

void check_merge_states(int64_t n, int32_t heads, int32_t head_dim, uint32_t seed) {
    std::mt19937 rng(seed);
    const int64_t rows = n * heads, elements = rows * head_dim;
    Tensor a(PAGEDKV_DTYPE_F32, elements), b(PAGEDKV_DTYPE_F32, elements);
    Tensor lse_a(PAGEDKV_DTYPE_F32, rows), lse_b(PAGEDKV_DTYPE_F32, rows);
    a.fill_random(rng, 1.0f);
    b.fill_random(rng, 1.0f);
    lse_a.fill_random(rng, 6.0f);
    lse_b.fill_random(rng, 6.0f);
    // Empty states: one side, and both (their values are garbage and must not be read).
    for (int64_t row = 0; row < rows; row += 5) {
        Tensor& side = row % 2 ? lse_a : lse_b;
        Tensor& values = row % 2 ? a : b;
        side.set(row, -INFINITY);
        for (int32_t d = 0; d < head_dim; ++d) values.set(row * head_dim + d, NAN);
    }
    if (rows > 3) lse_a.set(3, -INFINITY), lse_b.set(3, -INFINITY);
    Tensor want(PAGEDKV_DTYPE_F32, elements), want_lse(PAGEDKV_DTYPE_F32, rows);
    reference::merge_states(static_cast<const float*>(a.data()), static_cast<const float*>(lse_a.data()),
                            static_cast<const float*>(b.data()), static_cast<const float*>(lse_b.data()), n, heads,
                            head_dim, static_cast<float*>(want.data()), static_cast<float*>(want_lse.data()));
    auto da = to_device(a), db = to_device(b), dla = to_device(lse_a), dlb = to_device(lse_b);
    DeviceBuffer out(elements * 4), out_lse(rows * 4);
    out.poison();
    out_lse.poison();
    cuda::merge_states(da->as<float>(), dla->as<float>(), db->as<float>(), dlb->as<float>(), n, heads, head_dim,
                       out.as<float>(), out_lse.as<float>(), nullptr);
    Tensor got(PAGEDKV_DTYPE_F32, elements), got_lse(PAGEDKV_DTYPE_F32, rows);
    out.download(got.data());
    out_lse.download(got_lse.data());
    // Both-empty rows: lse -inf on both sides (close() treats equal infinities as a NaN-free 0 gap).
    for (int64_t row = 0; row < rows; ++row) {
        if (std::isinf(want_lse.get(row))) {
            CHECK(std::isinf(got_lse.get(row)) && got_lse.get(row) < 0);
            got_lse.set(row, 0.0f);
            want_lse.set(row, 0.0f);
        }
    }
    char what[96];
    std::snprintf(what, sizeof what, "merge_states[n=%lld H=%d D=%d]", (long long)n, heads, head_dim);
    CHECK(close(std::string(what) + " out", got, want, 1e-5));
    CHECK(close(std::string(what) + " lse", got_lse, want_lse, 1e-5));
}

TEST(gpu_merge_states_matches_reference) {
    check_merge_states(37, 4, 128, 1);
    check_merge_states(5, 8, 64, 2);
    check_merge_states(9, 3, 7, 3);  // odd head dim: the scalar path
    check_merge_states(1000, 32, 128, 4);
}

TEST(gpu_copy_pages_matches_reference) {
    for (int32_t num_pages : {1, 3, 1500}) {
        std::mt19937 rng(40 + num_pages);
        PoolShape shape;
        shape.kv_dtype = PAGEDKV_DTYPE_BF16;
        shape.num_layers = 2;
        shape.num_kv_heads = 2;
        shape.head_dim = 64;
        shape.page_size = 4;
        shape.num_pages = 2 * num_pages + 5;
        Pool pool(shape, rng);
        std::vector<int32_t> ids(static_cast<size_t>(shape.num_pages));
        std::iota(ids.begin(), ids.end(), 0);
        std::shuffle(ids.begin(), ids.end(), rng);
        std::vector<int32_t> src(ids.begin(), ids.begin() + num_pages), dst(ids.begin() + num_pages,
                                                                            ids.begin() + 2 * num_pages);
        auto device_pool = to_device(pool.memory);
        cuda::copy_pages(device_pool->get(), pool.page_bytes(), src.data(), dst.data(), num_pages, nullptr);
        reference::copy_pages(pool.memory.data(), pool.page_bytes(), src.data(), dst.data(), num_pages);
        Tensor got(shape.kv_dtype, pool.memory.size);
        device_pool->download(got.data());
        CHECK(bytes_equal("copy_pages[" + std::to_string(num_pages) + "]", got, pool.memory));
    }
}

// ---- device helpers -----------------------------------------------------------------------------------

TEST(gpu_device_helpers_report_errors) {
    CHECK(device::cuda_built());
    std::string reason;
    CHECK(device::cuda_device_count(&reason) > 0);
    const std::string text = device::cuda_describe(0);
    CHECK(text.find("cuda:0") == 0 && text.find("sm_") != std::string::npos);
    int32_t status = PAGEDKV_OK;
    try {
        device::cuda_alloc(0, int64_t(1) << 50);  // a petabyte
    } catch (const pagedkv::Error& error) {
        status = error.status();
    }
    CHECK_EQ(status, int32_t(PAGEDKV_ERR_OUT_OF_MEMORY));
    status = PAGEDKV_OK;
    try {
        device::cuda_alloc(1000, 16);
    } catch (const pagedkv::Error& error) {
        status = error.status();
    }
    CHECK_EQ(status, int32_t(PAGEDKV_ERR_NO_DEVICE));
    // The failed calls left no error behind for the next kernel.
    Case c;
    c.kv_lens = {100};
    c.qo_lens = {1};
    check_attention(c, 77);
}

// ---- the public C API, end to end ----------------------------------------------------------------

TEST(gpu_c_api_end_to_end) {
    for (const KvFormat& format : {KvFormat{"f32", PAGEDKV_DTYPE_F32, false}, KvFormat{"f16", PAGEDKV_DTYPE_F16, false},
                                   KvFormat{"bf16", PAGEDKV_DTYPE_BF16, false}})
        check_c_api_end_to_end(format, tolerance_for_kv(format.dtype, PAGEDKV_DTYPE_F32));
}

}  // namespace

int main(int argc, char** argv) { return gpu_fixture::run_gpu_tests(argc, argv); }
