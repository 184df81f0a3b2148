// csrc/kernels/cpu/attend_avx512_bf16.cpp built for the emulated AVX-512 tests (see CMakeLists.txt): with
// PAGEDKV_EMULATE_AVX512 and without AVX-512 flags, so it runs on any AVX2 CPU.
#include "kernels/cpu/attend_avx512_bf16.cpp"
