#include "tiers/io_queue.h"

namespace pagedkv::tiers {

IoQueue::IoQueue(int64_t max_pending_bytes) : max_pending_bytes_(max_pending_bytes), thread_([this] { run(); }) {}

IoQueue::~IoQueue() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

bool IoQueue::post(int64_t bytes, std::function<void()> job) {
    {
        std::lock_guard lock(mutex_);
        // One job always fits, so a budget below one object still makes progress.
        if (!jobs_.empty() && pending_bytes_ + bytes > max_pending_bytes_) return false;
        jobs_.emplace_back(bytes, std::move(job));
        pending_bytes_ += bytes;
    }
    wake_.notify_one();
    return true;
}

void IoQueue::drain() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return jobs_.empty() && !running_job_; });
}

void IoQueue::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and everything queued has run
        auto [bytes, job] = std::move(jobs_.front());
        jobs_.pop_front();
        running_job_ = true;
        lock.unlock();
        job();  // jobs never throw (tiers count their failures)
        lock.lock();
        running_job_ = false;
        pending_bytes_ -= bytes;
        if (jobs_.empty()) idle_.notify_all();
    }
}

}  // namespace pagedkv::tiers
