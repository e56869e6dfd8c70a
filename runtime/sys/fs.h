// Filesystem primitives for playbooks: reads, crash-safe writes, directory
// trees, stat and disk space. Errors are hoist::Error{"fs", code, message}
// with code "not_found" (ENOENT), "conflict" (a non-directory in the way) or
// "failed" (anything else, with strerror).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hoist::sys {

/// An owned file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(o.Release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  /// Gives up ownership: the caller closes it.
  int Release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void Reset();
  /// close(2) whose error matters (NFS reports write errors here).
  int Close() { return ::close(Release()); }

 private:
  int fd_ = -1;
};

// The descriptor helpers below throw Error{area, "not_found" (ENOENT) or
// "failed", "<what> <path>: <strerror>"}: the caller names its area.

/// open(2) for reading.
Fd OpenRead(const std::string& path, std::string_view area = "fs");
/// A read-only descriptor of path's file that this process keeps open,
/// shared by every holder (pread/copy_file_range with explicit offsets only).
/// Closing ANY descriptor of a file drops every POSIX lock this process holds
/// on it, SQLite's included: a raw read of a database another connection
/// here has open (a backup's copy of the file, its WAL and -shm) must never
/// close one. The descriptor stays open while its file is linked; once the
/// file is unlinked and no KeptFd holds it, a later Open closes it.
class KeptFd {
 public:
  KeptFd() = default;
  /// get() < 0 with errno set when path cannot be opened.
  static KeptFd Open(const std::string& path);
  /// The kept descriptor of path's file if one is kept, else none (opens
  /// nothing). ReadFile and Sha256FileHex read through it, so reading a
  /// database this process has open (fs.read, crypto.sha256) closes nothing.
  static KeptFd IfAny(const std::string& path);
  KeptFd(KeptFd&& o) noexcept;
  KeptFd& operator=(KeptFd&& o) noexcept;
  KeptFd(const KeptFd&) = delete;
  KeptFd& operator=(const KeptFd&) = delete;
  ~KeptFd();
  int get() const { return fd_; }

 private:
  KeptFd(int fd, dev_t dev, ino_t ino) : fd_(fd), dev_(dev), ino_(ino) {}
  void Release();
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};
/// fstat(2)'s size.
uint64_t FileSize(int fd, const std::string& path, std::string_view area = "fs");
/// pread until n bytes or EOF; returns bytes read.
size_t PreadFull(int fd, char* buf, size_t n, uint64_t off, const std::string& path, std::string_view area = "fs");
void PwriteFull(int fd, const char* buf, size_t n, uint64_t off, const std::string& path,
                std::string_view area = "fs");
void WriteFull(int fd, const char* buf, size_t n, const std::string& path, std::string_view area = "fs");
void FsyncFd(int fd, const std::string& path, std::string_view area = "fs");
/// Starts writing [off, off + n) back to disk without waiting (so the final
/// fsync has little left to do); best effort, the fsync is the guarantee.
void StartWriteback(int fd, uint64_t off, uint64_t n);

/// The whole file. Throws {"fs","not_found","cannot read <path>: No such file
/// or directory"}, or "failed" with strerror for other errors.
std::string ReadFile(const std::string& path);
/// The whole file into *out; false (and *out untouched) when it cannot be read.
bool TryReadFile(const std::string& path, std::string* out);

/// Atomic replace: a temp file in the same directory (O_EXCL), written,
/// fsynced, renamed over path, then the directory fsynced, so a crash leaves
/// either the old or the new contents, never a mix. The new file gets exactly
/// `mode` (umask does not apply; pass 0600 for state/backups) and is owned by
/// us; a symlink at path is replaced, not followed. No temp file survives a
/// failure. Throws "not_found" when the directory is missing, else "failed".
void WriteAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);

/// In-place rewrite that keeps the inode (bind-mounted files, hard links):
/// open O_WRONLY, write, ftruncate, fsync. Not atomic: a crash can leave a
/// mix. Throws "not_found" when path does not exist, else "failed".
void WriteInPlace(const std::string& path, std::string_view data);

/// Like mkdir -p: creates missing parents with mode (less the umask, as
/// mkdir(1) does); an existing directory (or a symlink to one) is fine. Throws "conflict" when a component exists and is
/// not a directory, else "failed".
void MkdirP(const std::string& path, mode_t mode = 0755);

struct Stat {
  bool exists = false;
  std::string type;  ///< "file", "dir", "link" or "other"
  uint64_t size = 0;
  unsigned mode = 0;  ///< permission bits (07777)
  double mtime = 0;   ///< seconds since the epoch, with the fraction
  uint64_t inode = 0;
};

/// lstat(2): a symlink is reported as "link". A missing path (or a parent
/// that is not a directory) gives exists=false; other errors throw "failed".
Stat StatPath(const std::string& path);

/// Entry names, sorted bytewise, without "." and "..".
/// Throws "not_found" or "failed" (e.g. "Not a directory").
std::vector<std::string> ListDir(const std::string& path);

/// glob(3) matches, sorted bytewise; no match gives an empty list.
/// Unreadable directories are skipped, as the shell does.
std::vector<std::string> Glob(const std::string& pattern);

/// Removes a file, a symlink (never its target) or an empty directory; with
/// recursive=true a whole tree, never following symlinks inside it.
/// Returns false when path did not exist. Throws "failed" otherwise.
bool Remove(const std::string& path, bool recursive = false);

/// chmod(2): sets path's permission bits to mode & 07777, following a
/// symlink as chmod(1) does. Throws "not_found" when path does not exist,
/// else "failed" ("cannot chmod <path>: <strerror>").
void Chmod(const std::string& path, mode_t mode);

struct DiskFree {
  uint64_t total = 0, free = 0, available = 0;  ///< bytes; available = for unprivileged users
};

/// statvfs(3) of the filesystem holding path. Throws "not_found" / "failed".
DiskFree DiskFreeOf(const std::string& path);

/// fsync(2) on a directory, making renames and creations in it durable.
/// Throws "not_found" / "failed".
void FsyncDir(const std::string& dir);

}  // namespace hoist::sys
