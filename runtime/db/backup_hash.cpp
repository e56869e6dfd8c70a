// Hashing a backup: the hasher that follows a file or tree while it grows,
// the one that follows a file as it is written, and a tree's sidecar.
#include "db/backup_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::db::backup {

namespace detail {

// --- GrowingHasher

namespace {
constexpr size_t kGrowChunk = 4 << 20;
}

GrowingHasher::GrowingHasher(std::string root, bool is_dir)
    : root_(std::move(root)), is_dir_(is_dir), buf_(new char[kGrowChunk]) {}

bool GrowingHasher::Pass() {
  bool progressed = false;
  for (const auto& rel : Files()) {
    std::string path = is_dir_ ? root_ + "/" + rel : root_;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    auto& f = files_[rel];
    if (!f.fd || f.ino != st.st_ino || static_cast<uint64_t>(st.st_size) < f.off) {
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) FailErrno("cannot read", path, errno);
      bytes_ -= f.off;
      f = Tracked{};
      f.fd = Fd(fd);
      struct stat fst;
      if (::fstat(fd, &fst) != 0) FailErrno("cannot stat", path, errno);
      f.ino = fst.st_ino;
      st.st_size = fst.st_size;
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size <= f.off) continue;
    size_t n = static_cast<size_t>(std::min<uint64_t>(kGrowChunk, size - f.off));
    size_t got = PreadFull(f.fd.get(), buf_.get(), n, f.off, path, kArea);
    if (got == 0) continue;
    f.sha.Update(std::string_view(buf_.get(), got));
    StartWriteback(f.fd.get(), f.off, got);
    f.off += got;
    bytes_ += got;
    progressed = true;
  }
  return progressed;
}

std::map<std::string, std::string> GrowingHasher::Finish() {
  while (Pass()) CheckStop();
  std::map<std::string, std::string> out;
  for (auto& [rel, f] : files_) out[rel] = f.sha.FinishHex();
  return out;
}

std::vector<std::string> GrowingHasher::Files() const {
  if (!is_dir_) return {""};
  return FilesUnder(root_);
}

// --- FollowHasher / Worker

FollowHasher::FollowHasher(int fd, std::string path) : fd_(fd), path_(std::move(path)) {
  thread_ = std::thread([this] { Run(); });
}

FollowHasher::~FollowHasher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FollowHasher::Advance(uint64_t available) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    available_ = available;
  }
  cv_.notify_all();
}

void FollowHasher::Finish(uint64_t total) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    available_ = total;
    finished_ = true;
  }
  cv_.notify_all();
}

std::string FollowHasher::Join() {
  if (thread_.joinable()) thread_.join();
  if (error_) std::rethrow_exception(error_);
  return digest_;
}

void FollowHasher::Run() {
  try {
    constexpr size_t kBuf = 4 << 20;
    std::unique_ptr<char[]> buf(new char[kBuf]);
    sys::Sha256 sha;
    uint64_t off = 0;
    for (;;) {
      uint64_t limit;
      bool done;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return cancel_ || finished_ || available_ > off; });
        if (cancel_) return;
        limit = available_;
        done = finished_;
      }
      while (off < limit) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(kBuf, limit - off));
        size_t got = PreadFull(fd_, buf.get(), n, off, path_, kArea);
        if (got != n) Fail("failed", "short read while hashing " + path_);
        sha.Update(std::string_view(buf.get(), n));
        off += n;
        hashed_.store(off);
        std::lock_guard<std::mutex> lock(mu_);
        if (cancel_) return;
      }
      if (done && off >= limit) break;
    }
    digest_ = sha.FinishHex();
  } catch (...) {
    error_ = std::current_exception();
  }
}

Worker::Worker(std::function<void()> fn) {
  thread_ = std::thread([this, fn = std::move(fn)] {
    try {
      fn();
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

Worker::~Worker() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> out, stack{""};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    for (const auto& name : sys::ListDir(rel.empty() ? dir : dir + "/" + rel)) {
      std::string r = rel.empty() ? name : rel + "/" + name;
      sys::Stat st = sys::StatPath(dir + "/" + r);
      if (st.type == "dir") stack.push_back(r);
      if (st.type == "file") out.push_back(r);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TreeDigest HashTree(const std::string& dir) {
  TreeDigest out;
  out.files = FilesUnder(dir);
  std::map<std::string, std::string> digests;
  for (const auto& r : out.files) {
    CheckStop();
    std::string p = dir + "/" + r;
    digests[r] = sys::Sha256FileHex(p);
    out.size += sys::StatPath(p).size;
  }
  out.sidecar_text = TreeSidecar(BaseName(dir), digests);
  out.digest = sys::Sha256Hex(out.sidecar_text);
  return out;
}

std::string TreeSidecar(const std::string& base, const std::map<std::string, std::string>& digests) {
  std::string text;
  for (const auto& [rel, digest] : digests) text += digest + "  " + base + "/" + rel + "\n";
  return text;
}

}  // namespace detail

}  // namespace hoist::db::backup
