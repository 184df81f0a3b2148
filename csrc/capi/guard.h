// The C ABI boundary: every exported function runs its body through guarded(), which turns any
// exception into a status and the calling thread's last-error message. Nothing throws past it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include "common/error.h"

namespace pagedkv::capi {

void set_last_error(int32_t status, const char* message) noexcept;
void clear_last_error() noexcept;

template <class Body>
int32_t guarded(const char* function, Body&& body) noexcept {
    try {
        body();
        clear_last_error();
        return PAGEDKV_OK;
    } catch (const Error& error) {
        set_last_error(error.status(), concat(function, ": ", error.what()).c_str());
        return error.status();
    } catch (const std::bad_alloc&) {
        set_last_error(PAGEDKV_ERR_OUT_OF_MEMORY, concat(function, ": out of host memory").c_str());
        return PAGEDKV_ERR_OUT_OF_MEMORY;
    } catch (const std::exception& error) {
        set_last_error(PAGEDKV_ERR_INTERNAL, concat(function, ": internal error: ", error.what()).c_str());
        return PAGEDKV_ERR_INTERNAL;
    } catch (...) {
        set_last_error(PAGEDKV_ERR_INTERNAL, concat(function, ": internal error (unknown exception)").c_str());
        return PAGEDKV_ERR_INTERNAL;
    }
}

// Reads a caller's struct of struct_size bytes into a full, zero-padded one (older callers may
// pass a shorter struct; the missing fields read as zero).
template <class Struct>
Struct read_struct(const Struct* in) {
    Struct value{};
    std::memcpy(&value, in, std::min<size_t>(in->struct_size, sizeof(Struct)));
    return value;
}

// Writes `value` into a caller's struct, no more than its struct_size bytes.
template <class Struct>
void write_struct(Struct* out, Struct value) {
    value.struct_size = out->struct_size;
    std::memcpy(out, &value, std::min<size_t>(out->struct_size, sizeof(Struct)));
}

// Rejects a null pointer argument with a message naming it.
#define PAGEDKV_REQUIRE_NOT_NULL(pointer) \
    PAGEDKV_REQUIRE((pointer) != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT, #pointer " must not be null")

// Checks a caller's struct_size: at least the fields up to and including `last_field`.
#define PAGEDKV_REQUIRE_STRUCT(pointer, type, last_field)                                                    \
    PAGEDKV_REQUIRE((pointer)->struct_size >= offsetof(type, last_field) + sizeof(((type*)nullptr)->last_field), \
                    PAGEDKV_ERR_INVALID_ARGUMENT, #pointer "->struct_size is ", (pointer)->struct_size,      \
                    ", too small for " #type)

}  // namespace pagedkv::capi
