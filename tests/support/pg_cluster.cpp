#include "support/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "support/colour_server.h"
#include "support/support.h"
#include "sys/process.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
// Bump when the template's initdb arguments change.
constexpr const char* kTemplateVersion = "v2";

bool IsRoot() { return ::geteuid() == 0; }

// A memory file system when there is room: copying the template and
// running the server there is several times faster on a busy disk.
std::string TmpRoot() {
  struct statvfs st {};
  if (::statvfs("/dev/shm", &st) == 0 && ::access("/dev/shm", W_OK) == 0 &&
      static_cast<double>(st.f_bavail) * static_cast<double>(st.f_frsize) > 1024.0 * 1024 * 1024) {
    return "/dev/shm";
  }
  return "/tmp";
}

// initdb and postgres refuse to run as root: run them as the postgres user.
std::vector<std::string> AsPostgres(std::vector<std::string> argv) {
  if (!IsRoot()) return argv;
  std::vector<std::string> out = {"runuser", "-u", "postgres", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

bool ChownToPostgres(const std::string& path) {
  if (!IsRoot()) return true;
  struct passwd* pw = ::getpwnam("postgres");
  if (!pw) return false;
  return ::chown(path.c_str(), pw->pw_uid, pw->pw_gid) == 0;
}

sys::ProcessResult Run(std::vector<std::string> argv, int timeout_ms = 60000) {
  sys::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.timeout = std::chrono::milliseconds(timeout_ms);
  spec.env["LC_ALL"] = "C.UTF-8";
  return sys::RunProcess(spec);
}

// Builds (once per machine, under a file lock) a data directory made by
// initdb, with the superuser's password set. Returns "" or why it failed.
std::string EnsureTemplate(const std::string& bin, std::string* data_dir) {
  std::string base =
      TmpRoot() + "/hoist-pg-template-15-" + std::string(kTemplateVersion) + "-" + std::to_string(::geteuid());
  *data_dir = base + "/data";
  int lock = ::open((base + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return "cannot create " + base + ".lock";
  ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  if (fs::exists(base + "/ready")) return "";
  std::error_code ec;
  fs::remove_all(base, ec);
  std::string build = base + ".build";
  fs::remove_all(build, ec);
  fs::create_directories(build, ec);
  if (ec || !ChownToPostgres(build)) return "cannot create " + build;
  ::chmod(build.c_str(), 0700);
  std::string pwfile = build + "/pw";
  std::ofstream(pwfile) << PgCluster::kPassword << "\n";
  ChownToPostgres(pwfile);
  auto r = Run(AsPostgres({bin + "/initdb", "-D", build + "/data", "-U", PgCluster::kUser, "--pwfile=" + pwfile,
                           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                           "--no-sync", "--no-instructions", "--wal-segsize=1"}));
  fs::remove(pwfile, ec);
  if (!r.ok()) return "initdb failed (exit " + std::to_string(r.exit_code) + "): " + r.err + r.out;
  fs::rename(build, base, ec);
  if (ec) return "cannot rename " + build + ": " + ec.message();
  std::ofstream(base + "/ready") << "ok\n";
  return "";
}

}  // namespace

PgCluster& PgCluster::Get() {
  static std::unique_ptr<PgCluster> instance;
  static std::string failure;
  if (!instance && failure.empty()) {
    instance.reset(new PgCluster());
    failure = instance->Start();
    if (!failure.empty()) instance.reset();
  }
  SkipUnless(failure.empty(), "PostgreSQL test cluster: " + failure);
  return *instance;
}

std::string PgCluster::Start() {
  bin_ = kBinDir;
  if (!fs::exists(bin_ + "/pg_ctl")) {
    return "PostgreSQL 15 is not installed (" + bin_ + "/pg_ctl missing: apt-get install postgresql-15)";
  }
  if (IsRoot() && !::getpwnam("postgres")) return "no postgres OS user to run the server as";
  std::string template_data;
  if (std::string why = EnsureTemplate(bin_, &template_data); !why.empty()) return why;

  std::string tmpl = TmpRoot() + "/hoist-pg-XXXXXX";
  if (!::mkdtemp(tmpl.data())) return "mkdtemp failed in " + TmpRoot();
  dir_ = tmpl;
  if (!ChownToPostgres(dir_)) return "cannot chown " + dir_ + " to postgres";
  auto cp = Run({"cp", "-a", template_data, dir_ + "/data"});
  if (!cp.ok()) return "cannot copy the template cluster: " + cp.err;

  std::string last_error;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreePort();
    if (port_ == 0) return "no free loopback port";
    std::string opts = "-p " + std::to_string(port_) + " -k " + dir_ +
                       " -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
                       " -c full_page_writes=off -c shared_buffers=16MB -c max_connections=40"
                       " -c max_wal_size=32MB -c min_wal_size=4MB -c unix_socket_permissions=0777";
    auto r = Run(AsPostgres({bin_ + "/pg_ctl", "-D", dir_ + "/data", "-l", dir_ + "/server.log", "-w", "-t", "30",
                             "-o", opts, "start"}));
    if (r.ok()) {
      last_error.clear();
      break;
    }
    last_error = "pg_ctl start failed: " + r.out + r.err + ReadAll(dir_ + "/server.log");
    if (last_error.find("could not bind") == std::string::npos) break;
  }
  if (!last_error.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    return last_error;
  }

  // The watchdog stops the server and removes the dir when this process
  // ends, however it ends (the write end closes with it).
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return "pipe failed";
  std::string stop = "'" + bin_ + "/pg_ctl' -D '" + dir_ + "/data' -m immediate stop; rm -rf '" + dir_ + "'";
  if (IsRoot()) stop = "runuser -u postgres -- '" + bin_ + "/pg_ctl' -D '" + dir_ + "/data' -m immediate stop; rm -rf '" + dir_ + "'";
  const char* argv[] = {"/bin/sh", "-c", stop.c_str(), nullptr};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[1]);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::setsid();  // Ctrl-C on the test must not kill the cleanup
    char c;
    while (::read(fds[0], &c, 1) > 0) {
    }
    ::execv("/bin/sh", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[0]);
  watchdog_fd_ = fds[1];
  watchdog_pid_ = pid;
  return "";
}

PgCluster::~PgCluster() {
  if (watchdog_fd_ >= 0) {
    ::close(watchdog_fd_);
    int status = 0;
    ::waitpid(watchdog_pid_, &status, 0);
  }
}

std::string PgCluster::Url(const std::string& db, const std::string& user) const {
  return UrlWithPassword(db, kPassword, user);
}

std::string PgCluster::UrlWithPassword(const std::string& db, const std::string& password,
                                       const std::string& user) const {
  return "postgres://" + user + ":" + password + "@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

std::string PgCluster::Conninfo(const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + db + " user=" + kUser +
         " password=" + kPassword;
}

std::string PgCluster::CreateDatabase(const std::string& prefix) {
  std::string name = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++next_db_);
  Psql("CREATE DATABASE " + name);
  return name;
}

std::string PgCluster::CreateOwnedDatabase(const std::string& prefix) {
  std::string name = CreateDatabase(prefix);
  Psql("CREATE ROLE " + name + " LOGIN CREATEDB PASSWORD '" + kPassword + "'");
  Psql("ALTER DATABASE " + name + " OWNER TO " + name);  // and so schema public (pg_database_owner)
  return name;
}

namespace {

sys::ProcessResult RunPsql(const std::string& bin, const std::string& dir, int port, const std::string& sql,
                           const std::string& db) {
  return Run({bin + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", std::to_string(port),
              "-U", PgCluster::kUser, "-d", db, "-c", sql});
}

std::string Chomp(std::string out) {
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::string PgCluster::Psql(const std::string& sql, const std::string& db) const {
  auto r = RunPsql(bin_, dir_, port_, sql, db);
  INFO("psql: " << sql);
  INFO(r.err);
  REQUIRE(r.ok());
  return Chomp(r.out);
}

std::optional<std::string> PgCluster::TryPsql(const std::string& sql, const std::string& db) const {
  auto r = RunPsql(bin_, dir_, port_, sql, db);
  if (!r.ok()) return std::nullopt;
  return Chomp(r.out);
}

}  // namespace hoist::test
