// db/backup for SQLite: create, verify, restore, list, prune, drill, and
// the Done-means tests of issue 3 (a continuous writer during a backup,
// a restore under another process's open connection, a crash mid-copy).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <regex>
#include <set>
#include <thread>

#include "backup_test_util.h"
#include "core/interrupt.h"
#include "db/backup.h"
#include "db/backup_internal.h"
#include "db/sqlite.h"
#include "sys/fs.h"
#include "sys/process.h"
#include "sys/sha256.h"

namespace bk = hoist::db::backup;
using namespace hoist::test;
using namespace hoist::test::backup;

namespace {

bk::CreateOptions Opts(const std::string& dir, const std::string& label = "test") {
  bk::CreateOptions o;
  o.dir = dir;
  o.label = label;
  return o;
}

std::string Page(const std::string& data, uint64_t page_size, uint64_t pgno) {
  return data.substr((pgno - 1) * page_size, page_size);
}

/// Every page equal; on page 1 only the bytes a writer of the header may
/// legitimately set differently (journal mode, change counter, size, schema
/// cookie bumped by sqlite3_backup, version-valid-for, library version).
void RequireSamePages(const std::string& a, const std::string& b, uint64_t page_size) {
  REQUIRE(a.size() == b.size());
  REQUIRE(a.size() % page_size == 0);
  for (uint64_t pg = 2; pg <= a.size() / page_size; ++pg) {
    if (Page(a, page_size, pg) != Page(b, page_size, pg)) FAIL("page " << pg << " differs");
  }
  std::string p1 = Page(a, page_size, 1), q1 = Page(b, page_size, 1);
  for (size_t i : {18, 19, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 42, 43, 92, 93, 94, 95, 96, 97, 98, 99}) p1[i] = q1[i] = 0;
  CHECK(p1 == q1);
}

/// What sqlite3_backup makes of path (the reference copy).
std::string ApiCopy(const std::string& path, const std::string& out) {
  Conn src(path, SQLITE_OPEN_READONLY);
  Conn dst(out);
  sqlite3_backup* b = sqlite3_backup_init(dst.db, "main", src.db, "main");
  REQUIRE(b != nullptr);
  REQUIRE(sqlite3_backup_step(b, -1) == SQLITE_DONE);
  REQUIRE(sqlite3_backup_finish(b) == SQLITE_OK);
  return out;
}

}  // namespace

TEST_SUITE("db/backup") {

TEST_CASE("create makes a verified copy with sidecar and manifest, 0600 files in a 0700 dir") {
  TempDir t("bk");
  MakeDb(t / "app.db", 300);
  bk::CreateOptions o = Opts(t / "backups", "predeploy");
  o.run_id = 42;
  std::vector<std::string> phases;
  o.progress = [&](const std::string& label, double done, double total, const std::string& unit) {
    CHECK(done <= total);
    CHECK(unit == "bytes");
    if (phases.empty() || phases.back() != label) phases.push_back(label);
  };
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", o);

  CHECK(std::regex_match(bk::detail::BaseName(r.path), std::regex(R"(app-predeploy-\d{8}T\d{6}Z\.db)")));
  CHECK(Mode(t / "backups") == 0700);
  CHECK(Mode(r.path) == 0600);
  CHECK(Mode(r.path + ".sha256") == 0600);
  CHECK(Mode(r.path + ".json") == 0600);
  CHECK(Names(t / "backups").size() == 4);  // data, sidecar, manifest, the dir lock
  CHECK(phases.front() == "backup app.db");

  CHECK(ReadAll(r.path + ".sha256") == r.sha256 + "  " + bk::detail::BaseName(r.path) + "\n");
  CHECK(r.sha256 == hoist::sys::Sha256FileHex(r.path));
  const auto& m = r.manifest;
  CHECK(m["format"] == "hoist-backup/1");
  CHECK(m["engine"] == "sqlite");
  CHECK(m["source"] == t / "app.db");
  CHECK(m["label"] == "predeploy");
  CHECK(m["size"] == std::filesystem::file_size(r.path));
  CHECK(m["pages"].get<uint64_t>() * m["page_size"].get<uint64_t>() == std::filesystem::file_size(r.path));
  CHECK(m["sha256"] == r.sha256);
  CHECK(m["schema_fingerprint"] == bk::SqliteFingerprint(t / "app.db"));
  CHECK(m["migration_version"].is_null());
  CHECK(m["run_id"] == 42);
  CHECK(m["hoist_version"] == HOIST_VERSION);
  CHECK(m["verified"] == true);
  CHECK(m["protected"] == false);
  CHECK(m["compression"] == "none");
  CHECK(bk::detail::ParseIsoTime(m["created_at"]).has_value());
  CHECK(bk::ReadManifest(r.path).value() == m);

  // The copy is a rollback-journal database with the same rows.
  Conn c(r.path, SQLITE_OPEN_READONLY);
  CHECK(c.Scalar("PRAGMA journal_mode") == "delete");
  CHECK(c.Scalar("SELECT count(*) FROM t") == "300");
  CHECK(c.Scalar("PRAGMA integrity_check") == "ok");
}

TEST_CASE("the copy holds exactly what sqlite3_backup copies, with frames still in the WAL") {
  TempDir t("bk");
  MakeDb(t / "app.db", 200);
  // A writer that never checkpoints: the latest pages exist only in the WAL.
  Conn w(t / "app.db");
  w.Exec("PRAGMA wal_autocheckpoint=0");
  w.Exec("UPDATE t SET a = 'changed ' || id WHERE id % 3 = 0; DELETE FROM t WHERE id > 150;"
         "INSERT INTO t(a, b) SELECT 'new', randomblob(3000) FROM t LIMIT 40");
  REQUIRE(std::filesystem::file_size(t / "app.db-wal") > 100000);
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  CHECK(r.manifest["snapshot"]["wal_frames"].get<uint64_t>() > 0);
  std::string ref = ApiCopy(t / "app.db", t / "ref.db");
  RequireSamePages(ReadAll(r.path), ReadAll(ref), r.manifest["page_size"]);
  Conn c(r.path, SQLITE_OPEN_READONLY);
  CHECK(c.Scalar("SELECT count(*) FROM t WHERE a = 'new'") == "40");
}

TEST_CASE("a restarted WAL: frames of the previous generation after the new ones are ignored") {
  TempDir t("bk");
  MakeDb(t / "app.db", 100);
  Conn w(t / "app.db");
  w.Exec("PRAGMA wal_autocheckpoint=0");
  w.Exec("UPDATE t SET b = randomblob(900)");  // a long WAL
  w.Exec("PRAGMA wal_checkpoint(PASSIVE)");    // everything backfilled
  w.Exec("UPDATE marker SET v = 'after restart'");  // restarts the WAL: new salts, old frames behind
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  CHECK(r.manifest["snapshot"]["wal_frames"].get<uint64_t>() < 10);
  RequireSamePages(ReadAll(r.path), ReadAll(ApiCopy(t / "app.db", t / "ref.db")), r.manifest["page_size"]);
  Conn c(r.path, SQLITE_OPEN_READONLY);
  CHECK(c.Scalar("SELECT v FROM marker") == "after restart");
}

TEST_CASE("a partly checkpointed WAL: the copy holds the latest commit") {
  TempDir t("bk");
  MakeDb(t / "app.db", 100);
  Conn w(t / "app.db");
  w.Exec("PRAGMA wal_autocheckpoint=0");
  w.Exec("UPDATE t SET b = randomblob(900)");  // a long WAL
  {
    // A reader holds a WAL read mark at the end of that first transaction,
    // so the checkpoint stops there and the frames after it stay in the WAL.
    Conn r(t / "app.db");
    r.Exec("BEGIN");
    r.Scalar("SELECT count(*) FROM t");
    w.Exec("UPDATE marker SET v = 'after checkpoint'; DELETE FROM t WHERE id > 90");
    w.Exec("PRAGMA wal_checkpoint(PASSIVE)");
    r.Exec("COMMIT");
  }
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  const auto& snap = r.manifest["snapshot"];
  CHECK(snap["wal_frames"].get<uint64_t>() > 20);
  RequireSamePages(ReadAll(r.path), ReadAll(ApiCopy(t / "app.db", t / "ref.db")), r.manifest["page_size"]);
  Conn c(r.path, SQLITE_OPEN_READONLY);
  CHECK(c.Scalar("SELECT v FROM marker") == "after checkpoint");
  CHECK(c.Scalar("SELECT count(*) FROM t") == "90");
}

TEST_CASE("a rollback-journal database is copied too") {
  TempDir t("bk");
  MakeDb(t / "app.db", 100, /*wal=*/false);
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  CHECK(r.manifest["journal_mode"] == "delete");
  CHECK(ReadAll(r.path) == ReadAll(t / "app.db"));
}

TEST_CASE("compressed backups are zstd, verify and restore") {
  TempDir t("bk");
  MakeDb(t / "app.db", 200);
  bk::CreateOptions o = Opts(t / "b");
  o.compress = 3;
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", o);
  CHECK(r.path.ends_with(".db.zst"));
  CHECK(r.manifest["compression"] == "zstd");
  CHECK(r.size < r.manifest["db_size"].get<uint64_t>());
  CHECK(r.sha256 == hoist::sys::Sha256FileHex(r.path));
  bk::VerifyResult v = bk::Verify(r.path, {});
  CHECK(v.ok);
  CHECK(v.integrity == "ok");
  // No temp file is left behind by verify's decompression.
  CHECK(Names(t / "b").size() == 4);

  Conn(t / "app.db").Exec("DELETE FROM t; UPDATE marker SET v = 'damaged'");
  bk::RestoreOptions ro;
  ro.safety_backup = false;
  bk::RestoreSqlite(r.path, t / "app.db", ro);
  Conn c(t / "app.db");
  CHECK(c.Scalar("SELECT count(*) FROM t") == "200");
  CHECK(c.Scalar("SELECT v FROM marker") == "original");
}

TEST_CASE("bad options and sources are refused") {
  TempDir t("bk");
  MakeDb(t / "app.db", 10);
  auto e = CatchError([&] { bk::CreateSqlite(t / "missing.db", Opts(t / "b")); });
  CHECK(e.code() == "not_found");
  CHECK(std::string(e.what()) == "backup: no such database: " + (t / "missing.db"));
  WriteFile(t / "notes.txt", std::string(5000, 'x'));
  e = CatchError([&] { bk::CreateSqlite(t / "notes.txt", Opts(t / "b")); });
  CHECK(e.code() == "not_a_database");
  CHECK(e.message() == (t / "notes.txt") + " is not a SQLite database");
  e = CatchError([&] { bk::CreateSqlite(t / "app.db", Opts(t / "b", "bad label")); });
  CHECK(e.message() == "label must match [A-Za-z0-9._-]{1,64}, got \"bad label\"");
  e = CatchError([&] { bk::CreateSqlite(t / "app.db", Opts("")); });
  CHECK(e.message() == "dir is required");
}

TEST_CASE("verify refuses truncated and bit-flipped backups with exact messages") {
  TempDir t("bk");
  MakeDb(t / "app.db", 200);
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  const std::string name = bk::detail::BaseName(r.path);
  CHECK(bk::Verify(r.path, {}).ok);

  SUBCASE("truncated") {
    std::filesystem::resize_file(r.path, 65536);
    bk::VerifyResult v = bk::Verify(r.path, {});
    CHECK_FALSE(v.ok);
    REQUIRE(v.problems.size() == 1);
    CHECK(v.problems[0] == name + ": truncated: 65536 bytes, the manifest records " + std::to_string(r.size));
    auto e = CatchError([&] { bk::VerifyOrThrow(r.path, {}); });
    CHECK(e.code() == "corrupt");
    CHECK(e.message() == v.problems[0]);
  }
  SUBCASE("one bit flipped in a data page") {
    FlipBit(r.path, r.size - 3000);
    std::string now = hoist::sys::Sha256FileHex(r.path);
    bk::VerifyResult v = bk::Verify(r.path, {});
    CHECK_FALSE(v.ok);
    CHECK_FALSE(v.checksum_ok);
    REQUIRE(v.problems.size() >= 1);
    CHECK(v.problems[0] ==
          name + ": sha256 mismatch: the file hashes to " + now + ", " + name + ".sha256 records " + r.sha256);
  }
  SUBCASE("one bit flipped in the header: the integrity check fails as well") {
    FlipBit(r.path, 2);  // "SQLite format 3" -> not a database
    bk::VerifyResult v = bk::Verify(r.path, {});
    CHECK_FALSE(v.ok);
    REQUIRE(v.problems.size() == 2);
    CHECK(v.problems[1] == name + ": quick_check failed: file is not a database");
    CHECK(v.integrity == "file is not a database");
  }
  SUBCASE("no sidecar and no manifest") {
    std::filesystem::remove(r.path + ".sha256");
    std::filesystem::remove(r.path + ".json");
    auto e = CatchError([&] { bk::Verify(r.path, {}); });
    CHECK(e.code() == "invalid");
    CHECK(e.message() == r.path + " has neither a checksum (" + name + ".sha256) nor a manifest (" + name +
                             ".json): cannot verify it");
  }
  SUBCASE("missing file") {
    auto e = CatchError([&] { bk::Verify(t / "nope.db", {}); });
    CHECK(e.code() == "not_found");
    CHECK(e.message() == "no such backup: " + (t / "nope.db"));
  }
}

TEST_CASE("verify deep runs integrity_check and foreign_key_check") {
  TempDir t("bk");
  {
    Conn c(t / "fk.db");
    c.Exec("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE ch(id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id));"
           "INSERT INTO ch VALUES (1, 7)");  // foreign_keys is off here: a dangling reference
  }
  bk::CreateResult r = bk::CreateSqlite(t / "fk.db", Opts(t / "b"));
  CHECK(bk::Verify(r.path, {}).ok);
  bk::VerifyOptions deep;
  deep.deep = true;
  bk::VerifyResult v = bk::Verify(r.path, deep);
  CHECK_FALSE(v.ok);
  CHECK(v.method == "integrity_check");
  CHECK(v.integrity == "foreign key violation: ch rowid 1 references p");
}

TEST_CASE("restore refuses corrupt backups and targets that are not databases, touching nothing") {
  TempDir t("bk");
  MakeDb(t / "app.db", 100);
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  const std::string name = bk::detail::BaseName(r.path);
  Conn(t / "app.db").Exec("UPDATE marker SET v = 'current'");
  std::string before = hoist::sys::Sha256FileHex(t / "app.db");
  bk::RestoreOptions ro;

  SUBCASE("truncated backup") {
    std::filesystem::resize_file(r.path, 4096);
    auto e = CatchError([&] { bk::RestoreSqlite(r.path, t / "app.db", ro); });
    CHECK(e.code() == "corrupt");
    CHECK(e.message() == "refusing to restore into " + (t / "app.db") + ": " + name +
                             ": truncated: 4096 bytes, the manifest records " + std::to_string(r.size));
  }
  SUBCASE("bit-flipped backup") {
    FlipBit(r.path, 5000);
    std::string now = hoist::sys::Sha256FileHex(r.path);
    auto e = CatchError([&] { bk::RestoreSqlite(r.path, t / "app.db", ro); });
    CHECK(e.code() == "corrupt");
    CHECK(std::string(e.message()).starts_with("refusing to restore into " + (t / "app.db") + ": " + name +
                                               ": sha256 mismatch: the file hashes to " + now + ", " + name +
                                               ".sha256 records " + r.sha256));
  }
  SUBCASE("a backup swapped for another file, checksum and manifest recomputed: refused before writing") {
    // An empty file in its place: its sidecar and the manifest's sha256 and
    // size say the same as the file, but not what the backup was.
    WriteFile(r.path, "");
    std::string empty = hoist::sys::Sha256FileHex(r.path);
    WriteFile(r.path + ".sha256", empty + "  " + name + "\n");
    auto m = bk::ReadManifest(r.path).value();
    m["sha256"] = empty;
    m["size"] = 0;
    bk::detail::WriteManifest(r.path, m);
    REQUIRE(bk::Verify(r.path, {}).ok);  // the checksum alone cannot tell
    auto e = CatchError([&] { bk::RestoreSqlite(r.path, t / "app.db", ro); });
    CHECK(e.code() == "mismatch");
    CHECK(e.message().starts_with("refusing to restore " + name + " into " + (t / "app.db") +
                                  ": it is not the backup its manifest describes (its schema fingerprint is "));
    CHECK(e.message().ends_with("; nothing was written"));
  }
  SUBCASE("a target that is not a database") {
    WriteFile(t / "notes.txt", std::string(8192, 'n'));
    auto e = CatchError([&] { bk::RestoreSqlite(r.path, t / "notes.txt", ro); });
    CHECK(e.code() == "not_a_database");
    CHECK(e.message() == "restore target " + (t / "notes.txt") + " is not a SQLite database");
    CHECK(ReadAll(t / "notes.txt") == std::string(8192, 'n'));
  }
  SUBCASE("a directory") {
    std::filesystem::create_directory(t / "dir.db");
    auto e = CatchError([&] { bk::RestoreSqlite(r.path, t / "dir.db", ro); });
    CHECK(e.code() == "not_a_database");
    CHECK(e.message() == "restore target " + (t / "dir.db") + " is a directory, not a SQLite database");
  }
  SUBCASE("a missing target") {
    auto e = CatchError([&] { bk::RestoreSqlite(r.path, t / "nope.db", ro); });
    CHECK(e.code() == "not_found");
    CHECK(e.message() == "restore target " + (t / "nope.db") + " does not exist");
  }
  CHECK(hoist::sys::Sha256FileHex(t / "app.db") == before);
  CHECK(Conn(t / "app.db").Scalar("SELECT v FROM marker") == "current");
  // No safety backup was taken for a refused restore.
  CHECK(bk::List(t / "b").size() == 1);
}

TEST_CASE("restore takes a protected safety backup first") {
  TempDir t("bk");
  MakeDb(t / "app.db", 50);
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  Conn(t / "app.db").Exec("UPDATE marker SET v = 'current'");
  bk::RestoreOptions ro;
  ro.run_id = 7;
  bk::RestoreResult res = bk::RestoreSqlite(r.path, t / "app.db", ro);
  REQUIRE_FALSE(res.safety_backup.empty());
  CHECK(res.verified.ok);
  CHECK(res.pages == r.manifest["pages"]);
  auto m = bk::ReadManifest(res.safety_backup).value();
  CHECK(m["protected"] == true);
  CHECK(m["label"] == "pre-restore");
  CHECK(m["safety"] == true);  // pruned by keep_safety, not by keep
  CHECK(m["run_id"] == 7);
  CHECK(m["reason"] == "safety backup before restoring " + bk::detail::BaseName(r.path));
  CHECK(Conn(res.safety_backup, SQLITE_OPEN_READONLY).Scalar("SELECT v FROM marker") == "current");
  CHECK(Conn(t / "app.db").Scalar("SELECT v FROM marker") == "original");
}

TEST_CASE("safety backups: kept by keep and older_than, pruned by keep_safety, a person's protected backup never") {
  TempDir t("bk");
  MakeDb(t / "app.db", 10);
  MakeDb(t / "other.db", 10);
  const std::string dir = t / "b";
  // Oldest first: a person's protected one, then 4 safety and 2 plain, interleaved.
  struct Made { std::string path; std::string kind; };
  std::vector<Made> made;
  const std::vector<std::string> kinds = {"protected", "safety", "plain", "safety", "plain", "safety", "safety"};
  for (size_t i = 0; i < kinds.size(); ++i) {
    bk::CreateOptions o = Opts(dir, kinds[i] + std::to_string(i));
    o.protect = kinds[i] == "protected";
    o.safety = kinds[i] == "safety";
    made.push_back({bk::CreateSqlite(t / "app.db", o).path, kinds[i]});
    auto m = bk::ReadManifest(made.back().path).value();
    m["created_at"] = bk::detail::IsoTime(std::chrono::system_clock::now() - std::chrono::hours(24 * (10 - i)));
    bk::detail::WriteManifest(made.back().path, m);
  }
  bk::CreateOptions oo = Opts(dir, "other-safety");
  oo.safety = true;
  const std::string other = bk::CreateSqlite(t / "other.db", oo).path;
  auto m = bk::ReadManifest(made[1].path).value();
  CHECK(m["protected"] == true);
  CHECK(m["safety"] == true);
  auto list = bk::List(dir);
  REQUIRE(list.size() == 8);
  for (const auto& e : list) {
    if (e.path == other) continue;
    auto it = std::find_if(made.begin(), made.end(), [&](const Made& x) { return x.path == e.path; });
    REQUIRE(it != made.end());
    CAPTURE(e.path);
    CHECK(e.is_safety == (it->kind == "safety"));
    CHECK(e.is_protected == (it->kind != "plain"));
  }

  SUBCASE("keep and older_than leave every safety backup") {
    bk::PruneOptions po;
    po.keep = 1;
    po.older_than = bk::ParseAge("1h");
    auto pr = bk::Prune(dir, po);
    CHECK(pr.removed == std::vector<std::string>{made[2].path});  // made[4] is the newest plain one (keep 1)
    for (const auto& x : made)
      if (x.kind != "plain") CHECK(std::filesystem::exists(x.path));
  }
  SUBCASE("keep_safety alone prunes safety backups of each source beyond the newest N, nothing else") {
    bk::PruneOptions po;
    po.keep_safety = 2;
    auto pr = bk::Prune(dir, po);
    CHECK(pr.removed == std::vector<std::string>{made[3].path, made[1].path});
    CHECK_FALSE(std::filesystem::exists(made[1].path + ".json"));
    CHECK_FALSE(std::filesystem::exists(made[1].path + ".sha256"));
    CHECK(std::filesystem::exists(made[0].path));  // a person protected it
    CHECK(std::filesystem::exists(made[2].path));  // plain: keep was not given
    CHECK(std::filesystem::exists(other));         // the other database's only safety backup
  }
  SUBCASE("keep_safety with older_than: both must hold for a safety backup") {
    bk::PruneOptions po;
    po.keep_safety = 1;
    po.older_than = bk::ParseAge("6.5d");
    // older_than also ages out the plain made[2] (8 days), not made[4] (6 days).
    CHECK(bk::Prune(dir, po).removed == std::vector<std::string>{made[3].path, made[2].path, made[1].path});
    CHECK(std::filesystem::exists(made[5].path));  // beyond keep_safety, but younger than 6.5 days
  }
  SUBCASE("the newest verified backup stays even when it is a safety backup beyond keep_safety") {
    for (int i : {4, 6}) {
      auto mm = bk::ReadManifest(made[i].path).value();
      mm["verified"] = false;
      bk::detail::WriteManifest(made[i].path, mm);
    }
    bk::PruneOptions po;
    po.keep_safety = 1;
    po.source = t / "app.db";
    auto pr = bk::Prune(dir, po);
    CHECK(pr.removed == std::vector<std::string>{made[3].path, made[1].path});
    CHECK(std::filesystem::exists(made[5].path));  // newest verified
  }
  SUBCASE("create with keep_safety prunes this source's older safety backups") {
    bk::CreateOptions o = Opts(dir, "predeploy");
    o.safety = true;
    o.keep_safety = 1;
    auto r = bk::CreateSqlite(t / "app.db", o);
    CHECK(r.pruned == std::vector<std::string>{made[6].path, made[5].path, made[3].path, made[1].path});
    CHECK(std::filesystem::exists(other));
    CHECK(std::filesystem::exists(made[2].path));
  }
  SUBCASE("manifests from before the safety key: hoist's own protected safety labels count as safety") {
    bk::CreateOptions o = Opts(dir, "predeploy");
    o.protect = true;
    std::string old = bk::CreateSqlite(t / "other.db", o).path;
    o.label = "keepme";
    std::string mine = bk::CreateSqlite(t / "other.db", o).path;
    for (const auto& p : {old, mine}) {
      auto mm = bk::ReadManifest(p).value();
      mm.erase("safety");
      bk::detail::WriteManifest(p, mm);
    }
    for (const auto& e : bk::List(dir)) {
      if (e.path == old) CHECK(e.is_safety);
      if (e.path == mine) CHECK_FALSE(e.is_safety);
    }
  }
}

TEST_CASE("list is newest first with manifest data, prune keeps the protected and newest verified") {
  TempDir t("bk");
  MakeDb(t / "app.db", 10);
  MakeDb(t / "other.db", 10);
  const std::string dir = t / "b";
  std::vector<std::string> made;
  for (int i = 0; i < 5; ++i) {
    bk::CreateOptions o = Opts(dir, "n" + std::to_string(i));
    o.protect = i == 0;
    made.push_back(bk::CreateSqlite(t / "app.db", o).path);
  }
  std::string other = bk::CreateSqlite(t / "other.db", Opts(dir)).path;
  // Age them: created_at i days ago, newest last.
  for (int i = 0; i < 5; ++i) {
    auto m = bk::ReadManifest(made[i]).value();
    m["created_at"] = bk::detail::IsoTime(std::chrono::system_clock::now() - std::chrono::hours(24 * (10 - i)));
    bk::detail::WriteManifest(made[i], m);
  }
  WriteFile(dir + "/unrelated.txt", "not a backup");

  auto list = bk::List(dir);
  REQUIRE(list.size() == 6);
  CHECK(list[0].path == other);
  CHECK(list[1].path == made[4]);
  CHECK(list[5].path == made[0]);
  CHECK(list[5].is_protected);
  CHECK(list[1].verified);
  CHECK(list[1].label == "n4");
  CHECK(list[1].source == t / "app.db");
  CHECK(list[1].has_manifest);

  SUBCASE("keep") {
    bk::PruneOptions po;
    po.keep = 2;
    auto pr = bk::Prune(dir, po);
    CHECK(pr.removed == std::vector<std::string>{made[2], made[1]});
    CHECK_FALSE(std::filesystem::exists(made[1]));
    CHECK_FALSE(std::filesystem::exists(made[1] + ".json"));
    CHECK_FALSE(std::filesystem::exists(made[1] + ".sha256"));
    CHECK(std::filesystem::exists(made[0]));  // protected
    CHECK(std::filesystem::exists(other));
    CHECK(std::filesystem::exists(dir + "/unrelated.txt"));
  }
  SUBCASE("older_than") {
    bk::PruneOptions po;
    po.older_than = bk::ParseAge("180h");
    auto pr = bk::Prune(dir, po);
    CHECK(pr.removed == std::vector<std::string>{made[2], made[1]});
  }
  SUBCASE("keep and older_than together: both must hold") {
    bk::PruneOptions po;
    po.keep = 3;
    po.older_than = bk::ParseAge("8.5d");
    CHECK(bk::Prune(dir, po).removed == std::vector<std::string>{made[1]});
  }
  SUBCASE("the newest verified backup survives even keep = 1 when newer ones are unverified") {
    for (int i : {3, 4}) {
      auto m = bk::ReadManifest(made[i]).value();
      m["verified"] = false;
      bk::detail::WriteManifest(made[i], m);
    }
    bk::PruneOptions po;
    po.keep = 1;
    po.source = t / "app.db";
    auto pr = bk::Prune(dir, po);
    CHECK(pr.removed == std::vector<std::string>{made[3], made[1]});
    CHECK(std::filesystem::exists(made[2]));  // newest verified
    CHECK(std::filesystem::exists(made[4]));  // newest
  }
  SUBCASE("dry run removes nothing") {
    bk::PruneOptions po;
    po.keep = 1;
    po.dry_run = true;
    CHECK(bk::Prune(dir, po).removed.size() == 3);
    CHECK(bk::List(dir).size() == 6);
  }
  SUBCASE("create with keep prunes the same source only") {
    bk::CreateOptions o = Opts(dir, "n5");
    o.keep = 2;
    auto r = bk::CreateSqlite(t / "app.db", o);
    CHECK(r.pruned == std::vector<std::string>{made[3], made[2], made[1]});
    CHECK(std::filesystem::exists(other));
  }
  SUBCASE("a read-only dir (a sandbox's view of the real one) counts towards keep and is never touched") {
    MakeDb(t / "copy.db", 10);
    const std::string own = t / "sandbox";
    bk::ReadOnlyBackups real;
    real.dir = dir;
    real.source = [&](const std::string& s) { return s == t / "app.db" ? t / "copy.db" : s; };
    bk::CreateOptions o = Opts(own, "n5");
    o.keep = 2;
    o.read_only = real;
    auto mine = bk::CreateSqlite(t / "copy.db", o);
    CHECK(mine.pruned == std::vector<std::string>{made[3], made[2], made[1]});
    bk::PruneOptions po;
    po.keep = 1;
    po.read_only = real;
    auto pr = bk::Prune(own, po);
    CHECK(pr.removed == std::vector<std::string>{made[4], made[3], made[2], made[1]});
    CHECK(bk::List(dir).size() == 6);
    CHECK(bk::List(own).size() == 1);
  }
  SUBCASE("what a prune of the read-only view removed is left out of that view afterwards, and stays on disk") {
    std::set<std::string> gone;
    bk::ReadOnlyBackups real;
    real.dir = dir;
    real.gone = &gone;
    const std::string own = t / "sandbox";
    bk::PruneOptions po;
    po.keep = 2;
    po.read_only = real;
    po.dry_run = true;  // a dry run removes nothing, not even from the view
    CHECK(bk::Prune(own, po).removed == std::vector<std::string>{made[2], made[1]});
    CHECK(bk::List(own, real).size() == 6);
    po.dry_run = false;
    CHECK(bk::Prune(own, po).removed == std::vector<std::string>{made[2], made[1]});
    CHECK(gone == std::set<std::string>{made[1], made[2]});
    auto view = bk::List(own, real);
    CHECK(view.size() == 4);
    for (const auto& e : view) CHECK((e.path != made[1] && e.path != made[2]));
    CHECK(bk::List(dir).size() == 6);
    CHECK(bk::Prune(own, po).removed.empty());  // the view already lost them
  }
  SUBCASE("a name the read-only dir has is not chosen") {
    // Both seconds the create may fall in.
    auto now = std::chrono::system_clock::now();
    for (auto s : {now, now + std::chrono::seconds(1)}) {
      WriteFile(dir + "/app-n1-" + bk::detail::CompactStamp(s) + ".db.sha256", "");
    }
    bk::CreateOptions o = Opts(t / "sandbox", "n1");
    o.read_only.dir = dir;
    CHECK(bk::CreateSqlite(t / "app.db", o).path.ends_with("-2.db"));
  }
  SUBCASE("bad options") {
    auto e = CatchError([&] { bk::Prune(dir, {}); });
    CHECK(e.message() == "prune needs keep, keep_safety or older_than");
    bk::PruneOptions po;
    po.keep_safety = -1;
    CHECK(CatchError([&] { bk::Prune(dir, po); }).message() == "keep_safety must be >= 0");
    bk::CreateOptions co = Opts(dir);
    co.keep_safety = -2;
    CHECK(CatchError([&] { bk::CreateSqlite(t / "app.db", co); }).message() == "keep_safety must be >= 0");
    CHECK(bk::List(dir).size() == 6);  // refused before anything was written
    e = CatchError([&] { bk::ParseAge("30 days"); });
    CHECK(e.message() == "older_than must look like \"30d\", \"12h\", \"90m\", \"45s\" or \"2w\", got \"30 days\"");
    CHECK(bk::ParseAge("90m") == 5400);
    CHECK(bk::ParseAge("2w") == 1209600);
  }
}

TEST_CASE("drill restores into a sandbox, checks, runs smoke SQL and records the result") {
  TempDir t("bk");
  MakeDb(t / "app.db", 100);
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  bk::DrillOptions o;
  o.smoke_sql = {"SELECT count(*) FROM t", "SELECT nope FROM t"};
  bk::DrillResult d = bk::Drill(r.path, o);
  CHECK_FALSE(d.ok);
  CHECK(d.integrity == "ok");
  CHECK(d.fingerprint_ok);
  CHECK(d.fingerprint == r.manifest["schema_fingerprint"]);
  REQUIRE(d.smoke.size() == 2);
  CHECK(d.smoke[0]["value"] == "100");
  CHECK(d.smoke[1]["ok"] == false);
  CHECK(d.problems == std::vector<std::string>{"smoke SQL failed: SELECT nope FROM t: no such column: nope"});
  o.smoke_sql = {"SELECT count(*) FROM t"};
  CHECK(bk::Drill(r.path, o).ok);
  auto m = bk::ReadManifest(r.path).value();
  REQUIRE(m["drills"].size() == 2);
  CHECK(m["drills"][0]["ok"] == false);
  CHECK(m["last_drill"]["ok"] == true);
  // The drill never touched the backup itself.
  CHECK(bk::Verify(r.path, {}).ok);

  FlipBit(r.path, 100);
  d = bk::Drill(r.path, o);
  CHECK_FALSE(d.ok);
  CHECK(d.problems[0].find("sha256 mismatch") != std::string::npos);
}

TEST_CASE("Ctrl-C stops a backup and leaves nothing behind") {
  TempDir t("bk");
  MakeDb(t / "app.db", 20000);  // ~20 MB: several chunks
  bk::CreateOptions o = Opts(t / "b");
  int calls = 0;
  o.progress = [&](const std::string&, double, double, const std::string&) {
    if (++calls == 1) hoist::RequestInterrupt();
  };
  auto e = CatchError([&] { bk::CreateSqlite(t / "app.db", o); });
  hoist::ClearInterrupt();
  CHECK(e.code() == "interrupted");
  CHECK(std::string(e.what()) == "backup: interrupted (Ctrl-C)");
  for (const auto& n : Names(t / "b")) CHECK(n == ".hoist-backup.lock");
  CHECK(bk::List(t / "b").empty());
}

// Done means 2: a backup while another process commits continuously.
TEST_CASE("a backup while another process commits continuously: no writer errors, a consistent snapshot") {
  TempDir t("bk");
  MakeDb(t / "app.db", 8000);  // ~9 MB: quick copies, many WAL restarts around them
  int stop_pipe[2], report_pipe[2];
  REQUIRE(::pipe(stop_pipe) == 0);
  REQUIRE(::pipe(report_pipe) == 0);
  const std::string db = t / "app.db";
  pid_t writer = Fork([&] {
    ::close(stop_pipe[1]);
    ::close(report_pipe[0]);
    sqlite3* c = nullptr;
    if (sqlite3_open_v2(db.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) return 10;
    sqlite3_busy_timeout(c, 0);  // any lock wait would be an immediate error
    // What WAL apps run with: commits without fsync, so thousands a second.
    sqlite3_exec(c, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
    long commits = 0, errors = 0;
    for (;;) {
      pollfd p{stop_pipe[0], POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) break;
      int rc = sqlite3_exec(c,
                            "BEGIN IMMEDIATE; INSERT INTO log(n) VALUES (1);"
                            "UPDATE acct SET a = a - 1, b = b + 1, v = v + 1; COMMIT;",
                            nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) {
        ++commits;
      } else {
        ++errors;
        sqlite3_exec(c, "ROLLBACK", nullptr, nullptr, nullptr);
      }
      if (commits == 50) (void)!::write(report_pipe[1], "r", 1);  // running
    }
    sqlite3_close(c);
    std::string msg = std::to_string(commits) + " " + std::to_string(errors);
    (void)!::write(report_pipe[1], msg.data(), msg.size());
    return errors == 0 ? 0 : 1;
  });
  ::close(stop_pipe[0]);
  ::close(report_pipe[1]);
  char c = 0;
  REQUIRE(::read(report_pipe[0], &c, 1) == 1);

  auto t0 = std::chrono::steady_clock::now();
  bk::CreateResult r;
  int backups = 0;
  // Many backups in a row, so checkpoints and WAL restarts are attempted
  // during each copy (they once dropped the snapshot's lock: ~1 copy in 7
  // failed quick_check).
  for (; backups < 25; ++backups) {
    r = bk::CreateSqlite(db, Opts(t / "b", "b" + std::to_string(backups)));
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  REQUIRE(::write(stop_pipe[1], "s", 1) == 1);
  std::string report;
  char buf[64];
  for (ssize_t n; (n = ::read(report_pipe[0], buf, sizeof buf)) > 0;) report.append(buf, static_cast<size_t>(n));
  int code = Wait(writer);
  MESSAGE("writer: commits errors = " << report << ", 25 backups in " << seconds << " s");
  CHECK(code == 0);
  long commits = std::stol(report.substr(0, report.find(' ')));
  CHECK(report.substr(report.find(' ') + 1) == "0");

  for (const auto& e : bk::List(t / "b")) {
    Conn b(e.path, SQLITE_OPEN_READONLY);
    CHECK(b.Scalar("PRAGMA integrity_check") == "ok");
    // The invariants every writer transaction keeps.
    CHECK(b.Scalar("SELECT a + b FROM acct") == "1000000");
    std::string n = b.Scalar("SELECT count(*) FROM log");
    CHECK(b.Scalar("SELECT max(id) FROM log") == n);
    CHECK(b.Scalar("SELECT v FROM acct") == n);
    CHECK(std::stol(n) >= 50);
    CHECK(std::stol(n) <= commits);
    CHECK(b.Scalar("SELECT count(*) FROM t") == "8000");
  }
  Conn live(db);
  CHECK(live.Scalar("SELECT count(*) FROM log") == std::to_string(commits));
  // The writer kept committing while the backups ran.
  CHECK(std::stol(Conn(r.path, SQLITE_OPEN_READONLY).Scalar("SELECT count(*) FROM log")) < commits);
  ::close(stop_pipe[1]);
  ::close(report_pipe[0]);
}

// SQLite's WAL read lock is a POSIX lock on the -shm, and closing any
// descriptor of that file drops it for the whole process. A backup that
// peeked at the -shm through its own descriptor once lost its snapshot that
// way, and checkpoints then rewrote the main file under the copy.
TEST_CASE("the snapshot keeps its read lock for the whole copy: another process cannot checkpoint past it") {
  TempDir t("bk");
  MakeDb(t / "app.db", 20000);  // several chunks, so progress is reported mid-copy
  const std::string db = t / "app.db";
  Conn w(db);
  w.Exec("PRAGMA wal_autocheckpoint=0; UPDATE acct SET v = v + 1; INSERT INTO log(n) VALUES (1)");
  std::string checkpoint;
  bk::CreateOptions o = Opts(t / "b");
  o.progress = [&](const std::string&, double done, double, const std::string&) {
    if (!checkpoint.empty() || done <= 0) return;
    // Another process (locks are per process), never waiting for a lock.
    hoist::sys::ProcessSpec spec;
    spec.argv = {"sqlite3", db, ".timeout 0", "PRAGMA wal_checkpoint(TRUNCATE);"};
    hoist::sys::ProcessResult r = hoist::sys::RunProcess(spec);
    checkpoint = r.out + r.err + "(exit " + std::to_string(r.exit_code) + ")";
  };
  w.Exec("UPDATE acct SET v = v + 1");  // a frame after the snapshot-to-be
  bk::CreateResult r = bk::CreateSqlite(db, o);
  INFO("sqlite3 said: " << checkpoint);
  // "1|..." = busy: the TRUNCATE checkpoint could not get past our reader.
  CHECK(checkpoint.rfind("1|", 0) == 0);
  CHECK(Conn(r.path, SQLITE_OPEN_READONLY).Scalar("PRAGMA quick_check") == "ok");
}

/// Whether a process other than this one sees a lock on byte `at` of path
/// (F_GETLK never reports the asker's own locks, so a child asks).
bool LockedForOthers(const std::string& path, off_t at) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = ::open(path.c_str(), O_RDWR);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = at;
    fl.l_len = 1;
    if (fd < 0 || ::fcntl(fd, F_GETLK, &fl) != 0) ::_exit(2);
    ::_exit(fl.l_type == F_UNLCK ? 1 : 0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) != 2);
  return WEXITSTATUS(status) == 0;
}

// Closing any descriptor of a file drops all of a process's POSIX locks on
// it. A migration's safety backup runs in the process whose connection then
// goes on writing: had the backup closed its descriptors of the -shm, another
// process would find the wal-index unused, truncate it, and the migration's
// next commit would die of SIGBUS (seen under several migrator processes).
TEST_CASE("a backup keeps the SQLite locks of this process's other connections to the database") {
  TempDir t("bk");
  MakeDb(t / "app.db", 50);
  const std::string db = t / "app.db";
  Conn w(db);
  w.Exec("PRAGMA wal_autocheckpoint=0; UPDATE acct SET v = v + 1");
  // The wal-index's dead-man switch: every connection using the -shm holds
  // a shared lock on byte 128 (sqlite's os_unix.c, UNIX_SHM_DMS).
  REQUIRE(LockedForOthers(db + "-shm", 128));
  bk::CreateResult r = bk::CreateSqlite(db, Opts(t / "b"));
  CHECK(LockedForOthers(db + "-shm", 128));
  bk::CreateSqlite(db, Opts(t / "b", "again"));
  CHECK(LockedForOthers(db + "-shm", 128));
  // And the connection still works with another process writing beside it.
  hoist::sys::ProcessSpec spec;
  spec.argv = {"sqlite3", db, ".timeout 5000", "UPDATE acct SET v = v + 1;"};
  CHECK(hoist::sys::RunProcess(spec).exit_code == 0);
  w.Exec("UPDATE acct SET v = v + 1");
  CHECK(w.Scalar("PRAGMA quick_check") == "ok");
  CHECK(Conn(r.path, SQLITE_OPEN_READONLY).Scalar("PRAGMA quick_check") == "ok");
}

TEST_CASE("reading a database this process has open (fs.read, crypto.sha256) keeps its connection's locks") {
  TempDir t("bk");
  const std::string db = t / "app.db";
  MakeDb(db, 20, /*wal=*/false);
  hoist::db::Sqlite c(db);
  c.Exec("BEGIN");
  c.Exec("SELECT count(*) FROM t");  // a read transaction: SHARED on the file
  // os_unix.c's SHARED range starts at PENDING_BYTE + 2 = 0x40000002.
  const off_t shared = 0x40000002;
  REQUIRE(LockedForOthers(db, shared));
  const std::string bytes = hoist::sys::ReadFile(db);
  CHECK(bytes.size() == std::filesystem::file_size(db));
  CHECK(LockedForOthers(db, shared));
  CHECK(hoist::sys::Sha256FileHex(db) == hoist::sys::Sha256Hex(bytes));
  CHECK(LockedForOthers(db, shared));
  c.Exec("COMMIT");
}

// Done means 2: restore while another process holds the database open.
TEST_CASE("restore into a database another process holds open: it reads the restored rows") {
  TempDir t("bk");
  MakeDb(t / "app.db", 500);
  bk::CreateResult r = bk::CreateSqlite(t / "app.db", Opts(t / "b"));
  Conn(t / "app.db").Exec("UPDATE marker SET v = 'current'; DELETE FROM t WHERE id > 10");
  int go[2], ready[2];
  REQUIRE(::pipe(go) == 0);
  REQUIRE(::pipe(ready) == 0);
  const std::string db = t / "app.db";
  pid_t reader = Fork([&] {
    sqlite3* c = nullptr;
    if (sqlite3_open_v2(db.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) return 10;
    if (Scalar(c, "SELECT v FROM marker") != "current") return 11;
    (void)!::write(ready[1], "r", 1);
    char x;
    if (::read(go[0], &x, 1) != 1) return 12;
    // The same connection, never reopened.
    if (Scalar(c, "SELECT v FROM marker") != "original") return 13;
    if (Scalar(c, "SELECT count(*) FROM t") != "500") return 14;
    if (Scalar(c, "PRAGMA quick_check") != "ok") return 15;
    sqlite3_exec(c, "INSERT INTO log(n) VALUES (42)", nullptr, nullptr, nullptr);  // and it can still write
    sqlite3_close(c);
    return 0;
  });
  char x;
  REQUIRE(::read(ready[0], &x, 1) == 1);
  bk::RestoreOptions ro;
  ro.safety_backup = false;
  bk::RestoreSqlite(r.path, db, ro);
  REQUIRE(::write(go[1], "g", 1) == 1);
  CHECK(Wait(reader) == 0);
  Conn c(db);
  CHECK(c.Scalar("SELECT n FROM log") == "42");
  CHECK(c.Scalar("PRAGMA journal_mode") == "wal");
  CHECK(c.Scalar("PRAGMA integrity_check") == "ok");
  for (int fd : {go[0], go[1], ready[0], ready[1]}) ::close(fd);
}

// Done means 3: a crash mid-copy.
TEST_CASE("a backup killed mid-copy leaves no file under the final name and the source untouched") {
  TempDir t("bk");
  MakeDb(t / "app.db", 40000);  // ~45 MB: 6 chunks
  const std::string db = t / "app.db", dir = t / "b";
  std::filesystem::create_directory(dir);
  // Committed pages that live only in the WAL, which must survive too.
  Conn w(db);
  w.Exec("PRAGMA wal_autocheckpoint=0; UPDATE marker SET v = 'in the wal'");
  std::string db_sum = hoist::sys::Sha256FileHex(db);
  std::string wal_sum = hoist::sys::Sha256FileHex(db + "-wal");
  pid_t child = Fork([&] {
    bk::CreateOptions o = Opts(dir);
    // Slow the copy down so the parent can catch it in the middle.
    o.progress = [](const std::string&, double, double, const std::string&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    };
    bk::CreateSqlite(db, o);
    return 0;
  });
  std::string temp;
  for (int i = 0; i < 2000 && temp.empty(); ++i) {
    for (const auto& n : Names(dir)) {
      if (bk::detail::IsTempName(n) && std::filesystem::file_size(dir + "/" + n) > 0) temp = n;
    }
    if (temp.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE_FALSE(temp.empty());
  ::kill(child, SIGKILL);
  CHECK(Wait(child) == 128 + SIGKILL);

  CHECK(bk::List(dir).empty());
  for (const auto& n : Names(dir)) CHECK((n == ".hoist-backup.lock" || bk::detail::IsTempName(n)));
  CHECK(hoist::sys::Sha256FileHex(db) == db_sum);
  CHECK(hoist::sys::Sha256FileHex(db + "-wal") == wal_sum);
  CHECK(Conn(db).Scalar("PRAGMA integrity_check") == "ok");

  // The leftover is reclaimed by prune once it is clearly abandoned.
  bk::PruneOptions po;
  po.keep = 5;
  CHECK(bk::Prune(dir, po).stale.empty());  // too young to tell
  timeval old[2] = {{std::time(nullptr) - 600, 0}, {std::time(nullptr) - 600, 0}};
  REQUIRE(::utimes((dir + "/" + temp).c_str(), old) == 0);
  CHECK(bk::Prune(dir, po).stale == std::vector<std::string>{dir + "/" + temp});
  CHECK(Names(dir).empty());
  // And the next backup works.
  CHECK(bk::Verify(bk::CreateSqlite(db, Opts(dir)).path, {}).ok);
}

TEST_CASE("a sidecar or manifest left without its data by a killed publish is swept by prune, never listed") {
  TempDir t("bk");
  MakeDb(t / "app.db", 10);
  const std::string dir = t / "b";
  auto real = bk::CreateSqlite(t / "app.db", Opts(dir));
  // What a kill between the renames leaves: a sidecar alone (today's order:
  // sidecar, data, manifest) and a verified-saying manifest alone (the
  // earlier order published the manifest before the data).
  const std::string lone = dir + "/app-killed-20261201T000000Z.db";
  std::filesystem::copy_file(real.path + ".sha256", lone + ".sha256");
  const std::string ghost = dir + "/app-ghost-20261130T000000Z.db";
  std::filesystem::copy_file(real.path + ".json", ghost + ".json");
  std::filesystem::copy_file(real.path + ".sha256", ghost + ".sha256");
  REQUIRE(bk::List(dir).size() == 1);
  bk::PruneOptions po;
  po.keep = 5;
  CHECK(bk::Prune(dir, po).stale.empty());  // a live backup publishes its data right after
  timeval old[2] = {{std::time(nullptr) - 600, 0}, {std::time(nullptr) - 600, 0}};
  for (const std::string& f : {lone + ".sha256", ghost + ".json", ghost + ".sha256"}) {
    REQUIRE(::utimes(f.c_str(), old) == 0);
  }
  auto pr = bk::Prune(dir, po);
  std::sort(pr.stale.begin(), pr.stale.end());
  CHECK(pr.stale == std::vector<std::string>{ghost + ".json", ghost + ".sha256", lone + ".sha256"});
  CHECK_FALSE(std::filesystem::exists(ghost + ".json"));
  CHECK_FALSE(std::filesystem::exists(lone + ".sha256"));
  auto list = bk::List(dir);
  REQUIRE(list.size() == 1);
  CHECK(list[0].path == real.path);
  CHECK(bk::Verify(real.path, {}).ok);
}

}  // TEST_SUITE
