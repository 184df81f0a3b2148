// The fast CPU attention kernels (decode, prefill, cascade) and merge_states against the double-
// precision reference, on random pools and batches, for every ISA this machine runs.
#include <functional>

#include "kernel_fixture.h"

using namespace fixture;
using pagedkv::kernels::cpu::Isa;
namespace cpu = pagedkv::kernels::cpu;
namespace reference = pagedkv::kernels::reference;

namespace {

struct Case {
    PoolShape shape;
    int32_t num_qo_heads = 4;
    std::vector<int32_t> kv_lens, qo_lens;
    int32_t shared_pages = 0;
    int32_t q_dtype = PAGEDKV_DTYPE_F32, out_dtype = PAGEDKV_DTYPE_F32;
    int32_t kv_split_size = 0;
    int32_t num_threads = 0;
};

struct Outputs {
    Tensor out, lse;
};

using Kernel = std::function<void(const PagedLayer&, const BatchArrays&, const AttentionOptions&, const void*, void*,
                                  float*)>;

// A pool and batch for the case, and q with random values; scores spread over a few units so the
// softmax is neither flat nor one-hot.
struct Problem {
    Case c;
    std::mt19937 rng;
    Pool pool;
    Batch batch;
    Tensor q;

    explicit Problem(const Case& c_, uint32_t seed = 7)
        : c(c_), rng(seed), pool(with_pages(c_), rng),
          batch(make_batch(rng, c_.shape.page_size, pool.shape.num_pages, c_.kv_lens, c_.qo_lens, c_.shared_pages)) {
        q = Tensor(c.q_dtype, batch.num_qo_tokens() * c.num_qo_heads * c.shape.head_dim);
        q.fill_random(rng, 2.0f);
    }
    static PoolShape with_pages(const Case& c) {
        PoolShape shape = c.shape;
        shape.num_pages = pages_needed(c.kv_lens, shape.page_size, c.shared_pages) + 3;
        return shape;
    }
    AttentionOptions options() const {
        return AttentionOptions{c.num_qo_heads, 1.0f / std::sqrt(float(c.shape.head_dim)), c.q_dtype, c.out_dtype,
                                c.num_threads, c.kv_split_size, nullptr};
    }
    Outputs run(const Kernel& kernel, bool with_lse = true) {
        const int64_t rows = batch.num_qo_tokens() * c.num_qo_heads;
        Outputs result{Tensor(c.out_dtype, rows * c.shape.head_dim), Tensor(PAGEDKV_DTYPE_F32, rows)};
        result.out.fill_nan();
        result.lse.fill_nan();
        // The last layer: with several layers the layer term of the offset matters.
        kernel(pool.layer(pool.shape.num_layers - 1), batch.arrays(), options(), q.data(), result.out.data(),
               with_lse ? static_cast<float*>(result.lse.data()) : nullptr);
        return result;
    }
    Outputs run_reference() { return run(reference::attention); }
};

bool same(const std::string& what, const Outputs& got, const Outputs& want, int32_t out_dtype,
          double lse_tolerance = tolerance_for(PAGEDKV_DTYPE_F32)) {
    const bool out_ok = close(what + " out", got.out, want.out, tolerance_for(out_dtype));
    const bool lse_ok = close(what + " lse", got.lse, want.lse, lse_tolerance);
    return out_ok && lse_ok;
}

// Checks a fast kernel against the reference on every ISA.
void check_against_reference(const char* name, const Kernel& kernel, const Case& c) {
    Problem problem(c);
    const Outputs want = problem.run_reference();
    for_each_isa([&](Isa isa) {
        const Outputs got = problem.run(kernel);
        CHECK(same(describe(name, isa, problem.pool.shape, c.num_qo_heads, problem.batch), got, want, c.out_dtype));
    });
}

const int32_t kDtypes[] = {PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16};
// (query heads, kv heads): MHA, GQA 4, GQA 8, MQA.
const std::pair<int32_t, int32_t> kHeads[] = {{4, 4}, {8, 2}, {16, 2}, {8, 1}};
const int32_t kPageSizes[] = {16, 1, 256};

// KV lengths around the page size and beyond.
std::vector<int32_t> lengths_for(int32_t page_size, int32_t count, std::mt19937& rng) {
    const int32_t interesting[] = {1, std::max(1, page_size - 1), page_size, page_size + 1,
                                   quick() ? 150 : 300 + int32_t(rng() % 200)};
    std::vector<int32_t> lens;
    for (int32_t i = 0; i < count; ++i) lens.push_back(interesting[(i + int32_t(rng() % 5)) % 5]);
    return lens;
}

}  // namespace

TEST(decode_matches_reference) {
    std::mt19937 rng(1);
    int32_t variant = 0;
    for (int32_t dtype : kDtypes)
        for (auto [hq, hkv] : kHeads)
            for (int32_t head_dim : {64, 128}) {
                ++variant;
                if (quick() && variant % 3 != 0) continue;
                Case c;
                c.shape = PoolShape{3, hkv, head_dim, kPageSizes[variant % 3], 0, dtype};
                c.num_qo_heads = hq;
                const int32_t seqs = std::vector<int32_t>{1, 3, 8}[size_t(variant / 3 % 3)];
                c.kv_lens = lengths_for(c.shape.page_size, seqs, rng);
                c.qo_lens.assign(size_t(seqs), 1);
                check_against_reference("decode", cpu::decode_attention, c);
            }
}

// Long contexts take the split-KV path (automatic, forced, or off) and all agree.
TEST(decode_long_context_split_kv) {
    for (int32_t dtype : kDtypes) {
        Case c;
        c.shape = PoolShape{2, 2, 128, 16, 0, dtype};
        c.num_qo_heads = 8;
        c.kv_lens = quick() ? std::vector<int32_t>{700, 33} : std::vector<int32_t>{3000, 2047, 33};
        c.qo_lens.assign(c.kv_lens.size(), 1);
        Problem problem(c);
        const Outputs want = problem.run_reference();
        for_each_isa([&](Isa isa) {
            for (int32_t split : {-1, 0, 64, 1000, 37}) {
                problem.c.kv_split_size = split;
                for (int32_t threads : {1, 0, 3}) {
                    problem.c.num_threads = threads;
                    const Outputs got = problem.run(cpu::decode_attention);
                    const std::string extra = " split=" + std::to_string(split) + " threads=" + std::to_string(threads);
                    CHECK(same(describe("decode", isa, problem.pool.shape, c.num_qo_heads, problem.batch, extra), got,
                               want, c.out_dtype));
                }
            }
        });
    }
}

TEST(decode_split_matches_unsplit_closely) {
    Case c;
    c.shape = PoolShape{1, 1, 64, 16, 0, PAGEDKV_DTYPE_BF16};
    c.num_qo_heads = 4;
    c.kv_lens = {quick() ? 900 : 2500};
    c.qo_lens = {1};
    Problem problem(c);
    problem.c.kv_split_size = -1;
    const Outputs whole = problem.run(cpu::decode_attention);
    problem.c.kv_split_size = 128;
    const Outputs split = problem.run(cpu::decode_attention);
    CHECK(same("split vs unsplit", split, whole, PAGEDKV_DTYPE_F32, 1e-5));
}

TEST(decode_without_lse) {
    Case c;
    c.shape = PoolShape{2, 2, 64, 16, 0, PAGEDKV_DTYPE_F16};
    c.num_qo_heads = 8;
    c.kv_lens = {40, 1, 17};
    c.qo_lens = {1, 1, 1};
    Problem problem(c);
    const Outputs want = problem.run_reference();
    for_each_isa([&](Isa) {
        const Outputs got = problem.run(cpu::decode_attention, false);
        CHECK(close("decode out without lse", got.out, want.out, tolerance_for(c.out_dtype)));
    });
}

TEST(prefill_matches_reference) {
    std::mt19937 rng(2);
    int32_t variant = 0;
    for (int32_t dtype : kDtypes)
        for (auto [hq, hkv] : kHeads)
            for (int32_t head_dim : {64, 128}) {
                ++variant;
                if (quick() && variant % 4 != 0) continue;
                Case c;
                c.shape = PoolShape{3, hkv, head_dim, kPageSizes[variant % 3], 0, dtype};
                c.num_qo_heads = hq;
                const int32_t seqs = std::vector<int32_t>{1, 3, 8}[size_t(variant / 3 % 3)];
                const int32_t scale = quick() ? 4 : 1;  // sanitizer runs: shorter sequences
                const int32_t page_crossing = (quick() ? std::min(c.shape.page_size, 16) : c.shape.page_size) + 1;
                for (int32_t s = 0; s < seqs; ++s) {
                    // A fresh prompt, an extend over a cached prefix, a single token, a page boundary.
                    const int32_t kind = (s + variant) % 4;
                    const int32_t qo = kind == 0 ? 1 + int32_t(rng() % (40 / scale))
                                     : kind == 1 ? 1 + int32_t(rng() % (20 / scale))
                                     : kind == 2 ? 1 : page_crossing;
                    const int32_t cached = kind == 0 ? 0
                                         : kind == 1 ? int32_t(rng() % (200 / scale))
                                                     : int32_t(rng() % (40 / scale));
                    c.kv_lens.push_back(qo + cached);
                    c.qo_lens.push_back(qo);
                }
                check_against_reference("prefill", cpu::prefill_attention, c);
            }
}

// Enough query tokens for several query tiles per sequence, so tiles on and off the diagonal mix.
TEST(prefill_long_prompt) {
    for (auto [hq, hkv] : {std::pair{2, 2}, std::pair{8, 2}}) {
        Case c;
        c.shape = PoolShape{2, hkv, 64, 16, 0, PAGEDKV_DTYPE_BF16};
        c.num_qo_heads = hq;
        c.kv_lens = quick() ? std::vector<int32_t>{140} : std::vector<int32_t>{300, 170};
        c.qo_lens = quick() ? std::vector<int32_t>{140} : std::vector<int32_t>{300, 90};
        check_against_reference("prefill", cpu::prefill_attention, c);
    }
}

// Head dims other than 64 / 128: any multiple of 8 (72 leaves a half vector on AVX-512).
TEST(attention_other_head_dims) {
    for (int32_t dtype : {PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16})
    for (int32_t head_dim : {8, 40, 72, 256}) {
        Case c;
        c.shape = PoolShape{2, 2, head_dim, 16, 0, dtype};
        c.num_qo_heads = 4;
        c.kv_lens = {50, 7};
        c.qo_lens = {1, 1};
        check_against_reference("decode", cpu::decode_attention, c);
        c.qo_lens = {20, 7};
        check_against_reference("prefill", cpu::prefill_attention, c);
    }
}

// Rows per KV head decide the engine's path: K/V converted in registers (few rows), a converted
// f32 tile (more), a transposed K tile (many); every path against the reference.
TEST(attention_engine_paths_by_group_size) {
    for (int32_t dtype : kDtypes)
        for (int32_t group : {1, 2, 8, 12, 32, 40}) {
            Case c;
            c.shape = PoolShape{2, 1, 64, 16, 0, dtype};
            c.num_qo_heads = group;
            c.kv_lens = {45, 100};
            c.qo_lens = {1, 1};
            check_against_reference("decode", cpu::decode_attention, c);
            c.qo_lens = {3, 2};
            check_against_reference("prefill", cpu::prefill_attention, c);
        }
}

// q and out in f16 / bf16 (the reference reads and rounds them the same way).
TEST(attention_half_precision_q_and_out) {
    for (int32_t q_dtype : kDtypes)
        for (int32_t out_dtype : kDtypes) {
            Case c;
            c.shape = PoolShape{1, 2, 64, 16, 0, PAGEDKV_DTYPE_BF16};
            c.num_qo_heads = 8;
            c.kv_lens = {70, 16, 3};
            c.qo_lens = {1, 1, 1};
            c.q_dtype = q_dtype;
            c.out_dtype = out_dtype;
            check_against_reference("decode", cpu::decode_attention, c);
            c.qo_lens = {30, 16, 2};
            check_against_reference("prefill", cpu::prefill_attention, c);
        }
}

// Cascade gives the prefill (and decode) result on batches sharing leading pages.
TEST(cascade_matches_prefill_and_reference) {
    std::mt19937 rng(3);
    int32_t variant = 0;
    for (int32_t dtype : kDtypes)
        for (auto heads : kHeads)
            for (bool decode_shaped : {true, false}) {
                // Plain variables, not structured bindings: clang before 16 cannot capture those.
                const auto hq = heads.first, hkv = heads.second;
                ++variant;
                if (quick() && variant % 3 != 0) continue;
                Case c;
                c.shape = PoolShape{2, hkv, variant % 2 ? 64 : 128, variant % 3 == 0 ? 1 : 16, 0, dtype};
                c.num_qo_heads = hq;
                const int32_t prefix_tokens = quick() ? 40 + int32_t(rng() % 40) : 160 + int32_t(rng() % 100);
                c.shared_pages = prefix_tokens / c.shape.page_size;
                const int32_t shared_tokens = c.shared_pages * c.shape.page_size;
                const int32_t seqs = variant % 2 ? (quick() ? 4 : 8) : 3;
                for (int32_t s = 0; s < seqs; ++s) {
                    // Sequence 1 ends on the prefix: its one query is the prefix's last position
                    // and its own part is empty.
                    const int32_t own = s == 1 ? 0 : 1 + int32_t(rng() % (quick() ? 20 : 60));
                    const int32_t qo = decode_shaped || own == 0 ? 1 : 1 + int32_t(rng() % own);
                    c.kv_lens.push_back(shared_tokens + own);
                    c.qo_lens.push_back(qo);
                }
                Problem problem(c);
                const Outputs want = problem.run_reference();
                for_each_isa([&](Isa isa) {
                    const Outputs prefill = problem.run(cpu::prefill_attention);
                    const Outputs cascade = problem.run(cpu::cascade_attention);
                    const std::string what = describe("cascade", isa, problem.pool.shape, hq, problem.batch);
                    CHECK(same(what + " vs reference", cascade, want, c.out_dtype));
                    CHECK(same(what + " vs prefill", cascade, prefill, c.out_dtype));
                    if (decode_shaped) {
                        const Outputs decode = problem.run(cpu::decode_attention);
                        CHECK(same(what + " vs decode", cascade, decode, c.out_dtype));
                    }
                });
            }
}

// Split shared prefix, f16 output, several threads: the prefix states are merged before use.
TEST(cascade_split_prefix_and_half_output) {
    for (int32_t out_dtype : {PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_BF16}) {
        Case c;
        c.shape = PoolShape{1, 2, 64, 16, 0, PAGEDKV_DTYPE_F16};
        c.num_qo_heads = 8;
        c.shared_pages = quick() ? 20 : 60;
        const int32_t shared = c.shared_pages * 16;
        c.kv_lens = {shared + 5, shared + 40, shared + 1};
        c.qo_lens = {1, 1, 1};
        c.out_dtype = out_dtype;
        Problem problem(c);
        const Outputs want = problem.run_reference();
        for_each_isa([&](Isa isa) {
            for (int32_t split : {-1, 0, 96}) {
                problem.c.kv_split_size = split;
                const Outputs got = problem.run(cpu::cascade_attention);
                const std::string extra = " split=" + std::to_string(split);
                const std::string what = describe("cascade", isa, problem.pool.shape, 8, problem.batch, extra);
                CHECK(same(what, got, want, out_dtype));
            }
        });
    }
}

// A query inside the shared prefix (a sequence still computing part of it) cannot use the
// prefix's state: cascade must still give the exact prefill result.
TEST(cascade_query_inside_shared_prefix) {
    Case c;
    c.shape = PoolShape{1, 2, 64, 16, 0, PAGEDKV_DTYPE_BF16};
    c.num_qo_heads = 4;
    c.shared_pages = 4;
    c.kv_lens = {64 + 10, 64 + 3, 80};
    c.qo_lens = {1, 20, 70};  // the second and third start inside the prefix
    check_against_reference("cascade", cpu::cascade_attention, c);
}

TEST(cascade_without_shared_pages_or_single_sequence) {
    Case c;
    c.shape = PoolShape{1, 2, 64, 16, 0, PAGEDKV_DTYPE_F32};
    c.num_qo_heads = 4;
    c.kv_lens = {40, 33};
    c.qo_lens = {1, 1};
    check_against_reference("cascade", cpu::cascade_attention, c);
    c.qo_lens = {5, 33};
    check_against_reference("cascade", cpu::cascade_attention, c);
    c.kv_lens = {90};
    c.qo_lens = {7};
    c.shared_pages = 5;  // ignored: one sequence
    check_against_reference("cascade", cpu::cascade_attention, c);
}

// A sequence with nothing to compute (qo_len 0) sits in the batch without output rows.
TEST(attention_sequence_without_queries) {
    Case c;
    c.shape = PoolShape{2, 2, 64, 16, 0, PAGEDKV_DTYPE_BF16};
    c.num_qo_heads = 8;
    c.kv_lens = {40, 33, 20};
    c.qo_lens = {5, 0, 3};
    check_against_reference("prefill", cpu::prefill_attention, c);
    check_against_reference("cascade", cpu::cascade_attention, c);
    c.shared_pages = 1;  // all three share their first page; queries start at 35 and 17
    check_against_reference("cascade", cpu::cascade_attention, c);
}

TEST(merge_states_matches_reference) {
    std::mt19937 rng(4);
    for (auto shape : {std::tuple{1, 1, 8}, std::tuple{7, 4, 64}, std::tuple{300, 8, 128}}) {
        const auto [n_, heads_, head_dim_] = shape;
        const int32_t n = n_, heads = heads_, head_dim = head_dim_;  // capturable by clang 14
        const int64_t rows = int64_t(n) * heads, values = rows * head_dim;
        Tensor a(PAGEDKV_DTYPE_F32, values), b(PAGEDKV_DTYPE_F32, values), lse_a(PAGEDKV_DTYPE_F32, rows),
            lse_b(PAGEDKV_DTYPE_F32, rows);
        a.fill_random(rng, 1.0f);
        b.fill_random(rng, 1.0f);
        lse_a.fill_random(rng, 8.0f);
        lse_b.fill_random(rng, 8.0f);
        // Empty states on either side and on both.
        lse_a.set(0, -INFINITY);
        if (rows > 2) {
            lse_b.set(1, -INFINITY);
            lse_a.set(2, -INFINITY);
            lse_b.set(2, -INFINITY);
        }
        auto run = [&](auto merge) {
            Outputs result{Tensor(PAGEDKV_DTYPE_F32, values), Tensor(PAGEDKV_DTYPE_F32, rows)};
            result.out.fill_nan();
            result.lse.fill_nan();
            merge(static_cast<const float*>(a.data()), static_cast<const float*>(lse_a.data()),
                  static_cast<const float*>(b.data()), static_cast<const float*>(lse_b.data()), n, heads, head_dim,
                  static_cast<float*>(result.out.data()), static_cast<float*>(result.lse.data()));
            return result;
        };
        Outputs want = run(reference::merge_states), got = run(cpu::merge_states);
        // Both empty: -inf lse (the comparison treats equal infinities as a match).
        if (rows > 2) {
            CHECK(std::isinf(got.lse.get(2)) && got.lse.get(2) < 0);
            got.lse.set(2, 0.0f);
            want.lse.set(2, 0.0f);
        }
        CHECK(same("merge_states n=" + std::to_string(n), got, want, PAGEDKV_DTYPE_F32));
    }
}

CHECK_MAIN
