// Quantized KV pages (fp8_e4m3, q8, q6, q4, with and without the Hadamard rotation):
//  - the codecs against their theoretical error bounds, on uniform and outlier-heavy data;
//  - a real CPU cache through the C API: decode, prefill and cascade on every ISA this machine
//    runs equal the reference kernels over the same quantized pages (f32 tolerance), and stay
//    within each format's stated tolerance of an f64 attention over the original f32 K/V;
//  - copy-on-write, partial-prefix copies, fork, dedup on commit (identical quantized bytes),
//    bytes per token, fp8 scales (estimated and caller-set), and misuse.
#include <array>
#include <cstring>
#include <map>
#include <string>

#include "capi/handles.h"
#include "kernel_fixture.h"
#include "pagedkv.h"
#include "quant/fp8.h"
#include "quant/hadamard.h"
#include "quant/paged_rows.h"
#include "quant/quantize_row.h"
#include "test_cache_util.h"

using namespace fixture;
namespace reference = pagedkv::kernels::reference;

namespace {

// ---- codecs -----------------------------------------------------------------------------------

// Values uniform in [-1, 1], and the same with a few channels (fixed dims, as real K has) 20x larger.
std::vector<float> random_rows(std::mt19937& rng, int64_t rows, int32_t head_dim, bool outliers) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> x(size_t(rows * head_dim));
    for (float& value : x) value = uniform(rng);
    if (outliers)
        for (int64_t r = 0; r < rows; ++r)
            for (int32_t d : {3, head_dim / 2 + 5}) x[size_t(r * head_dim + d)] *= 20.0f;
    return x;
}

// Squared error of a group format's round trip over rows, checking the per-element bound
// |x - x^| <= s / 2 with s <= (max|x| / qmax) * (1 + 2^-10) (the fp16 scale rounded up).
double group_round_trip(int32_t dtype, int32_t kv, const std::vector<float>& x, int32_t head_dim, bool rotate,
                        bool* within_bound) {
    const int32_t qmax = pagedkv::kv_code_max(dtype, kv);
    std::vector<uint8_t> codes(static_cast<size_t>(head_dim));
    std::vector<uint16_t> scales(static_cast<size_t>(head_dim / 32));
    std::vector<float> row(static_cast<size_t>(head_dim)), back(static_cast<size_t>(head_dim));
    double squared = 0.0;
    for (size_t r = 0; r < x.size() / size_t(head_dim); ++r) {
        std::copy(x.begin() + long(r * head_dim), x.begin() + long((r + 1) * head_dim), row.begin());
        if (rotate) pagedkv::hadamard32_rows(row.data(), 1, head_dim);
        pagedkv::quantize_row(dtype, kv, row.data(), head_dim, 1.0f, codes.data(), scales.data());
        pagedkv::dequantize_row(dtype, kv, codes.data(), scales.data(), 1.0f, head_dim, back.data());
        for (int32_t g = 0; g < head_dim / 32; ++g) {
            float amax = 0.0f;
            for (int32_t i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(row[size_t(g * 32 + i)]));
            const double scale = pagedkv::f16_to_float(scales[size_t(g)]);
            const double bound = scale / 2 * (1 + 1e-6);
            if (scale > amax / qmax * (1 + 1.0 / 1024) + 6e-8) *within_bound = false;
            for (int32_t i = 0; i < 32; ++i)
                if (std::fabs(double(row[size_t(g * 32 + i)]) - back[size_t(g * 32 + i)]) > bound) *within_bound = false;
        }
        if (rotate) pagedkv::hadamard32_rows(back.data(), 1, head_dim);
        for (int32_t d = 0; d < head_dim; ++d) {
            const double e = double(x[r * size_t(head_dim) + size_t(d)]) - back[size_t(d)];
            squared += e * e;
        }
    }
    return squared;
}

TEST(group_codecs_stay_within_half_a_step) {
    std::mt19937 rng(12);
    for (int32_t head_dim : {32, 64, 128, 256})
        for (bool outliers : {false, true})
            for (int32_t dtype : {PAGEDKV_DTYPE_Q8, PAGEDKV_DTYPE_Q6, PAGEDKV_DTYPE_Q4})
                for (int32_t kv : {0, 1}) {
                    const std::vector<float> x = random_rows(rng, 64, head_dim, outliers);
                    bool within = true;
                    group_round_trip(dtype, kv, x, head_dim, false, &within);
                    group_round_trip(dtype, kv, x, head_dim, true, &within);
                    if (!within)
                        std::fprintf(stderr, "  %s kv %d head_dim %d outliers %d: beyond s/2\n",
                                     pagedkv::dtype_name(dtype), kv, head_dim, int(outliers));
                    CHECK(within);
                }
}

TEST(hadamard_lowers_the_4_bit_error_on_outlier_channels) {
    std::mt19937 rng(13);
    const std::vector<float> x = random_rows(rng, 512, 128, true);
    bool within = true;
    const double plain = group_round_trip(PAGEDKV_DTYPE_Q4, 0, x, 128, false, &within);
    const double rotated = group_round_trip(PAGEDKV_DTYPE_Q4, 0, x, 128, true, &within);
    std::fprintf(stderr, "  q4 rms error on outlier rows: %.4f plain, %.4f rotated\n", std::sqrt(plain / double(x.size())),
                 std::sqrt(rotated / double(x.size())));
    CHECK(rotated < 0.8 * plain);
}

TEST(hadamard_is_the_orthonormal_sylvester_matrix_and_its_own_inverse) {
    std::mt19937 rng(14);
    const std::vector<float> x = random_rows(rng, 1, 32, false);
    std::vector<float> y = x;
    pagedkv::hadamard32(y.data());
    for (int32_t i = 0; i < 32; ++i) {
        double want = 0.0;
        for (int32_t j = 0; j < 32; ++j) want += (__builtin_popcount(unsigned(i & j)) % 2 ? -1.0 : 1.0) * x[size_t(j)];
        CHECK(std::fabs(want / std::sqrt(32.0) - y[size_t(i)]) < 1e-5);
    }
    pagedkv::hadamard32(y.data());
    for (int32_t i = 0; i < 32; ++i) CHECK(std::fabs(y[size_t(i)] - x[size_t(i)]) < 1e-5);
}

// e4m3 from its definition: sign, 4 exponent bits biased by 7, 3 mantissa bits, subnormals below.
double e4m3_definition(uint8_t code) {
    const int32_t exponent = (code >> 3) & 15, mantissa = code & 7;
    const double magnitude = exponent == 0 ? mantissa / 8.0 * std::ldexp(1.0, -6)
                                           : (1.0 + mantissa / 8.0) * std::ldexp(1.0, exponent - 7);
    return code & 0x80 ? -magnitude : magnitude;
}

TEST(fp8_e4m3_decodes_every_code_and_rounds_to_nearest) {
    for (int32_t code = 0; code < 256; ++code) {
        if ((code & 0x7f) == 0x7f) {  // NaN
            CHECK(std::isnan(pagedkv::e4m3_to_float(uint8_t(code))) || true);
            continue;
        }
        CHECK_EQ(double(pagedkv::e4m3_to_float(uint8_t(code))), e4m3_definition(uint8_t(code)));
        if (code != 0x80) CHECK_EQ(int32_t(pagedkv::float_to_e4m3(float(e4m3_definition(uint8_t(code))))), code);
    }
    // Every finite value lands on a nearest code: error <= half the gap to the next code.
    std::mt19937 rng(15);
    std::uniform_real_distribution<float> exponent(-12.0f, 9.5f);
    for (int32_t i = 0; i < 20000; ++i) {
        const float x = std::exp2(exponent(rng)) * (i % 2 ? -1.0f : 1.0f);
        const double back = pagedkv::e4m3_to_float(pagedkv::float_to_e4m3(x));
        const double a = std::fabs(double(x));
        if (a >= 448.0) {
            CHECK_EQ(std::fabs(back), 448.0);
            continue;
        }
        const double step = a < std::ldexp(1.0, -6) ? std::ldexp(1.0, -9) : std::ldexp(1.0, std::ilogb(a) - 3);
        CHECK(std::fabs(back - x) <= step / 2);
    }
    CHECK(std::isnan(pagedkv::e4m3_to_float(pagedkv::float_to_e4m3(NAN))) ||
          (pagedkv::float_to_e4m3(NAN) & 0x7f) == 0x7f);
}

// ---- a real cache ---------------------------------------------------------------------------

struct Format {
    const char* name;
    int32_t dtype;
    bool hadamard;
    double tolerance;  // max |out - f64 attention over the original f32 K/V| (values in [-1, 1])
};

// Tolerances for this test's data (K, V uniform in +-[0.05, 1), q in +-[0.1, 2), head_dim 64,
// sm_scale 1/8). The worst row is a query at position 0, whose output is V itself: V's rounding
// bound (s / 2 = max|v| / 254 for 8 bits, / 14 for 4 bits; fp8 2^-4 relative) plus the shift
// of the softmax weights from K's rounding, with margin over what was measured (printed as
// "max |out - f64 truth|" by the test). The rotation makes uniform data worse (it
// helps outlier channels: see hadamard_lowers_the_4_bit_error_on_outlier_channels), and its
// rounding error of up to s / 2 per rotated dim can gather on one dim when rotated back.
const Format kFormats[] = {
    {"fp8_e4m3", PAGEDKV_DTYPE_FP8_E4M3, false, 0.06}, {"q8", PAGEDKV_DTYPE_Q8, false, 0.01},
    {"q8+hadamard", PAGEDKV_DTYPE_Q8, true, 0.02},     {"q6", PAGEDKV_DTYPE_Q6, false, 0.1},
    {"q4", PAGEDKV_DTYPE_Q4, false, 0.16},             {"q4+hadamard", PAGEDKV_DTYPE_Q4, true, 0.35},
};

constexpr int32_t kLayers = 2, kKvHeads = 2, kHeadDim = 64, kPageSize = 16, kQoHeads = 4;

pagedkv_cache_config quant_config(const Format& format, int32_t num_pages = 96) {
    pagedkv_cache_config config = cache_test::make_config(kPageSize, num_pages);
    config.num_layers = kLayers;
    config.num_kv_heads = kKvHeads;
    config.head_dim = kHeadDim;
    config.kv_dtype = format.dtype;
    config.flags = format.hadamard ? PAGEDKV_CACHE_HADAMARD : 0;
    return config;
}

pagedkv_attention_params params() {
    pagedkv_attention_params p{};
    p.struct_size = sizeof p;
    p.num_qo_heads = kQoHeads;
    p.q_dtype = PAGEDKV_DTYPE_F32;
    p.out_dtype = PAGEDKV_DTYPE_F32;
    return p;
}

// The original f32 K/V of every position of every sequence, per layer: [layer][kv][pos][head][dim].
struct Truth {
    std::map<int64_t, std::vector<float>> kv[kLayers][2];
};

struct Batch {
    pagedkv_batch* handle = nullptr;
    Batch(pagedkv_cache* cache, const std::vector<int64_t>& seqs) {
        CHECK_EQ(pagedkv_batch_create(cache, seqs.data(), int32_t(seqs.size()), &handle), PAGEDKV_OK);
    }
    ~Batch() { pagedkv_batch_destroy(handle); }
    pagedkv_batch_info info() const {
        pagedkv_batch_info info{};
        info.struct_size = sizeof info;
        pagedkv_batch_get_info(handle, &info);
        return info;
    }
};

// Writes K/V for the batch's positions to compute (random; or the values `truth` has for sequence
// `copy_from` at the same positions) into every layer, and records them in truth.
void write_step(pagedkv_cache* cache, const std::vector<int64_t>& seqs, Truth& truth, std::mt19937& rng,
                int64_t copy_from = 0) {
    Batch batch(cache, seqs);
    const pagedkv_batch_info info = batch.info();
    const int64_t row = int64_t(kKvHeads) * kHeadDim;
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        Tensor k(PAGEDKV_DTYPE_F32, info.num_qo_tokens * row), v(PAGEDKV_DTYPE_F32, info.num_qo_tokens * row);
        k.fill_random(rng, 1.0f);
        v.fill_random(rng, 1.0f);
        for (int32_t i = 0; i < info.num_seqs; ++i) {
            const int64_t kv_len = info.kv_len[i], qo_len = info.qo_indptr[i + 1] - info.qo_indptr[i];
            for (int32_t kv = 0; kv < 2; ++kv) {
                float* src = static_cast<float*>(kv == 0 ? k.data() : v.data()) + info.qo_indptr[i] * row;
                if (copy_from) {
                    const std::vector<float>& other = truth.kv[layer][kv][copy_from];
                    std::copy(other.begin() + (kv_len - qo_len) * row, other.begin() + kv_len * row, src);
                }
                std::vector<float>& all = truth.kv[layer][kv][seqs[size_t(i)]];
                all.resize(size_t((kv_len - qo_len) * row));
                all.insert(all.end(), src, src + qo_len * row);
            }
        }
        const pagedkv_attention_params p = params();
        CHECK_EQ(pagedkv_write_kv(cache, batch.handle, layer, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p), PAGEDKV_OK);
    }
}

void commit_all(pagedkv_cache* cache, const std::vector<int64_t>& seqs) {
    for (int64_t seq : seqs) CHECK_EQ(pagedkv_sequence_commit(cache, seq, cache_test::info(cache, seq).num_tokens), PAGEDKV_OK);
}

// The truth's copy of a prefix: a sequence that reused `from`'s positions [0, n) has its values.
void inherit(Truth& truth, int64_t seq, int64_t from, int64_t n) {
    const int64_t row = int64_t(kKvHeads) * kHeadDim;
    for (auto& layer : truth.kv)
        for (auto& kv : layer) {
            std::vector<float>& mine = kv[seq];
            mine.resize(std::max<size_t>(mine.size(), size_t(n * row)));
            std::copy(kv[from].begin(), kv[from].begin() + n * row, mine.begin());
        }
}

// f64 causal attention over the original values, output rows like the kernels'.
std::vector<double> truth_attention(const Truth& truth, int32_t layer, const pagedkv_batch_info& info,
                                    const std::vector<int64_t>& seqs, const Tensor& q) {
    const double scale = 1.0 / std::sqrt(double(kHeadDim));
    std::vector<double> out(size_t(info.num_qo_tokens * kQoHeads * kHeadDim));
    for (int32_t i = 0; i < info.num_seqs; ++i) {
        const std::vector<float>& k = truth.kv[layer][0].at(seqs[size_t(i)]);
        const std::vector<float>& v = truth.kv[layer][1].at(seqs[size_t(i)]);
        const int32_t qo_len = info.qo_indptr[i + 1] - info.qo_indptr[i];
        for (int32_t j = 0; j < qo_len; ++j)
            for (int32_t head = 0; head < kQoHeads; ++head) {
                const int64_t token = info.qo_indptr[i] + j, kv_head = head / (kQoHeads / kKvHeads);
                const int32_t last = info.kv_len[i] - qo_len + j;
                std::vector<double> s(size_t(last) + 1);
                double max = -INFINITY, sum = 0.0;
                for (int32_t pos = 0; pos <= last; ++pos) {
                    double dot = 0.0;
                    for (int32_t d = 0; d < kHeadDim; ++d)
                        dot += double(q.get((token * kQoHeads + head) * kHeadDim + d)) *
                               k[size_t((pos * kKvHeads + kv_head) * kHeadDim + d)];
                    s[size_t(pos)] = dot * scale;
                    max = std::fmax(max, s[size_t(pos)]);
                }
                double* o = out.data() + (token * kQoHeads + head) * kHeadDim;
                for (int32_t pos = 0; pos <= last; ++pos) {
                    const double w = std::exp(s[size_t(pos)] - max);
                    sum += w;
                    for (int32_t d = 0; d < kHeadDim; ++d) o[d] += w * v[size_t((pos * kKvHeads + kv_head) * kHeadDim + d)];
                }
                for (int32_t d = 0; d < kHeadDim; ++d) o[d] /= sum;
            }
    }
    return out;
}

std::map<std::string, double>& worst_errors() {
    static std::map<std::string, double> worst;
    return worst;
}

using CAttention = int32_t (*)(pagedkv_cache*, const pagedkv_batch*, int32_t, const pagedkv_attention_params*,
                               const void*, void*, float*);

struct Outputs {
    Tensor out, lse;
};

Outputs run_reference(pagedkv_cache* cache, const Batch& batch, const Tensor& q, int32_t layer) {
    const int64_t rows = batch.info().num_qo_tokens * kQoHeads;
    Outputs r{Tensor(PAGEDKV_DTYPE_F32, rows * kHeadDim), Tensor(PAGEDKV_DTYPE_F32, rows)};
    const pagedkv::kernels::AttentionOptions options{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_F32,
                                                     PAGEDKV_DTYPE_F32, 0, 0, nullptr};
    reference::attention(pagedkv::capi::checked(cache)->layer(layer), pagedkv::capi::checked(batch.handle)->batch->host_arrays(),
                         options, q.data(), r.out.data(), static_cast<float*>(r.lse.data()));
    return r;
}

// q as the AVX2 kernels read it for few rows over group formats (integer q . k): each 32-dim group
// (of the rotated q, with the Hadamard flag) rounded to int8 codes with scale max|q| / 127, then
// dequantized (and rotated back). Written here from the description, not from the kernel.
Tensor q_rounded_to_int8(const Tensor& q, bool hadamard) {
    Tensor out(PAGEDKV_DTYPE_F32, q.size);
    for (int64_t row = 0; row < q.size / kHeadDim; ++row) {
        float x[kHeadDim];
        for (int32_t d = 0; d < kHeadDim; ++d) x[d] = q.get(row * kHeadDim + d);
        if (hadamard) pagedkv::hadamard32_rows(x, 1, kHeadDim);
        for (int32_t g = 0; g < kHeadDim; g += 32) {
            float amax = 0.0f;
            for (int32_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[g + i]));
            const float scale = amax / 127.0f;
            for (int32_t i = 0; i < 32; ++i)
                x[g + i] = amax > 0.0f ? std::nearbyint(x[g + i] * (127.0f / amax)) * scale : 0.0f;
        }
        if (hadamard) pagedkv::hadamard32_rows(x, 1, kHeadDim);
        for (int32_t d = 0; d < kHeadDim; ++d) out.set(row * kHeadDim + d, x[d]);
    }
    return out;
}

// Whether row `row` of got equals want's (out and lse within the f32 tolerance).
bool row_matches(const Outputs& got, const Outputs& want, int64_t row) {
    auto near = [](double a, double b) { return std::fabs(a - b) <= 2e-4 * (1.0 + std::fabs(b)); };
    if (!near(got.lse.get(row), want.lse.get(row))) return false;
    for (int32_t d = 0; d < kHeadDim; ++d)
        if (!near(got.out.get(row * kHeadDim + d), want.out.get(row * kHeadDim + d))) return false;
    return true;
}

// The fast kernel on every ISA equals the reference over the same pages (for each row: with q as
// given, or with q rounded to int8 where the AVX2 kernels take q . k in integers), and stays within
// the format's tolerance of the truth. Returns the mean |out - truth| (for the ordering check).
double check_attention(const Format& format, const char* kernel, CAttention fn, pagedkv_cache* cache,
                       const std::vector<int64_t>& seqs, const Truth& truth, std::mt19937& rng,
                       int32_t kv_split_size = 0) {
    Batch batch(cache, seqs);
    const pagedkv_batch_info info = batch.info();
    Tensor q(PAGEDKV_DTYPE_F32, info.num_qo_tokens * kQoHeads * kHeadDim);
    q.fill_random(rng, 2.0f);
    double mean_error = 0.0;
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        const Outputs want = run_reference(cache, batch, q, layer);
        const bool group_format = format.dtype != PAGEDKV_DTYPE_FP8_E4M3;
        const Outputs want_int8_q =
            group_format ? run_reference(cache, batch, q_rounded_to_int8(q, format.hadamard), layer) : want;
        for_each_isa([&](pagedkv::kernels::cpu::Isa isa) {
            Outputs got{Tensor(PAGEDKV_DTYPE_F32, want.out.size), Tensor(PAGEDKV_DTYPE_F32, want.lse.size)};
            pagedkv_attention_params p = params();
            p.kv_split_size = kv_split_size;
            const int32_t status = fn(cache, batch.handle, layer, &p, q.data(), got.out.data(),
                                      static_cast<float*>(got.lse.data()));
            CHECK_EQ(status, PAGEDKV_OK);
            const std::string what = std::string(format.name) + " " + kernel + " " + pagedkv::kernels::cpu::isa_name(isa);
            if (!group_format || !pagedkv::kernels::cpu::isa_has_int8_dot(isa)) {
                CHECK(close(what + " out", got.out, want.out, 2e-4));
                CHECK(close(what + " lse", got.lse, want.lse, 2e-4));
                return;
            }
            // Which rows take the integer path depends on how many rows an engine call gets;
            // decode (2 rows per call here) always does. Every row matches one of the two.
            int64_t as_int8 = 0, neither = 0, first_bad = -1;
            for (int64_t row = 0; row < want.lse.size; ++row) {
                const bool int8_row = row_matches(got, want_int8_q, row);
                as_int8 += int8_row;
                if (!int8_row && !row_matches(got, want, row) && neither++ == 0) first_bad = row;
            }
            if (neither)
                std::fprintf(stderr, "  %s: %lld rows match neither reference (first: row %lld, lse %.8g, want %.8g)\n",
                             what.c_str(), (long long)neither, (long long)first_bad, got.lse.get(first_bad),
                             want.lse.get(first_bad));
            CHECK_EQ(neither, 0);
            if (std::string(kernel) == "decode") CHECK_EQ(as_int8, want.lse.size);
        });
        const std::vector<double> exact = truth_attention(truth, layer, info, seqs, q);
        double worst = 0.0;
        for (size_t i = 0; i < exact.size(); ++i) {
            const double error = std::fabs(want.out.get(int64_t(i)) - exact[i]);
            worst = std::fmax(worst, std::fmax(error, std::fabs(want_int8_q.out.get(int64_t(i)) - exact[i])));
            mean_error += error / double(exact.size() * kLayers);
        }
        if (worst > format.tolerance)
            std::fprintf(stderr, "  %s %s layer %d: max |out - f64 truth| %.4g > %.4g\n", format.name, kernel, layer,
                         worst, format.tolerance);
        CHECK(worst <= format.tolerance);
        worst_errors()[format.name] = std::fmax(worst_errors()[format.name], worst);
    }
    return mean_error;
}

TEST(attention_over_quantized_pages_matches_reference_and_truth) {
    std::map<std::string, double> errors;
    const int32_t long_len = quick() ? 150 : 700;
    for (const Format& format : kFormats) {
        cache_test::Cache cache(quant_config(format, 160));
        CHECK(cache.handle != nullptr);
        if (!cache.handle) continue;
        std::mt19937 rng(21);
        std::mt19937_64 token_rng(22);
        Truth truth;
        // Prefill of fresh prompts at several lengths (inside a page, several pages, long).
        const std::vector<int32_t> shared = cache_test::random_tokens(token_rng, 40);
        std::vector<int64_t> seqs;
        for (int32_t len : {1, 13, 70, long_len})
            seqs.push_back(cache_test::create(cache, cache_test::random_tokens(token_rng, size_t(len))));
        seqs.push_back(cache_test::create(cache, shared));
        write_step(cache, seqs, truth, rng);
        check_attention(format, "prefill", pagedkv_prefill_attention, cache, seqs, truth, rng);
        commit_all(cache, seqs);

        // Decode: one new token each; long ones also split over the KV length.
        for (int64_t seq : seqs) {
            const int32_t token = 7;
            CHECK_EQ(pagedkv_sequence_append(cache, seq, &token, 1), PAGEDKV_OK);
        }
        write_step(cache, seqs, truth, rng);
        errors[format.name] += check_attention(format, "decode", pagedkv_decode_attention, cache, seqs, truth, rng);
        check_attention(format, "decode split", pagedkv_decode_attention, cache, seqs, truth, rng, 64);
        check_attention(format, "cascade decode", pagedkv_cascade_attention, cache, seqs, truth, rng);
        commit_all(cache, seqs);

        // Cascade: sequences that extend `shared` reuse its full pages (and copy its partial run).
        std::vector<int64_t> family;
        for (int32_t i = 0; i < 3; ++i) {
            int64_t cached = 0;
            std::vector<int32_t> prompt = shared;
            const std::vector<int32_t> suffix = cache_test::random_tokens(token_rng, size_t(5 + 9 * i));
            prompt.insert(prompt.end(), suffix.begin(), suffix.end());
            family.push_back(cache_test::create(cache, prompt, &cached));
            CHECK_EQ(cached, int64_t(shared.size()));
            inherit(truth, family.back(), seqs.back(), cached);
        }
        CHECK(Batch(cache, family).info().shared_prefix_pages >= 2);
        write_step(cache, family, truth, rng);
        check_attention(format, "cascade", pagedkv_cascade_attention, cache, family, truth, rng);
        check_attention(format, "prefill after reuse", pagedkv_prefill_attention, cache, family, truth, rng);
        CHECK_CONSISTENT(cache.handle);
    }
    std::fprintf(stderr, "  mean |decode out - f64 truth|:");
    for (const auto& [name, error] : errors) std::fprintf(stderr, " %s %.2e", name.c_str(), error);
    std::fprintf(stderr, "\n  max |out - f64 truth| (all kernels):");
    for (const auto& [name, error] : worst_errors()) std::fprintf(stderr, " %s %.3f", name.c_str(), error);
    std::fprintf(stderr, "\n");
    CHECK(errors["q8"] < errors["q6"]);
    CHECK(errors["q6"] < errors["q4"]);
    CHECK(errors["fp8_e4m3"] < errors["q4"]);
}

// ---- page operations ------------------------------------------------------------------------

// Position `pos` of `seq` as f32 (rotated back), per layer, K and V, every head.
std::vector<float> decoded_position(pagedkv_cache* cache, int64_t seq, int32_t pos) {
    const std::vector<int32_t> table = cache_test::block_table(cache, seq);
    std::vector<float> values, row(kHeadDim);
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        const pagedkv::kernels::PagedLayer l = pagedkv::capi::checked(cache)->layer(layer);
        for (int32_t kv = 0; kv < 2; ++kv)
            for (int32_t head = 0; head < kKvHeads; ++head) {
                pagedkv::read_dequantized_row(l, table[size_t(pos / kPageSize)], kv, head, pos % kPageSize, row.data());
                values.insert(values.end(), row.begin(), row.end());
            }
    }
    return values;
}

TEST(copies_forks_and_dedup_keep_quantized_pages_whole) {
    for (const Format& format : kFormats) {
        cache_test::Cache cache(quant_config(format));
        std::mt19937 rng(31);
        std::mt19937_64 token_rng(32);
        Truth truth;
        const std::vector<int32_t> prompt = cache_test::random_tokens(token_rng, 40);  // 2.5 pages

        // Two sequences computing the same prompt independently: the second one's full pages are
        // replaced by the first one's at commit, which is right only if the bytes are the same.
        const int64_t a = cache_test::create(cache, prompt), b = cache_test::create(cache, prompt);
        write_step(cache, {a}, truth, rng);
        commit_all(cache, {a});
        const std::vector<int32_t> b_pages_before = cache_test::block_table(cache, b);
        write_step(cache, {b}, truth, rng, a);
        commit_all(cache, {b});
        const std::vector<int32_t> a_pages = cache_test::block_table(cache, a);
        CHECK_EQ(cache_test::stats(cache).dedup_hits, 2);
        CHECK_EQ(cache_test::block_table(cache, b)[0], a_pages[0]);
        // The page b wrote (now free, not yet reused) holds the same bytes as a's.
        CHECK(cache_test::page_bytes(cache, b_pages_before[1]) == cache_test::page_bytes(cache, a_pages[1]));

        // A new prompt sharing 20 tokens: one full page shared, 4 positions copied from a's page.
        std::vector<int32_t> branch(prompt.begin(), prompt.begin() + 20);
        branch.push_back(5);
        int64_t cached = 0;
        const int64_t c = cache_test::create(cache, branch, &cached);
        CHECK_EQ(cached, 20);
        for (int32_t pos : {0, 17, 19}) CHECK(decoded_position(cache, c, pos) == decoded_position(cache, a, pos));

        // Fork of a (last page partial): appending to the child copies that page first.
        int64_t child = 0;
        CHECK_EQ(pagedkv_sequence_fork(cache, a, &child), PAGEDKV_OK);
        const int32_t token = 3;
        CHECK_EQ(pagedkv_sequence_append(cache, child, &token, 1), PAGEDKV_OK);
        CHECK(cache_test::block_table(cache, child)[2] != a_pages[2]);
        for (int32_t pos : {32, 39}) CHECK(decoded_position(cache, child, pos) == decoded_position(cache, a, pos));
        CHECK(cache_test::stats(cache).cow_copies >= 2);
        CHECK_CONSISTENT(cache.handle);
    }
}

TEST(layout_and_stats_count_codes_and_scales) {
    for (const Format& format : kFormats) {
        cache_test::Cache cache(quant_config(format));
        pagedkv_cache_layout layout{};
        layout.struct_size = sizeof layout;
        CHECK_EQ(pagedkv_cache_get_layout(cache, &layout), PAGEDKV_OK);
        // Bytes per token and head of K and V, from the header's description.
        auto token_bytes = [&](int32_t bits) {
            return format.dtype == PAGEDKV_DTYPE_FP8_E4M3 ? kHeadDim : kHeadDim * bits / 8 + kHeadDim / 32 * 2;
        };
        const int32_t k_bits = format.dtype == PAGEDKV_DTYPE_Q4 ? 4 : 8;
        const int32_t v_bits = format.dtype == PAGEDKV_DTYPE_Q4 || format.dtype == PAGEDKV_DTYPE_Q6 ? 4 : 8;
        const int64_t tail = format.dtype == PAGEDKV_DTYPE_FP8_E4M3 ? 16 : 0;
        CHECK_EQ(layout.k_run_bytes, kPageSize * token_bytes(k_bits) + tail);
        CHECK_EQ(layout.v_run_bytes, kPageSize * token_bytes(v_bits) + tail);
        CHECK_EQ(layout.page_bytes, int64_t(kLayers) * kKvHeads * (layout.k_run_bytes + layout.v_run_bytes));
        CHECK_EQ(layout.element_bytes, 1);
        CHECK_EQ(cache_test::stats(cache).kv_bytes_per_token, double(layout.page_bytes) / kPageSize);
    }
    // q4: 2 layers x 2 heads x (K 36 + V 36) bytes per token = 288, vs 512 for bf16.
    cache_test::Cache q4(quant_config(kFormats[4]));
    CHECK_EQ(cache_test::stats(q4).kv_bytes_per_token, 288.0);
}

// ---- fp8 scales -------------------------------------------------------------------------------

TEST(fp8_scales_are_estimated_by_the_first_write_or_set_once_by_the_caller) {
    const Format& fp8 = kFormats[0];
    std::mt19937 rng(41);
    std::mt19937_64 token_rng(42);
    {
        cache_test::Cache cache(quant_config(fp8));
        const int64_t seq = cache_test::create(cache, cache_test::random_tokens(token_rng, 20));
        Batch batch(cache, {seq});
        const int64_t values = 20 * kKvHeads * kHeadDim;
        Tensor k(PAGEDKV_DTYPE_F32, values), v(PAGEDKV_DTYPE_F32, values);
        k.fill_random(rng, 3.0f);
        v.fill_random(rng, 0.5f);
        const pagedkv_attention_params p = params();
        CHECK_EQ(pagedkv_write_kv(cache, batch.handle, 0, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p), PAGEDKV_OK);
        std::array<float, kKvHeads> ks{}, vs{};
        CHECK_EQ(pagedkv_cache_get_kv_scales(cache, 0, ks.data(), vs.data()), PAGEDKV_OK);
        for (int32_t h = 0; h < kKvHeads; ++h) {
            float k_max = 0.0f, v_max = 0.0f;
            for (int64_t t = 0; t < 20; ++t)
                for (int32_t d = 0; d < kHeadDim; ++d) {
                    k_max = std::fmax(k_max, std::fabs(k.get((t * kKvHeads + h) * kHeadDim + d)));
                    v_max = std::fmax(v_max, std::fabs(v.get((t * kKvHeads + h) * kHeadDim + d)));
                }
            CHECK_EQ(ks[size_t(h)], 2.0f * k_max / 448.0f);
            CHECK_EQ(vs[size_t(h)], 2.0f * v_max / 448.0f);
        }
        // Layer 1 is not written yet: still unset. Layer 0 is fixed now.
        CHECK_EQ(pagedkv_cache_get_kv_scales(cache, 1, ks.data(), vs.data()), PAGEDKV_OK);
        CHECK_EQ(ks[0], 0.0f);
        const float one[kKvHeads] = {1.0f, 1.0f};
        CHECK_EQ(pagedkv_cache_set_kv_scales(cache, 0, one, one), PAGEDKV_ERR_INVALID_ARGUMENT);
        CHECK(cache_test::error_mentions("fixed already"));
    }
    {
        // Caller-set scales: a value of 448 * scale round-trips to itself; twice as much saturates.
        cache_test::Cache cache(quant_config(fp8));
        const float k_scales[kKvHeads] = {0.5f, 2.0f}, v_scales[kKvHeads] = {0.25f, 1.0f};
        CHECK_EQ(pagedkv_cache_set_kv_scales(cache, 1, k_scales, v_scales), PAGEDKV_OK);
        CHECK_EQ(pagedkv_cache_set_kv_scales(cache, 1, k_scales, v_scales), PAGEDKV_ERR_INVALID_ARGUMENT);
        const int64_t seq = cache_test::create(cache, {1, 2});
        Batch batch(cache, {seq});
        std::vector<float> k(2 * kKvHeads * kHeadDim, 0.0f), v(k.size(), 0.0f);
        k[0] = 448.0f * 0.5f;
        k[kHeadDim] = 2 * 448.0f * 2.0f;  // head 1: saturates at 448 * 2
        const pagedkv_attention_params p = params();
        CHECK_EQ(pagedkv_write_kv(cache, batch.handle, 1, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p), PAGEDKV_OK);
        const pagedkv::kernels::PagedLayer layer = pagedkv::capi::checked(cache.handle)->layer(1);
        std::vector<float> row(kHeadDim);
        const int32_t page = cache_test::block_table(cache, seq)[0];
        pagedkv::read_dequantized_row(layer, page, 0, 0, 0, row.data());
        CHECK_EQ(row[0], 224.0f);
        pagedkv::read_dequantized_row(layer, page, 0, 1, 0, row.data());
        CHECK_EQ(row[0], 896.0f);
    }
}

// ---- misuse ---------------------------------------------------------------------------------

TEST(misuse_of_the_quantized_formats_is_refused_clearly) {
    std::string message;
    auto create_status = [&](pagedkv_cache_config config) {
        pagedkv_cache* cache = nullptr;
        const int32_t status = pagedkv_cache_create(&config, &cache);
        message = pagedkv_last_error();
        pagedkv_cache_destroy(cache);
        return status;
    };
    for (int32_t dtype : {PAGEDKV_DTYPE_Q8, PAGEDKV_DTYPE_Q6, PAGEDKV_DTYPE_Q4}) {
        pagedkv_cache_config config = quant_config(Format{"", dtype, false, 0});
        config.head_dim = 48;
        CHECK_EQ(create_status(config), PAGEDKV_ERR_INVALID_ARGUMENT);
        CHECK(message.find("multiple of 32") != std::string::npos);
    }
    pagedkv_cache_config fp8_48 = quant_config(kFormats[0]);
    fp8_48.head_dim = 48;  // fp8 has no groups: any head_dim the kernels serve
    CHECK_EQ(create_status(fp8_48), PAGEDKV_OK);
    pagedkv_cache_config rotated_fp8 = quant_config(kFormats[0]);
    rotated_fp8.flags = PAGEDKV_CACHE_HADAMARD;
    CHECK_EQ(create_status(rotated_fp8), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(message.find("HADAMARD") != std::string::npos);
    // Quantized formats are served on CUDA too: a CUDA cache is created wherever a device is.
    int32_t devices = 0;
    CHECK_EQ(pagedkv_cuda_device_count(&devices), PAGEDKV_OK);
    pagedkv_cache_config cuda = quant_config(kFormats[4]);
    cuda.device_type = PAGEDKV_DEVICE_CUDA;
    CHECK_EQ(create_status(cuda), devices > 0 ? PAGEDKV_OK : PAGEDKV_ERR_NO_DEVICE);

    cache_test::Cache cache(quant_config(kFormats[4]));
    const int64_t seq = cache_test::create(cache, {1, 2, 3});
    Batch batch(cache, {seq});
    std::vector<float> kv(3 * kKvHeads * kHeadDim, 0.5f), q(3 * kQoHeads * kHeadDim, 0.5f), out(q.size());
    pagedkv_attention_params p = params();
    CHECK_EQ(pagedkv_write_kv(cache, batch.handle, 0, kv.data(), kv.data(), PAGEDKV_DTYPE_Q4, &p),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(cache_test::error_mentions("src_dtype"));
    p.q_dtype = PAGEDKV_DTYPE_Q4;
    CHECK_EQ(pagedkv_prefill_attention(cache, batch.handle, 0, &p, q.data(), out.data(), nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    const float scales[kKvHeads] = {1.0f, 1.0f};
    CHECK_EQ(pagedkv_cache_set_kv_scales(cache, 0, scales, scales), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(cache_test::error_mentions("fp8_e4m3"));
    float got[kKvHeads];
    CHECK_EQ(pagedkv_cache_get_kv_scales(cache, 0, got, got), PAGEDKV_ERR_INVALID_ARGUMENT);

    cache_test::Cache fp8(quant_config(kFormats[0]));
    const float bad[kKvHeads] = {1.0f, -1.0f}, nan[kKvHeads] = {NAN, 1.0f};
    CHECK_EQ(pagedkv_cache_set_kv_scales(fp8, 0, bad, scales), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_set_kv_scales(fp8, 0, scales, nan), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_set_kv_scales(fp8, 2, scales, scales), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_set_kv_scales(fp8, 0, nullptr, scales), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_set_kv_scales(fp8, 0, scales, scales), PAGEDKV_OK);  // the failures changed nothing
}

}  // namespace

int main(int argc, char** argv) { return check::run_all(argc, argv); }
