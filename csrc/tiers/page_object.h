// A page object: what a tier below the pool stores for one FULL page. Self-describing, so a
// load can prove it holds what the walk expects before anything reaches the pool:
//   magic "PKVPAGE1" | u32 format version | u32 token count | layout fingerprint (32 bytes) |
//   parent key (32 bytes) | u64 payload bytes | u64 XXH3-64 of the payload | i32 tokens[count] |
//   payload (the page's bytes, every layer's K and V, exactly as the pool holds them)
// All integers little-endian. A mismatch of any field is a miss, never wrong KV.
#pragma once

#include <cstdint>
#include <memory>

#include "tiers/page_key.h"

namespace pagedkv::tiers {

inline constexpr uint32_t kObjectFormatVersion = 1;

// What the walk expects of the object under a key.
struct ExpectedPage {
    const PageKey* fingerprint;  // the cache's layout fingerprint
    const PageKey* parent;       // the parent page's key (or the root key)
    const int32_t* tokens;
    int32_t token_count;         // page_size
    int64_t payload_bytes;       // page_bytes
};

int64_t object_header_bytes(int32_t token_count);
int64_t object_bytes(int32_t token_count, int64_t payload_bytes);

// Writes the header of `page` into object[0, object_header_bytes) with the checksum of the
// payload already at object + object_header_bytes.
void seal_object(uint8_t* object, const ExpectedPage& page);

enum class Verdict {
    Ok,
    WrongSize,       // truncated or extended
    BadMagic,        // not a page object, or another format version
    OtherLayout,     // another model shape, dtype or quantization format
    OtherParent,     // hangs under another prefix (namespace, salt or earlier tokens differ)
    OtherTokens,     // another page under the same key: a collision, or a forged object
    BadChecksum,     // payload corrupted
};
const char* verdict_name(Verdict verdict);

// Checks an object of `size` bytes against `page`; on Ok its payload starts at
// object + object_header_bytes(page.token_count).
Verdict verify_object(const uint8_t* object, int64_t size, const ExpectedPage& page);

// An object held in memory: `data` keeps it alive (and, for the host tier, pinned in its slot).
struct PageObject {
    std::shared_ptr<const uint8_t> data;
    int64_t size = 0;
    explicit operator bool() const { return data != nullptr; }
};
// A heap copy of bytes[0, size).
PageObject copy_object(const uint8_t* bytes, int64_t size);

}  // namespace pagedkv::tiers
