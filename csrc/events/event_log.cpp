#include "events/event_log.h"

#include <algorithm>
#include <ctime>

namespace pagedkv::events {

namespace {
// The log this thread is delivering from: a callback that calls into the cache closes batches
// that the delivery loop it runs inside picks up, instead of waiting for itself.
thread_local const EventLog* delivering = nullptr;

// Makes room for `extra` more elements, growing geometrically (a plain reserve(size + extra) would
// reallocate on every event once the capacity is reached).
template <class Vector>
void make_room(Vector& v, size_t extra) {
    if (v.size() + extra > v.capacity()) v.reserve(std::max(v.size() + extra, 2 * v.capacity()));
}

// The batch timestamp (vLLM's time.time()). The coarse clock (a few milliseconds of resolution)
// costs a few nanoseconds where the precise one costs tens, on every call that closes a batch.
double now_seconds() {
    timespec now{};
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return double(now.tv_sec) + double(now.tv_nsec) * 1e-9;
}
}  // namespace

void EventLog::Batch::clear() {
    records.clear();
    hashes.clear();
    tokens.clear();
    view.clear();
}

EventLog::EventLog(PageManager& pages, std::mutex& cache_mutex, int32_t medium)
    : pages_(pages),
      trie_(pages.trie()),
      cache_mutex_(cache_mutex),
      page_size_(trie_.page_size()),
      medium_(medium),
      hashes_(trie_.num_pages()),
      current_(std::make_unique<Batch>()) {}

EventLog::~EventLog() { pages_.set_index_listener(nullptr); }

// ---- listeners --------------------------------------------------------------------------------

void EventLog::set_listener(const void* owner, pagedkv_event_callback callback, void* user_data) {
    std::lock_guard delivery(delivery_mutex_);
    deliver_ready();  // what was closed before the change goes to the listeners of before
    std::lock_guard lock(cache_mutex_);
    const bool was_enabled = enabled();
    auto it = std::find_if(listeners_.begin(), listeners_.end(), [&](const Listener& l) { return l.owner == owner; });
    if (callback == nullptr) {
        if (it != listeners_.end()) listeners_.erase(it);
    } else if (it != listeners_.end()) {
        it->callback = callback;
        it->user_data = user_data;
    } else {
        listeners_.push_back({owner, callback, user_data});
    }
    if (enabled() && !was_enabled) {
        hashes_.compute_all(trie_);  // blocks indexed while nobody listened
        pages_.set_index_listener(this);
    } else if (!enabled() && was_enabled) {
        pages_.set_index_listener(nullptr);
        current_->clear();  // nobody will read it
    }
}

// ---- recording --------------------------------------------------------------------------------

EventLog::Record& EventLog::record(int32_t type, bool extends) {
    Batch& batch = *current_;
    if (extends) return batch.records.back();
    batch.records.push_back({type, 0, int64_t(batch.hashes.size()), int64_t(batch.tokens.size()), 0, false});
    return batch.records.back();
}

void EventLog::full_inserted(int32_t page) noexcept {
    Batch& batch = *current_;
    bool has_parent;
    int64_t parent = hashes_.parent_hash(trie_, page, &has_parent);
    int64_t hash = hashes_.compute(trie_, page, parent);
    // A chain of blocks stored one after the other (a commit of several pages) is one event, as
    // vLLM reports a request's new blocks.
    bool extends = !batch.records.empty() && batch.records.back().type == PAGEDKV_EVENT_BLOCK_STORED &&
                   has_parent && batch.hashes.back() == parent;
    try {  // all room first, so nothing below can fail half-way
        make_room(batch.hashes, 1);
        make_room(batch.tokens, size_t(page_size_));
        make_room(batch.records, 1);
    } catch (...) {
        return;  // out of host memory: the event is lost, the index change goes on
    }
    Record& r = record(PAGEDKV_EVENT_BLOCK_STORED, extends);
    if (!extends) {
        r.parent_hash = parent;
        r.has_parent = has_parent;
    }
    ++r.num_blocks;
    batch.hashes.push_back(hash);
    const int32_t* tokens = trie_.tokens(page);
    batch.tokens.insert(batch.tokens.end(), tokens, tokens + page_size_);
}

void EventLog::full_removing(int32_t page) noexcept {
    Batch& batch = *current_;
    bool extends = !batch.records.empty() && batch.records.back().type == PAGEDKV_EVENT_BLOCK_REMOVED;
    try {
        make_room(batch.hashes, 1);
        make_room(batch.records, 1);
    } catch (...) {
        return;
    }
    ++record(PAGEDKV_EVENT_BLOCK_REMOVED, extends).num_blocks;
    batch.hashes.push_back(hashes_[page]);
}

void EventLog::replace_with_all_cleared() noexcept {
    current_->clear();  // keeps the capacity the removals used
    try {
        record(PAGEDKV_EVENT_ALL_BLOCKS_CLEARED, false);
    } catch (...) {
    }  // out of host memory: subscribers miss the clear (never the cache's caller)
}

bool EventLog::close_batch() noexcept {
    if (current_->records.empty()) return false;
    std::unique_ptr<Batch> next;
    if (!spare_.pop(next)) {
        try {
            next = std::make_unique<Batch>();
        } catch (...) {
            return false;  // out of host memory: the events stay open and join the next batch
        }
    }
    current_->seq = next_seq_;
    current_->timestamp = now_seconds();
    if (!ready_.push(current_)) return false;  // deliverers far behind: this batch grows until they catch up
    current_ = std::move(next);
    ++next_seq_;
    return true;
}

// ---- snapshot ---------------------------------------------------------------------------------

int32_t EventLog::snapshot(pagedkv_snapshot_block* out, int32_t* tokens, int32_t capacity) const {
    // While events are on the hashes are up to date; otherwise compute them for this snapshot.
    std::unique_ptr<BlockHashes> computed;
    const BlockHashes* hashes = &hashes_;
    if (!enabled()) {
        computed = std::make_unique<BlockHashes>(trie_.num_pages());
        computed->compute_all(trie_);
        hashes = computed.get();
    }
    int32_t count = 0;
    trie_.for_each_full_node([&](int32_t page) {
        if (count < capacity) {
            pagedkv_snapshot_block& block = out[count];
            bool has_parent;
            block.block_hash = (*hashes)[page];
            block.parent_block_hash = hashes->parent_hash(trie_, page, &has_parent);
            block.has_parent = has_parent ? 1 : 0;
            if (!has_parent) block.parent_block_hash = 0;
            block.medium = medium_;
            if (tokens != nullptr)
                std::copy_n(trie_.tokens(page), page_size_, tokens + int64_t(count) * page_size_);
        }
        ++count;
    });
    return count;
}

// ---- delivery ---------------------------------------------------------------------------------

void EventLog::deliver() noexcept {
    if (delivering == this) return;  // a callback's own call: the running loop delivers it
    std::lock_guard delivery(delivery_mutex_);
    deliver_ready();
}

void EventLog::deliver_ready() noexcept {
    const EventLog* outer = delivering;
    delivering = this;
    for (std::unique_ptr<Batch> batch; ready_.pop(batch);) {
        deliver_one(*batch);
        batch->clear();
        spare_.push(batch);  // when the ring is full, `batch` keeps it and frees it below
        batch.reset();
    }
    delivering = outer;
}

void EventLog::deliver_one(Batch& batch) noexcept {
    try {
        batch.view.reserve(batch.records.size());
        for (const Record& r : batch.records) {
            pagedkv_block_event event{};
            event.struct_size = sizeof(event);
            event.type = r.type;
            event.medium = medium_;
            event.block_size = page_size_;
            event.num_blocks = r.num_blocks;
            event.has_parent = r.has_parent ? 1 : 0;
            event.parent_block_hash = r.has_parent ? r.parent_hash : 0;
            event.lora_id = -1;
            event.block_hashes = r.num_blocks > 0 ? batch.hashes.data() + r.first_hash : nullptr;
            if (r.type == PAGEDKV_EVENT_BLOCK_STORED) {
                event.token_ids = batch.tokens.data() + r.first_token;
                event.num_token_ids = int64_t(r.num_blocks) * page_size_;
            }
            batch.view.push_back(event);
        }
    } catch (...) {
        return;  // out of host memory: this batch is lost to the listeners rather than the call failing
    }
    pagedkv_event_batch out{};
    out.struct_size = sizeof(out);
    out.num_events = int32_t(batch.view.size());
    out.seq = batch.seq;
    out.timestamp = batch.timestamp;
    out.event_stride = int32_t(sizeof(pagedkv_block_event));
    out.events = batch.view.data();
    for (const Listener& listener : listeners_) listener.callback(&out, listener.user_data);
}

}  // namespace pagedkv::events
