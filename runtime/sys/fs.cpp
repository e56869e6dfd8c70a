// Filesystem primitives over plain POSIX calls; every fd and DIR* is owned by
// a guard so a throw in the middle leaks nothing and leaves no temp file.
#include "sys/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "core/error.h"
#include "sys/file_reader.h"

namespace hoist::sys {
namespace {

/// "<what> <path>: <strerror>", coded not_found for ENOENT.
[[noreturn]] void Throw(const std::string& what, const std::string& path, int err) {
  throw Error("fs", err == ENOENT ? "not_found" : "failed", what + " " + path + ": " + std::strerror(err));
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

/// Unlinks the temp file unless the rename consumed it.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

void WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      Throw("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string RandomSuffix() {
  unsigned char bytes[6];
  if (::getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bytes)) {
    // Uniqueness comes from O_EXCL and the retry loop; randomness only avoids retries.
    static unsigned counter = 0;
    unsigned v = static_cast<unsigned>(::getpid()) * 2654435761u + ++counter;
    std::memcpy(bytes, &v, sizeof v);
    bytes[4] = bytes[5] = 0;
  }
  char hex[sizeof bytes * 2 + 1];
  for (size_t i = 0; i < sizeof bytes; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return hex;
}

/// Removes `name` under parent_fd without following symlinks, so a link in
/// the tree can never lead the removal outside it.
void RemoveTreeAt(int parent_fd, const std::string& name, const std::string& display) {
  int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOTDIR && errno != ELOOP) Throw("cannot remove", display, errno);
    if (::unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) Throw("cannot remove", display, errno);
    return;
  }
  DirPtr dir(::fdopendir(fd));
  if (!dir) {
    int err = errno;
    ::close(fd);
    Throw("cannot remove", display, err);
  }
  // Names first: unlinking while readdir walks the same directory may skip entries.
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir.get())) {
    std::string_view n = entry->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  if (errno != 0) Throw("cannot remove", display, errno);
  for (const auto& child : names) RemoveTreeAt(::dirfd(dir.get()), child, display + "/" + child);
  dir.reset();
  if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    Throw("cannot remove", display, errno);
}

}  // namespace

FileReader::FileReader(const std::string& path) : path_(path), kept_(KeptFd::IfAny(path)) {
  if (kept_.get() >= 0) return;
  own_ = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (own_.get() < 0) Throw("cannot read", path, errno);
}

size_t FileReader::Read(char* buf, size_t n) {
  for (;;) {
    ssize_t got = kept_.get() >= 0 ? ::pread(kept_.get(), buf, n, off_) : ::read(own_.get(), buf, n);
    if (got >= 0) {
      off_ += got;
      return static_cast<size_t>(got);
    }
    if (errno != EINTR) Throw("cannot read", path_, errno);
  }
}

std::string ReadFile(const std::string& path) {
  FileReader in(path);
  std::string data;
  struct stat st;
  if (::fstat(in.fd(), &st) == 0 && S_ISREG(st.st_mode)) data.reserve(static_cast<size_t>(st.st_size));
  char buf[64 * 1024];
  while (size_t n = in.Read(buf, sizeof buf)) data.append(buf, n);
  return data;
}

bool TryReadFile(const std::string& path, std::string* out) {
  try {
    *out = ReadFile(path);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// Temp files of this path that a killed writer left (older than a minute:
// a live WriteAtomic holds its temp file for milliseconds). Best effort.
void SweepStaleTemps(const std::string& dir, const std::string& temp_prefix) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  time_t now = ::time(nullptr);
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() <= temp_prefix.size() || name.compare(0, temp_prefix.size(), temp_prefix) != 0) continue;
    struct stat st;
    std::string p = dir + "/" + name;
    if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || now - st.st_mtime < 60) continue;
    ::unlink(p.c_str());
  }
}

void WriteAtomic(const std::string& path, std::string_view data, mode_t mode) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) Throw("cannot write", path, EISDIR);

  // Hidden and short enough for NAME_MAX however long the real name is.
  std::string stem = prefix + "." + base.substr(0, 200) + ".tmp-";
  std::string tmp;
  int raw = -1;
  for (int attempt = 0; raw < 0; ++attempt) {
    tmp = stem + RandomSuffix();
    raw = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
    if (raw < 0 && (errno != EEXIST || attempt >= 8)) Throw("cannot write", path, errno);
  }
  Fd fd(raw);
  TempFile guard(tmp);
  // open() applied the umask; the caller asked for this exact mode.
  if (::fchmod(fd.get(), mode & 07777) != 0) Throw("cannot write", path, errno);
  WriteAll(fd.get(), data, path);
  if (::fsync(fd.get()) != 0) Throw("cannot write", path, errno);
  if (fd.Close() != 0) Throw("cannot write", path, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) Throw("cannot write", path, errno);
  guard.Release();
  FsyncDir(dir);
  SweepStaleTemps(dir, "." + base.substr(0, 200) + ".tmp-");
}

void WriteInPlace(const std::string& path, std::string_view data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) Throw("cannot write", path, errno);
  WriteAll(fd.get(), data, path);
  // Truncating after writing (not before) never shows readers an empty file.
  if (::ftruncate(fd.get(), static_cast<off_t>(data.size())) != 0) Throw("cannot write", path, errno);
  if (::fsync(fd.get()) != 0) Throw("cannot write", path, errno);
  if (fd.Close() != 0) Throw("cannot write", path, errno);
}

void MkdirP(const std::string& path, mode_t mode) {
  if (path.empty()) Throw("cannot create directory", "''", ENOENT);
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos + 1);
    if (slash == std::string::npos) slash = path.size();
    std::string prefix = path.substr(0, slash);
    pos = slash;
    // "/" and the empty components of "a//b" or "a/" need no mkdir.
    if (prefix.empty() || prefix.back() == '/') continue;
    if (::mkdir(prefix.c_str(), mode) == 0) continue;
    if (errno != EEXIST) Throw("cannot create directory", path, errno);
    struct stat st;
    if (::stat(prefix.c_str(), &st) != 0) Throw("cannot create directory", path, errno);
    if (!S_ISDIR(st.st_mode))
      throw Error("fs", "conflict", "cannot create directory " + path + ": " + prefix + " exists and is not a directory");
  }
}

Stat StatPath(const std::string& path) {
  Stat out;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return out;
    Throw("cannot stat", path, errno);
  }
  out.exists = true;
  out.type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : "other";
  out.size = static_cast<uint64_t>(st.st_size);
  out.mode = st.st_mode & 07777;
  out.mtime = static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9;
  out.inode = static_cast<uint64_t>(st.st_ino);
  return out;
}

std::vector<std::string> ListDir(const std::string& path) {
  DirPtr dir(::opendir(path.c_str()));
  if (!dir) Throw("cannot list", path, errno);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir.get())) {
    std::string_view n = entry->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  if (errno != 0) Throw("cannot list", path, errno);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> Glob(const std::string& pattern) {
  glob_t g{};
  int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::unique_ptr<glob_t, void (*)(glob_t*)> guard(&g, ::globfree);
  if (rc == GLOB_NOMATCH) return {};
  if (rc != 0) throw Error("fs", "failed", "cannot glob " + pattern + ": " + (rc == GLOB_NOSPACE ? "out of memory" : "read error"));
  std::vector<std::string> out(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  // glob(3) sorts by locale collation; playbooks need the same order everywhere.
  std::sort(out.begin(), out.end());
  return out;
}

bool Remove(const std::string& path, bool recursive) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return false;
    Throw("cannot remove", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT) return false;
      Throw("cannot remove", path, errno);
    }
    return true;
  }
  if (!recursive) {
    if (::rmdir(path.c_str()) != 0) {
      if (errno == ENOENT) return false;
      Throw("cannot remove", path, errno);
    }
    return true;
  }
  RemoveTreeAt(AT_FDCWD, path, path);
  return true;
}

void Chmod(const std::string& path, mode_t mode) {
  if (::chmod(path.c_str(), mode & 07777) != 0) Throw("cannot chmod", path, errno);
}

DiskFree DiskFreeOf(const std::string& path) {
  struct statvfs vfs;
  if (::statvfs(path.c_str(), &vfs) != 0) Throw("cannot get disk space of", path, errno);
  DiskFree out;
  out.total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  out.free = static_cast<uint64_t>(vfs.f_bfree) * vfs.f_frsize;
  out.available = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  return out;
}

void FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) Throw("cannot sync directory", dir, errno);
  // Some filesystems cannot fsync a directory (EINVAL); their renames are as
  // durable as they get, so that is not a failure.
  if (::fsync(fd.get()) != 0 && errno != EINVAL) Throw("cannot sync directory", dir, errno);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    Reset();
    fd_ = o.Release();
  }
  return *this;
}

void Fd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

[[noreturn]] void ThrowIn(std::string_view area, const std::string& what, const std::string& path, int err) {
  throw Error(std::string(area), err == ENOENT ? "not_found" : "failed", what + " " + path + ": " + std::strerror(err));
}

}  // namespace

Fd OpenRead(const std::string& path, std::string_view area) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowIn(area, "cannot open", path, errno);
  return Fd(fd);
}

namespace {

struct Kept {
  int fd;
  int holders;  // KeptFd objects alive: never closed while > 0
};
std::mutex kept_mu;
std::map<std::pair<dev_t, ino_t>, Kept> kept;  // guarded by kept_mu

}  // namespace

KeptFd KeptFd::Open(const std::string& path) {
  std::lock_guard lock(kept_mu);
  // stat first: opening a second descriptor only to find the kept one
  // would mean closing it.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  if (auto it = kept.find({st.st_dev, st.st_ino}); it != kept.end()) {
    ++it->second.holders;
    return KeptFd(it->second.fd, st.st_dev, st.st_ino);
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  if (::fstat(fd, &st) != 0) return {};  // left open: closing it could drop locks
  // An unlinked file's locks coordinate with no one: nobody can open it.
  for (auto it = kept.begin(); it != kept.end();) {
    struct stat k;
    if (it->second.holders == 0 && ::fstat(it->second.fd, &k) == 0 && k.st_nlink == 0) {
      ::close(it->second.fd);
      it = kept.erase(it);
    } else {
      ++it;
    }
  }
  auto [it, fresh] = kept.emplace(std::pair{st.st_dev, st.st_ino}, Kept{fd, 0});
  // !fresh: path was renamed over between stat and open, to a file already
  // kept; the new descriptor stays open (unused) rather than be closed.
  ++it->second.holders;
  return KeptFd(it->second.fd, st.st_dev, st.st_ino);
}

KeptFd KeptFd::IfAny(const std::string& path) {
  std::lock_guard lock(kept_mu);
  if (kept.empty()) return {};
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  auto it = kept.find({st.st_dev, st.st_ino});
  if (it == kept.end()) return {};
  ++it->second.holders;
  return KeptFd(it->second.fd, st.st_dev, st.st_ino);
}

KeptFd::KeptFd(KeptFd&& o) noexcept : fd_(o.fd_), dev_(o.dev_), ino_(o.ino_) { o.fd_ = -1; }

KeptFd& KeptFd::operator=(KeptFd&& o) noexcept {
  if (this != &o) {
    Release();
    fd_ = o.fd_;
    dev_ = o.dev_;
    ino_ = o.ino_;
    o.fd_ = -1;
  }
  return *this;
}

KeptFd::~KeptFd() { Release(); }

void KeptFd::Release() {
  if (fd_ < 0) return;
  int err = errno;  // callers read errno after a failed Open of another
  {
    std::lock_guard lock(kept_mu);
    if (auto it = kept.find({dev_, ino_}); it != kept.end()) --it->second.holders;
  }
  errno = err;
  fd_ = -1;
}

uint64_t FileSize(int fd, const std::string& path, std::string_view area) {
  struct stat st;
  if (::fstat(fd, &st) != 0) ThrowIn(area, "cannot stat", path, errno);
  return static_cast<uint64_t>(st.st_size);
}

size_t PreadFull(int fd, char* buf, size_t n, uint64_t off, const std::string& path, std::string_view area) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(off + got));
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      ThrowIn(area, "cannot read", path, errno);
    }
    got += static_cast<size_t>(r);
  }
  return got;
}

void PwriteFull(int fd, const char* buf, size_t n, uint64_t off, const std::string& path, std::string_view area) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pwrite(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      ThrowIn(area, "cannot write", path, errno);
    }
    done += static_cast<size_t>(r);
  }
}

void WriteFull(int fd, const char* buf, size_t n, const std::string& path, std::string_view area) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::write(fd, buf + done, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      ThrowIn(area, "cannot write", path, errno);
    }
    done += static_cast<size_t>(r);
  }
}

void FsyncFd(int fd, const std::string& path, std::string_view area) {
  if (::fsync(fd) != 0) ThrowIn(area, "cannot fsync", path, errno);
}

void StartWriteback(int fd, uint64_t off, uint64_t n) {
  ::sync_file_range(fd, static_cast<off_t>(off), static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE);
}


}  // namespace hoist::sys
