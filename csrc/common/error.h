// Errors inside the core: thrown as pagedkv::Error, turned into a status + thread-local message
// at the C ABI boundary (csrc/capi), never crossing it.
#pragma once

#include <cstdint>
#include <exception>
#include <sstream>
#include <string>
#include <utility>

#include "pagedkv.h"

namespace pagedkv {

class Error : public std::exception {
public:
    Error(int32_t status, std::string message) : status_(status), message_(std::move(message)) {}
    int32_t status() const noexcept { return status_; }
    const char* what() const noexcept override { return message_.c_str(); }

private:
    int32_t status_;
    std::string message_;
};

template <class... Parts>
std::string concat(Parts&&... parts) {
    std::ostringstream out;
    (out << ... << std::forward<Parts>(parts));
    return out.str();
}

template <class... Parts>
[[noreturn]] void fail(int32_t status, Parts&&... parts) {
    throw Error(status, concat(std::forward<Parts>(parts)...));
}

}  // namespace pagedkv

// Checks a precondition; on failure throws pagedkv::Error(status, message built from the rest).
#define PAGEDKV_REQUIRE(condition, status, ...)                   \
    do {                                                          \
        if (!(condition)) ::pagedkv::fail((status), __VA_ARGS__); \
    } while (0)
