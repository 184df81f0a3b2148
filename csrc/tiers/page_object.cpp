#include "tiers/page_object.h"

#include <xxhash.h>

#include <cstring>

namespace pagedkv::tiers {

namespace {

constexpr char kMagic[8] = {'P', 'K', 'V', 'P', 'A', 'G', 'E', '1'};

// Field offsets of the header.
constexpr int64_t kVersionAt = 8, kCountAt = 12, kFingerprintAt = 16, kParentAt = 48, kPayloadBytesAt = 80,
                  kChecksumAt = 88, kTokensAt = 96;

template <class T>
void put(uint8_t* at, T value) {
    std::memcpy(at, &value, sizeof value);
}
template <class T>
T get(const uint8_t* at) {
    T value;
    std::memcpy(&value, at, sizeof value);
    return value;
}

}  // namespace

int64_t object_header_bytes(int32_t token_count) { return kTokensAt + int64_t(token_count) * 4; }

int64_t object_bytes(int32_t token_count, int64_t payload_bytes) {
    return object_header_bytes(token_count) + payload_bytes;
}

void seal_object(uint8_t* object, const ExpectedPage& page) {
    const int64_t header = object_header_bytes(page.token_count);
    std::memcpy(object, kMagic, sizeof kMagic);
    put(object + kVersionAt, kObjectFormatVersion);
    put(object + kCountAt, uint32_t(page.token_count));
    std::memcpy(object + kFingerprintAt, page.fingerprint->data(), 32);
    std::memcpy(object + kParentAt, page.parent->data(), 32);
    put(object + kPayloadBytesAt, uint64_t(page.payload_bytes));
    put(object + kChecksumAt, uint64_t(XXH3_64bits(object + header, size_t(page.payload_bytes))));
    std::memcpy(object + kTokensAt, page.tokens, size_t(page.token_count) * 4);
}

const char* verdict_name(Verdict verdict) {
    switch (verdict) {
        case Verdict::Ok: return "ok";
        case Verdict::WrongSize: return "wrong size (truncated or extended)";
        case Verdict::BadMagic: return "not a page object of this format";
        case Verdict::OtherLayout: return "written for another layout";
        case Verdict::OtherParent: return "hangs under another prefix";
        case Verdict::OtherTokens: return "holds other tokens (key collision)";
        case Verdict::BadChecksum: return "payload checksum mismatch";
    }
    return "unknown";
}

Verdict verify_object(const uint8_t* object, int64_t size, const ExpectedPage& page) {
    const int64_t header = object_header_bytes(page.token_count);
    if (size < kTokensAt) return Verdict::WrongSize;
    if (std::memcmp(object, kMagic, sizeof kMagic) != 0 || get<uint32_t>(object + kVersionAt) != kObjectFormatVersion)
        return Verdict::BadMagic;
    if (std::memcmp(object + kFingerprintAt, page.fingerprint->data(), 32) != 0) return Verdict::OtherLayout;
    if (get<uint32_t>(object + kCountAt) != uint32_t(page.token_count) ||
        get<uint64_t>(object + kPayloadBytesAt) != uint64_t(page.payload_bytes))
        return Verdict::OtherLayout;
    if (size != header + page.payload_bytes) return Verdict::WrongSize;
    if (std::memcmp(object + kParentAt, page.parent->data(), 32) != 0) return Verdict::OtherParent;
    if (std::memcmp(object + kTokensAt, page.tokens, size_t(page.token_count) * 4) != 0) return Verdict::OtherTokens;
    if (get<uint64_t>(object + kChecksumAt) != XXH3_64bits(object + header, size_t(page.payload_bytes)))
        return Verdict::BadChecksum;
    return Verdict::Ok;
}

PageObject copy_object(const uint8_t* bytes, int64_t size) {
    std::shared_ptr<uint8_t[]> owned(new uint8_t[size_t(size)]);
    std::memcpy(owned.get(), bytes, size_t(size));
    return {std::shared_ptr<const uint8_t>(owned, owned.get()), size};
}

}  // namespace pagedkv::tiers
