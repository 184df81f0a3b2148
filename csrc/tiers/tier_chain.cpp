#include "tiers/tier_chain.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "tiers/disk_tier.h"
#include "tiers/host_tier.h"
#include "tiers/layout_fingerprint.h"
#include "tiers/redis/remote_tier.h"

namespace pagedkv::tiers {

namespace {

constexpr uint32_t kKnownTierFlags = PAGEDKV_TIER_WRITE_THROUGH | PAGEDKV_TIER_DISK_NO_FSYNC;

bool present(const char* text) { return text != nullptr && text[0] != '\0'; }

std::string namespace_scope(const pagedkv_cache_config& c, const PageKey& fingerprint) {
    const std::string name = c.tier_namespace != nullptr ? c.tier_namespace : "";
    const int32_t numbers[3] = {c.tp_rank, c.tp_size == 0 ? 1 : c.tp_size, int32_t(name.size())};
    std::string scope(reinterpret_cast<const char*>(numbers), sizeof numbers);
    scope += name;
    scope.append(reinterpret_cast<const char*>(fingerprint.data()), fingerprint.size());
    return scope;
}

void validate(const pagedkv_cache_config& c) {
    PAGEDKV_REQUIRE(c.host_tier_bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "config.host_tier_bytes must be >= 0, got ",
                    c.host_tier_bytes);
    PAGEDKV_REQUIRE(!present(c.disk_tier_path) || c.disk_tier_bytes > 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.disk_tier_bytes must be > 0 with a disk tier, got ", c.disk_tier_bytes);
    const int32_t tp_size = c.tp_size == 0 ? 1 : c.tp_size;
    PAGEDKV_REQUIRE(tp_size >= 1 && c.tp_rank >= 0 && c.tp_rank < tp_size, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.tp_rank ", c.tp_rank, " must lie in [0, tp_size = ", tp_size, ")");
    PAGEDKV_REQUIRE(c.tier_timeout_ms >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "config.tier_timeout_ms must be >= 0, got ",
                    c.tier_timeout_ms);
    PAGEDKV_REQUIRE(c.remote_ttl_seconds >= 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.remote_ttl_seconds must be >= 0, got ", c.remote_ttl_seconds);
    PAGEDKV_REQUIRE((c.tier_flags & ~kKnownTierFlags) == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.tier_flags has unknown bits 0x", std::hex, c.tier_flags & ~kKnownTierFlags);
}

}  // namespace

TierChain::TierChain(const pagedkv_cache_config& c, const pagedkv_cache_layout& layout, device::Device& device)
    : page_size_(c.page_size),
      page_bytes_(layout.page_bytes),
      object_bytes_(object_bytes(c.page_size, layout.page_bytes)),
      write_through_((c.tier_flags & PAGEDKV_TIER_WRITE_THROUGH) != 0),
      fingerprint_(layout_fingerprint(layout)),
      scope_(namespace_scope(c, fingerprint_)) {
    validate(c);
    if (c.host_tier_bytes > 0)
        tiers_.push_back(std::make_unique<HostTier>(
            c.host_tier_bytes, object_bytes_,
            HostTier::Memory{[&device](int64_t bytes) { return device.alloc_host(bytes); },
                             [&device](void* ptr) { device.free_host(ptr); }}));
    if (present(c.disk_tier_path))
        tiers_.push_back(std::make_unique<DiskTier>(c.disk_tier_path, c.disk_tier_bytes,
                                                    (c.tier_flags & PAGEDKV_TIER_DISK_NO_FSYNC) == 0));
    if (present(c.remote_tier)) {
        RemoteTier::Options options;
        options.url = c.remote_tier;
        options.timeout_ms = c.tier_timeout_ms > 0 ? c.tier_timeout_ms : 1000;
        options.ttl_seconds = c.remote_ttl_seconds;
        tiers_.push_back(std::make_unique<RemoteTier>(options));
    }
    for (size_t i = 0; i + 1 < tiers_.size(); ++i) tiers_[i]->set_next(tiers_[i + 1].get());
    remote_ = present(c.remote_tier);
    io_tiers_ = remote_ || present(c.disk_tier_path);
}

TierChain::~TierChain() {
    // Tiers below first: a tier's eviction may store into the next one until it is gone.
    for (auto& tier : tiers_) tier->flush();
    while (!tiers_.empty()) tiers_.pop_back();
}

Tier* TierChain::find(int32_t kind) const {
    for (const auto& tier : tiers_)
        if (tier->kind() == kind) return tier.get();
    return nullptr;
}

PageObject TierChain::build_object(const ExpectedPage& page, const PayloadWriter& write_payload) const {
    try {
        std::shared_ptr<uint8_t[]> bytes(new uint8_t[size_t(object_bytes_)]);
        write_payload(bytes.get() + payload_offset());
        seal_object(bytes.get(), page);
        return {std::shared_ptr<const uint8_t>(bytes, bytes.get()), object_bytes_};
    } catch (...) {
        return {};
    }
}

void TierChain::demote(const PageKey& key, const ExpectedPage& page, const PayloadWriter& write_payload) noexcept {
    if (tiers_.empty()) return;
    Tier& first = *tiers_.front();
    if (first.holds(key)) return;  // loaded from there, or stored by write-through already
    if (first.kind() == PAGEDKV_TIER_HOST) {
        // Straight into the slot: one device-to-host copy, no staging.
        static_cast<HostTier&>(first).store_in_place(key, [&](uint8_t* slot) {
            write_payload(slot + payload_offset());
            seal_object(slot, page);
        });
        return;
    }
    PageObject object = build_object(page, write_payload);
    if (object) first.store(key, object);
    else first.stats().dropped_stores += 1;
}

void TierChain::store_everywhere(const PageKey& key, const ExpectedPage& page,
                                 const PayloadWriter& write_payload) noexcept {
    if (tiers_.empty()) return;
    PageObject object = build_object(page, write_payload);
    for (auto& tier : tiers_) {
        if (!object) tier->stats().dropped_stores += 1;
        else if (!tier->holds(key)) tier->store(key, object);
    }
}

int64_t TierChain::fetch_run(const PageKey* keys, const ExpectedPage* expected, int64_t count,
                             std::vector<Loaded>& out) noexcept {
    out.assign(size_t(count), Loaded{});
    try {
        std::vector<PageObject> objects(static_cast<size_t>(count));
        for (auto& tier : tiers_) {
            // Ask only for what no tier above returned intact.
            for (int64_t i = 0; i < count; ++i) objects[size_t(i)] = {};
            bool wanted = false;
            for (int64_t i = 0; i < count; ++i) {
                if (out[size_t(i)].object) objects[size_t(i)] = out[size_t(i)].object;  // filled: skipped
                else wanted = true;
            }
            if (!wanted) break;
            auto start = std::chrono::steady_clock::now();
            tier->fetch(keys, count, objects);
            int64_t fetched = 0, fetched_bytes = 0;
            for (int64_t i = 0; i < count; ++i) {
                Loaded& slot = out[size_t(i)];
                if (slot.object || !objects[size_t(i)]) continue;
                const PageObject& object = objects[size_t(i)];
                ++fetched;
                fetched_bytes += object.size;
                Verdict verdict = verify_object(object.data.get(), object.size, expected[i]);
                if (verdict == Verdict::Ok) {
                    slot = {object, tier->kind()};
                    continue;
                }
                tier->stats().verify_failures += 1;
                tier->report_error(concat("a page object was refused: ", verdict_name(verdict)));
                tier->discard(keys[i]);
            }
            if (fetched > 0) {
                tier->stats().loads += fetched;
                tier->stats().load_bytes += fetched_bytes;
                tier->stats().load_ns += elapsed_ns(start);
            }
        }
    } catch (...) {
        // Out of host memory while fetching: what was verified so far still counts.
    }
    int64_t run = 0;
    while (run < count && out[size_t(run)].object) ++run;
    // Hits: what the run uses; misses: each tier asked for a page of the run (or the page that
    // ended it) and did not have it intact.
    for (int64_t i = 0; i < std::min(count, run + 1); ++i) {
        for (auto& tier : tiers_) {
            if (i < run && out[size_t(i)].tier == tier->kind()) {
                tier->stats().hits += 1;
                break;
            }
            tier->stats().misses += 1;
        }
    }
    for (int64_t i = run; i < count; ++i) out[size_t(i)] = {};  // unpins host slots past the run
    return run;
}

int64_t TierChain::fetch_chain(const int32_t* tokens, int64_t count, Run& run,
                               const std::function<bool()>& go_on) noexcept {
    // Pages asked per batch: few first, then doubling up to a bound.
    constexpr int64_t kFirstWindow = 4, kMaxWindow = 256;
    const int64_t before = run.size();
    try {
        std::vector<ExpectedPage> expected;
        std::vector<Loaded> window_loads;
        int64_t window = kFirstWindow;
        for (int64_t start = 0; start < count; start += window, window = std::min(window * 2, kMaxWindow)) {
            const int64_t n = std::min(window, count - start);
            const size_t base = run.keys.size() - 1;  // the window's parent key
            run.keys.resize(base + 1 + size_t(n));
            expected.resize(size_t(n));
            for (int64_t i = 0; i < n; ++i) {
                const int32_t* page_tokens = tokens + (start + i) * page_size_;
                run.keys[base + 1 + size_t(i)] = page_key(run.keys[base + size_t(i)], page_tokens, page_size_);
                expected[size_t(i)] = {&fingerprint_, &run.keys[base + size_t(i)], page_tokens, page_size_, page_bytes_};
            }
            const int64_t hit = fetch_run(run.keys.data() + base + 1, expected.data(), n, window_loads);
            for (int64_t i = 0; i < hit; ++i) run.loads.push_back(std::move(window_loads[size_t(i)]));
            window_loads.clear();
            run.keys.resize(run.loads.size() + 1);  // keys of the run only
            if (hit < n || (go_on && !go_on())) break;
        }
    } catch (...) {
        // Out of host memory: the run so far stands.
        run.keys.resize(run.loads.size() + 1);
    }
    return run.size() - before;
}

bool TierChain::may_hold(const PageKey& key) const {
    if (remote_) return true;
    for (const auto& tier : tiers_)
        if (tier->holds(key)) return true;
    return false;
}

pagedkv_tier_stats TierChain::stats(int32_t kind) const {
    Tier* tier = find(kind);
    if (tier == nullptr) {
        pagedkv_tier_stats none{};
        none.struct_size = sizeof(none);
        return none;
    }
    return tier->stats().snapshot(tier->capacity());
}

void TierChain::flush() {
    for (auto& tier : tiers_) tier->flush();
}

}  // namespace pagedkv::tiers
