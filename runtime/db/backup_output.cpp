// Where a backup is written: the area's errors, the hidden temp outputs a
// backup is written to and published from, and telling a leftover temp or a
// manifest without its data apart from a backup.
#include "db/backup_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/file.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "sys/fs.h"

namespace hoist::db::backup {

namespace detail {

void Fail(const std::string& code, const std::string& message) { throw Error("backup", code, message); }

void FailErrno(const std::string& what, const std::string& path, int err) {
  Fail(err == ENOENT ? "not_found" : "failed", what + " " + path + ": " + std::strerror(err));
}

void CheckStop() { ThrowIfStopped("backup"); }

namespace {

std::string RandomTag() {
  static std::atomic<unsigned> counter{0};
  unsigned v = static_cast<unsigned>(::getpid()) * 2654435761u ^
               static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               (++counter * 40503u);
  return fmt::format("{:08x}", v);
}

std::string TempStem(const std::string& final_name) {
  // Hidden, and short enough for NAME_MAX however long the real name is.
  return "." + final_name.substr(0, 200) + ".tmp-";
}

}  // namespace

TempOutput::TempOutput(const std::string& dir, const std::string& final_name) : dir_(dir) {
  for (int attempt = 0;; ++attempt) {
    path_ = dir + "/" + TempStem(final_name) + RandomTag();
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      fd_ = Fd(fd);
      break;
    }
    if (errno != EEXIST || attempt > 8) FailErrno("cannot create", path_, errno);
  }
  // The lock says "a live backup owns this": prune removes only unlocked leftovers.
  ::flock(fd_.get(), LOCK_EX | LOCK_NB);
  ::fchmod(fd_.get(), 0600);
}

TempOutput::~TempOutput() {
  if (!published_) ::unlink(path_.c_str());
}

void TempOutput::Publish(const std::string& final_path) {
  if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
    FailErrno("cannot publish", final_path, errno);
  }
  published_ = true;
  sys::FsyncDir(dir_);
}

TempDirOutput::TempDirOutput(const std::string& dir, const std::string& final_name) : dir_(dir) {
  for (int attempt = 0;; ++attempt) {
    path_ = dir + "/" + TempStem(final_name) + RandomTag();
    if (::mkdir(path_.c_str(), 0700) == 0) break;
    if (errno != EEXIST || attempt > 8) FailErrno("cannot create", path_, errno);
  }
  ::chmod(path_.c_str(), 0700);
  // The lock lives on the directory itself, so the dump inside stays pristine.
  int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    lock_ = Fd(fd);
    ::flock(fd, LOCK_EX | LOCK_NB);
  }
}

TempDirOutput::~TempDirOutput() {
  if (published_) return;
  try {
    sys::Remove(path_, /*recursive=*/true);
  } catch (...) {
  }
}

void TempDirOutput::Publish(const std::string& final_path) {
  if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
    FailErrno("cannot publish", final_path, errno);
  }
  published_ = true;
  sys::FsyncDir(dir_);
}

bool IsTempName(const std::string& name) {
  if (name.size() < 6 || name[0] != '.') return false;
  size_t pos = name.rfind(".tmp-");
  if (pos == std::string::npos || pos == 0 || name.size() - pos - 5 < 6) return false;
  return std::all_of(name.begin() + static_cast<long>(pos) + 5, name.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

bool IsStaleTemp(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  Fd guard(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;
  // Between open(O_EXCL) and flock a live writer holds no lock yet.
  if (std::time(nullptr) - st.st_mtime < 60) return false;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return false;
  ::flock(fd, LOCK_UN);
  return true;
}

bool IsOrphanMetadata(const std::string& path) {
  std::string data;
  for (std::string ext : {".sha256", ".json"}) {
    if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0) {
      data = path.substr(0, path.size() - ext.size());
    }
  }
  if (data.empty() || data.back() == '/') return false;
  if (sys::StatPath(data).exists) return false;
  // A live backup publishes its data microseconds after its sidecar.
  sys::Stat st = sys::StatPath(path);
  return st.exists && std::time(nullptr) - static_cast<std::time_t>(st.mtime) >= 60;
}

void PublishBackup(CreateResult& r, const std::string& sidecar_text, json manifest, const std::string& sha,
                   uint64_t size, const std::function<void()>& publish, const CreateOptions& options,
                   const std::string& source) {
  // Sidecar, data, manifest: the manifest (which says "verified") is the
  // last name to appear, so a kill at any point never leaves one describing
  // data that is not there; a lone sidecar is swept by prune. A manifest that
  // cannot be written (ENOSPC) fails the backup and takes the rest with it.
  sys::WriteAtomic(SidecarPath(r.path), sidecar_text, 0600);
  try {
    publish();
  } catch (...) {
    sys::Remove(SidecarPath(r.path));
    throw;
  }
  try {
    WriteManifest(r.path, manifest);
  } catch (...) {
    RemoveBackup(r.path);
    throw;
  }
  r.manifest = std::move(manifest);
  r.manifest_path = ManifestPath(r.path);
  r.sha256 = sha;
  r.size = size;
  r.pruned = PruneAfterCreate(options, source);
}

}  // namespace detail

}  // namespace hoist::db::backup
