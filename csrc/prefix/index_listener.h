// What the prefix index tells an observer about its blocks (FULL nodes): the KV events hook in
// here. The trie calls it only while one is set, so an index nobody listens to pays one
// predictable branch per change. The calls must not throw: the trie is half-way through a change.
#pragma once

#include <cstdint>

namespace pagedkv {

class IndexListener {
public:
    virtual ~IndexListener() = default;
    // `page` has just become a FULL node (its parent and tokens are readable from the trie).
    virtual void full_inserted(int32_t page) noexcept = 0;
    // `page`, a FULL node, is about to leave the index (its parent and tokens still readable).
    virtual void full_removing(int32_t page) noexcept = 0;
};

}  // namespace pagedkv
