// Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of its {hash tag}, modulo 16384.
#pragma once

#include <cstdint>
#include <string_view>

namespace pagedkv::tiers::redis {

inline constexpr int kSlotCount = 16384;

uint16_t crc16_xmodem(std::string_view bytes);
int key_slot(std::string_view key);

}  // namespace pagedkv::tiers::redis
