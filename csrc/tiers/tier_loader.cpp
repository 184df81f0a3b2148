#include "tiers/tier_loader.h"

#include <algorithm>

namespace pagedkv::tiers {

TierLoader::TierLoader(TierChain& chain, int32_t page_size, Installer installer)
    : chain_(chain), page_size_(page_size), installer_(std::move(installer)), thread_([this] { run_jobs(); }) {}

TierLoader::~TierLoader() { stop(); }

std::shared_ptr<TierLoader::Job> TierLoader::find(const PageKey& first_key) const {
    std::lock_guard lock(mutex_);
    auto it = in_flight_.find(first_key);
    return it == in_flight_.end() ? nullptr : it->second;
}

std::shared_ptr<TierLoader::Job> TierLoader::start(std::unique_ptr<Job> job, bool& started) {
    started = false;
    std::shared_ptr<Job> shared(std::move(job));
    shared->run.first = shared->first;
    shared->run.keys.assign(1, shared->parent);
    std::lock_guard lock(mutex_);
    if (stopping_) return nullptr;
    auto [it, inserted] = in_flight_.emplace(shared->first_key, shared);
    if (!inserted) return it->second;
    queue_.push_back(shared);
    ++started_jobs_;
    started = true;
    wake_.notify_one();
    return shared;
}

bool TierLoader::wait(const Job& job, std::chrono::steady_clock::time_point deadline, TierChain::Run& out) const {
    std::unique_lock lock(mutex_);
    progress_.wait_until(lock, deadline, [&] { return job.done; });
    out.first = job.run.first;
    out.keys = job.run.keys;
    out.loads = job.run.loads;
    return job.done;
}

void TierLoader::drain() {
    std::unique_lock lock(mutex_);
    const uint64_t target = started_jobs_;
    progress_.wait(lock, [&] { return finished_jobs_ >= target; });
}

void TierLoader::stop() {
    std::deque<std::shared_ptr<Job>> dropped;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
        dropped.swap(queue_);
        for (auto& job : dropped) {
            job->done = true;
            in_flight_.erase(job->first_key);
        }
        finished_jobs_ += dropped.size();
        wake_.notify_all();
        progress_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
}

void TierLoader::run_jobs() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping
        std::shared_ptr<Job> job = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        load(*job);
        lock.lock();
        job->done = true;
        progress_.notify_all();
        if (!stopping_) {
            // Still findable while it is installed: a create arriving now joins its run.
            lock.unlock();
            installer_(*job);
            lock.lock();
        }
        in_flight_.erase(job->first_key);
        ++finished_jobs_;
        progress_.notify_all();
    }
}

void TierLoader::load(Job& job) {
    // The walk runs on a private run (no lock while the tiers work) and publishes each window.
    TierChain::Run run;
    run.first = job.first;
    run.keys.assign(1, job.parent);
    const int32_t* tokens = job.prompt.data() + job.first * page_size_;
    chain_.fetch_chain(tokens, job.limit - job.first, run, [&] {
        std::lock_guard lock(mutex_);
        job.run.keys = run.keys;
        job.run.loads = run.loads;
        progress_.notify_all();
        return !stopping_;
    });
    std::lock_guard lock(mutex_);
    job.run.keys = std::move(run.keys);
    job.run.loads = std::move(run.loads);
}

}  // namespace pagedkv::tiers
