// copy_pages on the CPU: whole pages (every layer, K and V) are one contiguous byte range each.
#include <cstring>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cpu {

void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src_pages, const int32_t* dst_pages,
                int32_t num_pages) {
    char* pool = static_cast<char*>(pool_base);
    // Threads pay off only once the copy outgrows what one core streams in a few microseconds.
    const bool large = int64_t(num_pages) * page_bytes >= (int64_t(4) << 20);
    parallel_for(num_pages, large ? resolve_threads(0) : 1, [&](int64_t i) {
        if (src_pages[i] == dst_pages[i]) return;
        std::memcpy(pool + int64_t(dst_pages[i]) * page_bytes, pool + int64_t(src_pages[i]) * page_bytes,
                    size_t(page_bytes));
    });
}

}  // namespace pagedkv::kernels::cpu
