// write_kv and copy_pages on the CPU: the fast kernels leave the pool bit-for-bit as the
// reference does, every element sits where the header's formula says, and the f16 / bf16
// rounding (SIMD on every ISA) is exactly common/dtype.h's, special values included.
#include <cstring>

#include "kernel_fixture.h"
#include "kernels/cpu/convert.h"

using namespace fixture;
using pagedkv::kernels::cpu::Isa;
namespace cpu = pagedkv::kernels::cpu;
namespace reference = pagedkv::kernels::reference;

namespace {

// Values that probe rounding: ties to even, f16 subnormals and overflow, infinities, NaN, zeros.
std::vector<float> special_values() {
    std::vector<uint32_t> bits = {0x3f808000u, 0x3f818000u, 0x3f801000u, 0x3f803000u, 0x3f800fffu, 0xbf808001u,
                                  0x00000001u, 0x00800000u, 0x80000000u, 0x7f7fffffu, 0x7f800000u, 0xff800000u,
                                  0x7fc00000u, 0x7f800001u, 0xffc12345u, 0x33800000u, 0x33000000u, 0x33000001u,
                                  0x387fc000u, 0x38800000u, 0x477fefffu, 0x477ff000u, 0x47800000u, 0xc77ff000u};
    std::vector<float> values;
    for (uint32_t b : bits) values.push_back(pagedkv::bits_to_float(b));
    for (float f : {3e-6f, 6e-8f, 2.98e-8f, 1e-10f, 65504.0f, 65519.0f, 70000.0f, -1e10f, 0.1f, -0.3f})
        values.push_back(f);
    return values;
}

struct WriteCase {
    PoolShape shape;
    std::vector<int32_t> kv_lens, qo_lens;
    int32_t src_dtype;
    int32_t num_threads = 0;
};

void check_write(const WriteCase& c, bool with_special_values) {
    std::mt19937 rng(21);
    PoolShape shape = c.shape;
    shape.num_pages = pages_needed(c.kv_lens, shape.page_size, 0) + 2;
    std::mt19937 pool_rng(22);
    Pool want(shape, pool_rng), got = want;
    const std::vector<uint8_t> initial = want.memory.bytes;
    const Batch batch = make_batch(rng, shape.page_size, shape.num_pages, c.kv_lens, c.qo_lens);
    const int64_t values = batch.num_qo_tokens() * shape.num_kv_heads * shape.head_dim;
    Tensor k(c.src_dtype, values), v(c.src_dtype, values);
    k.fill_random(rng, 4.0f);
    v.fill_random(rng, 4.0f);
    if (with_special_values) {
        const std::vector<float> special = special_values();
        for (size_t i = 0; i < special.size() && int64_t(i) < values; ++i) {
            k.set(int64_t(i), special[i]);
            v.set(values - 1 - int64_t(i), special[i]);
        }
    }
    const int32_t layer = shape.num_layers - 1;
    reference::write_kv(want.layer(layer), batch.arrays(), k.data(), v.data(), c.src_dtype);
    for_each_isa([&](Isa isa) {
        got.memory.bytes = initial;
        cpu::write_kv(got.layer(layer), batch.arrays(), k.data(), v.data(), c.src_dtype, c.num_threads);
        const std::string what = std::string("write_kv[") + cpu::isa_name(isa) + " " +
                                 pagedkv::dtype_name(c.src_dtype) + "->" + pagedkv::dtype_name(shape.kv_dtype) +
                                 " D=" + std::to_string(shape.head_dim) + " ps=" + std::to_string(shape.page_size) +
                                 "]";
        // Whole pool, bit for bit (nothing else touched either).
        const bool same_pool = got.memory.bytes == want.memory.bytes;
        if (!same_pool) std::fprintf(stderr, "  %s: pool differs from the reference\n", what.c_str());
        CHECK(same_pool);
        // Each element at the header's offset, converted exactly like common/dtype.h.
        int64_t misplaced = 0;
        for (int64_t t = 0; t < batch.num_qo_tokens(); ++t) {
            const int64_t slot = batch.slot_mapping[size_t(t)];
            const int32_t page = int32_t(slot / shape.page_size), token = int32_t(slot % shape.page_size);
            for (int32_t kv = 0; kv < 2; ++kv)
                for (int32_t h = 0; h < shape.num_kv_heads; ++h)
                    for (int32_t d = 0; d < shape.head_dim; ++d) {
                        const Tensor& src = kv ? v : k;
                        uint8_t expected[4];
                        const int64_t from = (t * shape.num_kv_heads + h) * shape.head_dim + d;
                        const int32_t bytes = pagedkv::dtype_bytes(shape.kv_dtype);
                        if (c.src_dtype == shape.kv_dtype)
                            std::memcpy(expected, src.bytes.data() + from * bytes, size_t(bytes));
                        else
                            pagedkv::store_from_float(expected, 0, shape.kv_dtype, src.get(from));
                        const int64_t at = got.element(page, layer, kv, h, token, d);
                        misplaced += std::memcmp(got.memory.bytes.data() + at * bytes, expected, size_t(bytes)) != 0;
                    }
        }
        if (misplaced) std::fprintf(stderr, "  %s: %lld elements wrong\n", what.c_str(), (long long)misplaced);
        CHECK_EQ(misplaced, int64_t(0));
    });
}

const int32_t kDtypes[] = {PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16};

}  // namespace

TEST(write_kv_from_f32_matches_reference_exactly) {
    for (int32_t kv_dtype : kDtypes)
        for (int32_t page_size : {1, 16, 256})
            for (int32_t head_dim : {64, 128, 12, 100}) {
                WriteCase c;
                c.shape = PoolShape{3, 2, head_dim, page_size, 0, kv_dtype};
                c.kv_lens = {page_size + 3, 7, 1};
                c.qo_lens = {page_size + 3, 2, 1};
                c.src_dtype = PAGEDKV_DTYPE_F32;
                check_write(c, true);
            }
}

TEST(write_kv_in_the_cache_dtype_copies_bits) {
    for (int32_t kv_dtype : {PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16}) {
        WriteCase c;
        c.shape = PoolShape{2, 4, 64, 16, 0, kv_dtype};
        c.kv_lens = {40, 17};
        c.qo_lens = {25, 1};
        c.src_dtype = kv_dtype;
        check_write(c, true);
    }
}

// Enough tokens for the threaded path, with one thread and with several.
TEST(write_kv_many_tokens_threaded) {
    for (int32_t threads : {1, 0, 3})
        for (int32_t kv_dtype : kDtypes) {
            WriteCase c;
            c.shape = PoolShape{2, 2, 128, 16, 0, kv_dtype};
            c.kv_lens = quick() ? std::vector<int32_t>{300} : std::vector<int32_t>{600, 300, 45};
            c.qo_lens = c.kv_lens;
            c.src_dtype = PAGEDKV_DTYPE_F32;
            c.num_threads = threads;
            check_write(c, false);
        }
}

// The SIMD conversions against common/dtype.h on random bit patterns (every exponent, NaNs,
// subnormals, infinities), in runs whose lengths leave every tail size.
TEST(conversions_match_dtype_h_on_random_bits) {
    std::mt19937 rng(23);
    const int64_t count = quick() ? 100000 : 1000000;
    std::vector<float> src(static_cast<size_t>(count));
    for (auto& x : src) x = pagedkv::bits_to_float(uint32_t(rng()));
    for_each_isa([&](Isa isa) {
        const cpu::Converters convert = cpu::converters(isa);
        std::vector<uint16_t> f16(src.size()), bf16(src.size());
        for (int64_t at = 0, run = 1; at < count; at += run, run = run % 37 + 1) {
            const int64_t n = std::min(run, count - at);
            convert.to_f16(src.data() + at, f16.data() + at, n);
            convert.to_bf16(src.data() + at, bf16.data() + at, n);
        }
        int64_t wrong_f16 = 0, wrong_bf16 = 0;
        for (int64_t i = 0; i < count; ++i) {
            wrong_f16 += f16[size_t(i)] != pagedkv::float_to_f16(src[size_t(i)]);
            wrong_bf16 += bf16[size_t(i)] != pagedkv::float_to_bf16(src[size_t(i)]);
        }
        if (wrong_f16 || wrong_bf16)
            std::fprintf(stderr, "  %s: %lld f16 and %lld bf16 conversions differ from dtype.h\n", cpu::isa_name(isa),
                         (long long)wrong_f16, (long long)wrong_bf16);
        CHECK_EQ(wrong_f16 + wrong_bf16, int64_t(0));
    });
}

TEST(copy_pages_matches_reference) {
    for (int32_t pages : {1, 40, 700}) {  // 700 pages of 16 KiB: the threaded path
        PoolShape shape{2, 2, 64, 16, 1500, PAGEDKV_DTYPE_BF16};
        std::mt19937 rng_a(31);
        Pool want(shape, rng_a), got = want;
        std::vector<int32_t> ids(1500);
        std::iota(ids.begin(), ids.end(), 0);
        std::mt19937 rng(32);
        std::shuffle(ids.begin(), ids.end(), rng);
        // Disjoint sources and destinations, plus one page copied onto itself.
        std::vector<int32_t> src(ids.begin(), ids.begin() + pages), dst(ids.begin() + pages, ids.begin() + 2 * pages);
        if (pages > 1) dst.back() = src.back();
        reference::copy_pages(want.memory.data(), want.page_bytes(), src.data(), dst.data(), pages);
        cpu::copy_pages(got.memory.data(), got.page_bytes(), src.data(), dst.data(), pages);
        CHECK(got.memory.bytes == want.memory.bytes);
    }
}

CHECK_MAIN
