// One background I/O thread and its queue of jobs, bounded in bytes so that a slow or absent
// device below never makes the cache grow without limit or wait: a job that does not fit is
// refused (the caller counts a dropped store). The destructor finishes the queued jobs.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace pagedkv::tiers {

class IoQueue {
public:
    explicit IoQueue(int64_t max_pending_bytes);
    ~IoQueue();
    IoQueue(const IoQueue&) = delete;
    IoQueue& operator=(const IoQueue&) = delete;

    // Queues `job` accounted as `bytes`; false (job dropped) when it would exceed the bound.
    bool post(int64_t bytes, std::function<void()> job);
    // Waits until every job posted before the call has run.
    void drain();

private:
    void run();

    const int64_t max_pending_bytes_;
    std::mutex mutex_;
    std::condition_variable wake_, idle_;
    std::deque<std::pair<int64_t, std::function<void()>>> jobs_;
    int64_t pending_bytes_ = 0;
    bool running_job_ = false;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace pagedkv::tiers
