// Helpers shared by the backup files (not part of the API): fds, hidden
// temp outputs, a hasher that follows a file being written, zstd streams,
// names, sidecars and manifests.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/backup.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::db::backup::detail {

using json = nlohmann::json;

/// Error{"backup", code, message}.
[[noreturn]] void Fail(const std::string& code, const std::string& message);
/// "<what> <path>: <strerror(err)>", code not_found for ENOENT else failed.
[[noreturn]] void FailErrno(const std::string& what, const std::string& path, int err);
/// Throws Error{"backup","interrupted"|"timeout"} when StopReason() is set.
void CheckStop();

// The descriptor helpers live in sys/fs; backups pass kArea so their errors
// stay Error{"backup", ...}.
inline constexpr std::string_view kArea = "backup";
using sys::Fd;
using sys::FileSize;
using sys::FsyncFd;
using sys::OpenRead;
using sys::PreadFull;
using sys::PwriteFull;
using sys::StartWriteback;
using sys::WriteFull;

/// A manifest's string field; "" when it is absent or not a string.
std::string Str(const json& m, const char* key);

/// A hidden output file `.<final_name>.tmp-XXXXXX` in dir, mode 0600 and
/// flock'ed for its whole life (so prune can tell a crashed backup's
/// leftover from one in progress). Unlinked on destruction unless Publish
/// renamed it.
class TempOutput {
 public:
  TempOutput(const std::string& dir, const std::string& final_name);
  ~TempOutput();
  TempOutput(const TempOutput&) = delete;
  TempOutput& operator=(const TempOutput&) = delete;
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  /// rename(2) with RENAME_NOREPLACE onto final_path, then fsync the dir.
  void Publish(const std::string& final_path);

 private:
  std::string dir_;
  std::string path_;
  Fd fd_;
  bool published_ = false;
};

/// A hidden temp directory `.<final_name>.tmp-XXXXXX` (0700) with a lock
/// file inside; removed recursively unless Publish renamed it.
class TempDirOutput {
 public:
  TempDirOutput(const std::string& dir, const std::string& final_name);
  ~TempDirOutput();
  TempDirOutput(const TempDirOutput&) = delete;
  TempDirOutput& operator=(const TempDirOutput&) = delete;
  const std::string& path() const { return path_; }
  void Publish(const std::string& final_path);

 private:
  std::string dir_;
  std::string path_;
  Fd lock_;
  bool published_ = false;
};

/// True when path is a leftover temp name of ours (".*.tmp-XXXXXX").
bool IsTempName(const std::string& name);
/// True when nobody holds the flock of that temp file/dir (its writer died).
bool IsStaleTemp(const std::string& path);
/// True when path is a backup's sidecar or manifest whose data file does not
/// exist, a minute or more old (a backup killed between its renames).
bool IsOrphanMetadata(const std::string& path);

/// Hashes fd (from offset 0) on its own thread, following a writer that
/// reports its progress with Advance(); Finish(total) says the file is
/// complete. Join() returns the hex digest or rethrows the thread's error.
/// The destructor cancels and joins.
class FollowHasher {
 public:
  explicit FollowHasher(int fd, std::string path);
  ~FollowHasher();
  FollowHasher(const FollowHasher&) = delete;
  FollowHasher& operator=(const FollowHasher&) = delete;
  void Advance(uint64_t available);
  void Finish(uint64_t total);
  std::string Join();
  uint64_t hashed() const { return hashed_.load(); }

 private:
  void Run();
  int fd_;
  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t available_ = 0;
  bool finished_ = false;
  bool cancel_ = false;
  std::atomic<uint64_t> hashed_{0};
  std::string digest_;
  std::exception_ptr error_;
  std::thread thread_;
};

/// Hashes files another process is writing while it writes them, so only
/// the tail is left when it exits instead of a second read of everything.
/// Sound for writers that only append: pg_dump's tar dumps and each file of
/// a directory dump (custom and plain dumps go through a FIFO). A file that
/// shrinks or is replaced is hashed again from its start.
class GrowingHasher {
 public:
  /// root: a file, or a directory (every regular file under it).
  GrowingHasher(std::string root, bool is_dir);
  /// One round over the files: hashes what was appended since the last
  /// (at most 4 MiB per file). False when nothing new was there.
  bool Pass();
  /// After the writer exited: hashes the rest. Relative path ("" for a
  /// single file) -> hex digest.
  std::map<std::string, std::string> Finish();
  uint64_t bytes() const { return bytes_; }

 private:
  struct Tracked {
    Fd fd;
    ino_t ino = 0;
    uint64_t off = 0;
    sys::Sha256 sha;
  };
  std::vector<std::string> Files() const;

  std::string root_;
  bool is_dir_;
  std::map<std::string, Tracked> files_;
  uint64_t bytes_ = 0;
  std::unique_ptr<char[]> buf_;
};

/// Runs fn on another thread; Join() rethrows its exception. The
/// destructor joins (fn must end by itself or watch a cancel flag).
class Worker {
 public:
  explicit Worker(std::function<void()> fn);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  void Join();

 private:
  std::exception_ptr error_;
  std::thread thread_;
};

/// zstd through libzstd.so.1, loaded on first use (start-up stays lean).
/// Compresses in_fd [0, size) to out_fd with `level` and 2 worker threads,
/// feeding the compressed bytes to on_out (hashing); polls stop between
/// blocks. Returns the compressed size.
uint64_t ZstdCompress(int in_fd, uint64_t size, int out_fd, int level, const std::function<void(const char*, size_t)>& on_out,
                      const std::function<void(uint64_t done)>& on_progress, const std::string& path);
/// Decompresses in_fd to out_fd, feeding the compressed bytes to on_in.
/// Throws Error{"backup","corrupt","<display>: ..."} on a damaged stream.
uint64_t ZstdDecompress(int in_fd, int out_fd, const std::function<void(const char*, size_t)>& on_in,
                        const std::function<void(uint64_t done)>& on_progress, const std::string& display);
/// True when the first bytes are a zstd frame.
bool LooksZstd(const std::string& path);

/// "20250101T120000Z" and "2025-01-01T12:00:00.123Z" (UTC).
std::string CompactStamp(std::chrono::system_clock::time_point t);
std::string IsoTime(std::chrono::system_clock::time_point t);
/// Parses IsoTime's output (fraction optional) to seconds since the epoch; nullopt if malformed.
std::optional<double> ParseIsoTime(const std::string& s);

/// Throws invalid unless label matches [A-Za-z0-9._-]{1,64}.
void CheckLabel(const std::string& label);
/// Throws invalid for a negative keep or keep_safety.
void CheckRetention(int keep, int keep_safety);
/// Label, dir, keep and keep_safety: what both engines' create refuse before any work.
void CheckCreateOptions(const CreateOptions& o);
/// Directory part of path ("." when none) and base name.
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
/// Creates dir 0700 when missing (parents too).
void EnsureDir(const std::string& dir);

/// Picks `<stem>-<stamp><ext>` in options.dir, adding "-2", "-3"... when a
/// data file, manifest or sidecar of that name exists there or in
/// options.read_only.dir.
std::string ChooseName(const CreateOptions& options, const std::string& stem, const std::string& ext,
                       std::chrono::system_clock::time_point t);

/// `<path>.sha256` in sha256sum format ("<hex>  <name>\n"; for a directory
/// one line per file, relative to the directory's parent).
std::string SidecarPath(const std::string& path);
std::string ManifestPath(const std::string& path);
/// The digest recorded in the sidecar (for a directory: sha256 of the
/// sidecar's text); nullopt when there is no sidecar.
std::optional<std::string> ReadSidecarDigest(const std::string& path);

/// Writes the manifest atomically, 0600.
void WriteManifest(const std::string& data_path, const json& manifest);

/// The last act of create: writes the sidecar and the manifest, then
/// `publish` renames the data to `r.path`; if that fails the sidecar and
/// manifest go too, so a backup is complete under its final name or absent.
/// Then fills r (manifest, checksum, size) and prunes to `keep`.
void PublishBackup(CreateResult& r, const std::string& sidecar_text, json manifest, const std::string& sha,
                   uint64_t size, const std::function<void()>& publish, const CreateOptions& options,
                   const std::string& source);

/// sha256 of every regular file under dir, as sha256sum lines (sorted by
/// relative path, prefixed with the directory's base name), and the size.
struct TreeDigest {
  std::string sidecar_text;
  std::string digest;  ///< sha256 of sidecar_text
  uint64_t size = 0;
  std::vector<std::string> files;  ///< relative paths
};
TreeDigest HashTree(const std::string& dir);
/// Relative paths of the regular files under dir, sorted.
std::vector<std::string> FilesUnder(const std::string& dir);
/// The sidecar text of a directory named `base` from relative path -> hex
/// digest (sha256sum lines, sorted by path, as HashTree writes them).
std::string TreeSidecar(const std::string& base, const std::map<std::string, std::string>& digests);

/// The common manifest fields.
json BaseManifest(const std::string& engine, const std::string& final_path, const std::string& source,
                  const CreateOptions& o, std::chrono::system_clock::time_point created);

/// Removes a backup: its data (file or tree), sidecar and manifest.
void RemoveBackup(const std::string& path);

/// Prunes after create: keep only `keep` unprotected backups of source.
std::vector<std::string> PruneAfterCreate(const CreateOptions& options, const std::string& source);

}  // namespace hoist::db::backup::detail
