// db.open(url, {host = "web1"}) through the real binary on a real test host
// (support/ssh_lab: its own namespace and sshd): a playbook writes a SQLite
// file there and migrates it with hoist.migrate, and the test reads the
// file at the host's path (the namespaces share the filesystem) with the
// sqlite3 C API, not with hoist. A missing file without create is one
// message naming the host and the path, and nothing is created.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "support/ssh_lab.h"
#include "support/support.h"
#include "sys/fs.h"

namespace hoist::test {
namespace {

/// Rows of a query on the file, read with sqlite3 itself: each column as text
/// ("NULL" for NULL, "x'..'" hex for a blob).
std::vector<std::string> Rows(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  INFO(sqlite3_errmsg(db));
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::vector<std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string row;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      if (i) row += "|";
      switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL:
          row += "NULL";
          break;
        case SQLITE_BLOB: {
          auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(st, i));
          row += "x'";
          for (int b = 0; b < sqlite3_column_bytes(st, i); ++b) row += fmt::format("{:02x}", p[b]);
          row += "'";
          break;
        }
        default:
          row += reinterpret_cast<const char*>(sqlite3_column_text(st, i));
      }
    }
    out.push_back(row);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

struct RemoteDbProject {
  TempDir dir{"remotedb"};
  RemoteDbProject(const SshLab& lab, const std::string& body) {
    WriteFile(dir / "hoist.lua", "return { environments = { prod = { hosts = {\n  web1 = { ssh = \"" + lab.Target("web1") +
                                     "\", ssh_config = \"" + lab.ssh_config() + "\" },\n} } } }\n");
    WriteFile(dir / "p.lua", R"lua(local hoist = require "hoist"
local db = require "hoist.db"
local migrate = require "hoist.migrate"
return hoist.playbook { name = "p", version = "1.0.0", run = function(run)
)lua" + body + "\nend }\n");
  }
  sys::ProcessResult Run(const SshLab& lab) {
    return RunHoist(dir.path, {"run", "p.lua", "--env", "prod"}, {{"XDG_RUNTIME_DIR", lab.dir()}});
  }
};

TEST_SUITE("net/agent db") {
  TEST_CASE("db.open with host= writes and migrates a SQLite file on that host, as sqlite3 reads it there") {
    SshLab lab({"web1"});
    const auto& h = lab.host("web1");
    const std::string path = h.dir + "/srv/app.db";
    sys::MkdirP(h.dir + "/srv", 0755);
    RemoteDbProject p(lab, R"lua(
  run:step("data", function()
    local conn <close> = db.open("sqlite://)lua" + path + R"lua(", { host = "web1", create = true, journal_mode = "wal" })
    conn:exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, raw BLOB)")
    conn:tx(function(c)
      c:exec("INSERT INTO notes (body, raw) VALUES (?, ?)", "first", db.blob("a\0b"))
      c:exec("INSERT INTO notes (body, raw) VALUES (?, ?)", "second", db.null)
    end)
    local r = migrate.up(conn, "migrations")
    run:print("up", #r.applied, r.to)
    local d = migrate.down(conn, { steps = 1 })
    run:print("down", d.to, migrate.status(conn, "migrations").current)
    r = migrate.up(conn, "migrations")
    local row = conn:one("SELECT body, raw FROM notes WHERE id = 1")
    run:print("read", conn:kind(), conn:url(), row.body, #row.raw, conn:scalar("SELECT count(*) FROM notes"))
    -- Who holds a lease tells where the connection lives: the agent there,
    -- or this hoist (db.open inside run:on without host= stays here).
    local function owner(c)
      return c:lock("who", function() return c:scalar("SELECT owner FROM hoist_locks WHERE name = 'who'") end)
    end
    local here <close> = db.open("sqlite://)lua" + path + R"lua(")
    local in_scope = run:on("web1", function()
      local c <close> = db.open("sqlite://)lua" + path + R"lua(")
      return owner(c)
    end)
    run:print("owners", owner(conn) ~= owner(here), in_scope == owner(here))
  end)
)lua");
    WriteFile(p.dir / "migrations/0001_tags.sql", "-- hoist:up\nCREATE TABLE tags (name TEXT PRIMARY KEY);\n"
                                                  "-- hoist:down\nDROP TABLE tags;\n");
    WriteFile(p.dir / "migrations/0002_notes_tag.sql",
              "-- hoist:up\nALTER TABLE notes ADD COLUMN tag TEXT;\n-- hoist:down\nALTER TABLE notes DROP COLUMN tag;\n");
    auto r = p.Run(lab);
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("up 2 2\n") != std::string::npos);
    CHECK(r.out.find("down 1 1\n") != std::string::npos);
    CHECK(r.out.find("read sqlite sqlite://" + path + " first 3 2\n") != std::string::npos);
    CHECK(r.out.find("owners true true\n") != std::string::npos);

    // The file on web1's disk, read by sqlite3 itself.
    CHECK(Rows(path, "SELECT id, body, raw FROM notes ORDER BY id") ==
          std::vector<std::string>{"1|first|x'610062'", "2|second|NULL"});
    CHECK(Rows(path, "SELECT version FROM hoist_schema_migrations ORDER BY version") ==
          std::vector<std::string>{"1", "2"});
    CHECK(Rows(path, "SELECT name FROM pragma_table_info('notes') ORDER BY cid") ==
          std::vector<std::string>{"id", "body", "raw", "tag"});
    CHECK(Rows(path, "PRAGMA journal_mode") == std::vector<std::string>{"wal"});
    CHECK(Rows(path, "SELECT count(*) FROM hoist_locks") == std::vector<std::string>{"0"});  // the lease was released
    // migrate.down dropped a column: its safety backup was taken on web1,
    // beside the file (the project's relative backups dir is not there).
    auto backups = sys::Glob(h.dir + "/srv/.hoist/backups/*.db*");
    CHECK_FALSE(backups.empty());
    CHECK((r.out + r.err).find("safety backup before rolling back 1 migration") != std::string::npos);
    CHECK((r.out + r.err).find(": host web1: " + h.dir + "/srv/.hoist/backups/") != std::string::npos);
    CHECK_FALSE(sys::StatPath(p.dir / ".hoist/backups").exists);

    // The journal names the host with each database call.
    auto show = RunHoist(p.dir.path, {"--json", "show", "1"}, {{"XDG_RUNTIME_DIR", lab.dir()}});
    INFO(show.out);
    CHECK((show.out.find("\"host\":\"web1\"") != std::string::npos ||
           show.out.find("\"host\": \"web1\"") != std::string::npos));
  }

  TEST_CASE("hoist.backup of a file on another host: the backup is taken and restored there by its agent") {
    SshLab lab({"web1"});
    const auto& h = lab.host("web1");
    const std::string path = h.dir + "/srv/app.db";
    sys::MkdirP(h.dir + "/srv", 0755);
    RemoteDbProject p(lab, R"lua(
  local backup = require "hoist.backup"
  run:step("backup and restore", function()
    local conn <close> = db.open("sqlite://)lua" + path + R"lua(", { host = "web1", create = true, journal_mode = "wal" })
    conn:exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn:exec("INSERT INTO t (v) VALUES ('kept'), ('too')")
    local b = backup.create(conn, { dir = "backups", label = "nightly" })
    run:print("backup", b.host, b.path, b.manifest.source)
    conn:exec("DELETE FROM t")
    conn:exec("INSERT INTO t (v) VALUES ('lost')")
    local r = backup.restore(b.path, conn, { confirm = true })
    run:print("restored", r.host, r.safety_backup, conn:scalar("SELECT group_concat(v, ',') FROM t"))
    local ok, e = pcall(backup.restore, "backups/x.db", conn, { confirm = true })
    run:print("relative", ok, tostring(e))
  end)
)lua");
    auto r = p.Run(lab);
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    // Relative dirs are beside the file on the host; nothing here.
    const std::string dir = h.dir + "/srv/backups/";
    auto made = sys::Glob(dir + "app-nightly-*.db");
    REQUIRE(made.size() == 1);
    CHECK(r.out.find("backup web1 " + made[0] + " " + path + "\n") != std::string::npos);
    CHECK(Rows(made[0], "SELECT group_concat(v, ',') FROM t") == std::vector<std::string>{"kept,too"});
    CHECK_FALSE(sys::StatPath(p.dir / "backups").exists);
    // The restore put the backup's rows back, after a safety backup of the
    // file as it was (holding 'lost'), there.
    auto safety = sys::Glob(dir + "app-pre-restore-*.db");
    REQUIRE(safety.size() == 1);
    CHECK(r.out.find("restored web1 " + safety[0] + " kept,too\n") != std::string::npos);
    CHECK(Rows(safety[0], "SELECT v FROM t") == std::vector<std::string>{"lost"});
    CHECK(Rows(path, "SELECT group_concat(v, ',') FROM t") == std::vector<std::string>{"kept,too"});
    CHECK(r.out.find("relative false backup: restore into sqlite://" + path +
                     " on host web1: the backup file \"backups/x.db\" is read there: give its absolute path on web1") !=
          std::string::npos);
  }

  TEST_CASE("db.open with host= of a missing file without create is one message naming the host and path, nothing created") {
    SshLab lab({"web1"});
    const auto& h = lab.host("web1");
    const std::string path = h.dir + "/srv/missing.db";
    sys::MkdirP(h.dir + "/srv", 0755);
    RemoteDbProject p(lab, R"lua(
  run:step("open", function()
    db.open("sqlite://)lua" + path + R"lua(", { host = "web1" })
  end)
)lua");
    auto r = p.Run(lab);
    INFO(Describe(r));
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("db: host web1: no database file at " + path +
                     " (check the path, or open it with {create = true} to create a new database)") != std::string::npos);
    CHECK_FALSE(sys::StatPath(path).exists);
  }
}

}  // namespace
}  // namespace hoist::test
