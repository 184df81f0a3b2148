// Loads of prompts' pages from the tiers on a background I/O thread, so that no cache call waits
// on disk or Redis while it holds the cache's lock. A load is a job: the pages of one prompt from
// a given page on; the thread fetches and verifies them window by window (one batch per window,
// see TierChain::fetch_chain) and publishes the verified run as it grows. Jobs in flight are
// found by the key of their first page, so a sequence_create joins the load a prefetch started
// instead of asking the tiers again. The objects a job loaded stay in memory (host tier slots
// pinned) until the last holder of the job lets go: a run promised to a caller cannot shrink.
// When a job ends the installer is called (on the I/O thread, no loader lock held) to put its
// run into the pool.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tiers/key_hash.h"
#include "tiers/tier_chain.h"

namespace pagedkv::tiers {

class TierLoader {
public:
    struct Job {
        // Set when the job starts; read-only afterwards.
        int32_t root = -1;            // the pool root the pages hang under (the installer's business)
        std::vector<int32_t> prompt;  // the prompt's tokens up to the last page to load
        int64_t first = 0;            // page index of the first page to load
        int64_t limit = 0;            // one past the last page to load
        PageKey parent{};             // key of page first - 1 (or of the root)
        PageKey first_key{};          // key of page `first` (how joiners find the job)
        // Published by the I/O thread under the loader's mutex.
        TierChain::Run run;  // the verified run so far (run.first == first)
        bool done = false;   // the run is final (a miss, the limit, or the loader stopped)
    };
    // Puts a finished job's run into the pool (on the I/O thread; never after stop()).
    using Installer = std::function<void(const Job&)>;

    TierLoader(TierChain& chain, int32_t page_size, Installer installer);
    ~TierLoader();
    TierLoader(const TierLoader&) = delete;
    TierLoader& operator=(const TierLoader&) = delete;

    // The job in flight for `first_key`, or null.
    std::shared_ptr<Job> find(const PageKey& first_key) const;
    // Queues `job` (its run empty) unless one for the same first page is in flight, which is
    // returned instead; `started` says which. Null once the loader is stopped.
    std::shared_ptr<Job> start(std::unique_ptr<Job> job, bool& started);
    // Waits until `job` is done or `deadline` passes, then copies its verified run into `out`
    // (out.keys/out.loads from the job's first page). Returns whether the job was done.
    bool wait(const Job& job, std::chrono::steady_clock::time_point deadline, TierChain::Run& out) const;
    // Waits until every job queued before the call has ended and been installed.
    void drain();
    // Drops the queued jobs (done, nothing loaded), lets the running one stop after its current
    // window (bounded by the tiers' timeout), and joins the thread. Later starts return null.
    void stop();

private:
    void run_jobs();
    void load(Job& job);

    TierChain& chain_;
    const int32_t page_size_;
    const Installer installer_;
    mutable std::mutex mutex_;
    mutable std::condition_variable wake_;      // a job was queued, or stop
    mutable std::condition_variable progress_;  // a job's run grew or it ended
    std::deque<std::shared_ptr<Job>> queue_;
    std::unordered_map<PageKey, std::shared_ptr<Job>, PageKeyHash> in_flight_;  // queued or running, by first key
    uint64_t started_jobs_ = 0, finished_jobs_ = 0;  // drain() waits for finished to catch up
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace pagedkv::tiers
