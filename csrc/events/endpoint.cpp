#include <string>

#include "common/error.h"
#include "events/publisher.h"

namespace pagedkv::events {

std::string endpoint_for_rank(const std::string& endpoint, int32_t data_parallel_rank) {
    if (endpoint.empty() || data_parallel_rank == 0) return endpoint;
    if (endpoint.rfind("inproc://", 0) == 0 || endpoint.rfind("ipc://", 0) == 0)
        return endpoint + "_dp" + std::to_string(data_parallel_rank);
    PAGEDKV_REQUIRE(endpoint.rfind("tcp://", 0) == 0, PAGEDKV_ERR_INVALID_ARGUMENT, "endpoint \"", endpoint,
                    "\": with data_parallel_rank ", data_parallel_rank,
                    " it must be tcp://, ipc:// or inproc:// (the rank offsets its port or names it)");
    size_t colon = endpoint.rfind(':');
    std::string port = colon == std::string::npos ? "" : endpoint.substr(colon + 1);
    PAGEDKV_REQUIRE(colon > 5 && !port.empty() && port.size() <= 5 &&
                        port.find_first_not_of("0123456789") == std::string::npos,
                    PAGEDKV_ERR_INVALID_ARGUMENT, "endpoint \"", endpoint, "\" has no port to offset by data_parallel_rank ",
                    data_parallel_rank);
    int64_t offset = std::stoll(port) + data_parallel_rank;
    PAGEDKV_REQUIRE(offset <= 65535, PAGEDKV_ERR_INVALID_ARGUMENT, "endpoint \"", endpoint, "\" plus data_parallel_rank ",
                    data_parallel_rank, " is port ", offset, ", above 65535");
    return endpoint.substr(0, colon + 1) + std::to_string(offset);
}

}  // namespace pagedkv::events
