// Files every reporter shares: atomic writes, staged all-or-nothing outputs, whole-file reads,
// and the one error type whose message names the file, what is wrong and what to do.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kvgate {

// Every reporting failure: the message names the file, what is wrong and what to do.
struct ReportError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

namespace report_detail {

inline std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// A name in the target's own directory, so the final rename never crosses file systems.
// Hidden and unique per process and call, so concurrent writers never share one.
inline std::filesystem::path temp_path_beside(const std::filesystem::path& target) {
    static std::atomic<unsigned> counter{0};
    return target.parent_path() / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(counter++));
}

// Creates `temp` (which must not exist) holding `content`; errors name the `target` it stands for.
inline void write_new_file(const std::filesystem::path& temp, const std::filesystem::path& target,
                           const std::string& content) {
    auto failure = [&](const char* step, int err) {
        return ReportError(target.string() + ": cannot " + step + " " + temp.filename().string() + ": " +
                           errno_text(err) + "; the existing file, if any, is untouched");
    };
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) throw failure("create its temporary file", errno);
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            ::unlink(temp.c_str());
            throw failure("write its temporary file", err);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) {
        int err = errno;
        ::unlink(temp.c_str());
        throw failure("write its temporary file", err);
    }
}

// Written files are on disk before they take a final name (also those gnuplot wrote).
inline void fsync_path(const std::filesystem::path& path, int flags) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) throw ReportError(path.string() + ": cannot open to flush: " + errno_text(errno));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL) throw ReportError(path.string() + ": cannot flush to disk: " + errno_text(err));
}

}  // namespace report_detail

// Files written under temporary names beside their targets, renamed into place only by commit().
// Whatever fails before commit (a write, gnuplot) leaves every existing target untouched: the
// destructor removes the temporaries.
class StagedFiles {
public:
    StagedFiles() = default;
    StagedFiles(const StagedFiles&) = delete;
    StagedFiles& operator=(const StagedFiles&) = delete;
    ~StagedFiles() {
        for (const auto& f : files_)
            if (!f.committed) ::unlink(f.temp.c_str());
    }

    // Reserves a temporary name for `target`; the caller (or a program it runs) creates the file.
    std::filesystem::path stage(const std::filesystem::path& target) {
        files_.push_back({report_detail::temp_path_beside(target), target, false});
        return files_.back().temp;
    }

    // Returns the temporary name the content went to.
    std::filesystem::path write(const std::filesystem::path& target, const std::string& content) {
        std::filesystem::path temp = stage(target);
        report_detail::write_new_file(temp, target, content);
        return temp;
    }

    void commit() {
        for (const auto& f : files_) report_detail::fsync_path(f.temp, O_RDONLY);
        std::set<std::filesystem::path> dirs;
        for (auto& f : files_) {
            if (std::rename(f.temp.c_str(), f.target.c_str()) != 0) {
                int err = errno;
                throw ReportError(f.target.string() + ": cannot replace: " + report_detail::errno_text(err) +
                                  "; the previous file, if any, is untouched");
            }
            f.committed = true;
            dirs.insert(f.target.parent_path().empty() ? std::filesystem::path(".") : f.target.parent_path());
        }
        // The renames themselves are durable only once their directories are flushed.
        for (const auto& dir : dirs) report_detail::fsync_path(dir, O_RDONLY | O_DIRECTORY);
    }

private:
    struct File {
        std::filesystem::path temp, target;
        bool committed;
    };
    std::vector<File> files_;
};

// Replaces `path` with `content` or, on any failure, leaves it as it was and throws naming the path.
inline void write_file_atomically(const std::filesystem::path& path, const std::string& content) {
    StagedFiles staged;
    staged.write(path, content);
    staged.commit();
}

namespace report_detail {

inline std::string read_whole_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            throw ReportError(path.string() + ": no such file — run the phase that writes it first");
        throw ReportError(path.string() + ": cannot open: " + errno_text(err));
    }
    std::string content;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw ReportError(path.string() + ": cannot read: " + errno_text(err));
        }
        if (n == 0) break;
        content.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return content;
}

}  // namespace report_detail

}  // namespace kvgate
