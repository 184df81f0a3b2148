#include "events/zmq/event_encoder.h"

#include <msgpack.h>

#include <cstring>

namespace pagedkv::events {

namespace {

int append(void* data, const char* bytes, size_t length) {
    static_cast<std::string*>(data)->append(bytes, length);
    return 0;
}

void pack_string(msgpack_packer* pk, const char* text) {
    size_t length = std::strlen(text);
    msgpack_pack_str(pk, length);
    msgpack_pack_str_body(pk, text, length);
}

void pack_hashes(msgpack_packer* pk, const pagedkv_block_event& event) {
    msgpack_pack_array(pk, size_t(event.num_blocks));
    for (int32_t i = 0; i < event.num_blocks; ++i) msgpack_pack_int64(pk, event.block_hashes[i]);
}

// vLLM's BlockStored, fields in declaration order; kv_cache_spec_sliding_window (None) is left out.
void pack_stored(msgpack_packer* pk, const pagedkv_block_event& event) {
    msgpack_pack_map(pk, 11);
    pack_string(pk, "type");
    pack_string(pk, "BlockStored");
    pack_string(pk, "block_hashes");
    pack_hashes(pk, event);
    pack_string(pk, "parent_block_hash");
    if (event.has_parent)
        msgpack_pack_int64(pk, event.parent_block_hash);
    else
        msgpack_pack_nil(pk);
    pack_string(pk, "token_ids");
    msgpack_pack_array(pk, size_t(event.num_token_ids));
    for (int64_t i = 0; i < event.num_token_ids; ++i) msgpack_pack_int32(pk, event.token_ids[i]);
    pack_string(pk, "block_size");
    msgpack_pack_int32(pk, event.block_size);
    pack_string(pk, "lora_id");
    if (event.lora_id >= 0)
        msgpack_pack_int32(pk, event.lora_id);
    else
        msgpack_pack_nil(pk);
    pack_string(pk, "medium");
    pack_string(pk, medium_name(event.medium));
    pack_string(pk, "lora_name");
    msgpack_pack_nil(pk);
    // One entry per block, as vLLM sends it for blocks without extra keys. The salt is not
    // published: the hashes already tell salts apart, and a salt may be a secret.
    pack_string(pk, "extra_keys");
    msgpack_pack_array(pk, size_t(event.num_blocks));
    for (int32_t i = 0; i < event.num_blocks; ++i) msgpack_pack_nil(pk);
    pack_string(pk, "group_idx");
    msgpack_pack_int32(pk, 0);
    pack_string(pk, "kv_cache_spec_kind");
    pack_string(pk, "full_attention");
}

void pack_removed(msgpack_packer* pk, const pagedkv_block_event& event) {
    msgpack_pack_map(pk, 4);
    pack_string(pk, "type");
    pack_string(pk, "BlockRemoved");
    pack_string(pk, "block_hashes");
    pack_hashes(pk, event);
    pack_string(pk, "medium");
    pack_string(pk, medium_name(event.medium));
    pack_string(pk, "group_idx");
    msgpack_pack_int32(pk, 0);
}

void pack_cleared(msgpack_packer* pk) {
    msgpack_pack_map(pk, 1);
    pack_string(pk, "type");
    pack_string(pk, "AllBlocksCleared");
}

}  // namespace

const char* medium_name(int32_t medium) {
    switch (medium) {
        case PAGEDKV_MEDIUM_GPU: return "GPU";
        case PAGEDKV_MEDIUM_CPU: return "CPU";
        case PAGEDKV_MEDIUM_DISK: return "DISK";
        case PAGEDKV_MEDIUM_REMOTE: return "REMOTE";
        default: return "UNKNOWN";
    }
}

void encode_kv_event_batch(const pagedkv_event_batch& batch, int32_t data_parallel_rank, std::string& out) {
    out.clear();
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, append);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, batch.timestamp);
    msgpack_pack_array(&pk, size_t(batch.num_events));
    const auto* bytes = reinterpret_cast<const unsigned char*>(batch.events);
    for (int32_t i = 0; i < batch.num_events; ++i) {
        const auto& event = *reinterpret_cast<const pagedkv_block_event*>(bytes + int64_t(i) * batch.event_stride);
        switch (event.type) {
            case PAGEDKV_EVENT_BLOCK_STORED: pack_stored(&pk, event); break;
            case PAGEDKV_EVENT_BLOCK_REMOVED: pack_removed(&pk, event); break;
            default: pack_cleared(&pk); break;
        }
    }
    msgpack_pack_int32(&pk, data_parallel_rank);
}

}  // namespace pagedkv::events
