#include "tiers/redis/redis_url.h"

#include <charconv>
#include <string_view>

#include "common/error.h"

namespace pagedkv::tiers::redis {

std::vector<Endpoint> parse_redis_url(const std::string& url) {
    constexpr std::string_view kScheme = "redis://";
    PAGEDKV_REQUIRE(url.rfind(kScheme, 0) == 0, PAGEDKV_ERR_INVALID_ARGUMENT, "config.remote_tier \"", url,
                    "\" must start with redis://");
    std::vector<Endpoint> endpoints;
    std::string_view rest = std::string_view(url).substr(kScheme.size());
    while (!rest.empty() || endpoints.empty()) {
        size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (!item.empty() && item.back() == '/') item.remove_suffix(1);
        size_t colon = item.rfind(':');
        Endpoint endpoint;
        endpoint.host = std::string(item.substr(0, colon));
        if (colon != std::string_view::npos) {
            std::string_view port = item.substr(colon + 1);
            auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), endpoint.port);
            PAGEDKV_REQUIRE(error == std::errc() && end == port.data() + port.size() && endpoint.port > 0 &&
                                endpoint.port < 65536,
                            PAGEDKV_ERR_INVALID_ARGUMENT, "config.remote_tier \"", url, "\": bad port \"", port, "\"");
        }
        PAGEDKV_REQUIRE(!endpoint.host.empty(), PAGEDKV_ERR_INVALID_ARGUMENT, "config.remote_tier \"", url,
                        "\": an address has no host");
        endpoints.push_back(std::move(endpoint));
        if (comma == std::string_view::npos) break;
    }
    return endpoints;
}

}  // namespace pagedkv::tiers::redis
