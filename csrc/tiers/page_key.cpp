#include "tiers/page_key.h"

#include <openssl/evp.h>

#include <bit>
#include <memory>
#include <vector>

#include "common/error.h"

namespace pagedkv::tiers {

namespace {

struct DigestContext {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // fetched once, not per digest
    ~DigestContext() {
        EVP_MD_free(md);
        EVP_MD_CTX_free(ctx);
    }
};

DigestContext& digest_context() {
    thread_local DigestContext context;
    PAGEDKV_REQUIRE(context.ctx != nullptr && context.md != nullptr, PAGEDKV_ERR_INTERNAL,
                    "OpenSSL cannot provide SHA-256");
    return context;
}

}  // namespace

PageKey sha256(std::initializer_list<std::string_view> parts) {
    DigestContext& d = digest_context();
    PageKey out{};
    unsigned int length = 0;
    bool ok = EVP_DigestInit_ex2(d.ctx, d.md, nullptr) == 1;
    for (std::string_view part : parts) ok = ok && EVP_DigestUpdate(d.ctx, part.data(), part.size()) == 1;
    ok = ok && EVP_DigestFinal_ex(d.ctx, out.data(), &length) == 1 && length == out.size();
    PAGEDKV_REQUIRE(ok, PAGEDKV_ERR_INTERNAL, "SHA-256 failed in OpenSSL");
    return out;
}

PageKey root_key(std::string_view scope, std::string_view salt) {
    // Lengths first, so that no two (scope, salt) pairs hash the same bytes.
    uint64_t lengths[2] = {scope.size(), salt.size()};
    return sha256({"pagedkv-root-v1", std::string_view(reinterpret_cast<const char*>(lengths), sizeof lengths),
                   scope, salt});
}

PageKey page_key(const PageKey& parent, const int32_t* tokens, int32_t count) {
    static_assert(std::endian::native == std::endian::little, "token ids are hashed as little-endian int32");
    return sha256({std::string_view(reinterpret_cast<const char*>(parent.data()), parent.size()),
                   std::string_view(reinterpret_cast<const char*>(tokens), size_t(count) * sizeof(int32_t))});
}

std::string to_hex(const PageKey& key) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(key.size() * 2, '0');
    for (size_t i = 0; i < key.size(); ++i) {
        out[2 * i] = kDigits[key[i] >> 4];
        out[2 * i + 1] = kDigits[key[i] & 15];
    }
    return out;
}

}  // namespace pagedkv::tiers
