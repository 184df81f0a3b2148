// Page copies the CUDA device makes for the core (beside kernels::cuda::copy_pages, the public one).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device/device.h"

namespace pagedkv::kernels::cuda {

// Quantized pages: the first `tokens` positions of every (layer, K|V, head) run of page src[i]
// (host lists) into page dst[i] — their codes and scales — and each run's tail (FP8's scale),
// never the bytes of later positions. Queued on `stream`.
void copy_quant_run_prefixes(const device::PageGeometry& geometry, const int32_t* src, const int32_t* dst,
                             int32_t count, int32_t tokens, cudaStream_t stream);

}  // namespace pagedkv::kernels::cuda
