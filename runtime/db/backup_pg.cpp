// PostgreSQL backups through pg_dump/pg_restore/psql, run from argv arrays
// with the password in PGPASSWORD (never argv, never logged). The sha256
// is computed while pg_dump writes: tar and directory dumps are hashed as
// their files grow; custom and plain dumps stream through a FIFO.
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "db/backup.h"
#include "db/backup_internal.h"
#include "db/connection.h"
#include "db/url.h"
#include "sys/clock.h"
#include "sys/fs.h"
#include "sys/process.h"
#include "sys/sha256.h"

namespace hoist::db::backup {

VerifyResult VerifyPgFile(const std::string& file, const json& manifest, const VerifyOptions& o);
DrillResult DrillPg(const std::string& file, const json& manifest, const DrillOptions& o);

namespace {

using namespace detail;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kPipeBuf = 1 << 20;
constexpr const char* kPlainTrailer = "-- PostgreSQL database dump complete";

/// The libpq connection split in two: argv-safe keywords (no password) and
/// the password for PGPASSWORD. The password is registered as a secret.
struct PgTarget {
  std::string conninfo_nopw;
  std::string password;
  std::string dbname;
  std::string redacted;
};

PgTarget SplitConninfo(const std::string& conninfo, const std::string& redacted) {
  PgTarget t;
  t.redacted = redacted;
  for (const auto& [k, v] : ParseConninfo(conninfo)) {
    if (k == "password") {
      t.password = v;
      RegisterSecret(v);
      continue;
    }
    if (k == "dbname") t.dbname = v;
    t.conninfo_nopw += k + "=" + ConninfoQuote(v) + " ";
  }
  if (!t.conninfo_nopw.empty()) t.conninfo_nopw.pop_back();
  return t;
}


std::string Tool(const std::string& pg_bin, const char* name) { return pg_bin.empty() ? name : pg_bin + "/" + name; }

/// Runs a PostgreSQL client tool. The password travels in the environment;
/// Error{"backup","unavailable"} when the tool is not installed.
sys::ProcessResult RunTool(std::vector<std::string> argv, const PgTarget& t) {
  sys::ProcessSpec spec;
  spec.argv = std::move(argv);
  if (!t.password.empty()) spec.env["PGPASSWORD"] = t.password;
  spec.env["PGCONNECT_TIMEOUT"] = "10";
  spec.kill_grace = std::chrono::milliseconds(2000);
  try {
    return sys::RunProcess(spec);
  } catch (const Error& e) {
    if (e.code() == "not_found") {
      Fail("unavailable", BaseName(spec.argv[0]) + " not found (install the Debian package postgresql-client): " +
                              e.message());
    }
    throw;
  }
}

/// stderr lines that mean failure even when the exit status is 0.
std::vector<std::string> ErrorLines(const std::string& err) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < err.size()) {
    size_t nl = err.find('\n', pos);
    std::string line = err.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? err.size() : nl + 1;
    if (line.find("error:") != std::string::npos || line.find("ERROR:") != std::string::npos ||
        line.find("FATAL:") != std::string::npos) {
      out.push_back(Mask(line));
    }
  }
  return out;
}

std::vector<std::string> WarningLines(const std::string& err) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < err.size()) {
    size_t nl = err.find('\n', pos);
    std::string line = err.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? err.size() : nl + 1;
    if (line.find("warning:") != std::string::npos) out.push_back(Mask(line));
  }
  return out;
}

std::string Tail(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > 600) s = "..." + s.substr(s.size() - 600);
  return Mask(s);
}

/// Throws unless the tool succeeded: exit status 0 AND no error line.
void CheckTool(const sys::ProcessResult& r, const std::string& what) {
  if (r.interrupted) Fail("interrupted", what + ": interrupted (Ctrl-C)");
  if (r.timed_out) Fail("timeout", what + ": step timeout reached");
  auto errors = ErrorLines(r.err);
  if (r.ok() && errors.empty()) return;
  std::string why = !r.ok() ? (r.signal ? fmt::format("was killed by signal {}", r.signal)
                                        : fmt::format("exited with {}", r.exit_code))
                            : "reported errors although it exited with 0";
  Fail("failed", what + " " + why + (r.err.empty() ? "" : ": " + Tail(r.err)));
}

int MajorOfToolVersion(const std::string& out) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(\(PostgreSQL\) (\d+)(\.(\d+))?)"))) return std::stoi(m[1]);
  return 0;
}

struct ServerInfo {
  int major = 0;
  std::string version;
  std::string fingerprint;
  json migration_version = nullptr;
};

ServerInfo ReadServer(const std::string& conninfo, bool want_fingerprint) {
  ServerInfo s;
  auto conn = Open(conninfo);
  auto scalar = [&](const std::string& sql) {
    Result r = conn->Query(sql);
    if (r.rows.empty() || r.rows[0].empty()) return std::string();
    const Value& v = r.rows[0][0];
    if (const auto* str = std::get_if<std::string>(&v)) return *str;
    if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
    return std::string();
  };
  std::string num = scalar("SHOW server_version_num");
  s.major = num.empty() ? 0 : std::stoi(num) / 10000;
  s.version = scalar("SHOW server_version");
  if (want_fingerprint) {
    s.fingerprint = conn->Fingerprint();
    if (scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'hoist_schema_migrations' AND "
               "column_name = 'version'") == "1") {
      std::string v = scalar("SELECT max(version)::text FROM hoist_schema_migrations");
      if (!v.empty()) s.migration_version = v;
    }
  }
  conn->Close();
  return s;
}

/// A FIFO in a private temp dir: pg_dump writes into it, we read, hash and
/// write the real file. One extra write end held by us makes EOF mean "the
/// dumper exited", not "the dumper has not opened it yet".
class Fifo {
 public:
  explicit Fifo(const std::string& dir) {
    path_ = dir + "/.hoist-dump-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + ".fifo";
    ::unlink(path_.c_str());
    if (::mkfifo(path_.c_str(), 0600) != 0) FailErrno("cannot create", path_, errno);
    int r = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (r < 0) FailErrno("cannot open", path_, errno);
    read_ = Fd(r);
    int w = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (w < 0) FailErrno("cannot open", path_, errno);
    write_ = Fd(w);
    ::fcntl(r, F_SETPIPE_SZ, static_cast<int>(kPipeBuf));
  }
  ~Fifo() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  int read_fd() const { return read_.get(); }
  void CloseWriter() { write_.Reset(); }

 private:
  static inline int counter_ = 0;
  std::string path_;
  Fd read_, write_;
};

std::string Extension(const std::string& format, int level) {
  if (format == "custom") return ".dump";
  if (format == "plain") return level ? ".sql.gz" : ".sql";
  if (format == "tar") return ".tar";
  return ".dir";
}

void ChmodTree(const std::string& dir) {
  ::chmod(dir.c_str(), 0700);
  for (const auto& name : sys::ListDir(dir)) {
    std::string p = dir + "/" + name;
    sys::Stat st = sys::StatPath(p);
    if (st.type == "dir") {
      ChmodTree(p);
    } else if (st.type == "file") {
      ::chmod(p.c_str(), 0600);
      int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        Fd guard(fd);
        FsyncFd(fd, p, kArea);
      }
    }
  }
  sys::FsyncDir(dir);
}

/// pg_restore --list (or, for plain dumps, the completion trailer): is the
/// archive readable to its end? "" when fine, else the problem.
std::string ListCheck(const std::string& file, const std::string& format, const std::string& pg_bin) {
  if (format == "plain") {
    Fd fd = OpenRead(file, kArea);
    uint64_t size = FileSize(fd.get(), file, kArea);
    char buf[256] = {};
    uint64_t off = size > sizeof buf ? size - sizeof buf : 0;
    size_t n = PreadFull(fd.get(), buf, sizeof buf, off, file, kArea);
    std::string tail(buf, n);
    return tail.find(kPlainTrailer) != std::string::npos ? "" : "the dump does not end with \"" + std::string(kPlainTrailer) +
                                                                      "\" (incomplete)";
  }
  sys::ProcessResult r = RunTool({Tool(pg_bin, "pg_restore"), "--list", file}, PgTarget{});
  if (r.interrupted || r.timed_out) CheckStop();
  if (r.ok() && ErrorLines(r.err).empty()) return "";
  return "pg_restore --list failed: " + Tail(r.err.empty() ? r.out : r.err);
}

/// The archive's own framing, read without spawning anything: custom and
/// directory (toc.dat) start with "PGDMP", a tar starts with a ustar header,
/// a plain dump ends with its completion trailer. "" when fine.
std::string FramingCheck(const std::string& path, const std::string& format, const std::string& pg_bin) {
  if (format == "plain") return ListCheck(path, format, pg_bin);
  std::string file = format == "directory" ? path + "/toc.dat" : path;
  if (!sys::StatPath(file).exists) return BaseName(file) + " is missing";
  Fd fd = OpenRead(file, kArea);
  char head[512] = {};
  size_t n = PreadFull(fd.get(), head, sizeof head, 0, file, kArea);
  if (format == "tar") {
    return n == sizeof head && std::memcmp(head + 257, "ustar", 5) == 0 ? "" : "not a tar archive";
  }
  return n >= 5 && std::memcmp(head, "PGDMP", 5) == 0 ? "" : "not a pg_dump archive (no PGDMP header)";
}

/// A scratch database on the server of `conninfo`, dropped at scope exit.
class ScratchDb {
 public:
  ScratchDb(const std::string& conninfo, const std::string& prefix) : conninfo_(conninfo) {
    name_ = fmt::format("hoist_{}_{}_{}", prefix, ::getpid(),
                        std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
    auto c = Open(conninfo_);
    c->Exec("CREATE DATABASE " + name_);
    c->Close();
  }
  ~ScratchDb() {
    try {
      auto c = Open(conninfo_);
      c->Exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
      c->Close();
    } catch (...) {
    }
  }
  const std::string& name() const { return name_; }
  std::string conninfo() const { return WithDbname(conninfo_, name_); }

 private:
  std::string conninfo_;
  std::string name_;
};

/// Restores file into the database of `t` (pg_restore, or psql for plain).
void RunRestore(const std::string& file, const std::string& format, const PgTarget& t, const std::string& pg_bin,
                bool clean) {
  std::vector<std::string> argv;
  if (format == "plain") {
    argv = {Tool(pg_bin, "psql"), "--dbname=" + t.conninfo_nopw, "--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "--single-transaction", "-f", file};
  } else {
    argv = {Tool(pg_bin, "pg_restore"), "--dbname=" + t.conninfo_nopw, "--no-password", "--exit-on-error",
            "--single-transaction"};
    if (clean) {
      argv.push_back("--clean");
      argv.push_back("--if-exists");
    }
    argv.push_back(file);
  }
  CheckTool(RunTool(argv, t), BaseName(argv[0]) + " into " + t.redacted);
}

bool ValidFormat(const std::string& f) { return f == "custom" || f == "plain" || f == "directory" || f == "tar"; }

}  // namespace

// --- create

CreateResult CreatePostgres(const std::string& conninfo, const std::string& redacted, const CreateOptions& o) {
  const auto t0 = SteadyClock::now();
  const auto created = std::chrono::system_clock::now();
  CheckCreateOptions(o);
  if (!ValidFormat(o.format)) {
    Fail("invalid", "format must be \"custom\", \"plain\", \"directory\" or \"tar\", got \"" + o.format + "\"");
  }
  if (o.data_only && o.schema_only) Fail("invalid", "data_only and schema_only exclude each other");
  // -1 = "compress with the default": gzip level 1, CPU-cheap for a 2-3x gain on text.
  const int level = o.compress < 0 ? 1 : o.compress;
  if (level > 9) Fail("invalid", "compress must be a gzip level from 0 to 9 for PostgreSQL");
  if (level && o.format == "tar") Fail("invalid", "pg_dump cannot compress the tar format (use custom or directory)");
  if (level && o.format == "plain") Fail("invalid", "plain dumps are restored by psql, which reads no gzip: use custom");
  CheckStop();
  EnsureDir(o.dir);
  PgTarget t = SplitConninfo(conninfo, redacted);
  ServerInfo server;
  json timings;
  auto mark = SteadyClock::now();
  auto lap = [&](const char* phase) {
    auto now = SteadyClock::now();
    timings[phase] = std::round(std::chrono::duration<double>(now - mark).count() * 1000) / 1000;
    mark = now;
  };

  std::vector<std::string> argv = {Tool(o.pg_bin, "pg_dump"), "--dbname=" + t.conninfo_nopw, "--no-password",
                                   "--format=" + o.format, "--no-sync"};
  if (o.format != "tar") argv.push_back("--compress=" + std::to_string(level));
  if (o.format == "plain" && !o.data_only) {
    // A plain dump replays through psql: make it replace what is there.
    argv.push_back("--clean");
    argv.push_back("--if-exists");
  }
  if (o.data_only) argv.push_back("--data-only");
  if (o.schema_only) argv.push_back("--schema-only");
  for (const auto& table : o.tables) argv.push_back("--table=" + table);

  const std::string ext = Extension(o.format, level);
  const std::string stem = (t.dbname.empty() ? std::string("postgres") : t.dbname) + "-" + o.label;
  const std::string display = "pg_dump " + (t.dbname.empty() ? redacted : t.dbname);
  std::string sha;
  uint64_t size = 0;
  sys::ProcessResult dump;
  std::unique_ptr<TempOutput> out_file;
  std::unique_ptr<TempDirOutput> out_dir;
  std::map<std::string, std::string> digests;  // directory dumps: file -> sha256

  // While pg_dump runs: the server's version, schema fingerprint and
  // migration version on a connection of their own, and pg_dump's version.
  // A pg_dump older than the server refuses by itself; the check after it
  // turns that into a message that says what to install.
  sys::ProcessResult ver;
  Worker version_worker([&] { ver = RunTool({Tool(o.pg_bin, "pg_dump"), "--version"}, t); });
  Worker fingerprint([&] { server = ReadServer(conninfo, /*want_fingerprint=*/true); });
  auto check_versions = [&] {
    version_worker.Join();
    fingerprint.Join();
    int dump_major = MajorOfToolVersion(ver.out);
    if (dump_major == 0) Fail("failed", "cannot tell pg_dump's version from \"" + Tail(ver.out) + "\"");
    if (dump_major < server.major) {
      Fail("version_mismatch", fmt::format("pg_dump {} is older than the server ({} {}): install "
                                           "postgresql-client-{} or point pg_bin at a newer pg_dump",
                                           dump_major, redacted, server.version, server.major));
    }
    return dump_major;
  };

  // pg_dump runs on a worker (with this thread's step deadline; it is
  // stopped on Ctrl-C like any process); this thread hashes what it writes
  // and reports progress. Custom and plain dumps come through a FIFO: a
  // custom archive written to a file is rewritten at its start when pg_dump
  // ends, and pg_dump writes both in 4 KiB pieces, which cost it more into
  // a file than into a pipe that hoist drains in 1 MiB writes (measured:
  // plain 1.01-1.10x pg_dump through the FIFO, 1.13-1.28x written directly).
  // Directory and tar dumps are hashed in place as they grow: pg_dump
  // stages tar members in temp files and copies them in large blocks.
  std::unique_ptr<Fifo> fifo;
  std::optional<GrowingHasher> grower;
  if (o.format == "directory") {
    out_dir = std::make_unique<TempDirOutput>(o.dir, stem + ext);
    argv.push_back("--file=" + out_dir->path());
    grower.emplace(out_dir->path(), /*is_dir=*/true);
  } else {
    out_file = std::make_unique<TempOutput>(o.dir, stem + ext);
    if (o.format == "custom" || o.format == "plain") {
      fifo = std::make_unique<Fifo>(o.dir);
      argv.push_back("--file=" + fifo->path());
    } else {
      argv.push_back("--file=" + out_file->path());
      grower.emplace(out_file->path(), /*is_dir=*/false);
    }
  }
  const auto deadline = CurrentDeadline();
  std::atomic<bool> dumped{false};
  Worker runner([&] {
    std::optional<DeadlineScope> scope;
    if (deadline != Clock::time_point::max()) scope.emplace(deadline - Clock::now());
    struct Done {
      Fifo* f;
      std::atomic<bool>& done;
      ~Done() {
        if (f) f->CloseWriter();
        done = true;
      }
    } on_exit{fifo.get(), dumped};
    dump = RunTool(argv, t);
  });

  std::exception_ptr hash_error;  // kept until pg_dump is done, then rethrown
  if (fifo) {
    sys::Sha256 hash;
    std::unique_ptr<char[]> buf(new char[kPipeBuf]);
    for (;;) {
      if (!hash_error && !StopReason().empty()) {
        try {
          CheckStop();
        } catch (...) {
          hash_error = std::current_exception();  // pg_dump sees the same stop and exits
        }
      }
      pollfd p{fifo->read_fd(), POLLIN, 0};
      int pr = ::poll(&p, 1, 200);
      if (pr == 0) continue;
      if (pr < 0 && errno == EINTR) continue;
      ssize_t n = ::read(fifo->read_fd(), buf.get(), kPipeBuf);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        FailErrno("cannot read", fifo->path(), errno);
      }
      if (n == 0) break;
      if (hash_error) continue;  // keep draining so pg_dump can finish
      try {
        hash.Update(std::string_view(buf.get(), static_cast<size_t>(n)));
        WriteFull(out_file->fd(), buf.get(), static_cast<size_t>(n), out_file->path(), kArea);
        StartWriteback(out_file->fd(), size, static_cast<uint64_t>(n));
        size += static_cast<uint64_t>(n);
        if (o.progress) o.progress(display, static_cast<double>(size), 0, "bytes");
      } catch (...) {
        hash_error = std::current_exception();
      }
    }
    sha = hash.FinishHex();
  } else {
    while (!dumped) {
      if (hash_error) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      try {
        CheckStop();
        // Idle only when pg_dump has not written anything new.
        if (!grower->Pass()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (o.progress) o.progress(display, static_cast<double>(grower->bytes()), 0, "bytes");
      } catch (...) {
        hash_error = std::current_exception();  // pg_dump sees a stop too; otherwise it finishes
      }
    }
  }
  runner.Join();
  lap("dump");
  if (hash_error) std::rethrow_exception(hash_error);
  const int dump_major = check_versions();
  CheckTool(dump, "pg_dump of " + redacted);
  if (grower) {
    digests = grower->Finish();
    size = grower->bytes();
    if (out_dir) {
      ChmodTree(out_dir->path());
    } else {
      sha = digests.at("");
    }
  }
  lap("checksum_tail");
  if (out_file) FsyncFd(out_file->fd(), out_file->path(), kArea);
  lap("fsync");
  // pg_dump exited 0 without an error line; the archive must also be framed
  // as its format says (backup.verify runs pg_restore --list besides).
  if (std::string problem = FramingCheck(out_dir ? out_dir->path() : out_file->path(), o.format, o.pg_bin);
      !problem.empty()) {
    Fail("corrupt", "the new dump of " + redacted + " is not usable: " + problem);
  }

  CreateResult r;
  std::string sidecar_text;
  {
    // Name and publish under the same lock the SQLite side uses.
    std::string lock_path = o.dir + "/.hoist-backup.lock";
    int lfd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0) FailErrno("cannot lock", o.dir, errno);
    Fd lock(lfd);
    ::flock(lfd, LOCK_EX);
    r.path = ChooseName(o, stem, ext, created);
    if (out_dir) {
      // The sidecar lists the directory's files under its final name.
      sidecar_text = TreeSidecar(BaseName(r.path), digests);
      sha = sys::Sha256Hex(sidecar_text);
    } else {
      sidecar_text = sha + "  " + BaseName(r.path) + "\n";
    }
    json m = BaseManifest("postgres", r.path, redacted, o, created);
    m["format"] = o.format;
    m["database"] = t.dbname;
    m["size"] = size;
    m["sha256"] = sha;
    m["compression"] = level ? "gzip" : "none";
    m["compression_level"] = level;
    m["data_only"] = o.data_only;
    m["schema_only"] = o.schema_only;
    m["tables"] = o.tables;
    m["pg_dump_version"] = dump_major;
    m["server_version"] = server.version;
    m["schema_fingerprint"] = server.fingerprint;
    m["fingerprint_method"] = "hoist.db";
    m["migration_version"] = server.migration_version;
    m["warnings"] = WarningLines(dump.err);
    m["verified"] = true;
    m["check"] = "pg_dump exit status and stderr";
    lap("publish");
    m["seconds"] = sys::Since(t0);
    m["timings"] = timings;
    PublishBackup(r, sidecar_text, std::move(m), sha, size, [&] {
      if (out_dir) {
        out_dir->Publish(r.path);
      } else {
        out_file->Publish(r.path);
      }
    }, o, redacted);
  }
  r.seconds = sys::Since(t0);
  return r;
}

// --- verify

VerifyResult VerifyPgFile(const std::string& file, const json& manifest, const VerifyOptions& o) {
  const auto t0 = SteadyClock::now();
  VerifyResult r;
  r.file = file;
  r.engine = "postgres";
  const std::string name = BaseName(file);
  const std::string format = manifest.value("format", "custom");
  r.method = o.deep ? "restore" : format == "plain" ? "complete" : "pg_restore --list";
  auto expected = ReadSidecarDigest(file);
  std::string from_manifest = manifest.value("sha256", "");
  if (!expected && from_manifest.empty()) {
    Fail("invalid", name + " has neither a checksum (" + name + ".sha256) nor a manifest with one: cannot verify it");
  }
  r.expected_sha256 = expected ? *expected : from_manifest;
  const std::string expected_from = expected ? name + ".sha256" : name + ".json";
  if (expected && !from_manifest.empty() && *expected != from_manifest) {
    r.problems.push_back(name + ": " + name + ".sha256 and " + name + ".json record different checksums");
  }

  if (format == "directory") {
    TreeDigest tree = HashTree(file);
    std::string recorded;
    try {
      recorded = sys::ReadFile(SidecarPath(file));
    } catch (const Error&) {
    }
    r.sha256 = tree.digest;
    r.checksum_ok = r.sha256 == r.expected_sha256;
    if (!r.checksum_ok) {
      // Name the files that differ.
      std::map<std::string, std::string> want, have;
      auto parse = [](const std::string& text, std::map<std::string, std::string>& into) {
        size_t pos = 0;
        while (pos < text.size()) {
          size_t nl = text.find('\n', pos);
          std::string line = text.substr(pos, nl - pos);
          pos = nl == std::string::npos ? text.size() : nl + 1;
          if (line.size() > 66) into[line.substr(66)] = line.substr(0, 64);
        }
      };
      parse(recorded, want);
      parse(tree.sidecar_text, have);
      for (const auto& [f, h] : want) {
        auto it = have.find(f);
        if (it == have.end()) {
          r.problems.push_back(name + ": " + f + " is missing");
        } else if (it->second != h) {
          r.problems.push_back(name + ": " + f + ": sha256 mismatch");
        }
      }
      for (const auto& [f, h] : have) {
        if (!want.count(f)) r.problems.push_back(name + ": " + f + " is not in " + name + ".sha256");
      }
      if (want.empty()) {
        r.problems.push_back(fmt::format("{}: sha256 mismatch: the directory hashes to {}, {} records {}", name, r.sha256,
                                         expected_from, r.expected_sha256));
      }
    }
  } else {
    Fd fd = OpenRead(file, kArea);
    uint64_t size = FileSize(fd.get(), file, kArea);
    if (manifest.contains("size") && manifest["size"].is_number_unsigned() && manifest["size"].get<uint64_t>() != size) {
      uint64_t want = manifest["size"].get<uint64_t>();
      r.problems.push_back(size < want ? fmt::format("{}: truncated: {} bytes, the manifest records {}", name, size, want)
                                       : fmt::format("{}: {} bytes, the manifest records {}", name, size, want));
      r.integrity = "not checked";
      r.seconds = sys::Since(t0);
      return r;
    }
    // Hash on a thread while pg_restore reads the archive.
    FollowHasher hasher(fd.get(), file);
    hasher.Finish(size);
    if (!o.deep) {
      std::string problem = ListCheck(file, format, o.pg_bin);
      r.integrity = problem.empty() ? "ok" : problem;
    }
    while (hasher.hashed() < size) {
      CheckStop();
      if (o.progress) o.progress("verify " + name, static_cast<double>(hasher.hashed()), static_cast<double>(size), "bytes");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    r.sha256 = hasher.Join();
    r.checksum_ok = r.sha256 == r.expected_sha256;
    if (!r.checksum_ok) {
      r.problems.push_back(fmt::format("{}: sha256 mismatch: the file hashes to {}, {} records {}", name, r.sha256,
                                       expected_from, r.expected_sha256));
    }
  }
  if (o.deep && r.problems.empty()) {
    if (o.conninfo.empty()) Fail("invalid", "a deep verify of a PostgreSQL backup restores it: it needs a server (conn)");
    try {
      ScratchDb scratch(o.conninfo, "verify");
      PgTarget t = SplitConninfo(scratch.conninfo(), "scratch database " + scratch.name());
      RunRestore(file, format, t, o.pg_bin, /*clean=*/false);
      r.integrity = "ok";
    } catch (const Error& e) {
      if (e.code() == "interrupted" || e.code() == "timeout" || e.code() == "unavailable") throw;
      r.integrity = e.message();
    }
  }
  if (r.integrity.empty()) r.integrity = "ok";
  if (r.integrity != "ok" && r.integrity != "not checked") {
    r.problems.push_back(fmt::format("{}: {} failed: {}", name, r.method, r.integrity));
  }
  r.ok = r.problems.empty();
  r.seconds = sys::Since(t0);
  return r;
}

// --- restore

RestoreResult RestorePostgres(const std::string& file, const std::string& conninfo, const std::string& redacted,
                              const RestoreOptions& o) {
  const auto t0 = SteadyClock::now();
  RestoreResult r;
  r.file = file;
  r.target = redacted;
  if (!sys::StatPath(file).exists) Fail("not_found", "no such backup: " + file);
  std::optional<json> manifest = ReadManifest(file);
  if (manifest && manifest->value("engine", "") == "sqlite") {
    Fail("mismatch", BaseName(file) + " is a SQLite backup; " + redacted + " is a PostgreSQL database");
  }
  VerifyOptions vo;
  vo.pg_bin = o.pg_bin;
  vo.progress = o.progress;
  json m = manifest ? *manifest : json{{"engine", "postgres"}, {"format", "custom"}};
  r.verified = VerifyPgFile(file, m, vo);
  if (!r.verified.ok) {
    std::string msg;
    for (const auto& p : r.verified.problems) msg += (msg.empty() ? "" : "; ") + p;
    Fail("corrupt", "refusing to restore into " + redacted + ": " + msg);
  }
  if (o.safety_backup) {
    CreateOptions so;
    so.dir = o.safety_dir.empty() ? DirName(file) : o.safety_dir;
    so.label = "pre-restore";
    so.safety = true;
    so.reason = "safety backup before restoring " + BaseName(file);
    so.run_id = o.run_id;
    so.pg_bin = o.pg_bin;
    so.progress = o.progress;
    r.safety_backup = CreatePostgres(conninfo, redacted, so).path;
  }
  CheckStop();
  PgTarget t = SplitConninfo(conninfo, redacted);
  RunRestore(file, m.value("format", "custom"), t, o.pg_bin, /*clean=*/!m.value("data_only", false));
  r.seconds = sys::Since(t0);
  return r;
}

// --- drill

DrillResult DrillPg(const std::string& file, const json& manifest, const DrillOptions& o) {
  const auto t0 = SteadyClock::now();
  DrillResult r;
  r.file = file;
  r.at = IsoTime(std::chrono::system_clock::now());
  if (o.conninfo.empty()) Fail("invalid", "a drill of a PostgreSQL backup restores it: it needs a server (conn)");
  VerifyOptions vo;
  vo.pg_bin = o.pg_bin;
  vo.progress = o.progress;
  VerifyResult v = VerifyPgFile(file, manifest, vo);
  if (!v.ok) {
    r.problems = v.problems;
    r.integrity = v.integrity;
  } else {
    ScratchDb scratch(o.conninfo, "drill");
    PgTarget t = SplitConninfo(scratch.conninfo(), "scratch database " + scratch.name());
    try {
      RunRestore(file, manifest.value("format", "custom"), t, o.pg_bin, /*clean=*/false);
    } catch (const Error& e) {
      if (e.code() == "interrupted" || e.code() == "timeout") throw;
      r.problems.push_back("restore into a scratch database failed: " + e.message());
    }
    if (r.problems.empty()) {
      auto conn = Open(scratch.conninfo());
      IntegrityReport rep = conn->Integrity(/*quick=*/false);
      r.integrity = rep.ok ? "ok" : rep.Summary();
      if (!rep.ok) r.problems.push_back("integrity: " + rep.Summary());
      r.fingerprint = conn->Fingerprint();
      std::string want = manifest.value("schema_fingerprint", "");
      bool partial = manifest.value("data_only", false) || (manifest.contains("tables") && !manifest["tables"].empty());
      r.fingerprint_ok = partial || want.empty() || want == r.fingerprint;
      if (!r.fingerprint_ok) r.problems.push_back("schema fingerprint " + r.fingerprint + " differs from the manifest's " + want);
      for (const auto& sql : o.smoke_sql) {
        json item{{"sql", sql}};
        try {
          Result res = conn->Query(sql);
          item["ok"] = true;
          item["rows"] = res.rows.size();
          item["value"] = res.rows.empty() || res.rows[0].empty() ? json(nullptr) : ValueToJson(res.rows[0][0]);
        } catch (const Error& e) {
          if (e.code() == "interrupted" || e.code() == "timeout") throw;
          item["ok"] = false;
          item["error"] = e.message();
          r.problems.push_back("smoke SQL failed: " + sql + ": " + e.message());
        }
        r.smoke.push_back(item);
      }
      conn->Close();
    }
  }
  r.ok = r.problems.empty();
  r.seconds = sys::Since(t0);
  return r;
}

}  // namespace hoist::db::backup
