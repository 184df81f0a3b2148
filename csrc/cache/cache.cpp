#include "cache/cache.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "cache/cache_config.h"
#include "common/dtype.h"
#include "common/error.h"
#include "quant/layer_geometry.h"

namespace pagedkv {

Cache::Cache(const pagedkv_cache_config& config, PrefixTrie::KeyFunction key)
    : config_(validated_config(config)),
      page_bytes_(page_bytes_of(config_)),
      device_(device::make_device(config_.device_type, config_.device_index)),
      pages_(config_, page_bytes_, *device_, key),
      events_(pages_, mutex_, medium()),
      kv_scales_(config_.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3 ? config_.num_layers : 0, config_.num_kv_heads) {
    config_.struct_size = sizeof(pagedkv_cache_config);
    pages_.attach_tiers(std::make_unique<tiers::TierChain>(config_, layout(), *device_));
    // The chain copied what it needs; the caller's strings are not ours to keep.
    config_.disk_tier_path = config_.remote_tier = config_.tier_namespace = nullptr;
    if (pages_.tiers() != nullptr && pages_.tiers()->needs_io() && pages_.reuse())
        loader_ = std::make_unique<tiers::TierLoader>(*pages_.tiers(), config_.page_size,
                                                      [this](const tiers::TierLoader::Job& job) { install_job(job); });
    stats_.struct_size = sizeof(pagedkv_cache_stats);
    stats_.pages_total = config_.num_pages;
}

Cache::~Cache() {
    shutdown();
    for (void* ptr : device_allocations_) device_->free(ptr);
}

void Cache::shutdown() {
    // Before the lock: the loader's thread may be waiting for it to install a job.
    if (loader_) loader_->stop();
    Lock lock(mutex_);
    idle_.wait(lock, [&] {
        return std::none_of(batches_.begin(), batches_.end(), [](const Batch* b) { return b->running_ > 0; });
    });
    for (Batch* batch : batches_) {
        // Not on the batch's stream: the caller may have destroyed it already.
        device_->release_metadata(batch->metadata_, nullptr);
        batch->owner_ = nullptr;
        batch->stale_change_ = "destroyed with its cache";
    }
    batches_.clear();
    for (auto& entry : sequences_) entry.second.batches.clear();
}

// ---- layout -----------------------------------------------------------------------------------

kernels::PagedLayer Cache::layer(int32_t layer) const {
    PAGEDKV_REQUIRE(layer >= 0 && layer < config_.num_layers, PAGEDKV_ERR_INVALID_ARGUMENT, "layer ", layer,
                    " out of range [0, ", config_.num_layers, ")");
    kernels::PagedLayer result;
    result.pool_base = pages_.pool_base();
    result.slab_stride = int64_t(config_.num_kv_heads) * config_.page_size * config_.head_dim;
    result.page_stride = int64_t(config_.num_layers) * 2 * result.slab_stride;
    result.layer = layer;
    result.page_size = config_.page_size;
    result.num_kv_heads = config_.num_kv_heads;
    result.head_dim = config_.head_dim;
    result.kv_dtype = config_.kv_dtype;
    result.hadamard = (config_.flags & PAGEDKV_CACHE_HADAMARD) != 0;
    if (config_.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3) result.kv_scales = kv_scales_.layer_scales(layer);
    return with_byte_geometry(result, config_.num_layers);
}

KvScales& Cache::kv_scales(int32_t layer) {
    PAGEDKV_REQUIRE(config_.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "kv scales belong to fp8_e4m3 caches; this one is ", dtype_name(config_.kv_dtype));
    PAGEDKV_REQUIRE(layer >= 0 && layer < config_.num_layers, PAGEDKV_ERR_INVALID_ARGUMENT, "layer ", layer,
                    " out of range [0, ", config_.num_layers, ")");
    return kv_scales_;
}

pagedkv_cache_layout Cache::layout() const {
    kernels::PagedLayer first = layer(0);
    pagedkv_cache_layout out{};
    out.struct_size = sizeof(out);
    out.num_layers = config_.num_layers;
    out.num_kv_heads = config_.num_kv_heads;
    out.head_dim = config_.head_dim;
    out.page_size = config_.page_size;
    out.num_pages = config_.num_pages;
    out.kv_dtype = config_.kv_dtype;
    const bool quantized = is_quantized_dtype(config_.kv_dtype);
    out.element_bytes = quantized ? 1 : dtype_bytes(config_.kv_dtype);
    out.device_type = config_.device_type;
    out.device_index = config_.device_index;
    out.page_bytes = page_bytes_;
    out.slab_stride = quantized ? config_.num_kv_heads * first.run_bytes[0] : first.slab_stride;
    out.page_stride = quantized ? page_bytes_ : first.page_stride;
    out.pool_base = pages_.pool_base();
    out.pool_bytes = pages_.pool_bytes();
    out.k_run_bytes = first.run_bytes[0];
    out.v_run_bytes = first.run_bytes[1];
    out.flags = config_.flags;
    return out;
}

void* Cache::page_address(int32_t page) const {
    PAGEDKV_REQUIRE(page >= 0 && page < config_.num_pages, PAGEDKV_ERR_NOT_FOUND, "page ", page,
                    " out of range [0, ", config_.num_pages, ")");
    return static_cast<unsigned char*>(pages_.pool_base()) + int64_t(page) * page_bytes_;
}

// ---- counters ---------------------------------------------------------------------------------

pagedkv_cache_stats Cache::stats() const {
    std::lock_guard lock(mutex_);
    pagedkv_cache_stats out = stats_;
    out.pages_free = pages_.pool().free_count();
    out.pages_in_use = pages_.pool().in_use_count();
    out.pages_cached = pages_.pool().cached_count();
    out.index_nodes = pages_.trie().node_count();
    out.live_sequences = sequences_.size();
    out.evictions = pages_.evictions();
    out.cow_copies = pages_.cow_copies();
    out.dedup_hits = pages_.dedup_hits();
    out.kv_bytes_per_token = double(page_bytes_) / config_.page_size;
    return out;
}

int32_t Cache::index_roots() const {
    std::lock_guard lock(mutex_);
    return pages_.trie().root_count();
}

int32_t Cache::clear_unused() {
    ChangeLock guard(*this);
    const int32_t blocks_before = pages_.trie().full_count();
    int32_t evicted = pages_.evict_unused();
    // vLLM reports a reset of the prefix cache as one AllBlocksCleared: say that instead of the
    // removals when this call left no block at all.
    if (events_.enabled() && pages_.trie().full_count() == 0 && blocks_before > 0) events_.replace_with_all_cleared();
    return evicted;
}

// ---- batch tracking ---------------------------------------------------------------------------

Sequence& Cache::quiesced(int64_t seq_id, Lock& lock) {
    for (;;) {
        Sequence& s = sequences_.get(seq_id);  // again after each wait: it may be gone
        bool busy = std::any_of(s.batches.begin(), s.batches.end(), [](const Batch* b) { return b->running_ > 0; });
        if (!busy) return s;
        idle_.wait(lock);
    }
}

void Cache::invalidate_batches(Sequence& s, const char* change) {
    std::vector<Batch*> holding;
    holding.swap(s.batches);
    for (Batch* batch : holding) mark_stale(*batch, s.id, change);
}

void Cache::mark_stale(Batch& batch, int64_t seq_id, const char* change) {
    batch.stale_change_ = change;
    batch.stale_seq_ = seq_id;
    for (const Batch::Member& member : batch.members()) {
        Sequence* other = sequences_.find(member.seq_id);
        if (other == nullptr) continue;
        auto& list = other->batches;
        list.erase(std::remove(list.begin(), list.end(), &batch), list.end());
    }
}

Cache::BatchUse Cache::use_batch(Batch& batch) {
    std::lock_guard lock(mutex_);
    require_own_batch(batch);
    PAGEDKV_REQUIRE(batch.stale_change_ == nullptr, PAGEDKV_ERR_STALE_BATCH, "the batch is stale: sequence ",
                    batch.stale_seq_, " was ", batch.stale_change_,
                    " after the batch was built; build a new batch for this step");
    ++batch.running_;
    return BatchUse(*this, batch);
}

void Cache::end_use(Batch& batch) {
    std::lock_guard lock(mutex_);
    if (--batch.running_ == 0) idle_.notify_all();
}

void Cache::require_own_batch(const Batch& batch) const {
    PAGEDKV_REQUIRE(batch.owner_ == this, PAGEDKV_ERR_INVALID_ARGUMENT,
                    batch.owner_ == nullptr ? "the batch was destroyed (or its cache was)"
                                            : "the batch was created by another cache (its page ids mean nothing in this one)");
}

std::unique_ptr<Batch> Cache::make_batch(const int64_t* seq_ids, int32_t num_seqs, void* stream, bool wait) {
    PAGEDKV_REQUIRE(num_seqs >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_seqs must be >= 1, got ", num_seqs);
    std::vector<int64_t> sorted(seq_ids, seq_ids + num_seqs);
    std::sort(sorted.begin(), sorted.end());
    auto duplicate = std::adjacent_find(sorted.begin(), sorted.end());
    PAGEDKV_REQUIRE(duplicate == sorted.end(), PAGEDKV_ERR_INVALID_ARGUMENT, "sequence ",
                    duplicate == sorted.end() ? 0 : *duplicate, " appears more than once in seq_ids");
    std::unique_ptr<Batch> batch;
    {
        std::lock_guard lock(mutex_);
        std::vector<Sequence*> members;
        members.reserve(size_t(num_seqs));
        for (int32_t i = 0; i < num_seqs; ++i) members.push_back(&sequences_.get(seq_ids[i]));
        batch = std::make_unique<Batch>(std::vector<const Sequence*>(members.begin(), members.end()),
                                        config_.page_size);
        // Allocate every registration first, so that nothing below can fail half-way.
        batches_.reserve(batches_.size() + 1);
        for (Sequence* s : members) s->batches.reserve(s->batches.size() + 1);
        batch->metadata_ = device_->place_metadata(batch->storage(), batch->storage_bytes(), stream);
        batch->device_arrays_ = batch->arrays_at(batch->metadata_.data);
        batch->stream_ = stream;
        batch->owner_ = this;
        batches_.insert(batch.get());
        for (Sequence* s : members) s->batches.push_back(batch.get());
    }
    if (wait) device_->synchronize();
    return batch;
}

void Cache::destroy_batch(Batch& batch) {
    Lock lock(mutex_);
    if (batch.owner_ != this) return;  // its cache shut down first
    idle_.wait(lock, [&] { return batch.running_ == 0; });
    if (batch.stale_change_ == nullptr) mark_stale(batch, 0, "destroyed");
    batches_.erase(&batch);
    device_->release_metadata(batch.metadata_, batch.stream_);
    batch.owner_ = nullptr;
}

void Cache::commit_batch(Batch& batch) {
    ChangeLock guard(*this);
    Lock& lock = guard.lock();
    // Every member must be free of running kernel calls (this batch's included) first.
    for (;;) {
        require_own_batch(batch);
        PAGEDKV_REQUIRE(batch.stale_change_ == nullptr, PAGEDKV_ERR_STALE_BATCH, "the batch is stale: sequence ",
                        batch.stale_seq_, " was ", batch.stale_change_,
                        " after the batch was built, so it cannot commit what it wrote");
        bool busy = false;
        for (const Batch::Member& member : batch.members())
            for (const Batch* other : sequences_.get(member.seq_id).batches) busy |= other->running_ > 0;
        if (!busy) break;
        idle_.wait(lock);
    }
    for (const Batch::Member& member : batch.members()) {
        Sequence& s = sequences_.get(member.seq_id);
        if (member.num_tokens > s.num_computed) {
            pages_.index_computed(s, member.num_tokens);
            stats_.computed_tokens += member.num_tokens - s.num_computed;
            s.num_computed = member.num_tokens;
        }
    }
    for (const Batch::Member& member : batch.members()) {
        Sequence* s = sequences_.find(member.seq_id);
        if (s != nullptr) invalidate_batches(*s, "committed");
    }
}

// ---- device memory helpers --------------------------------------------------------------------

void* Cache::device_alloc(int64_t bytes) {
    PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "bytes must be >= 0, got ", bytes);
    std::lock_guard lock(mutex_);
    device_allocations_.reserve(device_allocations_.size() + 1);  // so the insert below cannot rehash
    void* ptr = device_->alloc(std::max<int64_t>(bytes, 1));
    try {
        device_allocations_.insert(ptr);
    } catch (...) {
        device_->free(ptr);
        throw;
    }
    return ptr;
}

void Cache::device_free(void* ptr) {
    if (ptr == nullptr) return;
    std::lock_guard lock(mutex_);
    auto it = device_allocations_.find(ptr);
    PAGEDKV_REQUIRE(it != device_allocations_.end(), PAGEDKV_ERR_INVALID_ARGUMENT, "pointer ", ptr,
                    " was not allocated by pagedkv_device_alloc on this cache (or was freed already)");
    device_allocations_.erase(it);
    device_->free(ptr);
}

void Cache::memcpy(void* dst, const void* src, int64_t bytes, int32_t kind) {
    PAGEDKV_REQUIRE(kind >= PAGEDKV_COPY_HOST_TO_DEVICE && kind <= PAGEDKV_COPY_DEVICE_TO_DEVICE,
                    PAGEDKV_ERR_INVALID_ARGUMENT, "kind ", kind, " is not a pagedkv_copy_kind (0, 1 or 2)");
    PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "bytes must be >= 0, got ", bytes);
    if (bytes == 0) return;
    PAGEDKV_REQUIRE(dst != nullptr && src != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "dst and src must not be null when bytes > 0");
    device_->copy(dst, src, bytes, kind);
}

void Cache::synchronize() { device_->synchronize(); }

}  // namespace pagedkv
