// A copy of examples/sqlite-bluegreen in a temp dir with a real nginx
// (tests/support/nginx_server) in front, free loopback ports for nginx and
// both colours, and the real hoist binary and example app. The database is
// the example's SQLite file, or a fresh database of the private PostgreSQL
// cluster (tests/support/pg_cluster). The blue/green playbook tests and
// bench_rollback drive it; what traffic, the upstream include, the
// processes and the database show is read independently of hoist (plain
// sockets, the sqlite3 C API or psql, pid files).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>

#include "support/nginx_server.h"
#include "support/support.h"
#include "sys/process.h"

namespace hoist::test {

class PgCluster;

class BlueGreenRig {
 public:
  enum class Database { kSqlite, kPostgres };

  /// Copies the example, starts nginx routing to blue (nothing runs yet);
  /// skips the test (fails it under CI=true) without nginx. kPostgres: the
  /// environment's database is a new, empty database of the test cluster
  /// (skipped the same way without PostgreSQL) that hoist and the colours
  /// reach as its owner, a role of the same name (CREATEDB, not a
  /// superuser); the releases' 0001 migration is its PostgreSQL form.
  explicit BlueGreenRig(Database database = Database::kSqlite);
  /// Stops both colours (by pid file, SIGKILL to their groups) and nginx.
  ~BlueGreenRig();

  /// Runs `hoist args...` in the project with the rig's environment plus env.
  sys::ProcessResult Hoist(std::vector<std::string> args, std::map<std::string, std::string> env = {}) const;
  /// Hoist() that must exit 0 (fails the test with its output otherwise).
  void HoistOk(std::vector<std::string> args, std::map<std::string, std::string> env = {}) const;

  /// "release 2 (blue)" from 6 fresh requests through nginx, or what they showed when they disagree.
  std::string Traffic() const;
  /// "release 1 (green)" from the colour's own port, or "down".
  std::string Direct(const std::string& colour) const;
  /// Whether the colour's pid file names a live process.
  bool Running(const std::string& colour) const;
  int Port(const std::string& colour) const { return colour == "blue" ? blue_port_ : green_port_; }

  /// First column of the first row of sql on the app database ("" if none/NULL;
  /// SQLite: "ERROR: ..." on error; PostgreSQL: an error fails the test).
  std::string Db(const std::string& sql) const;
  /// The same on the state store (.hoist/state.db).
  std::string State(const std::string& sql) const;
  /// PostgreSQL: the database's name, also its owner role's.
  const std::string& pg_database() const { return pg_database_; }

  /// Adds releases/<release>/migrations: release 1's 0001, then `more` (file name -> content).
  void AddRelease(const std::string& release, const std::map<std::string, std::string>& more) const;
  /// AddRelease(release) with 0002 adding notes.tags (with a down) and 0003
  /// dropping notes.author though declared expand: the expand policy refuses it.
  void AddRefusedRelease(const std::string& release) const;
  /// Deploys AddRefusedRelease(release) after release 1 and checks the refusal
  /// names 0003 as destructive and says nothing was applied.
  void DeployRefusedRelease(const std::string& release) const;

  std::string UpstreamConf() const { return ReadAll(nginx_->upstream_conf()); }
  const NginxServer& nginx() const { return *nginx_; }
  const std::string& root() const { return root_; }
  std::string path(const std::string& rel) const { return root_ + "/" + rel; }
  const std::map<std::string, std::string>& env() const { return env_; }

 private:
  // Not TempDir: bench_rollback builds with DOCTEST_CONFIG_DISABLE, which
  // compiles away the REQUIRE that TempDir's mkdtemp runs in.
  std::string root_;
  std::unique_ptr<NginxServer> nginx_;
  PgCluster* pg_ = nullptr;  // kPostgres only
  std::string pg_database_;
  int blue_port_ = 0, green_port_ = 0;
  std::map<std::string, std::string> env_;
};


}  // namespace hoist::test
