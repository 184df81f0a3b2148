// A decode step captured into a CUDA graph, through the public C API: a batch built with
// pagedkv_batch_create_on_stream on a non-blocking stream, then write_kv + decode attention for
// every layer captured with cudaStreamBeginCapture (global mode, so any allocation or
// synchronization inside a kernel call would invalidate the capture), replayed with new inputs and
// compared with the CPU reference. Also: the batch metadata ring (arrays on the device equal the
// host arrays, through reuse and growth) and the misaligned-tensor checks.
//
// Without a CUDA device it prints "SKIP: <reason>" and exits 77, which ctest reports as skipped.
#include <cuda_runtime.h>

#include <memory>

#include "gpu_fixture.h"
#include "kernel_fixture.h"
#include "pagedkv.h"

using namespace fixture;
using gpu_fixture::ok;
namespace reference = pagedkv::kernels::reference;

namespace {

bool cuda_ok(cudaError_t status, const char* what) {
    if (status == cudaSuccess) return true;
    std::fprintf(stderr, "  %s: %s: %s\n", what, cudaGetErrorName(status), cudaGetErrorString(status));
    return false;
}

// Device memory owned by the test (cudaMalloc: 256-byte aligned), with 256 bytes of slack so a
// deliberately shifted pointer stays inside the allocation.
class DeviceMemory {
public:
    explicit DeviceMemory(int64_t bytes) : bytes_(bytes) {
        if (cudaMalloc(&ptr_, size_t(bytes + 256)) != cudaSuccess) ptr_ = nullptr;
    }
    ~DeviceMemory() {
        if (ptr_ != nullptr) cudaFree(ptr_);
    }
    DeviceMemory(const DeviceMemory&) = delete;
    DeviceMemory& operator=(const DeviceMemory&) = delete;
    void* get() const { return ptr_; }
    int64_t bytes() const { return bytes_; }

private:
    void* ptr_ = nullptr;
    int64_t bytes_ = 0;
};

struct StreamHolder {
    cudaStream_t stream = nullptr;
    StreamHolder() { cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking); }
    ~StreamHolder() {
        if (stream != nullptr) cudaStreamDestroy(stream);
    }
};

struct CacheHolder {
    pagedkv_cache* cache = nullptr;
    ~CacheHolder() {
        if (cache != nullptr) pagedkv_cache_destroy(cache);
    }
};

constexpr int32_t kLayers = 2, kKvHeads = 2, kHeadDim = 128, kPageSize = 16, kQoHeads = 8;
constexpr int32_t kKvDtype = PAGEDKV_DTYPE_BF16;
constexpr double kTolerance = 1.6e-2;  // bf16 KV on tensor cores (see test_gpu_kernels.cpp)

pagedkv_cache* make_cache(int32_t num_pages, int32_t layers, int32_t kv_heads, int32_t head_dim) {
    pagedkv_cache_config config{};
    config.struct_size = sizeof config;
    config.num_layers = layers;
    config.num_kv_heads = kv_heads;
    config.head_dim = head_dim;
    config.page_size = kPageSize;
    config.num_pages = num_pages;
    config.kv_dtype = kKvDtype;
    config.device_type = PAGEDKV_DEVICE_CUDA;
    pagedkv_cache* cache = nullptr;
    return ok(pagedkv_cache_create(&config, &cache), "pagedkv_cache_create") ? cache : nullptr;
}

pagedkv_batch_info batch_info(const pagedkv_batch* batch) {
    pagedkv_batch_info info{};
    info.struct_size = sizeof info;
    ok(pagedkv_batch_get_info(batch, &info), "pagedkv_batch_get_info");
    return info;
}

BatchArrays host_arrays(const pagedkv_batch_info& info) {
    return BatchArrays{info.num_seqs,  info.num_pages,  info.shared_prefix_pages, info.num_qo_tokens,
                       info.max_kv_len, info.max_qo_len, info.kv_indptr,           info.kv_page_indices,
                       info.kv_last_page_len, info.qo_indptr, info.slot_mapping,    info.kv_len};
}

bool upload(void* dst, const Tensor& host, cudaStream_t stream) {
    return cuda_ok(cudaMemcpyAsync(dst, host.data(), host.bytes.size(), cudaMemcpyHostToDevice, stream),
                   "cudaMemcpyAsync (upload)");
}

bool download(Tensor& host, const void* src, cudaStream_t stream) {
    return cuda_ok(cudaMemcpyAsync(host.data(), src, host.bytes.size(), cudaMemcpyDeviceToHost, stream),
                   "cudaMemcpyAsync (download)") &&
           cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

// The inputs and outputs of one decode step over `tokens` sequences, on the device.
struct StepTensors {
    int64_t tokens;
    std::vector<std::unique_ptr<DeviceMemory>> k, v, out, lse;  // per layer
    std::unique_ptr<DeviceMemory> q;
    Tensor host_q;
    std::vector<Tensor> host_k, host_v;

    explicit StepTensors(int64_t tokens_) : tokens(tokens_), host_q(PAGEDKV_DTYPE_F32, tokens_ * kQoHeads * kHeadDim) {
        const int64_t kv_elements = tokens * kKvHeads * kHeadDim, q_elements = tokens * kQoHeads * kHeadDim;
        for (int32_t layer = 0; layer < kLayers; ++layer) {
            k.push_back(std::make_unique<DeviceMemory>(kv_elements * 4));
            v.push_back(std::make_unique<DeviceMemory>(kv_elements * 4));
            out.push_back(std::make_unique<DeviceMemory>(q_elements * 4));
            lse.push_back(std::make_unique<DeviceMemory>(tokens * kQoHeads * 4));
            host_k.emplace_back(PAGEDKV_DTYPE_F32, kv_elements);
            host_v.emplace_back(PAGEDKV_DTYPE_F32, kv_elements);
        }
        q = std::make_unique<DeviceMemory>(q_elements * 4);
    }

    // New random inputs, uploaded on `stream`; outputs poisoned with NaN.
    bool refill(std::mt19937& rng, cudaStream_t stream) {
        host_q.fill_random(rng, 2.5f);
        bool good = upload(q->get(), host_q, stream);
        for (int32_t layer = 0; layer < kLayers; ++layer) {
            host_k[size_t(layer)].fill_random(rng, 1.0f);
            host_v[size_t(layer)].fill_random(rng, 1.0f);
            good = good && upload(k[size_t(layer)]->get(), host_k[size_t(layer)], stream) &&
                   upload(v[size_t(layer)]->get(), host_v[size_t(layer)], stream) &&
                   cuda_ok(cudaMemsetAsync(out[size_t(layer)]->get(), 0xff, size_t(out[size_t(layer)]->bytes()), stream),
                           "cudaMemsetAsync") &&
                   cuda_ok(cudaMemsetAsync(lse[size_t(layer)]->get(), 0xff, size_t(lse[size_t(layer)]->bytes()), stream),
                           "cudaMemsetAsync");
        }
        return good;
    }
};

// One decode step: for every layer, write K/V of the new tokens, then decode attention.
bool run_step(pagedkv_cache* cache, const pagedkv_batch* batch, const pagedkv_attention_params& params,
              StepTensors& t) {
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        const size_t l = size_t(layer);
        if (!ok(pagedkv_write_kv(cache, batch, layer, t.k[l]->get(), t.v[l]->get(), PAGEDKV_DTYPE_F32, &params),
                "pagedkv_write_kv"))
            return false;
        if (!ok(pagedkv_decode_attention(cache, batch, layer, &params, t.q->get(), t.out[l]->get(),
                                         static_cast<float*>(t.lse[l]->get())),
                "pagedkv_decode_attention"))
            return false;
    }
    return true;
}

// Checks a finished step: the pool must equal `pool_before` with the step's K/V written by the
// reference (bit for bit), and every layer's out / lse the reference attention over it.
void check_step(pagedkv_cache* cache, const pagedkv_batch* batch, const pagedkv_cache_layout& layout,
                const Tensor& pool_before, StepTensors& t, cudaStream_t stream, const std::string& what) {
    const pagedkv_batch_info info = batch_info(batch);
    const BatchArrays arrays = host_arrays(info);
    Tensor want_pool = pool_before;
    const AttentionOptions options{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F32,
                                   0, 0, nullptr};
    Tensor got_pool(kKvDtype, int64_t(pool_before.bytes.size() / 2));
    REQUIRE(download(got_pool, layout.pool_base, stream));
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        const PagedLayer host_layer{want_pool.data(), layout.page_stride, layout.slab_stride, layer, kPageSize,
                                    kKvHeads, kHeadDim, kKvDtype};
        reference::write_kv(host_layer, arrays, t.host_k[size_t(layer)].data(), t.host_v[size_t(layer)].data(),
                            PAGEDKV_DTYPE_F32);
    }
    CHECK(std::memcmp(got_pool.data(), want_pool.data(), want_pool.bytes.size()) == 0);
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        const PagedLayer host_layer{want_pool.data(), layout.page_stride, layout.slab_stride, layer, kPageSize,
                                    kKvHeads, kHeadDim, kKvDtype};
        const int64_t rows = t.tokens * kQoHeads;
        Tensor want(PAGEDKV_DTYPE_F32, rows * kHeadDim), want_lse(PAGEDKV_DTYPE_F32, rows);
        reference::attention(host_layer, arrays, options, t.host_q.data(), want.data(),
                             static_cast<float*>(want_lse.data()));
        Tensor got(PAGEDKV_DTYPE_F32, rows * kHeadDim), got_lse(PAGEDKV_DTYPE_F32, rows);
        REQUIRE(download(got, t.out[size_t(layer)]->get(), stream));
        REQUIRE(download(got_lse, t.lse[size_t(layer)]->get(), stream));
        const std::string name = what + " layer " + std::to_string(layer);
        CHECK(close(name + " out", got, want, kTolerance));
        CHECK(close(name + " lse", got_lse, want_lse, kTolerance));
    }
}

// Prompts of the given lengths, prefilled (K/V written, committed) through the C API, then one
// decode token appended to each. Returns the sequence ids.
std::vector<int64_t> prefilled_sequences(pagedkv_cache* cache, const std::vector<int32_t>& lengths,
                                         std::mt19937& rng) {
    std::vector<int64_t> ids;
    for (int32_t length : lengths) {
        std::vector<int32_t> prompt(static_cast<size_t>(length));
        for (auto& token : prompt) token = int32_t(rng() % 50000);
        int64_t id = 0;
        if (!ok(pagedkv_sequence_create(cache, prompt.data(), length, nullptr, 0, &id, nullptr),
                "pagedkv_sequence_create"))
            return {};
        ids.push_back(id);
    }
    pagedkv_batch* batch = nullptr;
    if (!ok(pagedkv_batch_create(cache, ids.data(), int32_t(ids.size()), &batch), "pagedkv_batch_create")) return {};
    const int64_t tokens = batch_info(batch).num_qo_tokens;
    pagedkv_attention_params params{};
    params.struct_size = sizeof params;
    params.num_qo_heads = kQoHeads;
    bool good = true;
    for (int32_t layer = 0; layer < kLayers && good; ++layer) {
        Tensor k(PAGEDKV_DTYPE_F32, tokens * kKvHeads * kHeadDim), v(PAGEDKV_DTYPE_F32, tokens * kKvHeads * kHeadDim);
        k.fill_random(rng, 1.0f);
        v.fill_random(rng, 1.0f);
        DeviceMemory dk(int64_t(k.bytes.size())), dv(int64_t(v.bytes.size()));
        good = cuda_ok(cudaMemcpy(dk.get(), k.data(), k.bytes.size(), cudaMemcpyHostToDevice), "cudaMemcpy") &&
               cuda_ok(cudaMemcpy(dv.get(), v.data(), v.bytes.size(), cudaMemcpyHostToDevice), "cudaMemcpy") &&
               ok(pagedkv_write_kv(cache, batch, layer, dk.get(), dv.get(), PAGEDKV_DTYPE_F32, &params),
                  "pagedkv_write_kv") &&
               cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    }
    good = good && ok(pagedkv_batch_commit(cache, batch), "pagedkv_batch_commit");
    pagedkv_batch_destroy(batch);
    for (int64_t id : ids) {
        const int32_t token = int32_t(rng() % 50000);
        good = good && ok(pagedkv_sequence_append(cache, id, &token, 1), "pagedkv_sequence_append");
    }
    return good ? ids : std::vector<int64_t>{};
}

void check_captured_decode(int32_t kv_split_size, uint32_t seed) {
    std::mt19937 rng(seed);
    CacheHolder holder;
    holder.cache = make_cache(400, kLayers, kKvHeads, kHeadDim);
    pagedkv_cache* cache = holder.cache;
    REQUIRE(cache != nullptr);
    pagedkv_cache_layout layout{};
    layout.struct_size = sizeof layout;
    REQUIRE(ok(pagedkv_cache_get_layout(cache, &layout), "pagedkv_cache_get_layout"));
    const std::vector<int64_t> ids = prefilled_sequences(cache, {37, 1000, 300, 5, 2500}, rng);
    REQUIRE(!ids.empty());

    StreamHolder streams;
    REQUIRE(streams.stream != nullptr);
    cudaStream_t stream = streams.stream;
    pagedkv_batch* batch = nullptr;
    REQUIRE(ok(pagedkv_batch_create_on_stream(cache, ids.data(), int32_t(ids.size()), stream, &batch),
               "pagedkv_batch_create_on_stream"));
    pagedkv_attention_params params{};
    params.struct_size = sizeof params;
    params.num_qo_heads = kQoHeads;
    params.q_dtype = params.out_dtype = PAGEDKV_DTYPE_F32;
    params.kv_split_size = kv_split_size;
    params.cuda_stream = stream;
    StepTensors tensors(int64_t(ids.size()));
    Tensor pool_before(kKvDtype, layout.pool_bytes / 2);
    const std::string what = "captured decode (kv_split_size " + std::to_string(kv_split_size) + ")";

    // Eager first: the same calls outside a graph (also the warm-up a serving loop does).
    CHECK(tensors.refill(rng, stream));
    CHECK(download(pool_before, layout.pool_base, stream));
    CHECK(run_step(cache, batch, params, tensors));
    CHECK(cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize"));
    check_step(cache, batch, layout, pool_before, tensors, stream, what + ", eager");

    // Capture. Global mode: any cudaMalloc, synchronization or legacy-stream work inside a kernel
    // call, from this thread or another, invalidates the capture.
    REQUIRE(cuda_ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture"));
    const bool captured_ok = run_step(cache, batch, params, tensors);
    // A batch cannot be built on a capturing stream: refused before anything is queued.
    pagedkv_batch* refused = nullptr;
    const int32_t refused_status =
        pagedkv_batch_create_on_stream(cache, ids.data(), int32_t(ids.size()), stream, &refused);
    cudaGraph_t graph = nullptr;
    const bool ended = cuda_ok(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
    CHECK(captured_ok);
    CHECK_EQ(refused_status, int32_t(PAGEDKV_ERR_INVALID_ARGUMENT));
    CHECK(refused == nullptr);
    REQUIRE(ended && graph != nullptr);
    size_t nodes = 0;
    CHECK(cuda_ok(cudaGraphGetNodes(graph, nullptr, &nodes), "cudaGraphGetNodes"));
    CHECK(nodes >= size_t(2 * kLayers));
    cudaGraphExec_t exec = nullptr;
    const bool instantiated = cuda_ok(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    cudaGraphDestroy(graph);
    REQUIRE(instantiated);

    // Replays with new inputs each time: the graph reads the buffers, not the values at capture.
    for (int replay = 0; replay < 3; ++replay) {
        CHECK(cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize"));
        CHECK(tensors.refill(rng, stream));
        CHECK(download(pool_before, layout.pool_base, stream));
        CHECK(cuda_ok(cudaGraphLaunch(exec, stream), "cudaGraphLaunch"));
        CHECK(cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize"));
        check_step(cache, batch, layout, pool_before, tensors, stream, what + ", replay " + std::to_string(replay));
    }
    cudaGraphExecDestroy(exec);
    CHECK(ok(pagedkv_batch_destroy(batch), "pagedkv_batch_destroy"));
    CHECK(cuda_ok(cudaGetLastError(), "cudaGetLastError"));
}

TEST(gpu_decode_step_captured_in_a_graph_matches_reference) {
    check_captured_decode(0, 1);    // auto: 5 sequences x 2 KV heads leave the chip idle, so it splits
    check_captured_decode(-1, 2);   // never split: one launch per layer
    check_captured_decode(64, 3);   // many chunks: scratch allocation and free nodes, the merge
}

// The metadata ring: batches built on a stream carry device arrays equal to their host arrays,
// through many create / destroy rounds (regions reused after their events), with several batches
// alive at once, and with two batches larger than half the initial ring (it grows).
TEST(gpu_batch_metadata_ring_serves_every_batch) {
    std::mt19937 rng(7);
    CacheHolder holder;
    // Small pages (1 layer, 1 KV head, head dim 8: 512 bytes), so long prompts fit easily.
    holder.cache = make_cache(150000, 1, 1, 8);
    pagedkv_cache* cache = holder.cache;
    REQUIRE(cache != nullptr);
    StreamHolder streams;
    REQUIRE(streams.stream != nullptr);
    cudaStream_t stream = streams.stream;

    auto new_sequence = [&](int64_t length) -> int64_t {
        std::vector<int32_t> prompt(static_cast<size_t>(length));
        for (auto& token : prompt) token = int32_t(rng() % 1000000);
        int64_t id = 0;
        return ok(pagedkv_sequence_create(cache, prompt.data(), length, nullptr, 0, &id, nullptr),
                  "pagedkv_sequence_create")
                   ? id
                   : 0;
    };
    auto same_on_device = [&](const pagedkv_batch* batch) {
        const pagedkv_batch_info info = batch_info(batch);
        auto compare = [&](const void* device, const void* host, size_t bytes, const char* name) {
            std::vector<uint8_t> got(bytes);
            if (bytes == 0) return true;
            if (!cuda_ok(cudaMemcpyAsync(got.data(), device, bytes, cudaMemcpyDeviceToHost, stream), "download") ||
                !cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize"))
                return false;
            if (std::memcmp(got.data(), host, bytes) == 0) return true;
            std::fprintf(stderr, "  batch array %s differs on the device\n", name);
            return false;
        };
        const size_t seqs = size_t(info.num_seqs);
        return compare(info.d_kv_indptr, info.kv_indptr, (seqs + 1) * 4, "kv_indptr") &&
               compare(info.d_kv_page_indices, info.kv_page_indices, size_t(info.num_pages) * 4, "kv_page_indices") &&
               compare(info.d_kv_last_page_len, info.kv_last_page_len, seqs * 4, "kv_last_page_len") &&
               compare(info.d_qo_indptr, info.qo_indptr, (seqs + 1) * 4, "qo_indptr") &&
               compare(info.d_slot_mapping, info.slot_mapping, size_t(info.num_qo_tokens) * 8, "slot_mapping") &&
               compare(info.d_kv_len, info.kv_len, seqs * 4, "kv_len");
    };

    std::vector<int64_t> small;
    for (int i = 0; i < 8; ++i) small.push_back(new_sequence(1 + int64_t(rng() % 3000)));
    for (int64_t id : small) REQUIRE(id > 0);
    // Rounds of create / check / destroy, keeping up to 3 batches alive: ~2000 batches of up to
    // ~100 KB wrap the 16 MiB ring many times.
    std::vector<pagedkv_batch*> alive;
    for (int round = 0; round < 2000; ++round) {
        std::vector<int64_t> members;
        for (int64_t id : small)
            if (rng() % 2) members.push_back(id);
        if (members.empty()) members.push_back(small[0]);
        pagedkv_batch* batch = nullptr;
        REQUIRE(ok(pagedkv_batch_create_on_stream(cache, members.data(), int32_t(members.size()), stream, &batch),
                   "pagedkv_batch_create_on_stream"));
        if (round % 97 == 0) CHECK(same_on_device(batch));
        alive.push_back(batch);
        if (alive.size() > 3) {
            CHECK(same_on_device(alive.front()));
            CHECK(ok(pagedkv_batch_destroy(alive.front()), "pagedkv_batch_destroy"));
            alive.erase(alive.begin());
        }
    }
    for (pagedkv_batch* batch : alive) CHECK(ok(pagedkv_batch_destroy(batch), "pagedkv_batch_destroy"));

    // Two live batches of ~9.1 MB each (1.1 million tokens to compute: 8.8 MB of slot mapping):
    // the second does not fit next to the first in 16 MiB, so the ring grows; both stay correct.
    const int64_t big_a = new_sequence(1100000), big_b = new_sequence(1100000);
    REQUIRE(big_a > 0 && big_b > 0);
    pagedkv_batch* first = nullptr;
    pagedkv_batch* second = nullptr;
    REQUIRE(ok(pagedkv_batch_create_on_stream(cache, &big_a, 1, stream, &first), "pagedkv_batch_create_on_stream"));
    REQUIRE(ok(pagedkv_batch_create_on_stream(cache, &big_b, 1, stream, &second), "pagedkv_batch_create_on_stream"));
    CHECK(same_on_device(first));
    CHECK(same_on_device(second));
    CHECK(ok(pagedkv_batch_destroy(first), "pagedkv_batch_destroy"));
    // And the null stream (pagedkv_batch_create): visible to every stream when it returns.
    pagedkv_batch* synchronous = nullptr;
    REQUIRE(ok(pagedkv_batch_create(cache, small.data(), int32_t(small.size()), &synchronous), "pagedkv_batch_create"));
    CHECK(same_on_device(synchronous));
    CHECK(same_on_device(second));
    CHECK(ok(pagedkv_batch_destroy(second), "pagedkv_batch_destroy"));
    CHECK(ok(pagedkv_batch_destroy(synchronous), "pagedkv_batch_destroy"));
}

// A tensor misaligned for the vector accesses of the plan is INVALID_ARGUMENT before anything is
// queued, whichever plan (unsplit, split + merge, cascade) would run; the context stays usable.
TEST(gpu_misaligned_tensors_are_rejected_before_any_launch) {
    std::mt19937 rng(11);
    CacheHolder holder;
    holder.cache = make_cache(400, kLayers, kKvHeads, kHeadDim);
    pagedkv_cache* cache = holder.cache;
    REQUIRE(cache != nullptr);
    const std::vector<int64_t> ids = prefilled_sequences(cache, {2000, 1500, 40}, rng);
    REQUIRE(!ids.empty());
    pagedkv_batch* batch = nullptr;
    REQUIRE(ok(pagedkv_batch_create(cache, ids.data(), int32_t(ids.size()), &batch), "pagedkv_batch_create"));
    StepTensors t(int64_t(ids.size()));
    CHECK(t.refill(rng, nullptr));
    CHECK(cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize"));
    pagedkv_attention_params params{};
    params.struct_size = sizeof params;
    params.num_qo_heads = kQoHeads;
    params.q_dtype = params.out_dtype = PAGEDKV_DTYPE_F32;
    char* q = static_cast<char*>(t.q->get());
    char* out = static_cast<char*>(t.out[0]->get());
    float* lse = static_cast<float*>(t.lse[0]->get());
    using Kernel = int32_t (*)(pagedkv_cache*, const pagedkv_batch*, int32_t, const pagedkv_attention_params*,
                               const void*, void*, float*);
    for (Kernel kernel : {Kernel(pagedkv_decode_attention), Kernel(pagedkv_prefill_attention),
                          Kernel(pagedkv_cascade_attention)}) {
        for (int32_t split : {-1, 0, 64}) {
            params.kv_split_size = split;
            CHECK_EQ(kernel(cache, batch, 0, &params, q, out + 4, lse), int32_t(PAGEDKV_ERR_INVALID_ARGUMENT));
            CHECK_EQ(kernel(cache, batch, 0, &params, q + 8, out, lse), int32_t(PAGEDKV_ERR_INVALID_ARGUMENT));
            CHECK_EQ(kernel(cache, batch, 0, &params, q, out, reinterpret_cast<float*>(reinterpret_cast<char*>(lse) + 2)),
                     int32_t(PAGEDKV_ERR_INVALID_ARGUMENT));
            CHECK(std::string(pagedkv_last_error()).find("aligned") != std::string::npos);
            CHECK(ok(kernel(cache, batch, 0, &params, q, out, lse), "aligned attention"));
        }
    }
    // write_kv: f32 sources need 4-byte alignment (16 bytes only for the vector path).
    CHECK_EQ(pagedkv_write_kv(cache, batch, 0, static_cast<char*>(t.k[0]->get()) + 2, t.v[0]->get(),
                              PAGEDKV_DTYPE_F32, &params),
             int32_t(PAGEDKV_ERR_INVALID_ARGUMENT));
    CHECK(ok(pagedkv_write_kv(cache, batch, 0, static_cast<char*>(t.k[0]->get()) + 4,
                              static_cast<char*>(t.v[0]->get()) + 4, PAGEDKV_DTYPE_F32, &params),
             "write_kv with 4-byte aligned sources"));
    CHECK(cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize after the rejected calls"));
    CHECK(ok(pagedkv_batch_destroy(batch), "pagedkv_batch_destroy"));
}

}  // namespace

int main(int argc, char** argv) { return gpu_fixture::run_gpu_tests(argc, argv); }
