#include "pool/page_pool.h"

namespace pagedkv {

PagePool::PagePool(int32_t num_pages) : ref_counts_(size_t(num_pages), 0) {
    free_list_.reserve(size_t(num_pages));
    // Stack order: page 0 is handed out first.
    for (int32_t page = num_pages - 1; page >= 0; --page) free_list_.push_back(page);
}

}  // namespace pagedkv
