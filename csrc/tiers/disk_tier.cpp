#include "tiers/disk_tier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace pagedkv::tiers {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSuffix = ".page";
constexpr int64_t kMaxQueuedBytes = int64_t(256) << 20;

bool parse_hex_key(const std::string& name, PageKey& key) {
    if (name.size() != 64 + std::strlen(kSuffix) || name.compare(64, std::string::npos, kSuffix) != 0) return false;
    for (size_t i = 0; i < 32; ++i) {
        int value = 0;
        for (size_t j = 0; j < 2; ++j) {
            char c = name[2 * i + j];
            int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (digit < 0) return false;
            value = value * 16 + digit;
        }
        key[i] = uint8_t(value);
    }
    return true;
}

// Reads a whole file (at most `limit` bytes + 1, so an extended file shows as too long).
bool read_file(const fs::path& path, int64_t limit, std::vector<uint8_t>& out, std::string& error) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = std::strerror(errno);
        return false;
    }
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0;
    int64_t size = ok ? std::min<int64_t>(st.st_size, limit + 1) : 0;
    out.resize(size_t(size));
    int64_t done = 0;
    while (ok && done < size) {
        ssize_t n = ::read(fd, out.data() + done, size_t(size - done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ok = false;
        else done += n;
    }
    if (!ok) error = errno != 0 ? std::strerror(errno) : "short read";
    ::close(fd);
    return ok;
}

bool write_all(int fd, const uint8_t* data, int64_t size) {
    int64_t done = 0;
    while (done < size) {
        ssize_t n = ::write(fd, data + done, size_t(size - done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += n;
    }
    return true;
}

}  // namespace

DiskTier::DiskTier(std::string directory, int64_t budget, bool fsync)
    : directory_(std::move(directory)), budget_(budget), fsync_(fsync), queue_(kMaxQueuedBytes) {
    std::error_code ec;
    fs::create_directories(directory_, ec);
    PAGEDKV_REQUIRE(fs::is_directory(directory_, ec), PAGEDKV_ERR_INVALID_ARGUMENT, "config.disk_tier_path \"",
                    directory_.string(), "\" is not a directory and cannot be created",
                    ec ? concat(" (", ec.message(), ")") : std::string());
    scan();
}

DiskTier::~DiskTier() { queue_.drain(); }

fs::path DiskTier::path_of(const PageKey& key) const { return directory_ / (to_hex(key) + kSuffix); }

void DiskTier::scan() {
    struct Found {
        fs::file_time_type time;
        PageKey key;
        int64_t bytes;
    };
    std::vector<Found> found;
    std::error_code ec;
    for (fs::directory_iterator it(directory_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        PageKey key;
        if (parse_hex_key(name, key)) {
            std::error_code entry_ec;
            int64_t bytes = int64_t(it->file_size(entry_ec));
            auto time = it->last_write_time(entry_ec);
            if (!entry_ec) found.push_back({time, key, bytes});
        } else if (name.find(".tmp.") != std::string::npos) {
            fs::remove(it->path(), ec);  // a store an earlier process did not finish
            ec.clear();
        }
    }
    if (ec) report_error(concat("cannot list ", directory_.string(), ": ", ec.message()));
    std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.time < b.time; });
    std::lock_guard lock(mutex_);
    for (const Found& f : found) {
        if (index_.count(f.key) != 0) continue;
        index_.emplace(f.key, Entry{f.bytes, lru_.insert(lru_.end(), f.key)});
        bytes_ += f.bytes;
    }
    stats_.pages = int64_t(index_.size());
    stats_.bytes = bytes_;
}

bool DiskTier::holds(const PageKey& key) const {
    std::lock_guard lock(mutex_);
    return index_.count(key) != 0;
}

void DiskTier::fetch(const PageKey* keys, int64_t count, std::vector<PageObject>& objects) {
    std::vector<uint8_t> buffer;
    for (int64_t i = 0; i < count; ++i) {
        if (objects[size_t(i)]) continue;
        int64_t expected_bytes;
        {
            std::lock_guard lock(mutex_);
            auto it = index_.find(keys[i]);
            if (it == index_.end()) continue;
            expected_bytes = it->second.bytes;
            lru_.splice(lru_.end(), lru_, it->second.lru);
        }
        std::string error;
        if (!read_file(path_of(keys[i]), std::max<int64_t>(expected_bytes, 1) << 1, buffer, error)) {
            report_error(concat("cannot read page objects in ", directory_.string(), ": ", error));
            std::lock_guard lock(mutex_);
            forget(keys[i]);
            continue;
        }
        objects[size_t(i)] = copy_object(buffer.data(), int64_t(buffer.size()));
    }
}

void DiskTier::store(const PageKey& key, const PageObject& object) {
    if (holds(key)) return;
    if (!queue_.post(object.size, [this, key, object] { write(key, object); })) stats_.dropped_stores += 1;
}

void DiskTier::write(const PageKey& key, const PageObject& object) {
    auto start = std::chrono::steady_clock::now();
    uint64_t serial;
    {
        std::lock_guard lock(mutex_);
        if (index_.count(key) != 0) return;
        serial = ++temp_counter_;
    }
    const fs::path target = path_of(key);
    const fs::path temp = concat(target.string(), ".tmp.", ::getpid(), ".", serial);
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write_all(fd, object.data.get(), object.size) && (!fsync_ || ::fsync(fd) == 0);
    const int error = errno;
    if (fd >= 0) ok = ::close(fd) == 0 && ok;
    ok = ok && ::rename(temp.c_str(), target.c_str()) == 0;
    if (!ok) {
        ::unlink(temp.c_str());
        stats_.dropped_stores += 1;
        report_error(concat("cannot store page objects in ", directory_.string(), ": ", std::strerror(error != 0 ? error : errno)));
        return;
    }
    {
        std::lock_guard lock(mutex_);
        if (index_.count(key) == 0) {
            index_.emplace(key, Entry{object.size, lru_.insert(lru_.end(), key)});
            bytes_ += object.size;
            stats_.pages += 1;
            stats_.bytes += object.size;
        }
    }
    stats_.add_store(object.size, elapsed_ns(start));
    evict_over_budget();
}

int64_t DiskTier::forget(const PageKey& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return 0;
    const int64_t bytes = it->second.bytes;
    lru_.erase(it->second.lru);
    index_.erase(it);
    bytes_ -= bytes;
    stats_.pages -= 1;
    stats_.bytes -= bytes;
    return bytes;
}

void DiskTier::discard(const PageKey& key) {
    {
        std::lock_guard lock(mutex_);
        if (forget(key) == 0) return;
    }
    ::unlink(path_of(key).c_str());
}

void DiskTier::evict_over_budget() {
    std::vector<uint8_t> buffer;
    for (;;) {
        PageKey victim;
        int64_t bytes;
        {
            std::lock_guard lock(mutex_);
            if (bytes_ <= budget_ || lru_.empty()) return;
            victim = lru_.front();
            bytes = index_.at(victim).bytes;
            forget(victim);
        }
        const fs::path path = path_of(victim);
        std::string error;
        // Write-back: the next tier gets the object before the file goes.
        if (next_ != nullptr && read_file(path, bytes, buffer, error))
            next_->store(victim, copy_object(buffer.data(), int64_t(buffer.size())));
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            report_error(concat("cannot remove page objects in ", directory_.string(), ": ", std::strerror(errno)));
        stats_.evictions += 1;
    }
}

}  // namespace pagedkv::tiers
