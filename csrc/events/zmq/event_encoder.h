// The MessagePack payload of a KV-event batch exactly as vLLM publishes it (vllm/distributed/
// kv_events.py, msgspec): the batch is array-like, [ts, [event, ...], data_parallel_rank]; each
// event is a map tagged by "type" (vLLM dropped array_like from its events in vllm-project/vllm
// #42892, first released in 0.24), with the fields in vLLM's declaration order and those equal to
// their defaults left out (omit_defaults). Field values pagedkv has no notion of get what vLLM
// sends for a plain model: no LoRA, one full-attention KV-cache group (group_idx 0), no extra keys.
#pragma once

#include <cstdint>
#include <string>

#include "pagedkv.h"

namespace pagedkv::events {

// Replaces `out` with the payload of `batch`.
void encode_kv_event_batch(const pagedkv_event_batch& batch, int32_t data_parallel_rank, std::string& out);

// vLLM's name of a pagedkv_medium ("GPU", "CPU", "DISK", "REMOTE").
const char* medium_name(int32_t medium);

}  // namespace pagedkv::events
