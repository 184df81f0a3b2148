// Real Redis servers for the tests: Debian's redis-server started on free loopback ports in a
// scratch directory (no persistence), as one node or as a 3-node cluster formed with
// `redis-cli --cluster create`, and stopped (or killed, or restarted) by the test. When the
// binaries are absent the tests skip with that reason (exit 77), unless PAGEDKV_REQUIRE_REDIS is
// set (CI), where absence is a failure.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

#include "check.h"
#include "tiers/redis/redis_node.h"

namespace redis_test {

namespace fs = std::filesystem;
using pagedkv::tiers::redis::Endpoint;
using pagedkv::tiers::redis::RedisNode;
using pagedkv::tiers::redis::Reply;

inline std::string find_binary(const char* name) {
    for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"}) {
        fs::path path = fs::path(dir) / name;
        if (fs::exists(path)) return path.string();
    }
    return {};
}

// Exits 77 (skipped) with the reason when redis-server or redis-cli is missing, or fails when
// PAGEDKV_REQUIRE_REDIS is set.
inline void require_binaries() {
    for (const char* name : {"redis-server", "redis-cli"}) {
        if (!find_binary(name).empty()) continue;
        const char* required = std::getenv("PAGEDKV_REQUIRE_REDIS");
        std::fprintf(stderr, "SKIPPED: %s not found (Debian: apt-get install redis-server redis-tools)\n", name);
        std::exit(required != nullptr && required[0] != '\0' && required[0] != '0' ? 1 : 77);
    }
}

inline bool port_free(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(uint16_t(port));
    bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return free;
}

// A loopback port nothing listens on, with port + 10000 free too (a cluster node's bus port;
// Redis refuses ports above 55535 for that reason).
inline int free_port() {
    static std::mt19937 rng{uint32_t(::getpid())};
    for (;;) {
        int port = 20000 + int(rng() % 35000);
        if (port_free(port) && port_free(port + 10000)) return port;
    }
}

// Runs a command on a server and returns its reply (null on failure).
inline Reply command(int port, std::vector<std::string_view> args) {
    RedisNode node(Endpoint{"127.0.0.1", port}, 2000);
    std::vector<Reply> replies;
    std::string error;
    if (!node.pipeline({args}, replies, error)) return nullptr;
    return std::move(replies[0]);
}

inline std::string text(const Reply& reply) {
    return reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
                     reply->type == REDIS_REPLY_ERROR)
               ? std::string(reply->str, size_t(reply->len))
               : std::string();
}

class RedisServer {
public:
    RedisServer(const fs::path& dir, bool cluster, int port = 0) : port_(port != 0 ? port : free_port()), dir_(dir), cluster_(cluster) {
        start();
    }
    ~RedisServer() { stop(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    int port() const { return port_; }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    bool running() const { return pid_ > 0; }

    void start() {
        fs::create_directories(dir_);
        const std::string port = std::to_string(port_), conf = "nodes-" + port + ".conf";
        std::vector<std::string> args = {find_binary("redis-server"), "--port", port, "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", dir_.string(),
                                         "--enable-debug-command", "local",  // DEBUG SLEEP: a slow server
                                         "--logfile", (dir_ / ("redis-" + port + ".log")).string()};
        if (cluster_) {
            fs::remove(dir_ / conf);
            args.insert(args.end(), {"--cluster-enabled", "yes", "--cluster-config-file", conf,
                                     "--cluster-node-timeout", "2000"});
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        // Up to 60 s: a loaded CI machine can take seconds to start a server.
        for (int i = 0; i < 3000; ++i) {
            if (text(command(port_, {"PING"})) == "PONG") return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        std::fprintf(stderr, "  redis-server on port %d did not answer\n", port_);
    }
    // SIGKILL: the server vanishes mid-whatever, as in a crash.
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    int port_;
    fs::path dir_;
    bool cluster_;
    pid_t pid_ = -1;
};

// Three masters owning all 16384 slots.
class RedisCluster {
public:
    explicit RedisCluster(const fs::path& dir) {
        for (int i = 0; i < 3; ++i) nodes_.push_back(std::make_unique<RedisServer>(dir, true));
        std::string cmd = find_binary("redis-cli") + " --cluster create";
        for (auto& node : nodes_) cmd += " " + node->address();
        cmd += " --cluster-replicas 0 --cluster-yes > " + (dir / "create.log").string() + " 2>&1";
        formed_ = std::system(cmd.c_str()) == 0;
        for (int i = 0; formed_ && i < 300 && !all_ok(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        formed_ = formed_ && all_ok();
        if (!formed_) std::fprintf(stderr, "  the cluster did not form (see %s)\n", (dir / "create.log").c_str());
    }
    bool formed() const { return formed_; }
    std::string url() const {
        std::string url = "redis://";
        for (size_t i = 0; i < nodes_.size(); ++i) url += (i ? "," : "") + nodes_[i]->address();
        return url;
    }
    RedisServer& node(size_t i) { return *nodes_[i]; }
    size_t size() const { return nodes_.size(); }

private:
    bool all_ok() {
        for (auto& node : nodes_)
            if (text(command(node->port(), {"CLUSTER", "INFO"})).find("cluster_state:ok") == std::string::npos)
                return false;
        return true;
    }
    std::vector<std::unique_ptr<RedisServer>> nodes_;
    bool formed_ = false;
};

// The page object keys a server holds.
inline std::vector<std::string> page_keys(int port) {
    std::vector<std::string> keys;
    Reply reply = command(port, {"KEYS", "pagedkv:page:*"});
    if (!reply || reply->type != REDIS_REPLY_ARRAY) return keys;
    for (size_t i = 0; i < reply->elements; ++i) keys.emplace_back(reply->element[i]->str, size_t(reply->element[i]->len));
    return keys;
}

}  // namespace redis_test
