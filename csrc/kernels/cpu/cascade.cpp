// Cascade (shared-prefix) attention on the CPU. The batch's shared_prefix_pages are attended once
// for all queries of the batch: a task holds many query rows (every token of every sequence, for
// one KV head) and each KV tile of the prefix, once loaded, is applied to all of them. Then each
// sequence's own positions run as an extend-attention whose result is merged with the prefix's
// state (merge_state), so the output equals prefill (or decode) on the same batch.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/attend.h"
#include "kernels/cpu/merge_states.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/prefill.h"
#include "kernels/cpu/query_rows.h"
#include "kernels/cpu/split_kv.h"
#include "kernels/kernels.h"
#include "kernels/plan_cache.h"
#include "pagedkv.h"

namespace pagedkv::kernels::cpu {

namespace {

// Rows per shared-prefix task: every KV tile of the prefix is read once per task.
constexpr int32_t kSharedTaskRows = 4 * kBlockRows;

struct SharedTask {
    int32_t kv_head;
    int64_t first;  // batch query tokens [first, last)
    int64_t last;
    int32_t begin;  // prefix positions [begin, end)
    int32_t end;
    int32_t part;
};

int32_t qo_len(const BatchArrays& batch, int32_t seq) { return batch.qo_indptr[seq + 1] - batch.qo_indptr[seq]; }

// The split into prefix + own part is exact only when every query attends the whole prefix,
// i.e. sits at position >= shared_tokens - 1.
bool queries_follow_prefix(const BatchArrays& batch, int64_t shared_tokens) {
    for (int32_t seq = 0; seq < batch.num_seqs; ++seq) {
        const int32_t n = qo_len(batch, seq);
        if (n > 0 && batch.kv_len[seq] - n < shared_tokens - 1) return false;
    }
    return true;
}

bool decode_shaped(const BatchArrays& batch) {
    for (int32_t seq = 0; seq < batch.num_seqs; ++seq)
        if (qo_len(batch, seq) != 1) return false;
    return true;
}

// How cascade runs one batch shape: computed once per step, run for every layer.
struct CascadePlan {
    enum class Mode { Decode, Prefill, Shared } mode = Mode::Shared;  // the first two: no shared prefix
    int32_t threads = 1;
    int32_t parts = 1;
    std::vector<SharedTask> tasks;
};

constexpr int32_t kCascadePlan = 3;

CascadePlan plan_cascade(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                         const AttentionShape& shape) {
    CascadePlan plan;
    const int64_t shared_tokens = int64_t(batch.shared_prefix_pages) * layer.page_size;
    if (batch.num_seqs < 2 || shared_tokens == 0 || batch.num_qo_tokens == 0 ||
        !queries_follow_prefix(batch, shared_tokens)) {
        plan.mode = decode_shaped(batch) ? CascadePlan::Mode::Decode : CascadePlan::Mode::Prefill;
        return plan;
    }
    const int64_t tokens = batch.num_qo_tokens;
    plan.threads = threads_for_work(options.num_threads, shared_tokens * tokens * shape.num_qo_heads);
    const int64_t task_tokens = std::max(1, kSharedTaskRows / shape.group);
    const int64_t row_chunks = (tokens + task_tokens - 1) / task_tokens;
    const int32_t prefix = int32_t(shared_tokens);
    const int64_t prefix_work = int64_t(prefix) * row_chunks * layer.num_kv_heads;  // positions over all tasks
    const int32_t chunk = kv_chunk_tokens(options.kv_split_size, prefix_work, plan.threads);
    plan.parts = chunk_count(prefix, chunk);
    for (int32_t part = 0; part < plan.parts; ++part)
        for (int32_t head = 0; head < layer.num_kv_heads; ++head)
            for (int64_t first = 0; first < tokens; first += task_tokens) {
                const int32_t begin = part * chunk, end = plan.parts == 1 ? prefix : std::min(prefix, begin + chunk);
                plan.tasks.push_back({head, first, std::min(tokens, first + task_tokens), begin, end, part});
            }
    return plan;
}

}  // namespace

void cascade_attention(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse) {
    const AttentionShape shape = attention_shape(layer, options);
    const PlanCache::Key key{kCascadePlan, options.num_qo_heads, options.num_threads, options.kv_split_size, 0};
    const auto plan = planned<CascadePlan>(batch.plans, key, [&] { return plan_cascade(layer, batch, options, shape); });
    if (plan->mode == CascadePlan::Mode::Decode) return decode_attention(layer, batch, options, q, out, lse);
    if (plan->mode == CascadePlan::Mode::Prefill) return prefill_attention(layer, batch, options, q, out, lse);

    const int32_t heads = shape.num_qo_heads, head_dim = shape.head_dim, parts = plan->parts, threads = plan->threads;
    const int64_t tokens = batch.num_qo_tokens;
    const int32_t prefix = batch.shared_prefix_pages * layer.page_size;

    // The prefix's states, [part][token][qo head]. With one part and an f32 output, the output
    // itself holds them until the own parts are merged in.
    const int64_t rows = tokens * heads;
    const bool in_place = parts == 1 && options.out_dtype == PAGEDKV_DTYPE_F32;
    std::vector<float> values(in_place ? 0 : size_t(parts * rows * head_dim));
    std::vector<float> lses(size_t(parts * rows));
    auto state = [&](int32_t part) {
        float* value = in_place ? static_cast<float*>(out) : values.data() + part * rows * head_dim;
        return StateBuffer{value, lses.data() + part * rows};
    };

    const AttendFn attend_fn = attend_function(active_isa());
    const int32_t* prefix_pages = batch.kv_page_indices + batch.kv_indptr[0];  // the same in every sequence
    parallel_for(int64_t(plan->tasks.size()), threads, [&](int64_t index) {
        const SharedTask& task = plan->tasks[size_t(index)];
        RowSet& task_rows = RowSet::for_this_thread();
        task_rows.gather(shape, q, options.q_dtype, task.kv_head, task.first, task.last, prefix - 1, prefix - 1);
        task_rows.attend(attend_fn, layer, KvRange{prefix_pages, task.kv_head, task.begin, task.end});
        task_rows.store_state(state(task.part), task.first);
    });
    if (parts > 1) {
        const StateBuffer merged = state(0);
        parallel_for((rows + 255) / 256, threads, [&](int64_t block) {
            for (int64_t row = block * 256; row < std::min(rows, (block + 1) * 256); ++row)
                for (int32_t part = 1; part < parts; ++part) {
                    const StateBuffer other = state(part);
                    merge_state(merged.value + row * head_dim, merged.lse[row], other.value + row * head_dim,
                                other.lse[row], head_dim, merged.value + row * head_dim, &merged.lse[row]);
                }
        });
    }
    const StateBuffer prior = state(0);
    extend_attention(layer, batch, options, q, out, lse, prefix, &prior);
}

}  // namespace pagedkv::kernels::cpu
