// Random serving-like work for the KV-event tests: prompts that share prefixes (a few documents,
// several salts), commits of whole and partial pages, decode appends, forks, truncates, releases,
// and a pool small enough that pages are evicted all along. Only the C API; OUT_OF_PAGES is a
// normal outcome (the request is dropped), any other failure is reported.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "pagedkv.h"

namespace kv_events_test {

class RandomWorkload {
public:
    RandomWorkload(pagedkv_cache* cache, uint64_t seed, int32_t vocab = 50) : cache_(cache), rng_(seed) {
        for (auto& document : documents_) {
            document.resize(96);
            for (auto& token : document) token = int32_t(rng_() % uint64_t(vocab));
        }
        vocab_ = vocab;
    }

    ~RandomWorkload() { release_all(); }

    // A prompt: a prefix of one of the documents, then a few tokens of its own.
    std::vector<int32_t> random_prompt() {
        const auto& document = documents_[rng_() % 4];
        std::vector<int32_t> prompt(document.begin(), document.begin() + int64_t(1 + rng_() % document.size()));
        for (uint64_t i = rng_() % 12; i > 0; --i) prompt.push_back(int32_t(rng_() % uint64_t(vocab_)));
        return prompt;
    }
    std::string random_salt() {
        static const char* salts[] = {"", "tenant-a", "tenant-b"};
        return salts[rng_() % 3];
    }

    void step() {
        uint64_t dice = rng_() % 100;
        if (live_.empty() || (dice < 30 && live_.size() < 6)) {
            create(random_prompt(), random_salt());
            return;
        }
        int64_t id = live_[rng_() % live_.size()];
        if (dice < 60) {
            commit(id);
        } else if (dice < 75) {
            append(id);
        } else if (dice < 80) {
            fork(id);
        } else if (dice < 84) {
            truncate(id);
        } else if (dice < 99) {
            release(id);
        } else {
            int32_t evicted = 0;
            expect_ok(pagedkv_cache_clear_unused(cache_, &evicted), "clear_unused");
        }
    }

    int64_t create(const std::vector<int32_t>& prompt, const std::string& salt, int64_t* cached = nullptr) {
        int64_t id = 0, hit = 0;
        int32_t status = pagedkv_sequence_create(cache_, prompt.data(), int64_t(prompt.size()),
                                                 reinterpret_cast<const uint8_t*>(salt.data()), int32_t(salt.size()),
                                                 &id, &hit);
        if (cached) *cached = status == PAGEDKV_OK ? hit : -1;
        if (status == PAGEDKV_ERR_OUT_OF_PAGES) return 0;
        expect_ok(status, "sequence_create");
        live_.push_back(id);
        return id;
    }

    void commit(int64_t id) {
        pagedkv_sequence_info info{};
        info.struct_size = sizeof(info);
        expect_ok(pagedkv_sequence_get_info(cache_, id, &info), "get_info");
        int64_t span = info.num_tokens - info.num_computed;
        int64_t upto = info.num_computed + (span > 0 && rng_() % 3 == 0 ? int64_t(rng_() % uint64_t(span)) : span);
        expect_ok(pagedkv_sequence_commit(cache_, id, upto), "sequence_commit");
    }

    void append(int64_t id) {
        std::vector<int32_t> tokens(1 + rng_() % 5);
        for (auto& token : tokens) token = int32_t(rng_() % uint64_t(vocab_));
        int32_t status = pagedkv_sequence_append(cache_, id, tokens.data(), int64_t(tokens.size()));
        if (status != PAGEDKV_ERR_OUT_OF_PAGES) expect_ok(status, "sequence_append");
    }

    void fork(int64_t id) {
        int64_t child = 0;
        int32_t status = pagedkv_sequence_fork(cache_, id, &child);
        if (status == PAGEDKV_ERR_OUT_OF_PAGES) return;
        expect_ok(status, "sequence_fork");
        live_.push_back(child);
    }

    void truncate(int64_t id) {
        pagedkv_sequence_info info{};
        info.struct_size = sizeof(info);
        expect_ok(pagedkv_sequence_get_info(cache_, id, &info), "get_info");
        expect_ok(pagedkv_sequence_truncate(cache_, id, 1 + int64_t(rng_() % uint64_t(info.num_tokens))), "truncate");
    }

    void release(int64_t id) {
        expect_ok(pagedkv_sequence_release(cache_, id), "sequence_release");
        live_.erase(std::find(live_.begin(), live_.end(), id));
    }

    void release_all() {
        while (!live_.empty()) release(live_.back());
    }

    std::mt19937_64& rng() { return rng_; }

private:
    static void expect_ok(int32_t status, const char* what) {
        if (status != PAGEDKV_OK) std::fprintf(stderr, "  %s: %s\n", what, pagedkv_last_error());
        CHECK_EQ(status, PAGEDKV_OK);
    }

    pagedkv_cache* cache_;
    std::mt19937_64 rng_;
    int32_t vocab_ = 50;
    std::vector<int32_t> documents_[4];
    std::vector<int64_t> live_;
};

}  // namespace kv_events_test
