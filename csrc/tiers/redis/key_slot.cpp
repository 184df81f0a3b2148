#include "tiers/redis/key_slot.h"

namespace pagedkv::tiers::redis {

uint16_t crc16_xmodem(std::string_view bytes) {
    uint16_t crc = 0;
    for (unsigned char byte : bytes) {
        crc ^= uint16_t(byte) << 8;
        for (int bit = 0; bit < 8; ++bit) crc = (crc & 0x8000) != 0 ? uint16_t((crc << 1) ^ 0x1021) : uint16_t(crc << 1);
    }
    return crc;
}

int key_slot(std::string_view key) {
    // Only a non-empty {tag} counts, as the cluster specification says.
    size_t open = key.find('{');
    if (open != std::string_view::npos) {
        size_t close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
    }
    return crc16_xmodem(key) % kSlotCount;
}

}  // namespace pagedkv::tiers::redis
