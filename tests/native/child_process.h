// Runs a test body in a forked child, for tests that need a second process (another cache on the
// same disk directory or Redis server) or process-wide limits (RLIMIT_FSIZE) the parent must not keep.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "check.h"

namespace tier_test {

// Returns the child's exit status: 0 when every check in `body` passed, 1 when one failed,
// 128 + the signal when it died of one.
template <class Body>
int in_child(Body&& body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        body();
        std::fflush(nullptr);
        ::_exit(check::failures_in_current_test() == 0 ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace tier_test
