// Plans a kernel derives from a batch's shape and a call's options (the CPU task lists: which
// sequence, head and KV chunk each task takes, in what order, on how many threads), kept with the
// batch so that the per-layer calls of one step plan once and then only run (FlashInfer's
// plan/run split). Thread-safe: layers of one step may run on several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace pagedkv::kernels {

class PlanCache {
public:
    struct Key {
        int32_t operation;      // which kernel (each kernel names its own)
        int32_t num_qo_heads;
        int32_t num_threads;
        int32_t kv_split_size;
        int64_t variant;        // anything else the plan depends on
        bool operator==(const Key& other) const {
            return operation == other.operation && num_qo_heads == other.num_qo_heads &&
                   num_threads == other.num_threads && kv_split_size == other.kv_split_size &&
                   variant == other.variant;
        }
    };

    // The plan stored under `key`, made by make() on first use.
    template <class Plan, class Make>
    std::shared_ptr<const Plan> get(const Key& key, Make&& make) {
        {
            std::lock_guard lock(mutex_);
            for (const auto& [stored, plan] : entries_)
                if (stored == key) return std::static_pointer_cast<const Plan>(plan);
        }
        auto plan = std::make_shared<const Plan>(make());  // outside the lock: planning may take a while
        std::lock_guard lock(mutex_);
        if (entries_.size() >= kMaxPlans) entries_.erase(entries_.begin());  // a step uses a handful
        entries_.emplace_back(key, plan);
        return plan;
    }

private:
    static constexpr size_t kMaxPlans = 16;
    std::mutex mutex_;
    std::vector<std::pair<Key, std::shared_ptr<const void>>> entries_;
};

// `cache`'s plan for `key`, or a fresh one where the batch keeps no plans (tests, tools).
template <class Plan, class Make>
std::shared_ptr<const Plan> planned(PlanCache* cache, const PlanCache::Key& key, Make&& make) {
    if (cache == nullptr) return std::make_shared<const Plan>(make());
    return cache->get<Plan>(key, std::forward<Make>(make));
}

}  // namespace pagedkv::kernels
