// The cache's calls about the tiers below its pool: their stats, waiting for their background
// stores and loads, prefetching a prompt's pages into the pool before its sequence is created, and
// the loads sequence_create waits for (without the cache's lock).
#include <algorithm>
#include <chrono>
#include <string_view>

#include "cache/cache.h"
#include "common/error.h"

namespace pagedkv {

pagedkv_tier_stats Cache::tier_stats(int32_t tier) const {
    PAGEDKV_REQUIRE(tier >= 0 && tier < PAGEDKV_TIER_COUNT, PAGEDKV_ERR_INVALID_ARGUMENT, "tier ", tier,
                    " is not a pagedkv_tier (0 = host, 1 = disk, 2 = remote)");
    // Tier counters are atomics: no cache lock, so stats never wait for a load in progress.
    if (pages_.tiers() == nullptr) {
        pagedkv_tier_stats none{};
        none.struct_size = sizeof(none);
        return none;
    }
    return pages_.tiers()->stats(tier);
}

void Cache::flush_tiers() {
    // Loads first: an installed load may demote pages, which the tiers then store.
    if (loader_) loader_->drain();
    if (pages_.tiers() != nullptr) pages_.tiers()->flush();
}

int64_t Cache::prefetch(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt, int32_t salt_len) {
    PAGEDKV_REQUIRE(num_tokens >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 1, got ", num_tokens);
    PAGEDKV_REQUIRE(salt_len >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "salt_len must be >= 0, got ", salt_len);
    validate_tokens(prompt, num_tokens, "prompt");
    if (pages_.tiers() == nullptr || !pages_.reuse()) return 0;
    std::string_view key(reinterpret_cast<const char*>(salt), salt_len > 0 ? size_t(salt_len) : 0);
    ChangeLock guard(*this);
    // The root is held while pages are loaded under it; released after, it stays while they hang there.
    const int32_t root = pages_.acquire_root(key);
    int64_t pages = 0;
    try {
        PageManager::TierLookup lookup;
        if (pages_.lookup_tiers(root, prompt, num_tokens, lookup) && lookup.may_hold) {
            if (loader_) {
                bool started = false;
                auto job = loader_->start(make_job(root, prompt, lookup), started);
                // The job holds the root until installed (the installer needs the lock we hold).
                if (job && started) pages_.retain_root(root);
            } else {
                tiers::TierChain::Run run;
                pages_.fetch_from_tiers(lookup, prompt, run);
                pages = pages_.install_run(root, prompt, num_tokens, run);
            }
        }
    } catch (...) {
        pages_.release_root(root);
        throw;
    }
    pages_.release_root(root);
    return pages * config_.page_size;
}

std::unique_ptr<tiers::TierLoader::Job> Cache::make_job(int32_t root, const int32_t* prompt,
                                                        const PageManager::TierLookup& lookup) const {
    auto job = std::make_unique<tiers::TierLoader::Job>();
    job->root = root;
    // Up to the last page to load and one position more: the installer walks it as a prompt.
    job->prompt.assign(prompt, prompt + lookup.limit * config_.page_size + 1);
    job->first = lookup.first;
    job->limit = lookup.limit;
    job->parent = lookup.parent;
    job->first_key = lookup.key;
    return job;
}

bool Cache::load_from_tiers(int32_t root, const int32_t* prompt, int64_t num_tokens, ChangeLock& guard,
                            tiers::TierChain::Run& out) {
    PageManager::TierLookup lookup;
    if (!pages_.lookup_tiers(root, prompt, num_tokens, lookup)) return true;
    std::shared_ptr<tiers::TierLoader::Job> job = loader_ ? loader_->find(lookup.key) : nullptr;
    if (!job) {
        if (!lookup.may_hold) return true;  // a sure miss: no I/O, no wait
        if (!loader_) {                     // host memory only
            pages_.fetch_from_tiers(lookup, prompt, out);
            return true;
        }
        // This create's own load installs nothing by itself (root kNone): its pages go into
        // the pool through this create only, so a create that is refused or gives up leaves
        // the pool as it was.
        bool started = false;
        job = loader_->start(make_job(PrefixTrie::kNone, prompt, lookup), started);
        if (!job) return true;  // the cache is being destroyed
    }
    // Wait without the lock; what others change meanwhile is seen by the walk that follows.
    const int64_t timeout_ms = config_.tier_timeout_ms > 0 ? config_.tier_timeout_ms : 1000;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    guard.close_events();
    guard.lock().unlock();
    // A job found in flight may be another prompt's with the same first page: its run counts
    // only as far as the two prompts agree (and this prompt's limit).
    auto keep_agreed = [&](const tiers::TierLoader::Job& from, tiers::TierChain::Run& run) {
        const int32_t ps = config_.page_size;
        int64_t agreed = 0;
        while (agreed < run.size() && run.first + agreed < lookup.limit &&
               std::equal(prompt + (run.first + agreed) * ps, prompt + (run.first + agreed + 1) * ps,
                          from.prompt.data() + (run.first + agreed) * ps))
            ++agreed;
        run.loads.resize(size_t(agreed));
        run.keys.resize(size_t(agreed) + 1);
    };
    try {
        bool complete = loader_->wait(*job, deadline, out);
        keep_agreed(*job, out);
        // A joined job may end where a shorter prompt did: this one goes on, below the run's
        // last key, in jobs of its own (nothing to install: the pages are used right here).
        while (complete && out.first + out.size() == job->limit && job->limit < lookup.limit &&
               std::chrono::steady_clock::now() < deadline) {
            auto next = std::make_unique<tiers::TierLoader::Job>();
            next->prompt.assign(prompt, prompt + lookup.limit * config_.page_size + 1);
            next->first = job->limit;
            next->limit = lookup.limit;
            next->parent = out.keys.back();
            next->first_key = tiers::page_key(next->parent, prompt + next->first * config_.page_size,
                                              config_.page_size);
            bool started = false;
            job = loader_->start(std::move(next), started);
            if (!job) break;
            tiers::TierChain::Run more;
            complete = loader_->wait(*job, deadline, more);
            keep_agreed(*job, more);
            // Only a run that continues ours (a job found in flight may start elsewhere).
            if (more.first != out.first + out.size()) break;
            out.keys.insert(out.keys.end(), more.keys.begin() + 1, more.keys.end());
            out.loads.insert(out.loads.end(), more.loads.begin(), more.loads.end());
        }
    } catch (...) {
        guard.lock().lock();
        throw;
    }
    guard.lock().lock();
    return false;
}

void Cache::install_job(const tiers::TierLoader::Job& job) {
    if (job.root == PrefixTrie::kNone) return;
    ChangeLock guard(*this);
    try {
        if (!job.run.loads.empty())
            pages_.install_run(job.root, job.prompt.data(), int64_t(job.prompt.size()), job.run);
    } catch (...) {
        // A device error: the pages are not installed; a create will ask the tiers again.
    }
    pages_.release_root(job.root);
}

}  // namespace pagedkv
