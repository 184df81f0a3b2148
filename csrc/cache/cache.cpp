#include "cache/cache.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "cache/cache_config.h"
#include "common/dtype.h"
#include "common/error.h"
#include "device/cuda_device.h"
#include "kernels/kernels.h"

namespace pagedkv {

namespace {
constexpr int32_t kNone = PrefixTrie::kNone;
}

Cache::Cache(const pagedkv_cache_config& config)
    : config_(validated_config(config)),
      page_bytes_(page_bytes_of(config_)),
      memory_(std::make_unique<PoolMemory>(config_.device_type, config_.device_index,
                                           page_bytes_ * config_.num_pages)),
      pool_(config_.num_pages),
      trie_(config_.num_pages, config_.page_size, pool_) {
    config_.struct_size = sizeof(pagedkv_cache_config);
    stats_.struct_size = sizeof(pagedkv_cache_stats);
    stats_.pages_total = config_.num_pages;
    scratch_pages_.reserve(size_t(config_.num_pages));
}

Cache::~Cache() {
    for (void* ptr : device_allocations_) {
        if (device_type() == PAGEDKV_DEVICE_CUDA)
            device::cuda_free(device_index(), ptr);
        else
            host_aligned_free(ptr);
    }
}

// ---- layout -----------------------------------------------------------------------------------

kernels::PagedLayer Cache::layer(int32_t layer) const {
    PAGEDKV_REQUIRE(layer >= 0 && layer < config_.num_layers, PAGEDKV_ERR_INVALID_ARGUMENT, "layer ", layer,
                    " out of range [0, ", config_.num_layers, ")");
    kernels::PagedLayer result;
    result.pool_base = memory_->base();
    result.slab_stride = int64_t(config_.num_kv_heads) * config_.page_size * config_.head_dim;
    result.page_stride = int64_t(config_.num_layers) * 2 * result.slab_stride;
    result.layer = layer;
    result.page_size = config_.page_size;
    result.num_kv_heads = config_.num_kv_heads;
    result.head_dim = config_.head_dim;
    result.kv_dtype = config_.kv_dtype;
    return result;
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
    out.element_bytes = dtype_bytes(config_.kv_dtype);
    out.device_type = config_.device_type;
    out.device_index = config_.device_index;
    out.page_bytes = page_bytes_;
    out.slab_stride = first.slab_stride;
    out.page_stride = first.page_stride;
    out.pool_base = memory_->base();
    out.pool_bytes = memory_->bytes();
    return out;
}

void* Cache::page_address(int32_t page) const {
    PAGEDKV_REQUIRE(page >= 0 && page < config_.num_pages, PAGEDKV_ERR_NOT_FOUND, "page ", page,
                    " out of range [0, ", config_.num_pages, ")");
    return static_cast<unsigned char*>(memory_->base()) + int64_t(page) * page_bytes_;
}

// ---- counters ---------------------------------------------------------------------------------

pagedkv_cache_stats Cache::stats() const {
    std::lock_guard lock(mutex_);
    pagedkv_cache_stats out = stats_;
    out.pages_free = pool_.free_count();
    out.pages_in_use = pool_.in_use_count();
    out.pages_cached = pool_.cached_count();
    out.index_nodes = trie_.node_count();
    out.live_sequences = sequences_.size();
    return out;
}

int32_t Cache::clear_unused() {
    std::lock_guard lock(mutex_);
    int32_t evicted = 0;
    for (int32_t page; (page = trie_.evict_lru()) != kNone; ++evicted) pool_.push_free(page);
    stats_.evictions += evicted;
    return evicted;
}

// ---- pages ------------------------------------------------------------------------------------

void Cache::require_pages(int64_t needed, const char* operation) const {
    int64_t available = int64_t(pool_.free_count()) + pool_.cached_count();
    PAGEDKV_REQUIRE(needed <= available, PAGEDKV_ERR_OUT_OF_PAGES, operation, " needs ", needed,
                    " free pages but only ", available, " are free or evictable (", pool_.free_count(),
                    " free, ", pool_.cached_count(), " cached, ", pool_.in_use_count(), " of ",
                    config_.num_pages, " held by sequences)");
}

int32_t Cache::allocate_page() {
    int32_t page = pool_.pop_free();
    if (page != kNone) return page;
    page = trie_.evict_lru();
    PAGEDKV_REQUIRE(page != kNone, PAGEDKV_ERR_INTERNAL, "no page to evict although the count said so");
    ++stats_.evictions;
    pool_.hold(page);
    return page;
}

void Cache::release_page(int32_t page) {
    if (!pool_.drop(page)) return;
    if (trie_.indexed(page)) {
        trie_.touch(page);
        trie_.offer(page);
    } else {
        pool_.push_free(page);
    }
}

void Cache::copy_page(int32_t src, int32_t dst) {
    if (device_type() == PAGEDKV_DEVICE_CUDA) {
        kernels::cuda::copy_pages(memory_->base(), page_bytes_, &src, &dst, 1, nullptr);
        // The copy must land before any later write into dst, whatever stream that runs on.
        device::cuda_synchronize(device_index());
    } else {
        kernels::cpu::copy_pages(memory_->base(), page_bytes_, &src, &dst, 1);
    }
}

void Cache::copy_on_write(Sequence& s, int64_t index) {
    int32_t old_page = s.block_table[size_t(index)];
    int32_t page = allocate_page();
    try {
        copy_page(old_page, page);
    } catch (...) {
        release_page(page);
        throw;
    }
    // The copy holds our computed run of this page: it donates it, so the run stays known
    // even if the page we leave is later shortened or evicted.
    int64_t computed_here = s.num_computed - index * config_.page_size;
    if (reuse() && computed_here > 0)
        trie_.set_partial(page, parent_node(s, index), s.tokens.data() + index * config_.page_size,
                          int32_t(std::min<int64_t>(computed_here, config_.page_size - 1)));
    s.block_table[size_t(index)] = page;
    release_page(old_page);
    ++stats_.cow_copies;
}

// ---- sequences --------------------------------------------------------------------------------

void Cache::validate_tokens(const int32_t* tokens, int64_t count, const char* what) const {
    // Branch-free passes the compiler vectorizes; the slow search below runs only on failure.
    const int32_t vocab = config_.vocab_size;
    int32_t bad = 0;
    if (vocab > 0)
        for (int64_t i = 0; i < count; ++i) bad |= int32_t(tokens[i] < 0) | int32_t(tokens[i] >= vocab);
    else
        for (int64_t i = 0; i < count; ++i) bad |= tokens[i];  // sign bit: a negative id
    if (vocab > 0 ? bad == 0 : bad >= 0) return;
    uint32_t limit = vocab > 0 ? uint32_t(vocab) : 0x80000000u;
    for (int64_t i = 0; i < count; ++i) {
        if (uint32_t(tokens[i]) < limit) continue;
        if (config_.vocab_size > 0)
            fail(PAGEDKV_ERR_INVALID_ARGUMENT, what, "[", i, "] = ", tokens[i], " is not a token id in [0, ",
                 config_.vocab_size, ")");
        fail(PAGEDKV_ERR_INVALID_ARGUMENT, what, "[", i, "] = ", tokens[i], " is negative");
    }
}

Cache::Created Cache::create_sequence(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt,
                                      int32_t salt_len) {
    PAGEDKV_REQUIRE(num_tokens >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 1, got ", num_tokens);
    PAGEDKV_REQUIRE(salt_len >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "salt_len must be >= 0, got ", salt_len);
    const int32_t ps = config_.page_size;
    const int64_t total_pages = pages_for(num_tokens);
    PAGEDKV_REQUIRE(total_pages <= config_.num_pages, PAGEDKV_ERR_OUT_OF_PAGES, "a prompt of ", num_tokens,
                    " tokens needs ", total_pages, " pages; the cache has ", config_.num_pages);
    validate_tokens(prompt, num_tokens, "prompt");
    std::string_view key(reinterpret_cast<const char*>(salt), salt_len > 0 ? size_t(salt_len) : 0);

    // Host allocations first, outside the lock: a failure here changes nothing.
    Sequence s;
    s.tokens.assign(prompt, prompt + num_tokens);
    s.block_table.reserve(size_t(total_pages));

    std::lock_guard lock(mutex_);
    scratch_pages_.clear();
    PrefixTrie::PartialHit partial;
    if (reuse()) {
        s.root = trie_.add_root(key);  // an empty root is invisible if we fail below
        partial = trie_.longest_match(s.root, prompt, num_tokens, scratch_pages_).partial;
    }
    const int64_t shared = int64_t(scratch_pages_.size());
    const int64_t fresh = total_pages - shared;

    // Pin what matched so that making room cannot evict it; then count what is left.
    for (int32_t page : scratch_pages_) pool_.hold(page);
    if (partial.donor != kNone) pool_.hold(partial.donor);
    auto unpin = [&] {  // ref counts back as they were; LRU stamps were not touched
        for (int32_t page : scratch_pages_) pool_.drop(page);
        if (partial.donor != kNone) pool_.drop(partial.donor);
    };
    Sequence* stored;
    try {
        require_pages(fresh, "creating this sequence");
        stored = &sequences_.add(std::move(s));
    } catch (...) {
        unpin();
        throw;
    }

    std::vector<int32_t>& table = stored->block_table;
    // (Shared pages need no LRU stamp now: held pages are never evicted, and each gets a fresh
    // stamp when its last holder lets go.)
    table.assign(scratch_pages_.begin(), scratch_pages_.end());
    for (int64_t i = 0; i < fresh; ++i) table.push_back(allocate_page());
    if (partial.length > 0) {
        try {
            copy_page(partial.donor, table[size_t(shared)]);
        } catch (...) {
            for (int64_t i = shared; i < total_pages; ++i) release_page(table[size_t(i)]);
            unpin();
            sequences_.remove(stored->id);
            throw;
        }
    }

    if (partial.donor != kNone) {
        trie_.touch(partial.donor);
        if (pool_.drop(partial.donor)) trie_.offer(partial.donor);
    }
    if (partial.length > 0) {
        // The copy is a computed run of ours: it donates it like any partly computed page.
        trie_.set_partial(table[size_t(shared)], parent_node(*stored, shared), prompt + shared * ps,
                          partial.length);
        ++stats_.cow_copies;
    }
    int64_t cached = shared * ps + partial.length;
    stored->num_computed = stored->num_cached = cached;
    stats_.prompt_tokens += num_tokens;
    stats_.reused_tokens += cached;
    return {stored->id, cached};
}

pagedkv_sequence_info Cache::sequence_info(int64_t seq_id) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    pagedkv_sequence_info info{};
    info.struct_size = sizeof(info);
    info.num_pages = int32_t(s.block_table.size());
    info.num_tokens = s.num_tokens();
    info.num_computed = s.num_computed;
    info.num_cached = s.num_cached;
    return info;
}

int32_t Cache::block_table(int64_t seq_id, int32_t* out, int32_t capacity) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    size_t count = std::min(size_t(capacity), s.block_table.size());
    std::copy_n(s.block_table.begin(), count, out);
    return int32_t(s.block_table.size());
}

int64_t Cache::tokens(int64_t seq_id, int32_t* out, int64_t capacity) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    std::copy_n(s.tokens.begin(), std::min(capacity, s.num_tokens()), out);
    return s.num_tokens();
}

int64_t Cache::slot_mapping(int64_t seq_id, int64_t* out, int64_t capacity) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    const int32_t ps = config_.page_size;
    int64_t count = s.num_tokens() - s.num_computed;
    int64_t n = std::min(capacity, count);
    for (int64_t i = 0; i < n; ++i) {
        int64_t position = s.num_computed + i;
        out[i] = int64_t(s.block_table[size_t(position / ps)]) * ps + position % ps;
    }
    return count;
}

void Cache::commit(int64_t seq_id, int64_t num_computed) {
    std::lock_guard lock(mutex_);
    Sequence& s = sequences_.get(seq_id);
    PAGEDKV_REQUIRE(num_computed >= s.num_computed && num_computed <= s.num_tokens(), PAGEDKV_ERR_INVALID_ARGUMENT,
                    "num_computed ", num_computed, " of sequence ", seq_id, " must lie in [", s.num_computed, ", ",
                    s.num_tokens(), "] (committed so far, tokens)");
    if (reuse()) index_computed(s, num_computed);
    stats_.computed_tokens += num_computed - s.num_computed;
    s.num_computed = num_computed;
}

void Cache::append(int64_t seq_id, const int32_t* tokens, int64_t num_tokens) {
    PAGEDKV_REQUIRE(num_tokens >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 1, got ", num_tokens);
    const int32_t ps = config_.page_size;
    PAGEDKV_REQUIRE(num_tokens <= int64_t(config_.num_pages) * ps, PAGEDKV_ERR_OUT_OF_PAGES, "appending ",
                    num_tokens, " tokens needs more pages than the cache has (", config_.num_pages, ")");
    validate_tokens(tokens, num_tokens, "tokens");
    std::lock_guard lock(mutex_);
    Sequence& s = sequences_.get(seq_id);
    const int64_t length = s.num_tokens();
    const int32_t fill = int32_t(length % ps);
    const int64_t last = int64_t(s.block_table.size()) - 1;
    // A partly filled last page we may not write into: shared, a FULL node (after a truncate),
    // or a donor whose run reaches past our tokens (a run a fork shared, see truncate()).
    bool copy = false;
    if (fill != 0) {
        int32_t page = s.block_table[size_t(last)];
        copy = pool_.ref_count(page) > 1 || trie_.kind(page) == NodeKind::Full ||
               (trie_.kind(page) == NodeKind::Partial && trie_.valid(page) > fill);
    }
    const int64_t new_pages = pages_for(length + num_tokens) - int64_t(s.block_table.size());
    require_pages(new_pages + (copy ? 1 : 0), "this append");
    s.tokens.reserve(size_t(length + num_tokens));
    s.block_table.reserve(s.block_table.size() + size_t(new_pages));

    if (copy) copy_on_write(s, last);
    for (int64_t i = 0; i < new_pages; ++i) s.block_table.push_back(allocate_page());
    s.tokens.insert(s.tokens.end(), tokens, tokens + num_tokens);
}

int64_t Cache::fork(int64_t seq_id) {
    std::lock_guard lock(mutex_);
    const int32_t ps = config_.page_size;
    Sequence& parent = sequences_.get(seq_id);
    const int64_t length = parent.num_tokens(), computed = parent.num_computed;
    const int64_t pages = int64_t(parent.block_table.size());
    // Pages with a position still to compute cannot be shared while being written.
    const int64_t shared = computed == length ? pages : computed / ps;
    require_pages(pages - shared, "this fork");

    Sequence child;
    child.root = parent.root;
    child.tokens = parent.tokens;
    child.num_computed = child.num_cached = computed;
    child.block_table.reserve(size_t(pages));
    Sequence& stored = sequences_.add(std::move(child));  // map references stay valid
    const Sequence& source = parent;

    for (int64_t i = 0; i < shared; ++i) {
        pool_.hold(source.block_table[size_t(i)]);
        stored.block_table.push_back(source.block_table[size_t(i)]);
    }
    if (shared == pages && length % ps != 0) {
        // The shared partial tail: neither side may shorten its donated run any more.
        int32_t tail = source.block_table[size_t(pages - 1)];
        if (trie_.kind(tail) == NodeKind::Partial) trie_.mark_shared_run(tail);
    }
    for (int64_t i = shared; i < pages; ++i) {
        int32_t page = allocate_page();
        stored.block_table.push_back(page);
        if (i == computed / ps && computed % ps != 0) {
            copy_page(source.block_table[size_t(i)], page);
            if (reuse())
                trie_.set_partial(page, parent_node(stored, i), stored.tokens.data() + i * ps,
                                  int32_t(computed % ps));
            ++stats_.cow_copies;
        }
    }
    return stored.id;
}

void Cache::truncate(int64_t seq_id, int64_t new_num_tokens) {
    std::lock_guard lock(mutex_);
    Sequence& s = sequences_.get(seq_id);
    PAGEDKV_REQUIRE(new_num_tokens >= 1 && new_num_tokens <= s.num_tokens(), PAGEDKV_ERR_INVALID_ARGUMENT,
                    "new_num_tokens ", new_num_tokens, " of sequence ", seq_id, " must lie in [1, ", s.num_tokens(),
                    "]");
    const int64_t keep = pages_for(new_num_tokens);
    for (int64_t i = int64_t(s.block_table.size()) - 1; i >= keep; --i) release_page(s.block_table[size_t(i)]);
    s.block_table.resize(size_t(keep));
    s.tokens.resize(size_t(new_num_tokens));
    s.num_computed = std::min(s.num_computed, new_num_tokens);

    // Our own donated run past the new end is about to be overwritten: shorten it. A run a
    // fork shared stays (its other holders computed it); the next append copies the page.
    int32_t last = s.block_table.back();
    if (trie_.kind(last) == NodeKind::Partial && pool_.ref_count(last) == 1 && !trie_.shared_run(last)) {
        int64_t computed_here = std::max<int64_t>(0, s.num_computed - (keep - 1) * config_.page_size);
        if (trie_.valid(last) > computed_here) trie_.shorten_partial(last, int32_t(computed_here));
    }
}

void Cache::release(int64_t seq_id) {
    std::lock_guard lock(mutex_);
    Sequence& s = sequences_.get(seq_id);
    // Deepest first, so a sequence's tail is older in LRU order than its prefix.
    for (auto it = s.block_table.rbegin(); it != s.block_table.rend(); ++it) release_page(*it);
    sequences_.remove(seq_id);
}

// ---- index ------------------------------------------------------------------------------------

void Cache::index_computed(Sequence& s, int64_t num_computed) {
    const int32_t ps = config_.page_size;
    for (int64_t index = s.num_computed / ps; (index + 1) * ps <= num_computed; ++index) index_full_page(s, index);
    if (num_computed % ps != 0 && num_computed > s.num_computed) {
        int64_t index = num_computed / ps;
        index_partial_page(s, index, int32_t(num_computed - index * ps));
    }
}

void Cache::index_full_page(Sequence& s, int64_t index) {
    int32_t page = s.block_table[size_t(index)];
    if (trie_.kind(page) == NodeKind::Full) return;  // shared from the index already
    int32_t parent = parent_node(s, index);
    const int32_t* tokens = s.tokens.data() + index * config_.page_size;
    int32_t existing = trie_.find_full(parent, tokens);
    if (existing == kNone) {
        trie_.insert_full(page, parent, tokens);  // a donor is converted in place
        return;
    }
    // Someone computed the same page independently: keep theirs, free ours.
    pool_.hold(existing);
    trie_.touch(existing);
    if (trie_.kind(page) == NodeKind::Partial) trie_.unlink(page);
    s.block_table[size_t(index)] = existing;
    release_page(page);
    ++stats_.dedup_hits;
}

void Cache::index_partial_page(Sequence& s, int64_t index, int32_t valid) {
    int32_t page = s.block_table[size_t(index)];
    const int32_t* tokens = s.tokens.data() + index * config_.page_size;
    NodeKind kind = trie_.kind(page);
    if (kind == NodeKind::Partial)
        trie_.set_partial(page, trie_.parent(page), tokens, std::max(valid, trie_.valid(page)));
    else if (kind == NodeKind::None && pool_.ref_count(page) == 1)
        trie_.set_partial(page, parent_node(s, index), tokens, valid);
}

// ---- batches ----------------------------------------------------------------------------------

std::unique_ptr<Batch> Cache::make_batch(const int64_t* seq_ids, int32_t num_seqs) {
    PAGEDKV_REQUIRE(num_seqs >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_seqs must be >= 1, got ", num_seqs);
    std::vector<int64_t> sorted(seq_ids, seq_ids + num_seqs);
    std::sort(sorted.begin(), sorted.end());
    auto duplicate = std::adjacent_find(sorted.begin(), sorted.end());
    PAGEDKV_REQUIRE(duplicate == sorted.end(), PAGEDKV_ERR_INVALID_ARGUMENT, "sequence ",
                    duplicate == sorted.end() ? 0 : *duplicate, " appears more than once in seq_ids");
    std::unique_ptr<Batch> batch;
    {
        std::lock_guard lock(mutex_);
        std::vector<const Sequence*> members;
        members.reserve(size_t(num_seqs));
        for (int32_t i = 0; i < num_seqs; ++i) members.push_back(&sequences_.get(seq_ids[i]));
        batch = std::make_unique<Batch>(members, config_.page_size);
    }
    if (device_type() == PAGEDKV_DEVICE_CUDA) batch->upload_to_cuda(device_index());
    return batch;
}

void Cache::commit_batch(const Batch& batch) {
    std::lock_guard lock(mutex_);
    for (const Batch::Member& member : batch.members()) {
        const Sequence& s = sequences_.get(member.seq_id);
        PAGEDKV_REQUIRE(member.num_tokens <= s.num_tokens(), PAGEDKV_ERR_INVALID_ARGUMENT, "sequence ",
                        member.seq_id, " was truncated to ", s.num_tokens(), " tokens after the batch was built with ",
                        member.num_tokens);
    }
    for (const Batch::Member& member : batch.members()) {
        Sequence& s = sequences_.get(member.seq_id);
        if (member.num_tokens <= s.num_computed) continue;  // already committed this far
        if (reuse()) index_computed(s, member.num_tokens);
        stats_.computed_tokens += member.num_tokens - s.num_computed;
        s.num_computed = member.num_tokens;
    }
}

// ---- device memory helpers --------------------------------------------------------------------

void* Cache::device_alloc(int64_t bytes) {
    PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "bytes must be >= 0, got ", bytes);
    std::lock_guard lock(mutex_);
    device_allocations_.reserve(device_allocations_.size() + 1);  // so the insert below cannot throw
    void* ptr;
    if (device_type() == PAGEDKV_DEVICE_CUDA) {
        ptr = device::cuda_alloc(device_index(), std::max<int64_t>(bytes, 1));
    } else {
        ptr = host_aligned_alloc(bytes, 256);
        PAGEDKV_REQUIRE(ptr != nullptr, PAGEDKV_ERR_OUT_OF_MEMORY, "cannot allocate ", bytes, " bytes of host memory");
    }
    device_allocations_.insert(ptr);
    return ptr;
}

void Cache::device_free(void* ptr) {
    if (ptr == nullptr) return;
    std::lock_guard lock(mutex_);
    auto it = device_allocations_.find(ptr);
    PAGEDKV_REQUIRE(it != device_allocations_.end(), PAGEDKV_ERR_INVALID_ARGUMENT, "pointer ", ptr,
                    " was not allocated by pagedkv_device_alloc on this cache (or was freed already)");
    device_allocations_.erase(it);
    if (device_type() == PAGEDKV_DEVICE_CUDA)
        device::cuda_free(device_index(), ptr);
    else
        host_aligned_free(ptr);
}

void Cache::memcpy(void* dst, const void* src, int64_t bytes, int32_t kind) {
    PAGEDKV_REQUIRE(kind >= PAGEDKV_COPY_HOST_TO_DEVICE && kind <= PAGEDKV_COPY_DEVICE_TO_DEVICE,
                    PAGEDKV_ERR_INVALID_ARGUMENT, "kind ", kind, " is not a pagedkv_copy_kind (0, 1 or 2)");
    PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "bytes must be >= 0, got ", bytes);
    if (bytes == 0) return;
    PAGEDKV_REQUIRE(dst != nullptr && src != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "dst and src must not be null when bytes > 0");
    if (device_type() == PAGEDKV_DEVICE_CUDA)
        device::cuda_memcpy(device_index(), dst, src, bytes, kind);
    else
        std::memmove(dst, src, size_t(bytes));
}

void Cache::synchronize() {
    if (device_type() == PAGEDKV_DEVICE_CUDA) device::cuda_synchronize(device_index());
}

}  // namespace pagedkv
