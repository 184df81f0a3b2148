// The tiers below one cache's pool, in order (host, disk, remote; each optional), and what the
// pool asks of them: keep a page it lets go (write-back to the first tier; each tier demotes to
// the next), keep a page as it is committed (write-through to every tier), and bring back the
// leading run of a prompt's pages, verified against what the walk expects.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "device/device.h"
#include "pagedkv.h"
#include "tiers/page_object.h"
#include "tiers/tier.h"

namespace pagedkv::tiers {

class TierChain {
public:
    // The tiers `config` asks for (none: empty()). Throws INVALID_ARGUMENT on a bad tier field;
    // a remote tier that cannot be reached is not an error (it reconnects with backoff).
    TierChain(const pagedkv_cache_config& config, const pagedkv_cache_layout& layout, device::Device& device);
    ~TierChain();
    TierChain(const TierChain&) = delete;
    TierChain& operator=(const TierChain&) = delete;

    bool empty() const { return tiers_.empty(); }
    bool write_through() const { return write_through_; }
    const PageKey& fingerprint() const { return fingerprint_; }
    // The key the pages of `salt` hang under, in this cache's namespace and layout.
    PageKey root_key(std::string_view salt) const { return tiers::root_key(scope_, salt); }

    // Writes a page's bytes into the payload area it is given (page_bytes of them).
    using PayloadWriter = std::function<void(uint8_t*)>;
    // Write-back: the first tier keeps the page (unless it holds it already). Never throws.
    void demote(const PageKey& key, const ExpectedPage& page, const PayloadWriter& write_payload) noexcept;
    // Write-through: every tier keeps the page; disk and remote store in the background. Never throws.
    void store_everywhere(const PageKey& key, const ExpectedPage& page, const PayloadWriter& write_payload) noexcept;

    struct Loaded {
        PageObject object;  // verified; the payload starts at payload_offset()
        int32_t tier = -1;  // pagedkv_tier it came from
    };
    // Asks the tiers, in order, for pages keys[0, count) and verifies what they return against
    // expected[i]; returns the leading run of pages that some tier holds intact (out[0, run)).
    // A failed verification is counted on its tier and is a miss there. Never throws.
    int64_t fetch_run(const PageKey* keys, const ExpectedPage* expected, int64_t count, std::vector<Loaded>& out) noexcept;
    int64_t payload_offset() const { return object_header_bytes(page_size_); }

    // Stats of tier `kind` (enabled = 0 when the cache has none).
    pagedkv_tier_stats stats(int32_t kind) const;
    // Waits until the background stores queued so far are done.
    void flush();

private:
    Tier* find(int32_t kind) const;
    // A sealed heap object of `page`, or an empty one when memory is short.
    PageObject build_object(const ExpectedPage& page, const PayloadWriter& write_payload) const;

    int32_t page_size_;
    int64_t page_bytes_;
    int64_t object_bytes_;
    bool write_through_;
    PageKey fingerprint_;
    std::string scope_;  // namespace, tensor-parallel rank and size, fingerprint
    std::vector<std::unique_ptr<Tier>> tiers_;  // in order; each demotes to the next
};

}  // namespace pagedkv::tiers
