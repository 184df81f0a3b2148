// A tiny test harness for the native tests: TEST(name) { CHECK(...); } and a main that runs them
// all, prints each failure with its location, and ends with "N passed, N failed".
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace check {

struct TestCase {
    const char* name;
    std::function<void()> body;
};

inline std::vector<TestCase>& registry() {
    static std::vector<TestCase> tests;
    return tests;
}

inline int& failures_in_current_test() {
    static int failures = 0;
    return failures;
}

struct Registrar {
    Registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

inline void report_failure(const char* file, int line, const std::string& what) {
    ++failures_in_current_test();
    std::fprintf(stderr, "  FAILED %s:%d: %s\n", file, line, what.c_str());
}

template <class A, class B>
std::string describe_pair(const char* expression_a, const char* expression_b, const A& a, const B& b) {
    std::ostringstream out;
    out << expression_a << " == " << expression_b << " (" << a << " vs " << b << ")";
    return out.str();
}

// Runs every registered test (or those whose name contains argv[1]); returns the exit code.
inline int run_all(int argc, char** argv) {
    int passed = 0, failed = 0;
    const char* filter = argc > 1 ? argv[1] : nullptr;
    for (auto& test : registry()) {
        if (filter && std::string(test.name).find(filter) == std::string::npos) continue;
        failures_in_current_test() = 0;
        std::fprintf(stderr, "[ RUN  ] %s\n", test.name);
        try {
            test.body();
        } catch (const std::exception& error) {
            report_failure(__FILE__, __LINE__, std::string("unexpected exception: ") + error.what());
        }
        if (failures_in_current_test() == 0) {
            ++passed;
            std::fprintf(stderr, "[  OK  ] %s\n", test.name);
        } else {
            ++failed;
            std::fprintf(stderr, "[ FAIL ] %s\n", test.name);
        }
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

}  // namespace check

#define CHECK_CONCAT_INNER(a, b) a##b
#define CHECK_CONCAT(a, b) CHECK_CONCAT_INNER(a, b)

#define TEST(name)                                                              \
    static void name();                                                         \
    static ::check::Registrar CHECK_CONCAT(registrar_, name)(#name, &name);     \
    static void name()

#define CHECK(condition)                                                            \
    do {                                                                            \
        if (!(condition)) ::check::report_failure(__FILE__, __LINE__, #condition); \
    } while (0)

#define CHECK_EQ(a, b)                                                                                   \
    do {                                                                                                 \
        const auto check_a_ = (a);                                                                           \
        const auto check_b_ = (b);                                                                           \
        if (!(check_a_ == check_b_))                                                                     \
            ::check::report_failure(__FILE__, __LINE__, ::check::describe_pair(#a, #b, check_a_, check_b_)); \
    } while (0)

// Stops the current test when a precondition fails (later checks would only add noise).
#define REQUIRE(condition)                                                          \
    do {                                                                            \
        if (!(condition)) {                                                         \
            ::check::report_failure(__FILE__, __LINE__, #condition);               \
            return;                                                                 \
        }                                                                           \
    } while (0)

#define CHECK_MAIN \
    int main(int argc, char** argv) { return ::check::run_all(argc, argv); }
