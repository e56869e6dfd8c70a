// SQLite backups. Create copies a pinned snapshot as fast as the disk
// allows: the WAL's committed frames are read (checksummed exactly as
// SQLite's recovery does) and laid over the main file while it streams into
// the temp file; hashing, quick_check and fsync overlap. Restore goes
// through sqlite3_backup into the live database. Why this is consistent is
// spelled out at ReadWal and in docs/backup.md.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "db/backup.h"
#include "db/backup_internal.h"
#include "db/sqlite_connection.h"
#include "sys/clock.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::db::backup {

VerifyResult VerifySqliteFile(const std::string& file, const std::optional<json>& manifest, const VerifyOptions& o);
DrillResult DrillSqlite(const std::string& file, const json& manifest, const DrillOptions& o);

namespace {

using namespace detail;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kChunk = 8 << 20;  // large sequential I/O: ~page-cache memcpy speed
constexpr uint32_t kWalMagic = 0x377f0682;
constexpr uint32_t kWalVersion = 3007000;
constexpr int kRestoreStepPages = 16384;

uint32_t Get4(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void Put4(unsigned char* p, uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

/// "file:<path>?immutable=1": read-only, no locks, no -journal/-shm created.
std::string ImmutableUri(const std::string& path) {
  std::string out = "file:";
  for (unsigned char c : std::filesystem::absolute(path).string()) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out + "?immutable=1";
}

/// The progress handler: a Ctrl-C or the step deadline stops a long pragma.
int StopHandler(void*) { return StopReason().empty() ? 0 : 1; }

/// A failed statement; cause is SQLite's own message ("no such column: x").
class SqlFailure : public Error {
 public:
  SqlFailure(const std::string& code, const std::string& message, std::string cause)
      : Error("backup", code, message), cause_(std::move(cause)) {}
  const std::string& cause() const { return cause_; }

 private:
  std::string cause_;
};

class Db {
 public:
  /// Throws Error{"backup", not_found|failed, "cannot open <display>: ..."}.
  Db(const std::string& target, int flags, std::string display) : display_(std::move(display)) {
    int rc = sqlite3_open_v2(target.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      Fail("failed", "cannot open " + display_ + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 0);
    sqlite3_progress_handler(db_, 20000, StopHandler, nullptr);
  }
  ~Db() { Close(); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }
  void Close() {
    if (db_) sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  [[noreturn]] void Throw(int rc, const std::string& what) const {
    if (rc == SQLITE_INTERRUPT) CheckStop();
    std::string code = rc == SQLITE_NOTADB ? "not_a_database" : (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? "busy" : "failed";
    std::string cause = sqlite3_errmsg(db_);
    throw SqlFailure(code, what + " " + display_ + ": " + cause, cause);
  }

  void Exec(const std::string& sql) {
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) Throw(rc, "\"" + sql + "\" failed on");
  }

  /// Every row, each column as text (NULL as "").
  std::vector<std::vector<std::string>> Rows(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr);
    if (rc != SQLITE_OK) Throw(rc, "\"" + sql + "\" failed on");
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
        row.emplace_back(t ? std::string(t, static_cast<size_t>(sqlite3_column_bytes(st, i))) : std::string());
      }
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) Throw(rc, "\"" + sql + "\" failed on");
    return rows;
  }

  std::string Scalar(const std::string& sql) {
    auto rows = Rows(sql);
    return rows.empty() || rows[0].empty() ? std::string() : rows[0][0];
  }

 private:
  sqlite3* db_ = nullptr;
  std::string display_;
};

// --- the WAL

/// SQLite's WAL checksum: pairs of 32-bit words, big- or little-endian as
/// the WAL header's magic says, accumulated over the header and each frame.
void WalChecksum(bool big_endian, const unsigned char* p, size_t n, uint32_t& s1, uint32_t& s2) {
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint32_t a, b;
    if (big_endian) {
      a = Get4(p + i);
      b = Get4(p + i + 4);
    } else {
      a = uint32_t{p[i]} | (uint32_t{p[i + 1]} << 8) | (uint32_t{p[i + 2]} << 16) | (uint32_t{p[i + 3]} << 24);
      b = uint32_t{p[i + 4]} | (uint32_t{p[i + 5]} << 8) | (uint32_t{p[i + 6]} << 16) | (uint32_t{p[i + 7]} << 24);
    }
    s1 += a + s2;
    s2 += b + s1;
  }
}

/// What the wal-index (-shm, https://sqlite.org/walformat.html) says about
/// checkpoints: frames 1..backfill of the WAL generation with `salt` are
/// already in the main file.
struct ShmInfo {
  bool ok = false;
  uint32_t backfill = 0;
  uint32_t mx_frame = 0;  // the last committed frame when read
  unsigned char salt[8] = {};
};

ShmInfo ReadShmOnce(int fd, const std::string& shm_path) {
  ShmInfo info;
  unsigned char buf[136];
  if (PreadFull(fd, reinterpret_cast<char*>(buf), sizeof buf, 0, shm_path, kArea) != sizeof buf) return info;
  // Two copies of the header: a writer in the middle of an update makes them differ.
  if (std::memcmp(buf, buf + 48, 48) != 0 || buf[12] == 0) return info;
  uint32_t version, mx_frame, backfill;
  std::memcpy(&version, buf, 4);  // native byte order, like the whole wal-index
  std::memcpy(&mx_frame, buf + 16, 4);
  std::memcpy(&backfill, buf + 96, 4);
  if (version != kWalVersion || backfill > mx_frame) return info;
  std::memcpy(info.salt, buf + 32, 8);  // the WAL header's salt bytes, as they are
  info.backfill = backfill;
  info.mx_frame = mx_frame;
  info.ok = true;
  return info;
}

/// The -shm's view, retried past a writer caught mid-update.
ShmInfo ReadShm(int fd, const std::string& shm_path) {
  for (int i = 0; i < 200; ++i) {
    ShmInfo info = ReadShmOnce(fd, shm_path);
    if (info.ok) return info;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return {};
}

struct Overlay {
  Fd scratch;                                      // page images of the frames read
  std::vector<std::pair<uint32_t, uint32_t>> pages;  // (pgno, frame index), latest frame per page, by pgno
  uint32_t db_pages = 0;                           // database size after the last commit used; 0 = none
  uint64_t frames = 0;                             // frames up to and including that commit
  uint64_t wal_bytes = 0;
  uint64_t skipped = 0;                            // checkpointed frames not read
  bool header_valid = false;
  unsigned char salt[8] = {};                      // of the WAL header read
  std::string note;                                // why the WAL contributed nothing
};

Fd AnonymousFile(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return Fd(fd);
  std::string tmpl = dir + "/.hoist-wal-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  fd = ::mkostemp(buf.data(), O_CLOEXEC);
  if (fd < 0) FailErrno("cannot create a scratch file in", dir, errno);
  ::unlink(buf.data());
  return Fd(fd);
}

Overlay ReadWalFrames(const std::string& wal_path, uint32_t page_size, const std::string& scratch_dir,
                      const ShmInfo& shm);

/// Reads the committed frames of wal_path exactly as SQLite's WAL recovery
/// would on a copy: a valid header (magic, version, checksum), then frames
/// while each carries the header's salts and a correct cumulative checksum,
/// keeping those up to the last commit frame. Called while the caller holds
/// a read transaction on the database, which makes the result consistent
/// with the main file as it is copied afterwards:
/// - If the reader uses a WAL read mark (the WAL had frames not yet
///   checkpointed), the WAL cannot restart, so frames 1..snapshot stay
///   intact; a checkpoint may write pages of those frames into the main file
///   meanwhile, but we lay those very frames over it. Later frames are later
///   commits built on the same state.
/// - If the reader uses read mark 0 (everything checkpointed), no
///   checkpoint can write the main file until we finish, so the main file
///   is the snapshot; frames read from before a WAL restart are already in
///   it, frames after one carry new salts and chain from the main file.
/// Either way: main file + valid committed prefix = the database as of one
/// commit at or after our read began.
/// Frames a checkpoint already copied into the main file are skipped (a WAL
/// held back by long readers can be larger than the database): the -shm
/// says how far the checkpoint got for the WAL generation with a given salt;
/// when that salt is the one in the WAL header, reading starts after it,
/// chaining the checksum from that frame's stored value.
/// A WAL restart while we read (the -shm's salt before, the WAL header's and
/// the -shm's after differ, or the count went down) can only happen when
/// our reader is on read mark 0, i.e. when the main file alone is our
/// snapshot: then no frame is used at all — the frames of a generation
/// being overwritten could otherwise be read only in part, and a part of a
/// fully checkpointed generation is older than the main file.
Overlay ReadWal(const std::string& wal_path, uint32_t page_size, const std::string& scratch_dir, int shm_fd) {
  const std::string shm_path = wal_path.substr(0, wal_path.size() - 4) + "-shm";
  const bool shm_exists = shm_fd >= 0;
  const ShmInfo shm = shm_exists ? ReadShm(shm_fd, shm_path) : ShmInfo{};
  if (shm_exists && !shm.ok) Fail("failed", shm_path + ": cannot read a consistent wal-index header");
  Overlay ov = ReadWalFrames(wal_path, page_size, scratch_dir, shm);
  if (!shm_exists) return ov;
  const ShmInfo after = ReadShm(shm_fd, shm_path);
  bool restarted = !after.ok || std::memcmp(shm.salt, after.salt, 8) != 0 || after.backfill < shm.backfill ||
                   (ov.header_valid && std::memcmp(shm.salt, ov.salt, 8) != 0);
  if (restarted) {
    Overlay none;
    none.wal_bytes = ov.wal_bytes;
    none.note = "the WAL restarted during the backup: the main file is the snapshot";
    return none;
  }
  return ov;
}

Overlay ReadWalFrames(const std::string& wal_path, uint32_t page_size, const std::string& scratch_dir,
                      const ShmInfo& shm) {
  Overlay ov;
  const sys::KeptFd wal_file = sys::KeptFd::Open(wal_path);
  const int fd = wal_file.get();
  if (fd < 0) {
    if (errno == ENOENT) {
      ov.note = "no WAL file";
      return ov;
    }
    FailErrno("cannot open", wal_path, errno);
  }
  uint64_t size = FileSize(fd, wal_path, kArea);
  ov.wal_bytes = size;
  unsigned char hdr[32];
  if (size < sizeof hdr || PreadFull(fd, reinterpret_cast<char*>(hdr), sizeof hdr, 0, wal_path, kArea) != sizeof hdr) {
    ov.note = "WAL empty";
    return ov;
  }
  uint32_t magic = Get4(hdr);
  if ((magic & ~1u) != kWalMagic) {
    ov.note = "WAL header not valid";
    return ov;
  }
  ov.header_valid = true;
  std::memcpy(ov.salt, hdr + 16, 8);
  bool big_endian = (magic & 1) != 0;
  uint32_t s1 = 0, s2 = 0;
  WalChecksum(big_endian, hdr, 24, s1, s2);
  if (s1 != Get4(hdr + 24) || s2 != Get4(hdr + 28)) {
    ov.note = "WAL header checksum not valid";
    return ov;
  }
  if (Get4(hdr + 4) != kWalVersion) Fail("failed", fmt::format("{}: unsupported WAL version {}", wal_path, Get4(hdr + 4)));
  if (Get4(hdr + 8) != page_size) {
    Fail("failed", fmt::format("{}: WAL page size {} differs from the database's {}", wal_path, Get4(hdr + 8), page_size));
  }
  const size_t frame_size = 24 + size_t{page_size};
  uint64_t max_frames = (size - sizeof hdr) / frame_size;
  // Frames committed after the -shm was read are later commits we do not
  // need: stopping at its mxFrame keeps a busy writer from lengthening the
  // copy. That frame is at or after our read mark, so every frame a
  // checkpoint can write into the main file meanwhile is still overlaid.
  if (shm.ok && std::memcmp(shm.salt, hdr + 16, 8) == 0) max_frames = std::min<uint64_t>(max_frames, shm.mx_frame);
  uint64_t start = 0;
  // Frames a checkpoint already wrote into the main file are skipped: a WAL
  // held back by long readers can be larger than the database.
  if (shm.ok && shm.backfill > 0 && shm.backfill <= max_frames && std::memcmp(shm.salt, hdr + 16, 8) == 0) {
    unsigned char fh[24];
    uint64_t at = sizeof hdr + (uint64_t{shm.backfill} - 1) * frame_size;
    if (PreadFull(fd, reinterpret_cast<char*>(fh), sizeof fh, at, wal_path, kArea) == sizeof fh &&
        std::memcmp(fh + 8, hdr + 16, 8) == 0) {
      s1 = Get4(fh + 16);
      s2 = Get4(fh + 20);
      start = shm.backfill;
      ov.skipped = start;
    }
  }
  const size_t batch = std::max<size_t>(1, kChunk / frame_size);
  std::unique_ptr<unsigned char[]> buf(new unsigned char[batch * frame_size]);
  std::unique_ptr<unsigned char[]> pagebuf(new unsigned char[batch * page_size]);
  std::unordered_map<uint32_t, uint32_t> latest;
  std::vector<std::pair<uint32_t, uint32_t>> pending;  // since the last commit frame
  ov.scratch = AnonymousFile(scratch_dir);
  bool stop = false;
  for (uint64_t i = start; i < max_frames && !stop;) {
    CheckStop();
    size_t n = static_cast<size_t>(std::min<uint64_t>(batch, max_frames - i));
    size_t got = PreadFull(fd, reinterpret_cast<char*>(buf.get()), n * frame_size, sizeof hdr + i * frame_size,
                           wal_path, kArea);
    size_t valid = 0;
    for (size_t j = 0; j < n && (j + 1) * frame_size <= got; ++j) {
      const unsigned char* f = buf.get() + j * frame_size;
      uint32_t pgno = Get4(f);
      if (pgno == 0 || std::memcmp(f + 8, hdr + 16, 8) != 0) {
        stop = true;
        break;
      }
      uint32_t c1 = s1, c2 = s2;
      WalChecksum(big_endian, f, 8, c1, c2);
      WalChecksum(big_endian, f + 24, page_size, c1, c2);
      if (c1 != Get4(f + 16) || c2 != Get4(f + 20)) {
        stop = true;
        break;
      }
      s1 = c1;
      s2 = c2;
      std::memcpy(pagebuf.get() + j * page_size, f + 24, page_size);
      uint32_t index = static_cast<uint32_t>(i - start + j);  // frame i+j, stored at this index in scratch
      pending.emplace_back(pgno, index);
      if (uint32_t commit = Get4(f + 4); commit != 0) {
        for (const auto& [pg, idx] : pending) latest[pg] = idx;
        pending.clear();
        ov.db_pages = commit;
        ov.frames = i + j + 1;
      }
      valid = j + 1;
    }
    if (valid < n) stop = true;
    if (valid) {
      PwriteFull(ov.scratch.get(), reinterpret_cast<const char*>(pagebuf.get()), valid * page_size,
                 (i - start) * page_size, "WAL scratch file", kArea);
    }
    i += n;
  }
  if (ov.frames == 0) ov.note = start ? "every committed frame was checkpointed" : "no committed frames in the WAL";
  for (const auto& [pg, idx] : latest) {
    if (pg <= ov.db_pages) ov.pages.emplace_back(pg, idx);
  }
  std::sort(ov.pages.begin(), ov.pages.end());
  return ov;
}

/// Copies [off, off+n) of in to the same offsets of out; returns the bytes
/// copied (fewer at the end of in). copy_file_range keeps the data in the
/// kernel; pread/pwrite when it is refused (other filesystem, old kernel).
size_t CopyRange(int in, int out, uint64_t off, size_t n, bool& in_kernel, const std::string& in_path,
                 const std::string& out_path) {
  size_t done = 0;
  while (in_kernel && done < n) {
    loff_t ioff = static_cast<loff_t>(off + done), ooff = ioff;
    ssize_t r = ::copy_file_range(in, &ioff, out, &ooff, n - done, 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return done;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) FailErrno("cannot copy", in_path, errno);
    in_kernel = false;
  }
  if (done == n) return done;
  std::unique_ptr<char[]> buf(new char[n - done]);
  size_t got = PreadFull(in, buf.get(), n - done, off + done, in_path, kArea);
  PwriteFull(out, buf.get(), got, off + done, out_path, kArea);
  return done + got;
}

/// Page 1 of the copy: a rollback-journal database (bytes 18/19 = 1, what
/// journal_mode=DELETE writes), with a trusted in-header page count.
void PatchHeader(unsigned char* page1, uint32_t pages) {
  if (page1[18] == 2) page1[18] = 1;
  if (page1[19] == 2) page1[19] = 1;
  Put4(page1 + 28, pages);
  std::memcpy(page1 + 92, page1 + 24, 4);  // version-valid-for = change counter
}

std::string StemOf(const std::string& db_path) {
  std::string base = BaseName(db_path);
  size_t dot = base.rfind('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base.empty() ? "db" : base;
}

/// flock on <dir>/.hoist-backup.lock while a name is chosen and published.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    std::string p = dir + "/.hoist-backup.lock";
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) FailErrno("cannot lock", dir, errno);
    fd_ = Fd(fd);
    while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
    }
  }

 private:
  Fd fd_;
};

// --- checks on a database file

struct CheckInfo {
  bool ok = false;
  std::vector<std::string> problems;
  std::string fingerprint;
  json migration_version;
  uint64_t pages = 0;
  uint32_t page_size = 0;
};

std::string Summarize(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < 3; ++i) out += (i ? "; " : "") + lines[i];
  if (lines.size() > 3) out += fmt::format("; ... ({} more)", lines.size() - 3);
  return out;
}

/// The same fingerprint conn:fingerprint() gives (hoist.db's normalized
/// schema), so a manifest can be compared with a live database.
std::string Fingerprint(const std::string& path) {
  DbUrl url;
  url.engine = Engine::kSqlite;
  url.path = path;
  url.redacted = "sqlite://" + path;
  OpenOptions oo;
  oo.readonly = true;
  SqliteConnection conn(std::move(url), oo);
  std::string fp = conn.Fingerprint();
  conn.Close();
  return fp;
}

json MigrationVersion(Db& db) {
  if (db.Scalar("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='hoist_schema_migrations'") != "1") {
    return nullptr;
  }
  bool has_version = false;
  for (const auto& r : db.Rows("PRAGMA table_info(hoist_schema_migrations)")) has_version |= r.size() > 1 && r[1] == "version";
  if (!has_version) return nullptr;
  auto rows = db.Rows("SELECT max(version) FROM hoist_schema_migrations");
  if (rows.empty() || rows[0].empty() || rows[0][0].empty()) return nullptr;
  return rows[0][0];
}

/// Opens path read-only (immutable: no locks, nothing created beside it)
/// and checks it. A damaged file is an answer, not an exception; Ctrl-C
/// and the step deadline throw.
CheckInfo CheckFile(const std::string& path, bool deep, bool describe, uint64_t mmap_bytes) {
  CheckInfo info;
  try {
    Db db(ImmutableUri(path), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, path);
    if (mmap_bytes) db.Exec(fmt::format("PRAGMA mmap_size={}", std::min<uint64_t>(mmap_bytes, 0x7fff0000)));
    auto rows = db.Rows(deep ? "PRAGMA integrity_check" : "PRAGMA quick_check");
    for (const auto& r : rows) {
      if (!(r.size() == 1 && r[0] == "ok")) info.problems.push_back(r.empty() ? "?" : r[0]);
    }
    if (deep) {
      for (const auto& r : db.Rows("PRAGMA foreign_key_check")) {
        info.problems.push_back(fmt::format("foreign key violation: {} rowid {} references {}", r[0], r[1], r[2]));
      }
    }
    if (describe && info.problems.empty()) {
      info.fingerprint = Fingerprint(path);
      info.migration_version = MigrationVersion(db);
      info.pages = std::stoull(db.Scalar("PRAGMA page_count"));
      info.page_size = static_cast<uint32_t>(std::stoul(db.Scalar("PRAGMA page_size")));
    }
  } catch (const SqlFailure& e) {
    info.problems.push_back(e.cause());
  } catch (const Error& e) {
    if (e.code() == "interrupted" || e.code() == "timeout") throw;
    info.problems.push_back(e.message());
  }
  info.ok = info.problems.empty();
  return info;
}

/// Copies every page of src into dest in one write transaction. The source
/// is a private immutable file, so nothing can restart the copy; stepping
/// in chunks only lets progress and Ctrl-C through. Readers of dest see the
/// old database until the commit, then the restored one. Returns pages.
uint64_t BackupInto(Db& src, Db& dest, const std::string& display, const ProgressFn& progress) {
  sqlite3_backup* b = sqlite3_backup_init(dest.get(), "main", src.get(), "main");
  if (!b) dest.Throw(sqlite3_errcode(dest.get()), "cannot start restoring into");
  auto finish = [&]() { return sqlite3_backup_finish(std::exchange(b, nullptr)); };
  struct Guard {
    sqlite3_backup*& b;
    ~Guard() {
      if (b) sqlite3_backup_finish(b);
    }
  } guard{b};
  auto busy_since = SteadyClock::now();
  bool busy = false;
  for (;;) {
    if (std::string why = StopReason(); !why.empty()) {
      finish();  // rolls the destination back: nothing was restored
      CheckStop();
    }
    int rc = sqlite3_backup_step(b, kRestoreStepPages);
    if (rc == SQLITE_DONE) break;
    if (rc == SQLITE_OK) {
      busy = false;
      int total = sqlite3_backup_pagecount(b);
      if (progress) progress("restore " + display, total - sqlite3_backup_remaining(b), total, "pages");
      continue;
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      if (!busy) busy_since = SteadyClock::now();
      busy = true;
      if (sys::Since(busy_since) > 30) {
        finish();
        Fail("busy", display + " stayed locked by another connection for 30 s; nothing was restored");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    finish();
    Fail("failed", "restoring into " + display + " failed: " + sqlite3_errmsg(dest.get()) +
                       (rc == SQLITE_READONLY ? " (a WAL database needs the backup's page size)" : ""));
  }
  uint64_t pages = static_cast<uint64_t>(sqlite3_backup_pagecount(b));
  int rc = finish();
  if (rc != SQLITE_OK) dest.Throw(rc, "restoring into");
  return pages;
}

/// Where to put a decompressed copy: beside the file when writable, else TMPDIR.
std::string ScratchDirFor(const std::string& file) {
  std::string dir = DirName(file);
  if (::access(dir.c_str(), W_OK) == 0) return dir;
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

bool IsCompressed(const std::string& file, const std::optional<json>& manifest) {
  if (manifest && manifest->contains("compression") && (*manifest)["compression"].is_string()) {
    return (*manifest)["compression"] == "zstd";
  }
  return LooksZstd(file);
}

/// Verification with the decompressed copy handed out (restore and drill
/// reuse it instead of decompressing twice).
VerifyResult VerifyImpl(const std::string& file, const std::optional<json>& manifest, bool deep,
                        const ProgressFn& progress, std::unique_ptr<TempOutput>* decompressed) {
  auto t0 = SteadyClock::now();
  VerifyResult r;
  r.file = file;
  r.engine = "sqlite";
  r.method = deep ? "integrity_check" : "quick_check";
  const std::string name = BaseName(file);
  auto from_sidecar = ReadSidecarDigest(file);
  std::string from_manifest =
      manifest && manifest->contains("sha256") && (*manifest)["sha256"].is_string() ? (*manifest)["sha256"].get<std::string>() : "";
  if (!from_sidecar && from_manifest.empty()) {
    Fail("invalid", name + " has neither a checksum (" + name + ".sha256) nor a manifest with one: cannot verify it");
  }
  r.expected_sha256 = from_sidecar ? *from_sidecar : from_manifest;
  std::string expected_from = from_sidecar ? name + ".sha256" : name + ".json";
  if (from_sidecar && !from_manifest.empty() && *from_sidecar != from_manifest) {
    r.problems.push_back(name + ": " + name + ".sha256 and " + name + ".json record different checksums");
  }
  Fd fd = OpenRead(file, kArea);
  uint64_t size = FileSize(fd.get(), file, kArea);
  if (manifest && manifest->contains("size") && (*manifest)["size"].is_number_unsigned()) {
    uint64_t want = (*manifest)["size"].get<uint64_t>();
    if (size != want) {
      r.problems.push_back(size < want ? fmt::format("{}: truncated: {} bytes, the manifest records {}", name, size, want)
                                       : fmt::format("{}: {} bytes, the manifest records {}", name, size, want));
      r.integrity = "not checked";
      r.seconds = sys::Since(t0);
      return r;
    }
  }
  CheckInfo info;
  bool checked = true;
  if (!IsCompressed(file, manifest)) {
    // The two halves of the work overlap: hashing on a thread, the check here.
    FollowHasher hasher(fd.get(), file);
    hasher.Finish(size);
    info = CheckFile(file, deep, /*describe=*/false, size);
    while (hasher.hashed() < size) {
      CheckStop();
      if (progress) progress("verify " + name, static_cast<double>(hasher.hashed()), static_cast<double>(size), "bytes");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    r.sha256 = hasher.Join();
  } else {
    auto out = std::make_unique<TempOutput>(ScratchDirFor(file), name + ".verify");
    sys::Sha256 sha;
    auto on_in = [&](const char* p, size_t n) { sha.Update(std::string_view(p, n)); };
    auto on_progress = [&](uint64_t done) {
      if (progress) progress("verify " + name, static_cast<double>(done), static_cast<double>(size), "bytes");
    };
    bool decoded = true;
    try {
      ZstdDecompress(fd.get(), out->fd(), on_in, on_progress, name);
    } catch (const Error& e) {
      if (e.code() != "corrupt") throw;
      decoded = false;
      r.problems.push_back(e.message());
    }
    if (decoded) {
      r.sha256 = sha.FinishHex();
      info = CheckFile(out->path(), deep, false, FileSize(out->fd(), out->path(), kArea));
      if (decompressed) *decompressed = std::move(out);
    } else {
      checked = false;
      info.ok = true;
      r.sha256 = sys::Sha256FileHex(file);
    }
  }
  r.checksum_ok = r.sha256 == r.expected_sha256;
  if (!r.checksum_ok) {
    r.problems.push_back(
        fmt::format("{}: sha256 mismatch: the file hashes to {}, {} records {}", name, r.sha256, expected_from, r.expected_sha256));
  }
  r.integrity = !checked ? "not checked" : info.ok ? "ok" : Summarize(info.problems);
  if (!info.ok) r.problems.push_back(fmt::format("{}: {} failed: {}", name, r.method, r.integrity));
  r.ok = r.problems.empty();
  r.seconds = sys::Since(t0);
  if (decompressed && !r.ok) decompressed->reset();
  return r;
}

/// Rejects a target that is missing, a directory, or not SQLite.
void CheckTarget(const std::string& target) {
  sys::Stat st = sys::StatPath(target);
  if (!st.exists) Fail("not_found", "restore target " + target + " does not exist");
  if (st.type == "dir") Fail("not_a_database", "restore target " + target + " is a directory, not a SQLite database");
}

}  // namespace

// --- create

CreateResult CreateSqlite(const std::string& db_path, const CreateOptions& o) {
  const auto t0 = SteadyClock::now();
  const auto created = std::chrono::system_clock::now();
  CheckCreateOptions(o);
  // -1 = "compress with the default": zstd level 3 (fast, ~the gzip -6 ratio).
  const int level = o.compress < 0 ? 3 : o.compress;
  if (level > 19) Fail("invalid", "compress must be a zstd level from 1 to 19 (or 0/false)");
  CheckStop();
  sys::Stat st = sys::StatPath(db_path);
  if (!st.exists) Fail("not_found", "no such database: " + db_path);
  if (st.type == "dir") Fail("not_a_database", db_path + " is a directory, not a SQLite database");
  EnsureDir(o.dir);
  const std::string source = std::filesystem::absolute(db_path).lexically_normal().string();
  const std::string display = BaseName(db_path);

  // The snapshot: a read transaction that stays open until the copy is done.
  auto src = std::make_unique<Db>(db_path, SQLITE_OPEN_READWRITE, db_path);
  // Closing must not checkpoint: a backup never writes to its source.
  sqlite3_db_config(src->get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  sqlite3_busy_timeout(src->get(), 5000);
  try {
    src->Exec("BEGIN");
    src->Scalar("SELECT count(*) FROM sqlite_master");
  } catch (const Error& e) {
    if (e.code() == "not_a_database") Fail("not_a_database", db_path + " is not a SQLite database");
    throw;
  }
  const uint32_t page_size = static_cast<uint32_t>(std::stoul(src->Scalar("PRAGMA page_size")));
  const uint32_t snapshot_pages = static_cast<uint32_t>(std::stoul(src->Scalar("PRAGMA page_count")));
  const std::string journal_mode = src->Scalar("PRAGMA journal_mode");
  const bool wal = journal_mode == "wal";

  json timings;
  auto mark = SteadyClock::now();
  auto lap = [&](const char* phase) {
    auto now = SteadyClock::now();
    timings[phase] = std::round(std::chrono::duration<double>(now - mark).count() * 1000) / 1000;
    mark = now;
  };
  // Every raw descriptor of the database, its WAL and -shm is kept open while
  // the file is linked (sys::KeptFd): closing one would drop all of
  // this process's POSIX locks on that file, the snapshot's and those of any
  // other connection here (a migration's, after its safety backup). Without
  // them another process takes the -shm for unused and truncates it under us.
  const sys::KeptFd db_file = sys::KeptFd::Open(db_path);
  const int dbfd = db_file.get();
  if (dbfd < 0) FailErrno("cannot open", db_path, errno);
  const sys::KeptFd shm_file = wal ? sys::KeptFd::Open(db_path + "-shm") : sys::KeptFd();
  const int shmfd = shm_file.get();
  Overlay ov;
  if (wal) ov = ReadWal(db_path + "-wal", page_size, o.dir, shmfd);
  lap("wal");
  const uint32_t pages = ov.db_pages ? ov.db_pages : snapshot_pages;
  const uint64_t total = uint64_t{pages} * page_size;
  const std::string ext = level ? ".db.zst" : ".db";
  const std::string stem = StemOf(db_path) + "-" + o.label;
  const std::string label = "backup " + display;

  TempOutput tmp(o.dir, stem + ext);
  std::optional<FollowHasher> hasher;
  if (!level) hasher.emplace(tmp.fd(), tmp.path());
  {
    std::unique_ptr<unsigned char[]> page(new unsigned char[page_size]);
    bool in_kernel = true;  // copy_file_range until the kernel or filesystem refuses
    size_t next = 0;        // into ov.pages
    for (uint64_t off = 0; off < total;) {
      CheckStop();
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, total - off));
      size_t got = CopyRange(dbfd, tmp.fd(), off, n, in_kernel, db_path, tmp.path());
      const uint32_t first = static_cast<uint32_t>(off / page_size) + 1;
      const uint32_t last = static_cast<uint32_t>((off + n) / page_size);
      // Pages past the end of the main file must come from the WAL.
      uint32_t need = got == n ? last + 1 : first + static_cast<uint32_t>(got / page_size);
      bool page1_done = false;
      while (next < ov.pages.size() && ov.pages[next].first <= last) {
        auto [pg, idx] = ov.pages[next++];
        PreadFull(ov.scratch.get(), reinterpret_cast<char*>(page.get()), page_size, uint64_t{idx} * page_size,
                  "WAL scratch file", kArea);
        if (pg == 1) {
          PatchHeader(page.get(), pages);
          page1_done = true;
        }
        PwriteFull(tmp.fd(), reinterpret_cast<const char*>(page.get()), page_size, uint64_t{pg - 1} * page_size,
                   tmp.path(), kArea);
        if (pg == need) ++need;
      }
      if (need <= last) {
        Fail("failed", fmt::format("{}: page {} is in neither the database file nor its WAL; is another program "
                                   "truncating it?",
                                   db_path, need));
      }
      if (off == 0 && !page1_done) {
        PreadFull(tmp.fd(), reinterpret_cast<char*>(page.get()), page_size, 0, tmp.path(), kArea);
        PatchHeader(page.get(), pages);
        PwriteFull(tmp.fd(), reinterpret_cast<const char*>(page.get()), page_size, 0, tmp.path(), kArea);
      }
      // Start writeback now, so the final fsync finds little left to do.
      if (!level) StartWriteback(tmp.fd(), off, n);
      off += n;
      if (hasher) hasher->Advance(off);
      if (o.progress) o.progress(label, static_cast<double>(off), static_cast<double>(total), "bytes");
    }
  }
  if (hasher) hasher->Finish(total);
  lap("copy");
  // The copy is complete: let checkpoints move on as early as possible.
  src->Exec("COMMIT");
  src.reset();
  ov.scratch.Reset();

  // fsync, hashing and quick_check of the copy overlap.
  std::optional<Worker> syncer;
  if (!level) {
    int fd = tmp.fd();
    std::string p = tmp.path();
    syncer.emplace([fd, p] { FsyncFd(fd, p, kArea); });
  }
  CheckInfo info = CheckFile(tmp.path(), /*deep=*/false, /*describe=*/true, total);
  lap("quick_check");
  if (!info.ok) {
    Fail("corrupt", "quick_check failed on the copy of " + db_path + ": " + Summarize(info.problems) +
                        " (the source itself may be damaged: run integrity on it)");
  }

  std::string sha;
  uint64_t size = total;
  std::unique_ptr<TempOutput> ztmp;
  if (level) {
    ztmp = std::make_unique<TempOutput>(o.dir, stem + ext);
    sys::Sha256 zsha;
    size = ZstdCompress(
        tmp.fd(), total, ztmp->fd(), level, [&](const char* p, size_t n) { zsha.Update(std::string_view(p, n)); },
        [&](uint64_t done) {
          if (o.progress) o.progress("compress " + display, static_cast<double>(done), static_cast<double>(total), "bytes");
        },
        tmp.path());
    sha = zsha.FinishHex();
    FsyncFd(ztmp->fd(), ztmp->path(), kArea);
    lap("compress");
  } else {
    while (hasher->hashed() < total) {
      CheckStop();
      if (o.progress) o.progress("checksum " + display, static_cast<double>(hasher->hashed()), static_cast<double>(total), "bytes");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    sha = hasher->Join();
    lap("checksum_wait");
    syncer->Join();
    lap("fsync_wait");
  }

  CreateResult r;
  {
    DirLock lock(o.dir);
    r.path = ChooseName(o, stem, ext, created);
    json m = BaseManifest("sqlite", r.path, source, o, created);
    m["size"] = size;
    m["db_size"] = total;
    m["page_size"] = page_size;
    m["pages"] = pages;
    m["sha256"] = sha;
    m["compression"] = level ? "zstd" : "none";
    if (level) m["compression_level"] = level;
    m["schema_fingerprint"] = info.fingerprint;
    m["fingerprint_method"] = "hoist.db";
    m["migration_version"] = info.migration_version;
    m["journal_mode"] = journal_mode;
    m["snapshot"] = {{"wal_frames", ov.frames}, {"checkpointed_frames_skipped", ov.skipped},
                     {"wal_bytes", ov.wal_bytes}, {"note", ov.note}};
    m["verified"] = true;
    m["quick_check"] = "ok";
    m["seconds"] = sys::Since(t0);
    m["timings"] = timings;
    PublishBackup(r, sha + "  " + BaseName(r.path) + "\n", std::move(m), sha, size,
                  [&] { (ztmp ? *ztmp : tmp).Publish(r.path); }, o, source);
  }
  r.seconds = sys::Since(t0);
  return r;
}

// --- verify

VerifyResult VerifySqliteFile(const std::string& file, const std::optional<json>& manifest, const VerifyOptions& o) {
  return VerifyImpl(file, manifest, o.deep, o.progress, nullptr);
}

// --- restore

RestoreResult RestoreSqlite(const std::string& file, const std::string& target, const RestoreOptions& o) {
  const auto t0 = SteadyClock::now();
  RestoreResult r;
  r.file = file;
  r.target = target;
  if (!sys::StatPath(file).exists) Fail("not_found", "no such backup: " + file);
  std::optional<json> manifest = ReadManifest(file);
  if (manifest && manifest->value("engine", "") == "postgres") {
    Fail("mismatch", BaseName(file) + " is a PostgreSQL backup; " + target + " is a SQLite database");
  }
  CheckTarget(target);
  std::unique_ptr<TempOutput> decompressed;
  r.verified = VerifyImpl(file, manifest, /*deep=*/false, o.progress, &decompressed);
  if (!r.verified.ok) {
    std::string msg;
    for (const auto& p : r.verified.problems) msg += (msg.empty() ? "" : "; ") + p;
    Fail("corrupt", "refusing to restore into " + target + ": " + msg);
  }

  // Every check before the first byte of the live database changes: the
  // data must be the backup its manifest describes (a file swapped for
  // another, with a recomputed checksum, passes the checksum).
  if (manifest) {
    CheckInfo info = CheckFile(decompressed ? decompressed->path() : file, /*deep=*/false, /*describe=*/true, 0);
    std::vector<std::string> wrong;
    const json& m = *manifest;
    if (m.contains("schema_fingerprint") && m["schema_fingerprint"].is_string() &&
        m["schema_fingerprint"].get<std::string>() != info.fingerprint) {
      wrong.push_back(fmt::format("its schema fingerprint is {}, the manifest records {}", info.fingerprint.substr(0, 16),
                                  m["schema_fingerprint"].get<std::string>().substr(0, 16)));
    }
    if (m.contains("pages") && m["pages"].is_number_unsigned() && m["pages"].get<uint64_t>() != info.pages) {
      wrong.push_back(fmt::format("it has {} pages, the manifest records {}", info.pages, m["pages"].get<uint64_t>()));
    }
    if (m.contains("migration_version") && m["migration_version"] != info.migration_version) {
      wrong.push_back(fmt::format("its migration version is {}, the manifest records {}", info.migration_version.dump(),
                                  m["migration_version"].dump()));
    }
    if (!wrong.empty()) {
      std::string why;
      for (const auto& w : wrong) why += (why.empty() ? "" : "; ") + w;
      Fail("mismatch", fmt::format("refusing to restore {} into {}: it is not the backup its manifest describes ({}); "
                                   "nothing was written",
                                   BaseName(file), target, why));
    }
  }

  Db dest(target, SQLITE_OPEN_READWRITE, target);
  sqlite3_busy_timeout(dest.get(), 200);
  uint64_t target_pages = 0;
  try {
    dest.Scalar("SELECT count(*) FROM sqlite_master");
    target_pages = std::stoull(dest.Scalar("PRAGMA page_count"));
  } catch (const Error& e) {
    if (e.code() == "not_a_database") Fail("not_a_database", "restore target " + target + " is not a SQLite database");
    throw;
  }
  const std::string src_path = decompressed ? decompressed->path() : file;
  Db src(ImmutableUri(src_path), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, file);
  if (dest.Scalar("PRAGMA journal_mode") == "wal" && dest.Scalar("PRAGMA page_size") != src.Scalar("PRAGMA page_size")) {
    Fail("mismatch", fmt::format("{} uses {}-byte pages and {} (a WAL database) {}; a WAL database cannot change its "
                                 "page size",
                                 BaseName(file), src.Scalar("PRAGMA page_size"), target, dest.Scalar("PRAGMA page_size")));
  }

  if (o.safety_backup && target_pages > 0) {
    CreateOptions so;
    so.dir = o.safety_dir.empty() ? DirName(file) : o.safety_dir;
    so.label = "pre-restore";
    so.safety = true;
    so.reason = "safety backup before restoring " + BaseName(file);
    so.run_id = o.run_id;
    so.progress = o.progress;
    r.safety_backup = CreateSqlite(target, so).path;
  }
  CheckStop();
  r.pages = BackupInto(src, dest, target, o.progress);
  // Fold the restored pages back into the main file when nobody reads the
  // old ones any more; readers never see a stale WAL either way.
  // TRUNCATE also gives the disk space of a database-sized WAL back.
  if (sqlite3_wal_checkpoint_v2(dest.get(), "main", SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr) != SQLITE_OK) {
    sqlite3_wal_checkpoint_v2(dest.get(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  r.seconds = sys::Since(t0);
  return r;
}

// --- drill

DrillResult DrillSqlite(const std::string& file, const json& manifest, const DrillOptions& o) {
  const auto t0 = SteadyClock::now();
  DrillResult r;
  r.file = file;
  r.at = IsoTime(std::chrono::system_clock::now());
  std::optional<json> real_manifest = ReadManifest(file);

  std::unique_ptr<TempOutput> decompressed;
  VerifyResult v = VerifyImpl(file, real_manifest, /*deep=*/false, o.progress, &decompressed);
  if (!v.ok) {
    r.problems = v.problems;
    r.integrity = v.integrity;
  } else {
    // The sandbox: a fresh database in a private temp dir, filled through
    // the same sqlite3_backup path a real restore takes.
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/hoist-drill-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) FailErrno("cannot create a sandbox in", tmpl, errno);
    std::string sandbox = buf.data();
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        try {
          sys::Remove(dir, true);
        } catch (...) {
        }
      }
    } cleanup{sandbox};
    std::string sandbox_db = sandbox + "/drill.db";
    {
      Db src(ImmutableUri(decompressed ? decompressed->path() : file), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, file);
      Db dest(sandbox_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, sandbox_db);
      BackupInto(src, dest, "drill sandbox", o.progress);
    }
    decompressed.reset();
    CheckInfo info = CheckFile(sandbox_db, /*deep=*/true, /*describe=*/true, 0);
    r.integrity = info.ok ? "ok" : Summarize(info.problems);
    if (!info.ok) r.problems.push_back("integrity_check failed: " + r.integrity);
    r.fingerprint = info.fingerprint;
    std::string want = manifest.value("schema_fingerprint", "");
    r.fingerprint_ok = info.ok && (want.empty() || want == info.fingerprint);
    if (info.ok && !want.empty() && want != info.fingerprint) {
      r.problems.push_back("schema fingerprint " + info.fingerprint + " differs from the manifest's " + want);
    }
    if (!o.smoke_sql.empty()) {
      Db db(sandbox_db, SQLITE_OPEN_READWRITE, sandbox_db);
      for (const auto& sql : o.smoke_sql) {
        json item{{"sql", sql}};
        try {
          auto rows = db.Rows(sql);
          item["ok"] = true;
          item["rows"] = rows.size();
          item["value"] = rows.empty() || rows[0].empty() ? json(nullptr) : json(rows[0][0]);
        } catch (const SqlFailure& e) {
          const std::string& msg = e.cause();
          item["ok"] = false;
          item["error"] = msg;
          r.problems.push_back("smoke SQL failed: " + sql + ": " + msg);
        }
        r.smoke.push_back(item);
      }
    }
  }
  r.ok = r.problems.empty();
  r.seconds = sys::Since(t0);
  return r;
}

std::string SqliteFingerprint(const std::string& path) {
  if (!sys::StatPath(path).exists) Fail("not_found", "no such database: " + path);
  return Fingerprint(path);
}

}  // namespace hoist::db::backup
