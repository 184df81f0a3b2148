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

    // The leading run of a prompt's pages that the tiers hold intact, with their keys.
    struct Run {
        int64_t first = 0;            // page index of loads[0] in its prompt
        std::vector<PageKey> keys;    // keys[0]: the parent of loads[0]; keys[i + 1]: the key of loads[i]
        std::vector<Loaded> loads;
        int64_t size() const { return int64_t(loads.size()); }
    };
    // Walks `count` pages of `tokens` (page_size ids each) below run.keys.back() (the parent key,
    // set by the caller), window by window (a few pages first, then doubling, so that a prompt
    // the tiers do not hold costs one short batch) and appends to `run` until a page misses.
    // After each window `go_on()` (if set) may stop the walk. Returns the pages appended.
    int64_t fetch_chain(const int32_t* tokens, int64_t count, Run& run,
                        const std::function<bool()>& go_on = nullptr) noexcept;
    // Whether a load of `key` needs I/O (a disk or a remote tier may hold it): such loads run on
    // a background thread. Host memory is read in the caller's thread.
    bool needs_io() const { return io_tiers_; }
    // Whether some tier may hold `key`: a local tier knows it holds it; a remote tier may (it
    // cannot answer without a round trip).
    bool may_hold(const PageKey& key) const;
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
    bool io_tiers_ = false;                     // a disk or a remote tier
    bool remote_ = false;
};

}  // namespace pagedkv::tiers
