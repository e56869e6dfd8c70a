// Backup files on disk, engine-neutral: hidden temp outputs, the following
// hasher, zstd streams, names, sidecars and manifests, list and prune, and
// the verify/drill dispatch by engine.
#include "db/backup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/secrets.h"
#include "core/interrupt.h"
#include "db/backup_internal.h"
#include "sys/dynlib.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::db::backup {

// Engine entry points implemented in backup_sqlite.cpp / backup_pg.cpp.
VerifyResult VerifySqliteFile(const std::string& file, const std::optional<json>& manifest, const VerifyOptions& o);
VerifyResult VerifyPgFile(const std::string& file, const json& manifest, const VerifyOptions& o);
DrillResult DrillSqlite(const std::string& file, const json& manifest, const DrillOptions& o);
DrillResult DrillPg(const std::string& file, const json& manifest, const DrillOptions& o);

namespace detail {

void Fail(const std::string& code, const std::string& message) { throw Error("backup", code, message); }

void FailErrno(const std::string& what, const std::string& path, int err) {
  Fail(err == ENOENT ? "not_found" : "failed", what + " " + path + ": " + std::strerror(err));
}

void CheckStop() { ThrowIfStopped("backup"); }

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

Fd OpenRead(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) FailErrno("cannot open", path, errno);
  return Fd(fd);
}

uint64_t FileSize(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) FailErrno("cannot stat", path, errno);
  return static_cast<uint64_t>(st.st_size);
}

size_t PreadFull(int fd, char* buf, size_t n, uint64_t off, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(off + got));
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      FailErrno("cannot read", path, errno);
    }
    got += static_cast<size_t>(r);
  }
  return got;
}

void PwriteFull(int fd, const char* buf, size_t n, uint64_t off, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pwrite(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      FailErrno("cannot write", path, errno);
    }
    done += static_cast<size_t>(r);
  }
}

void WriteFull(int fd, const char* buf, size_t n, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::write(fd, buf + done, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      FailErrno("cannot write", path, errno);
    }
    done += static_cast<size_t>(r);
  }
}

void FsyncFd(int fd, const std::string& path) {
  if (::fsync(fd) != 0) FailErrno("cannot fsync", path, errno);
}

void StartWriteback(int fd, uint64_t off, uint64_t n) {
  ::sync_file_range(fd, static_cast<off_t>(off), static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE);
}

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
    size_t got = PreadFull(f.fd.get(), buf_.get(), n, f.off, path);
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
        size_t got = PreadFull(fd_, buf.get(), n, off, path_);
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

// --- zstd, loaded on first use

namespace {

struct ZstdApi {
  sys::DynLib lib{{"libzstd.so.1"}, "backup", "zstd compression", "libzstd1"};
  decltype(&ZSTD_createCCtx) createCCtx = lib.Get<decltype(&ZSTD_createCCtx)>("ZSTD_createCCtx");
  decltype(&ZSTD_freeCCtx) freeCCtx = lib.Get<decltype(&ZSTD_freeCCtx)>("ZSTD_freeCCtx");
  decltype(&ZSTD_CCtx_setParameter) setParameter = lib.Get<decltype(&ZSTD_CCtx_setParameter)>("ZSTD_CCtx_setParameter");
  decltype(&ZSTD_compressStream2) compressStream2 = lib.Get<decltype(&ZSTD_compressStream2)>("ZSTD_compressStream2");
  decltype(&ZSTD_createDCtx) createDCtx = lib.Get<decltype(&ZSTD_createDCtx)>("ZSTD_createDCtx");
  decltype(&ZSTD_freeDCtx) freeDCtx = lib.Get<decltype(&ZSTD_freeDCtx)>("ZSTD_freeDCtx");
  decltype(&ZSTD_decompressStream) decompressStream = lib.Get<decltype(&ZSTD_decompressStream)>("ZSTD_decompressStream");
  decltype(&ZSTD_isError) isError = lib.Get<decltype(&ZSTD_isError)>("ZSTD_isError");
  decltype(&ZSTD_getErrorName) getErrorName = lib.Get<decltype(&ZSTD_getErrorName)>("ZSTD_getErrorName");
};

const ZstdApi& Zstd() {
  static const ZstdApi api;
  return api;
}

constexpr size_t kZBuf = 4 << 20;

}  // namespace

uint64_t ZstdCompress(int in_fd, uint64_t size, int out_fd, int level, const std::function<void(const char*, size_t)>& on_out,
                      const std::function<void(uint64_t)>& on_progress, const std::string& path) {
  const ZstdApi& z = Zstd();
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(z.createCCtx(), z.freeCCtx);
  if (!cctx) Fail("failed", "zstd: cannot create a compression context");
  z.setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  z.setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  // Two workers overlap compression with our reads and writes; a libzstd
  // built without threads rejects the parameter and compresses inline.
  z.setParameter(cctx.get(), ZSTD_c_nbWorkers, 2);
  std::unique_ptr<char[]> in(new char[kZBuf]), out(new char[kZBuf]);
  uint64_t off = 0, written = 0;
  for (;;) {
    CheckStop();
    size_t n = static_cast<size_t>(std::min<uint64_t>(kZBuf, size - off));
    size_t got = n ? PreadFull(in_fd, in.get(), n, off, path) : 0;
    if (got != n) Fail("failed", "short read while compressing " + path);
    off += n;
    bool last = off >= size;
    ZSTD_inBuffer ib{in.get(), n, 0};
    for (;;) {
      ZSTD_outBuffer ob{out.get(), kZBuf, 0};
      size_t rest = z.compressStream2(cctx.get(), &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      if (z.isError(rest)) Fail("failed", std::string("zstd: ") + z.getErrorName(rest));
      if (ob.pos) {
        WriteFull(out_fd, out.get(), ob.pos, path);
        on_out(out.get(), ob.pos);
        written += ob.pos;
      }
      if (last ? rest == 0 : ib.pos == ib.size) break;
    }
    if (on_progress) on_progress(off);
    if (last) break;
  }
  return written;
}

uint64_t ZstdDecompress(int in_fd, int out_fd, const std::function<void(const char*, size_t)>& on_in,
                        const std::function<void(uint64_t)>& on_progress, const std::string& display) {
  const ZstdApi& z = Zstd();
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(z.createDCtx(), z.freeDCtx);
  if (!dctx) Fail("failed", "zstd: cannot create a decompression context");
  std::unique_ptr<char[]> in(new char[kZBuf]), out(new char[kZBuf]);
  uint64_t read_total = 0, written = 0;
  size_t last_ret = 1;  // 0 once a frame is completely decoded and flushed
  bool out_full = false;
  auto step = [&](ZSTD_inBuffer& ib) {
    ZSTD_outBuffer ob{out.get(), kZBuf, 0};
    last_ret = z.decompressStream(dctx.get(), &ob, &ib);
    if (z.isError(last_ret)) Fail("corrupt", display + ": zstd: " + z.getErrorName(last_ret));
    if (ob.pos) {
      WriteFull(out_fd, out.get(), ob.pos, "decompressed copy of " + display);
      written += ob.pos;
    }
    out_full = ob.pos == ob.size;
  };
  for (;;) {
    CheckStop();
    ssize_t n = ::read(in_fd, in.get(), kZBuf);
    if (n < 0) {
      if (errno == EINTR) continue;
      FailErrno("cannot read", display, errno);
    }
    if (n == 0) break;
    on_in(in.get(), static_cast<size_t>(n));
    read_total += static_cast<uint64_t>(n);
    ZSTD_inBuffer ib{in.get(), static_cast<size_t>(n), 0};
    do {
      step(ib);
    } while (ib.pos < ib.size || out_full);
    if (on_progress) on_progress(read_total);
  }
  if (last_ret != 0) Fail("corrupt", display + ": zstd: the compressed stream is truncated");
  return written;
}

bool LooksZstd(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  Fd guard(fd);
  unsigned char m[4] = {};
  return ::pread(fd, m, 4, 0) == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd;
}

// --- names and times

std::string CompactStamp(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string IsoTime(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

std::optional<double> ParseIsoTime(const std::string& s) {
  std::tm tm{};
  int frac_ms = 0;
  int y, mo, d, h, mi, se;
  char tail[16] = {};
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &y, &mo, &d, &h, &mi, &se, tail) < 6) return std::nullopt;
  std::string rest = tail;
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    std::string digits;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) digits += rest[i++];
    while (digits.size() < 3) digits += '0';
    frac_ms = std::stoi(digits.substr(0, 3));
    rest = rest.substr(i);
  }
  if (rest != "Z" && !rest.empty()) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return static_cast<double>(timegm(&tm)) + frac_ms / 1000.0;
}

void CheckLabel(const std::string& label) {
  bool ok = !label.empty() && label.size() <= 64;
  for (char c : label) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  if (!ok) Fail("invalid", "label must match [A-Za-z0-9._-]{1,64}, got \"" + label + "\"");
}

namespace {
void CheckRetention(int keep, int keep_safety) {
  if (keep < 0) Fail("invalid", "keep must be >= 0");
  if (keep_safety < 0) Fail("invalid", "keep_safety must be >= 0");
}
}  // namespace

void CheckCreateOptions(const CreateOptions& o) {
  CheckLabel(o.label);
  if (o.dir.empty()) Fail("invalid", "dir is required");
  CheckRetention(o.keep, o.keep_safety);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

void EnsureDir(const std::string& dir) {
  if (dir.empty()) Fail("invalid", "dir is required");
  try {
    sys::MkdirP(dir, 0700);
  } catch (const Error& e) {
    Fail(e.code() == "not_found" ? "not_found" : "failed", "backup directory: " + e.message());
  }
}

std::string ChooseName(const CreateOptions& o, const std::string& stem, const std::string& ext,
                       std::chrono::system_clock::time_point t) {
  std::string base = stem + "-" + CompactStamp(t);
  auto taken = [](const std::string& p) {
    return sys::StatPath(p).exists || sys::StatPath(p + ".json").exists || sys::StatPath(p + ".sha256").exists;
  };
  for (int i = 1;; ++i) {
    std::string name = i == 1 ? base + ext : fmt::format("{}-{}{}", base, i, ext);
    // A name the real dir has would shadow that backup in a sandbox's view,
    // and is not the name the real run would choose.
    if (taken(o.dir + "/" + name) || (!o.read_only.dir.empty() && taken(o.read_only.dir + "/" + name))) continue;
    return o.dir + "/" + name;
  }
}

std::string SidecarPath(const std::string& path) { return path + ".sha256"; }
std::string ManifestPath(const std::string& path) { return path + ".json"; }

std::optional<std::string> ReadSidecarDigest(const std::string& path) {
  std::string text;
  try {
    text = sys::ReadFile(SidecarPath(path));
  } catch (const Error& e) {
    if (e.code() == "not_found") return std::nullopt;
    throw;
  }
  if (sys::StatPath(path).type == "dir") return sys::Sha256Hex(text);
  size_t sp = text.find_first_of(" \t\n");
  std::string hex = text.substr(0, sp);
  if (hex.size() != 64) Fail("invalid", SidecarPath(path) + ": not a sha256sum line");
  return hex;
}

void WriteManifest(const std::string& data_path, const json& manifest) {
  // A reason or a source URL may hold a secret; manifests sit beside the data.
  sys::WriteAtomic(ManifestPath(data_path),
                   Mask(manifest.dump(2, ' ', false, json::error_handler_t::replace)) + "\n", 0600);
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

json BaseManifest(const std::string& engine, const std::string& final_path, const std::string& source,
                  const CreateOptions& o, std::chrono::system_clock::time_point created) {
  json m;
  m["format"] = "hoist-backup/1";
  m["engine"] = engine;
  m["file"] = BaseName(final_path);
  m["source"] = source;
  m["label"] = o.label;
  m["created_at"] = IsoTime(created);
  m["hoist_version"] = HOIST_VERSION;
  m["run_id"] = o.run_id ? json(*o.run_id) : json(nullptr);
  m["protected"] = o.protect || o.safety;
  m["safety"] = o.safety;
  m["reason"] = o.reason.empty() ? json(nullptr) : json(o.reason);
  return m;
}

void RemoveBackup(const std::string& path) {
  sys::Remove(path, /*recursive=*/true);
  sys::Remove(SidecarPath(path));
  sys::Remove(ManifestPath(path));
}

std::vector<std::string> PruneAfterCreate(const CreateOptions& options, const std::string& source) {
  if (options.keep <= 0 && options.keep_safety <= 0) return {};
  PruneOptions po;
  po.keep = options.keep;
  po.keep_safety = options.keep_safety;
  po.source = source;
  po.read_only = options.read_only;
  return Prune(options.dir, po).removed;
}

}  // namespace detail

using namespace detail;

// --- results as JSON

json VerifyResult::ToJson() const {
  return json{{"ok", ok},
              {"file", file},
              {"engine", engine},
              {"sha256", sha256},
              {"expected_sha256", expected_sha256},
              {"checksum_ok", checksum_ok},
              {"integrity", integrity},
              {"method", method},
              {"problems", problems},
              {"seconds", seconds}};
}

json RestoreResult::ToJson() const {
  return json{{"file", file},
              {"target", target},
              {"safety_backup", safety_backup.empty() ? json(nullptr) : json(safety_backup)},
              {"verified", verified.ToJson()},
              {"pages", pages},
              {"seconds", seconds}};
}

json DrillResult::ToJson() const {
  return json{{"ok", ok},
              {"file", file},
              {"integrity", integrity},
              {"fingerprint", fingerprint},
              {"fingerprint_ok", fingerprint_ok},
              {"smoke", smoke},
              {"problems", problems},
              {"seconds", seconds},
              {"at", at}};
}

// --- manifests, list, prune

std::optional<json> ReadManifest(const std::string& file) {
  std::string text;
  try {
    text = sys::ReadFile(ManifestPath(file));
  } catch (const Error& e) {
    if (e.code() == "not_found") return std::nullopt;
    throw;
  }
  json m = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object()) Fail("invalid", ManifestPath(file) + ": not a JSON object");
  return m;
}

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Str(const json& m, const char* key) {
  auto it = m.find(key);
  return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool Bool(const json& m, const char* key) {
  auto it = m.find(key);
  return it != m.end() && it->is_boolean() && it->get<bool>();
}

/// A protected backup hoist took itself before changing data. Manifests
/// written before the "safety" key existed are recognised by hoist's own
/// safety labels, so the backups that piled up until then can be pruned.
bool IsSafety(const json& m) {
  auto it = m.find("safety");
  if (it != m.end()) return it->is_boolean() && it->get<bool>();
  static const std::set<std::string> kLabels = {"predeploy", "pre-restore", "pre-migrate", "pre-migrate-down"};
  return kLabels.count(Str(m, "label")) > 0;
}

bool NewestFirst(const Entry& a, const Entry& b) {
  return a.created_at != b.created_at ? a.created_at > b.created_at : a.name > b.name;
}
}  // namespace

std::vector<Entry> List(const std::string& dir) {
  std::vector<Entry> out;
  if (!sys::StatPath(dir).exists) return out;
  std::vector<std::string> names;
  try {
    names = sys::ListDir(dir);
  } catch (const Error& e) {
    Fail(e.code(), e.message());  // already "cannot list DIR: why"
  }
  std::vector<std::string> sorted = names;  // ListDir sorts; binary_search below
  for (const auto& name : names) {
    if (name.empty() || name[0] == '.') continue;  // temp files and our lock
    if (EndsWith(name, ".json") || EndsWith(name, ".sha256")) continue;
    bool has_manifest = std::binary_search(sorted.begin(), sorted.end(), name + ".json");
    bool has_sidecar = std::binary_search(sorted.begin(), sorted.end(), name + ".sha256");
    if (!has_manifest && !has_sidecar) continue;  // not ours
    Entry e;
    e.path = dir + "/" + name;
    e.name = name;
    e.has_manifest = has_manifest;
    sys::Stat st = sys::StatPath(e.path);
    e.size = st.size;
    if (has_manifest) {
      try {
        e.manifest = ReadManifest(e.path).value_or(json::object());
      } catch (const Error&) {
        e.manifest = json::object();
        e.has_manifest = false;
      }
    } else {
      e.manifest = json::object();
    }
    const json& m = e.manifest;
    e.engine = Str(m, "engine");
    e.source = Str(m, "source");
    e.label = Str(m, "label");
    e.created_at = Str(m, "created_at");
    if (e.created_at.empty()) {
      std::time_t t = static_cast<std::time_t>(st.mtime);
      e.created_at = IsoTime(std::chrono::system_clock::from_time_t(t));
    }
    if (m.contains("size") && m["size"].is_number_unsigned()) e.size = m["size"].get<uint64_t>();
    e.verified = Bool(m, "verified");
    e.is_protected = Bool(m, "protected");
    e.is_safety = e.is_protected && IsSafety(m);
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), NewestFirst);
  return out;
}

std::vector<Entry> List(const std::string& dir, const ReadOnlyBackups& read_only) {
  std::vector<Entry> all = List(dir);
  if (read_only.dir.empty()) return all;
  std::set<std::string> have;
  for (const auto& e : all) have.insert(e.name);
  for (auto& e : List(read_only.dir)) {
    if (have.count(e.name) || (read_only.gone && read_only.gone->count(e.path))) continue;
    if (read_only.source) e.source = read_only.source(e.source);
    all.push_back(std::move(e));
  }
  std::stable_sort(all.begin(), all.end(), NewestFirst);
  return all;
}

double ParseAge(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string num = text.substr(0, i), unit = text.substr(i);
  double mult = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : unit == "w" ? 604800 : 0;
  char* end = nullptr;
  double v = num.empty() ? -1 : std::strtod(num.c_str(), &end);
  if (mult == 0 || num.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v)) {
    Fail("invalid", "older_than must look like \"30d\", \"12h\", \"90m\", \"45s\" or \"2w\", got \"" + text + "\"");
  }
  return v * mult;
}

PruneResult Prune(const std::string& dir, const PruneOptions& o) {
  CheckRetention(o.keep, o.keep_safety);
  if (o.keep == 0 && o.keep_safety == 0 && o.older_than <= 0) Fail("invalid", "prune needs keep, keep_safety or older_than");
  // keep_safety alone prunes safety backups only; older_than alone ages out
  // unprotected backups only (safety ones go by keep_safety).
  const bool prune_plain = o.keep > 0 || o.older_than > 0;
  PruneResult r;
  std::vector<Entry> all = List(dir, o.read_only);
  // What the read-only view adds is counted, never removed.
  auto untouchable = [&](const Entry& e) {
    return !o.read_only.dir.empty() && e.path.rfind(o.read_only.dir + "/", 0) == 0;
  };
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Per source, newest first (List's order).
  std::map<std::string, std::vector<const Entry*>> by_source;
  for (const auto& e : all) {
    if (!e.has_manifest) continue;  // never delete what we cannot describe
    if (!o.source.empty() && e.source != o.source) continue;
    by_source[e.source].push_back(&e);
  }
  for (auto& [source, entries] : by_source) {
    const Entry* newest_verified = nullptr;
    for (const Entry* e : entries) {
      if (e->verified) {
        newest_verified = e;
        break;
      }
    }
    int rank = 0, safety_rank = 0;
    for (const Entry* e : entries) {
      auto created = ParseIsoTime(e->created_at);
      bool old_enough = o.older_than <= 0 || (created && now - *created > o.older_than);
      bool goes;
      if (e->is_safety) {
        goes = o.keep_safety > 0 && safety_rank++ >= o.keep_safety && old_enough && e != newest_verified;
      } else if (e->is_protected || e == newest_verified) {
        goes = false;
        if (!e->is_protected) ++rank;  // the newest verified one still counts towards keep
      } else {
        goes = prune_plain && (o.keep == 0 || rank >= o.keep) && old_enough;
        ++rank;
      }
      if (goes) {
        if (!o.dry_run) {
          if (!untouchable(*e)) {
            RemoveBackup(e->path);
          } else if (o.read_only.gone) {
            o.read_only.gone->insert(e->path);
          }
        }
        r.removed.push_back(e->path);
      } else {
        r.kept.push_back(e->path);
      }
    }
  }
  // Leftovers of crashed backups: temp files nobody holds a lock on, and a
  // sidecar or manifest whose data never appeared (killed mid-publish).
  for (const std::string* d : {&dir, &o.read_only.dir}) {
    if (d->empty() || !sys::StatPath(*d).exists) continue;
    for (const auto& name : sys::ListDir(*d)) {
      std::string p = *d + "/" + name;
      if (IsTempName(name)) {
        if (!IsStaleTemp(p)) continue;
      } else if (!IsOrphanMetadata(p)) {
        continue;
      }
      if (!o.dry_run && d == &dir) sys::Remove(p, /*recursive=*/true);
      r.stale.push_back(p);
    }
  }
  return r;
}

// --- verify and drill, by engine

namespace {

json ManifestOrGuess(const std::string& file) {
  if (auto m = ReadManifest(file)) return *m;
  // No manifest: recognise the data by its first bytes.
  json m = json::object();
  sys::Stat st = sys::StatPath(file);
  if (st.type == "dir") {
    m["engine"] = "postgres";
    m["format"] = "directory";
    return m;
  }
  std::string head;
  {
    Fd fd = OpenRead(file);
    char buf[16] = {};
    size_t n = PreadFull(fd.get(), buf, sizeof buf, 0, file);
    head.assign(buf, n);
  }
  if (head.rfind("SQLite format 3", 0) == 0 || LooksZstd(file)) {
    m["engine"] = "sqlite";
  } else if (head.rfind("PGDMP", 0) == 0) {
    m["engine"] = "postgres";
    m["format"] = "custom";
  } else {
    m["engine"] = EndsWith(file, ".sql") || EndsWith(file, ".tar") ? "postgres" : "sqlite";
    if (m["engine"] == "postgres") m["format"] = EndsWith(file, ".sql") ? "plain" : "tar";
  }
  return m;
}

void RequireExists(const std::string& file) {
  if (!sys::StatPath(file).exists) Fail("not_found", "no such backup: " + file);
}

}  // namespace

VerifyResult Verify(const std::string& file, const VerifyOptions& o) {
  RequireExists(file);
  std::optional<json> manifest = ReadManifest(file);
  if (!manifest && !sys::StatPath(SidecarPath(file)).exists) {
    Fail("invalid", file + " has neither a checksum (" + BaseName(SidecarPath(file)) + ") nor a manifest (" +
                        BaseName(ManifestPath(file)) + "): cannot verify it");
  }
  json m = manifest ? *manifest : ManifestOrGuess(file);
  if (Str(m, "engine") == "postgres") return VerifyPgFile(file, m, o);
  return VerifySqliteFile(file, manifest, o);
}

VerifyResult VerifyOrThrow(const std::string& file, const VerifyOptions& o) {
  VerifyResult r = Verify(file, o);
  if (!r.ok) {
    std::string msg;
    for (const auto& p : r.problems) msg += (msg.empty() ? "" : "; ") + p;
    Fail("corrupt", msg.empty() ? BaseName(file) + ": verification failed" : msg);
  }
  return r;
}

DrillResult Drill(const std::string& file, const DrillOptions& o) {
  RequireExists(file);
  json m = ManifestOrGuess(file);
  DrillResult r = Str(m, "engine") == "postgres" ? DrillPg(file, m, o) : DrillSqlite(file, m, o);
  // The drill's record goes into the backup's own manifest (when it has one).
  if (std::optional<json> real = o.record ? ReadManifest(file) : std::nullopt) {
    if (!real->contains("drills") || !(*real)["drills"].is_array()) (*real)["drills"] = json::array();
    (*real)["drills"].push_back(r.ToJson());
    (*real)["last_drill"] = {{"at", r.at}, {"ok", r.ok}};
    WriteManifest(file, *real);
  }
  return r;
}

}  // namespace hoist::db::backup
