// A private PostgreSQL cluster for integration tests: one per test process,
// started on first use from a cached initdb template (initdb costs ~1.3 s,
// a copy ~0.1 s) under /dev/shm when it has room (else /tmp), listening on
// a free loopback port and a socket in its temp dir, stopped (pg_ctl stop -m immediate) and removed at exit — also
// when the test process dies, by a watchdog child.
#pragma once

#include <optional>
#include <string>

namespace hoist::test {

class PgCluster {
 public:
  /// The superuser; TCP connections authenticate with kPassword
  /// (scram-sha-256), the unix socket trusts (harness use only).
  static constexpr const char* kUser = "hoist";
  static constexpr const char* kPassword = "hoist-test-Pw-5e9c";

  /// The shared cluster, started on first use. When PostgreSQL cannot
  /// start, calls test::SkipUnless(false, reason): a skip locally, a
  /// failure under CI=true.
  static PgCluster& Get();

  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }

  /// postgres://<user>:<password>@127.0.0.1:<port>/<db> (password auth).
  std::string Url(const std::string& db, const std::string& user = kUser) const;
  /// The same with another password (for the wrong-password test).
  std::string UrlWithPassword(const std::string& db, const std::string& password,
                              const std::string& user = kUser) const;
  /// libpq key=value form of Url(db).
  std::string Conninfo(const std::string& db) const;

  /// Creates a new empty database with a unique name and returns the name.
  std::string CreateDatabase(const std::string& prefix = "t");
  /// The same, owned by a new role of the same name (LOGIN, kPassword, CREATEDB,
  /// not a superuser): what a production app connects as.
  std::string CreateOwnedDatabase(const std::string& prefix = "t");
  /// Runs SQL through psql as the superuser over the socket; returns
  /// stdout (unaligned, tuples only). Fails the test on an error.
  std::string Psql(const std::string& sql, const std::string& db = "postgres") const;
  /// The same, nullopt on an error (polling for a table that a process
  /// under test has not created yet).
  std::optional<std::string> TryPsql(const std::string& sql, const std::string& db = "postgres") const;

 private:
  PgCluster() = default;
  /// "" on success, else why it could not start.
  std::string Start();

  std::string bin_;
  std::string dir_;
  int port_ = 0;
  int watchdog_fd_ = -1;
  int watchdog_pid_ = -1;
  int next_db_ = 0;
};

}  // namespace hoist::test
