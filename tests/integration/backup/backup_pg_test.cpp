// db/backup against a real PostgreSQL 15 (tests/support/pg_cluster): every
// pg_dump format, verify, restore with a safety backup, drill, the version
// guard, stderr checked even on exit 0, and the password kept out of sight.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <regex>

#include "bind/context.h"
#include "core/secrets.h"
#include "db/backup.h"
#include "db/backup_internal.h"
#include "db/url.h"
#include "lua/boundary.h"
#include "lua/state.h"
#include "support/pg_cluster.h"
#include "support/support.h"
#include "sys/sha256.h"

namespace bk = hoist::db::backup;
namespace test = hoist::test;
using hoist::test::CatchError;
using hoist::test::PgCluster;
using hoist::test::TempDir;

namespace {

unsigned Mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

struct Fixture {
  PgCluster& pg = PgCluster::Get();
  std::string db = pg.CreateDatabase("bk");
  std::string conninfo = pg.Conninfo(db);
  std::string redacted = hoist::db::ParseUrl(pg.Url(db)).redacted;
  Fixture() {
    pg.Psql("CREATE TABLE a(id int PRIMARY KEY, v text);"
            "INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 2000) g;"
            "CREATE TABLE b(id int PRIMARY KEY, a int REFERENCES a(id), data bytea);"
            "INSERT INTO b SELECT g, g, decode(md5(g::text), 'hex') FROM generate_series(1, 2000) g;"
            "CREATE VIEW va AS SELECT count(*) AS n FROM a;",
            db);
  }
  bk::CreateOptions Opts(const std::string& dir, const std::string& format = "custom") const {
    bk::CreateOptions o;
    o.dir = dir;
    o.label = "it";
    o.format = format;
    return o;
  }
};

}  // namespace

TEST_SUITE("db/backup/pg") {

TEST_CASE("each pg_dump format: create, verify, restore round trip") {
  Fixture f;
  TempDir t("bkpg");
  for (std::string format : {"custom", "plain", "directory", "tar"}) {
    CAPTURE(format);
    bk::CreateResult r = bk::CreatePostgres(f.conninfo, f.redacted, f.Opts(t / "b", format));
    const auto& m = r.manifest;
    CHECK(m["engine"] == "postgres");
    CHECK(m["format"] == format);
    CHECK(m["source"] == f.redacted);
    CHECK(m["database"] == f.db);
    CHECK(m["pg_dump_version"] == 15);
    CHECK(m["verified"] == true);
    CHECK(m["compression"] == "none");
    CHECK(m["schema_fingerprint"].get<std::string>().size() == 64);
    CHECK(m.dump().find(PgCluster::kPassword) == std::string::npos);
    CHECK(Mode(t / "b") == 0700);
    CHECK(Mode(r.path) == (format == "directory" ? 0700u : 0600u));
    CHECK(Mode(r.path + ".json") == 0600);
    if (format == "directory") {
      for (const auto& e : std::filesystem::directory_iterator(r.path)) CHECK(Mode(e.path()) == 0600);
      // sha256sum -c compatible, one line per file.
      CHECK(test::ReadAll(r.path + ".sha256").find(bk::detail::BaseName(r.path) + "/toc.dat") != std::string::npos);
    } else {
      CHECK(r.sha256 == hoist::sys::Sha256FileHex(r.path));
      CHECK(r.size == std::filesystem::file_size(r.path));
    }
    bk::VerifyResult v = bk::Verify(r.path, {});
    CHECK(v.ok);
    CHECK(v.engine == "postgres");

    f.pg.Psql("DELETE FROM b; DELETE FROM a WHERE id > 10; INSERT INTO a VALUES (99999, 'new')", f.db);
    bk::RestoreOptions ro;
    ro.safety_backup = false;
    bk::RestoreResult rr = bk::RestorePostgres(r.path, f.conninfo, f.redacted, ro);
    CHECK(rr.verified.ok);
    CHECK(f.pg.Psql("SELECT count(*) FROM a", f.db) == "2000");
    CHECK(f.pg.Psql("SELECT count(*) FROM b", f.db) == "2000");
    CHECK(f.pg.Psql("SELECT n FROM va", f.db) == "2000");
  }
  CHECK(bk::List(t / "b").size() == 4);
}

TEST_CASE("data only, schema only, selected tables, compression") {
  Fixture f;
  TempDir t("bkpg");
  auto o = f.Opts(t / "b");
  o.schema_only = true;
  auto schema = bk::CreatePostgres(f.conninfo, f.redacted, o);
  o = f.Opts(t / "b");
  o.tables = {"a"};
  o.compress = -1;  // the default level: gzip 1
  auto only_a = bk::CreatePostgres(f.conninfo, f.redacted, o);
  CHECK(only_a.manifest["compression"] == "gzip");
  CHECK(only_a.manifest["compression_level"] == 1);
  CHECK(only_a.manifest["tables"] == nlohmann::json::array({"a"}));

  std::string scratch = f.pg.CreateDatabase("bks");
  bk::RestoreOptions ro;
  ro.safety_backup = false;
  std::string scratch_ci = f.pg.Conninfo(scratch);
  bk::RestorePostgres(schema.path, scratch_ci, "scratch", ro);
  CHECK(f.pg.Psql("SELECT count(*) FROM a", scratch) == "0");
  CHECK(f.pg.Psql("SELECT count(*) FROM information_schema.views WHERE table_name = 'va'", scratch) == "1");

  std::string scratch2 = f.pg.CreateDatabase("bks");
  bk::RestorePostgres(only_a.path, f.pg.Conninfo(scratch2), "scratch2", ro);
  CHECK(f.pg.Psql("SELECT count(*) FROM a", scratch2) == "2000");
  CHECK(f.pg.Psql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'b'", scratch2) == "0");

  o = f.Opts(t / "b", "tar");
  o.compress = 5;
  auto e = CatchError([&] { bk::CreatePostgres(f.conninfo, f.redacted, o); });
  CHECK(e.message() == "pg_dump cannot compress the tar format (use custom or directory)");
  o = f.Opts(t / "b");
  o.data_only = o.schema_only = true;
  e = CatchError([&] { bk::CreatePostgres(f.conninfo, f.redacted, o); });
  CHECK(e.message() == "data_only and schema_only exclude each other");
}

TEST_CASE("restore verifies first, refuses damaged dumps, takes a protected safety backup") {
  Fixture f;
  TempDir t("bkpg");
  auto r = bk::CreatePostgres(f.conninfo, f.redacted, f.Opts(t / "b"));
  const std::string name = bk::detail::BaseName(r.path);
  f.pg.Psql("UPDATE a SET v = 'current' WHERE id = 1", f.db);
  bk::RestoreOptions ro;

  SUBCASE("truncated") {
    std::filesystem::resize_file(r.path, r.size / 2);
    auto v = bk::Verify(r.path, {});
    CHECK_FALSE(v.ok);
    CHECK(v.problems == std::vector<std::string>{name + ": truncated: " + std::to_string(r.size / 2) +
                                                 " bytes, the manifest records " + std::to_string(r.size)});
    auto e = CatchError([&] { bk::RestorePostgres(r.path, f.conninfo, f.redacted, ro); });
    CHECK(e.code() == "corrupt");
    CHECK(e.message() == "refusing to restore into " + f.redacted + ": " + v.problems[0]);
    CHECK(f.pg.Psql("SELECT v FROM a WHERE id = 1", f.db) == "current");
  }
  SUBCASE("bit flipped") {
    std::string bytes = test::ReadAll(r.path);
    bytes[bytes.size() / 2] ^= 0x10;
    test::WriteFile(r.path, bytes);
    auto v = bk::Verify(r.path, {});
    CHECK_FALSE(v.ok);
    REQUIRE_FALSE(v.problems.empty());
    CHECK(v.problems[0] == name + ": sha256 mismatch: the file hashes to " + hoist::sys::Sha256FileHex(r.path) + ", " +
                               name + ".sha256 records " + r.sha256);
    auto e = CatchError([&] { bk::RestorePostgres(r.path, f.conninfo, f.redacted, ro); });
    CHECK(e.code() == "corrupt");
  }
  SUBCASE("a good one") {
    auto rr = bk::RestorePostgres(r.path, f.conninfo, f.redacted, ro);
    REQUIRE_FALSE(rr.safety_backup.empty());
    auto m = bk::ReadManifest(rr.safety_backup).value();
    CHECK(m["protected"] == true);
    CHECK(m["label"] == "pre-restore");
    CHECK(f.pg.Psql("SELECT v FROM a WHERE id = 1", f.db) == f.pg.Psql("SELECT md5('1')", f.db));
    // The safety backup holds what was there before.
    std::string scratch = f.pg.CreateDatabase("bks");
    ro.safety_backup = false;
    bk::RestorePostgres(rr.safety_backup, f.pg.Conninfo(scratch), "scratch", ro);
    CHECK(f.pg.Psql("SELECT v FROM a WHERE id = 1", scratch) == "current");
  }
  SUBCASE("a SQLite backup") {
    auto m = bk::ReadManifest(r.path).value();
    m["engine"] = "sqlite";
    bk::detail::WriteManifest(r.path, m);
    auto e = CatchError([&] { bk::RestorePostgres(r.path, f.conninfo, f.redacted, ro); });
    CHECK(e.code() == "mismatch");
    CHECK(e.message() == name + " is a SQLite backup; " + f.redacted + " is a PostgreSQL database");
  }
}

TEST_CASE("deep verify and drill restore into a scratch database") {
  Fixture f;
  TempDir t("bkpg");
  auto r = bk::CreatePostgres(f.conninfo, f.redacted, f.Opts(t / "b"));
  bk::VerifyOptions vo;
  vo.deep = true;
  vo.conninfo = f.conninfo;
  auto v = bk::Verify(r.path, vo);
  CHECK(v.ok);
  CHECK(v.method == "restore");
  bk::DrillOptions d;
  d.conninfo = f.conninfo;
  d.smoke_sql = {"SELECT count(*) FROM b", "SELECT * FROM nope"};
  auto dr = bk::Drill(r.path, d);
  CHECK_FALSE(dr.ok);
  CHECK(dr.integrity.empty() == false);
  CHECK(dr.fingerprint_ok);
  CHECK(dr.smoke[0]["value"] == 2000);
  CHECK(dr.smoke[1]["ok"] == false);
  auto m = bk::ReadManifest(r.path).value();
  CHECK(m["drills"].size() == 1);
  CHECK(m["last_drill"]["ok"] == false);
  // No scratch database is left behind.
  CHECK(f.pg.Psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'hoist_%'") == "0");
}

TEST_CASE("pg_dump older than the server, or reporting errors with exit 0, is refused") {
  Fixture f;
  TempDir t("bkpg");
  std::filesystem::create_directories(t / "bin");
  auto script = [&](const std::string& body) {
    test::WriteFile(t / "bin/pg_dump", "#!/bin/sh\n" + body);
    std::filesystem::permissions(t / "bin/pg_dump", std::filesystem::perms::owner_all);
  };
  auto o = f.Opts(t / "b");
  o.pg_bin = t / "bin";

  script("echo 'pg_dump (PostgreSQL) 13.9'\n");
  auto e = CatchError([&] { bk::CreatePostgres(f.conninfo, f.redacted, o); });
  CHECK(e.code() == "version_mismatch");
  std::string want = "pg_dump 13 is older than the server (" + f.redacted + " 15.";
  CHECK(e.message().substr(0, want.size()) == want);
  CHECK(e.message().ends_with("): install postgresql-client-15 or point pg_bin at a newer pg_dump"));

  script("case \"$1\" in --version) echo 'pg_dump (PostgreSQL) 15.1';; *) echo 'pg_dump: error: query failed: "
         "permission denied for table a' >&2;; esac\nexit 0\n");
  e = CatchError([&] { bk::CreatePostgres(f.conninfo, f.redacted, o); });
  CHECK(e.code() == "failed");
  CHECK(e.message() == "pg_dump of " + f.redacted +
                           " reported errors although it exited with 0: pg_dump: error: query failed: permission "
                           "denied for table a");
  // The password is in the environment, never in argv.
  script("case \"$1\" in --version) echo 'pg_dump (PostgreSQL) 15.1';; *) echo \"$@|$PGPASSWORD\" > " + (t / "argv") +
         ";; esac\nexit 0\n");
  CatchError([&] { bk::CreatePostgres(f.conninfo, f.redacted, o); });  // an empty dump does not read back
  std::string seen = test::ReadAll(t / "argv");
  CHECK(seen.find(std::string("|") + PgCluster::kPassword) != std::string::npos);
  CHECK(seen.substr(0, seen.find('|')).find(PgCluster::kPassword) == std::string::npos);
  // Nothing was published.
  CHECK(bk::List(t / "b").empty());
}

TEST_CASE("a wrong password names the server, never the password") {
  Fixture f;
  TempDir t("bkpg");
  std::string bad = hoist::db::ParseUrl(f.pg.UrlWithPassword(f.db, "Wrong-Secret-123")).conninfo;
  auto e = CatchError([&] { bk::CreatePostgres(bad, f.redacted, f.Opts(t / "b")); });
  CHECK(std::string(e.what()).find("Wrong-Secret-123") == std::string::npos);
  CHECK(std::string(e.what()).find(f.db) != std::string::npos);
}

TEST_CASE("hoist.backup from Lua on a PostgreSQL connection") {
  Fixture f;
  TempDir t("bkpg");
  hoist::lua::State vm;
  hoist::bind::Context ctx;
  ctx.assume_yes = true;
  hoist::bind::SetContext(vm.get(), &ctx);
  std::string src = R"lua(
    local URL, DIR = ...
    local db = require "hoist.db"
    local backup = require "hoist.backup"
    local c <close> = db.open(URL)
    local b = backup.create(c, { dir = DIR, label = "predeploy", format = "custom" })
    assert(b.manifest.engine == "postgres" and b.manifest.schema_fingerprint == c:fingerprint())
    assert(backup.verify(b.path).ok)
    assert(backup.verify(b.path, { deep = true, conn = c }).ok)
    c:exec("DELETE FROM b")
    local r = backup.restore(b.path, c)
    assert(r.safety_backup ~= db.null)
    assert(c:scalar("SELECT count(*) FROM b") == 2000)
    local d = backup.drill(b.path, { conn = c, smoke_sql = "SELECT count(*) FROM a" })
    assert(d.ok, d.problems[1])
    assert(#backup.list(DIR) == 2)
  )lua";
  std::string err;
  try {
    vm.LoadChunk(src, "=test");
    lua_pushstring(vm.get(), f.pg.Url(f.db).c_str());
    lua_pushstring(vm.get(), (t / "b").c_str());
    hoist::lua::Call(vm.get(), 2, 0);
  } catch (const hoist::lua::ScriptError& e) {
    err = e.Display();
  }
  CHECK(err == "");
}

}  // TEST_SUITE
