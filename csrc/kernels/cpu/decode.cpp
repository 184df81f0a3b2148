// Decode attention on the CPU: one query token per sequence. A task is (sequence, KV head, KV
// chunk): the whole GQA group of the KV head is one block of rows, so each KV byte is read once.
// Long sequences are split into chunks (split_kv.h) whose states are merged exactly. The task
// list is planned once per batch and options (kernels/plan_cache.h), not once per layer.
#include <algorithm>
#include <vector>

#include "kernels/cpu/attend.h"
#include "kernels/cpu/merge_states.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/query_rows.h"
#include "kernels/cpu/split_kv.h"
#include "kernels/kernels.h"
#include "kernels/plan_cache.h"

namespace pagedkv::kernels::cpu {

namespace {

struct DecodeTask {
    int32_t seq;
    int32_t kv_head;
    int32_t begin;
    int32_t end;
    int32_t part;  // slot of this chunk's partial state, or -1: the only chunk, written as output
};

// What decode does for one batch shape: computed once per step, run for every layer.
struct DecodePlan {
    int32_t threads = 1;
    std::vector<DecodeTask> tasks;     // longest first, so the dynamic schedule ends evenly
    std::vector<int32_t> first_part;   // per sequence (+1): its partial-state slots
    std::vector<int32_t> split_seqs;   // sequences cut into more than one chunk
    int32_t parts = 0;
};

constexpr int32_t kDecodePlan = 1;

DecodePlan plan_decode(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                       const AttentionShape& shape) {
    DecodePlan plan;
    const int32_t num_kv_heads = layer.num_kv_heads;
    int64_t total_tokens = 0;
    for (int32_t seq = 0; seq < batch.num_seqs; ++seq) total_tokens += int64_t(batch.kv_len[seq]) * num_kv_heads;
    plan.threads = threads_for_work(options.num_threads, total_tokens * shape.group);
    const int32_t chunk = kv_chunk_tokens(options.kv_split_size, total_tokens, plan.threads);
    plan.first_part.assign(size_t(batch.num_seqs) + 1, 0);
    for (int32_t seq = 0; seq < batch.num_seqs; ++seq) {
        const int32_t kv_len = batch.kv_len[seq], chunks = chunk_count(kv_len, chunk);
        plan.first_part[size_t(seq)] = plan.parts;
        for (int32_t c = 0; c < chunks; ++c)
            for (int32_t head = 0; head < num_kv_heads; ++head) {
                const int32_t begin = c * chunk, end = chunks == 1 ? kv_len : std::min(kv_len, begin + chunk);
                plan.tasks.push_back({seq, head, begin, end, chunks == 1 ? -1 : plan.parts + c});
            }
        if (chunks > 1) {
            plan.parts += chunks;
            plan.split_seqs.push_back(seq);
        }
    }
    plan.first_part[size_t(batch.num_seqs)] = plan.parts;
    std::stable_sort(plan.tasks.begin(), plan.tasks.end(),
                     [](const DecodeTask& a, const DecodeTask& b) { return a.end - a.begin > b.end - b.begin; });
    return plan;
}

}  // namespace

void decode_attention(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                      const void* q, void* out, float* lse) {
    const AttentionShape shape = attention_shape(layer, options);
    const PlanCache::Key key{kDecodePlan, options.num_qo_heads, options.num_threads, options.kv_split_size, 0};
    const auto plan = planned<DecodePlan>(batch.plans, key, [&] { return plan_decode(layer, batch, options, shape); });
    const int32_t threads = plan->threads, parts = plan->parts;

    const int64_t row_values = int64_t(shape.num_qo_heads) * shape.head_dim;
    std::vector<float> part_values(size_t(parts * row_values)), part_lse(size_t(parts) * size_t(shape.num_qo_heads));
    const StateBuffer partials{part_values.data(), part_lse.data()};
    const AttendFn attend_fn = attend_function(active_isa());

    parallel_for(int64_t(plan->tasks.size()), threads, [&](int64_t index) {
        const DecodeTask& task = plan->tasks[size_t(index)];
        RowSet& rows = RowSet::for_this_thread();
        const int64_t token = batch.qo_indptr[task.seq];
        rows.gather(shape, q, options.q_dtype, task.kv_head, token, token + 1, batch.kv_len[task.seq] - 1);
        rows.attend(attend_fn, layer,
                    KvRange{batch.kv_page_indices + batch.kv_indptr[task.seq], task.kv_head, task.begin, task.end});
        if (task.part < 0) rows.store_output(out, options.out_dtype, lse, nullptr);
        else rows.store_state(partials, task.part);
    });
    if (parts == 0) return;

    // Fold the chunks of every split sequence, one (sequence, query head) row per step.
    const int32_t heads = shape.num_qo_heads, head_dim = shape.head_dim;
    parallel_for(int64_t(plan->split_seqs.size()) * heads, threads, [&](int64_t index) {
        const int32_t seq = plan->split_seqs[size_t(index / heads)], head = int32_t(index % heads);
        const int32_t first = plan->first_part[size_t(seq)], last = plan->first_part[size_t(seq) + 1];
        float* merged = part_values.data() + (int64_t(first) * heads + head) * head_dim;
        float merged_lse = part_lse[size_t(first) * heads + head];
        for (int32_t part = first + 1; part < last; ++part) {
            const int64_t row = int64_t(part) * heads + head;
            merge_state(merged, merged_lse, part_values.data() + row * head_dim, part_lse[size_t(row)], head_dim,
                        merged, &merged_lse);
        }
        const int64_t out_row = batch.qo_indptr[seq] * heads + head;
        store_row(out, options.out_dtype, out_row * head_dim, merged, head_dim);
        if (lse) lse[out_row] = merged_lse;
    });
}

}  // namespace pagedkv::kernels::cpu
