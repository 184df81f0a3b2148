// Constants shared by the vector traits of every ISA (vec_portable.h, vec_avx2.h, vec_avx512.h),
// so each ISA computes exactly the same approximations. Data only: no functions live here.
#pragma once

namespace pagedkv::kernels::cpu::vec_math {

// 2^f on f in [-0.5, 0.5] by the degree-7 Taylor polynomial of exp(f ln 2): coefficient k is
// (ln 2)^k / k!. Truncation error below 6e-9 relative, under float rounding.
constexpr float kExp2Poly[8] = {1.0f,
                                0.6931471805599453f,
                                0.2402265069591007f,
                                0.055504108664821576f,
                                0.009618129107628477f,
                                0.0013333558146428441f,
                                0.00015403530393381606f,
                                1.5252733804059838e-05f};

// exp2 inputs are clamped to this range: 2^-127 maps to exactly 0 (a zero exponent field), so
// masked scores (-inf) give probability 0; the softmax never needs more than 2^0.
constexpr float kExp2Min = -127.0f;
constexpr float kExp2Max = 127.0f;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

}  // namespace pagedkv::kernels::cpu::vec_math
