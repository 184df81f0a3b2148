// Prefill / extend attention on the CPU: query token j of sequence i sits at position
// kv_len - qo_len + j and attends [0, that position]. A task is (sequence, KV head, query tile):
// the tile's tokens times the GQA group are the rows, attended tile by tile over the KV.
#include "kernels/cpu/prefill.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/attend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/kernels.h"
#include "kernels/plan_cache.h"

namespace pagedkv::kernels::cpu {

namespace {

// Rows per task: enough to reuse each converted KV tile well, few enough to spread the work.
constexpr int32_t kTaskRows = 2 * kBlockRows;

struct PrefillTask {
    int32_t seq;
    int32_t kv_head;
    int32_t first;  // query tokens [first, last) of the sequence
    int32_t last;
    int64_t cost;
};

// Tasks most expensive first, and the thread count: computed once per step, run per layer.
struct PrefillPlan {
    int32_t threads = 1;
    std::vector<PrefillTask> tasks;
};

constexpr int32_t kExtendPlan = 2;

PrefillPlan plan_extend(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                        const AttentionShape& shape, int32_t kv_begin) {
    PrefillPlan plan;
    const int32_t tile_tokens = std::max(1, kTaskRows / shape.group);
    for (int32_t seq = 0; seq < batch.num_seqs; ++seq) {
        const int32_t qo_len = batch.qo_indptr[seq + 1] - batch.qo_indptr[seq];
        const int32_t first_pos = batch.kv_len[seq] - qo_len;
        for (int32_t first = 0; first < qo_len; first += tile_tokens) {
            const int32_t last = std::min(qo_len, first + tile_tokens);
            const int64_t cost = int64_t(last - first) * std::max(0, first_pos + last - kv_begin);
            for (int32_t head = 0; head < layer.num_kv_heads; ++head)
                plan.tasks.push_back({seq, head, first, last, cost});
        }
    }
    std::stable_sort(plan.tasks.begin(), plan.tasks.end(),
                     [](const PrefillTask& a, const PrefillTask& b) { return a.cost > b.cost; });
    int64_t dot_products = 0;
    for (const PrefillTask& task : plan.tasks) dot_products += task.cost * shape.group;
    plan.threads = threads_for_work(options.num_threads, dot_products);
    return plan;
}

}  // namespace

void extend_attention(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                      const void* q, void* out, float* lse, int32_t kv_begin, const StateBuffer* prior) {
    const AttentionShape shape = attention_shape(layer, options);
    const PlanCache::Key key{kExtendPlan, options.num_qo_heads, options.num_threads, options.kv_split_size, kv_begin};
    const auto plan =
        planned<PrefillPlan>(batch.plans, key, [&] { return plan_extend(layer, batch, options, shape, kv_begin); });

    const AttendFn attend_fn = attend_function(active_isa());
    parallel_for(int64_t(plan->tasks.size()), plan->threads, [&](int64_t index) {
        const PrefillTask& task = plan->tasks[size_t(index)];
        const int64_t token0 = batch.qo_indptr[task.seq];
        const int32_t qo_len = int32_t(batch.qo_indptr[task.seq + 1] - token0);
        const int32_t first_pos = batch.kv_len[task.seq] - qo_len + task.first;
        RowSet& rows = RowSet::for_this_thread();
        rows.gather(shape, q, options.q_dtype, task.kv_head, token0 + task.first, token0 + task.last, first_pos);
        const int32_t end = first_pos + (task.last - task.first);  // one past the tile's last position
        rows.attend(attend_fn, layer,
                    KvRange{batch.kv_page_indices + batch.kv_indptr[task.seq], task.kv_head, kv_begin, end});
        rows.store_output(out, options.out_dtype, lse, prior);
    });
}

void prefill_attention(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse) {
    extend_attention(layer, batch, options, q, out, lse, 0, nullptr);
}

}  // namespace pagedkv::kernels::cpu
