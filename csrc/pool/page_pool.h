// Page bookkeeping: how many sequences hold each page, and the pages that hold nothing.
// A page with ref_count 0 is either on the free list or cached in the prefix index; the pool
// knows only the first, the trie the second (pages_cached = total - free - in_use).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pagedkv {

class PagePool {
public:
    explicit PagePool(int32_t num_pages);

    int32_t num_pages() const { return int32_t(ref_counts_.size()); }
    int32_t ref_count(int32_t page) const { return ref_counts_[size_t(page)]; }
    int32_t free_count() const { return int32_t(free_list_.size()); }
    int32_t in_use_count() const { return in_use_; }
    int32_t cached_count() const { return num_pages() - free_count() - in_use_; }

    // Takes a page off the free list, held once; -1 when the list is empty.
    int32_t pop_free() noexcept {
        if (free_list_.empty()) return -1;
        int32_t page = free_list_.back();
        free_list_.pop_back();
        hold(page);
        return page;
    }

    // ref_count + 1.
    void hold(int32_t page) noexcept {
        if (ref_counts_[size_t(page)]++ == 0) ++in_use_;
    }

    // ref_count - 1; true when it reached 0 (the caller then caches or frees the page).
    bool drop(int32_t page) noexcept {
        if (--ref_counts_[size_t(page)] != 0) return false;
        --in_use_;
        return true;
    }

    // Returns a page that no one holds and the index does not know to the free list.
    void push_free(int32_t page) noexcept { free_list_.push_back(page); }

    const std::vector<int32_t>& free_list() const { return free_list_; }

private:
    std::vector<int32_t> ref_counts_;
    std::vector<int32_t> free_list_;  // a stack; capacity num_pages, so pushes never allocate
    int32_t in_use_ = 0;
};

}  // namespace pagedkv
