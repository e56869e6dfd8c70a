// Migration scenarios shared by the SQLite unit tests and the PostgreSQL
// integration tests: each takes a Backend that hands out fresh databases,
// so both engines run the same assertions (Done means 1 of issue 4).
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "db/connection.h"
#include "db/migrate_lint.h"
#include "db/migrate_schema.h"
#include "db/migrator.h"
#include "support/support.h"
#include "sys/clock.h"

namespace hoist::test::migrate {

using db::Connection;

struct Backend {
  std::string engine;                      // "sqlite" | "postgres"
  std::function<std::string()> fresh_url;  // a new empty database
  bool pg() const { return engine == "postgres"; }
};

inline std::unique_ptr<Connection> OpenDb(const std::string& url) {
  db::OpenOptions o;
  o.create = true;
  return db::Open(url, o);
}

/// A migrations directory.
struct Migs {
  TempDir dir{"migs"};
  void Write(const std::string& file, const std::string& text) const { WriteFile(dir / file, text); }
  void Remove(const std::string& file) const { std::filesystem::remove(dir / file); }
  void Clear() const {
    for (const auto& e : std::filesystem::directory_iterator(dir.path)) std::filesystem::remove(e.path());
  }
  const std::string& path() const { return dir.path; }
};

inline std::string Scalar(Connection& c, const std::string& sql) {
  auto r = c.Query(sql);
  if (r.rows.empty()) return "";
  const auto& v = r.rows[0][0];
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* b = std::get_if<bool>(&v)) return *b ? "1" : "0";
  if (std::holds_alternative<db::Null>(v)) return "NULL";
  return "?";
}

inline bool HasTable(Connection& c, const std::string& t) {
  auto tables = c.Tables();
  return std::find(tables.begin(), tables.end(), t) != tables.end();
}

inline bool HasColumn(Connection& c, const std::string& t, const std::string& col) {
  for (const auto& ci : c.Columns(t)) {
    if (ci.name == col) return true;
  }
  return false;
}

/// The fingerprint of the application's schema (hoist's own tables left out).
inline std::string AppFingerprint(Connection& c) {
  db::Schema s = c.ReadSchema();
  std::erase_if(s.tables, [](const db::TableInfo& t) { return db::IsHoistTable(t.name); });
  return db::Fingerprint(s);
}

inline db::UpOptions Any() {
  db::UpOptions o;
  o.policy = "any";
  return o;
}

inline const db::StatusEntry& Entry(const db::MigrationStatus& st, int64_t v) {
  for (const auto& e : st.entries) {
    if (e.version == v) return e;
  }
  FAIL("no status entry for version " << v);
  return st.entries.front();
}

const char* const kCreateUsers =
    "-- hoist:phase expand\n"
    "-- hoist:up\n"
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
    "INSERT INTO users (id, name) VALUES (1, 'ada');\n"
    "-- hoist:down\n"
    "DROP TABLE users;\n";
const char* const kAddEmail =
    "-- hoist:up\n"
    "ALTER TABLE users ADD COLUMN email TEXT;\n"
    "-- hoist:down\n"
    "ALTER TABLE users DROP COLUMN email;\n";
const char* const kAddIndex =
    "-- hoist:up\n"
    "CREATE INDEX users_email ON users (email);\n"
    "-- hoist:down\n"
    "DROP INDEX users_email;\n";

// ---- Done means 1: apply / rollback / re-apply ------------------------------

inline void CaseRoundTrip(const Backend& b) {
  auto c = OpenDb(b.fresh_url());
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  m.Write("0010_add_index.sql", kAddIndex);
  const std::string empty_fp = AppFingerprint(*c);

  auto st0 = db::Status(*c, m.path());
  CHECK_FALSE(st0.tracked);
  CHECK_FALSE(st0.current);
  CHECK(st0.Labels("pending") == std::vector<std::string>{"0001_create_users.sql", "0002_add_email.sql",
                                                          "0010_add_index.sql"});
  CHECK_FALSE(HasTable(*c, "hoist_schema_migrations"));  // status is read-only

  db::MigrateEnv env;
  env.run_id = 42;
  std::vector<std::string> events;
  env.on_event = [&](const db::MigrationEvent& e) { events.push_back(e.action + " " + e.file); };
  db::UpOptions expand;  // the default policy
  CHECK(expand.policy == "expand");
  auto r = db::Up(*c, m.path(), expand, env);
  CHECK_FALSE(r.from);
  REQUIRE(r.to);
  CHECK(*r.to == 10);
  REQUIRE(r.applied.size() == 3);
  CHECK(r.applied[0].cls == "additive");
  CHECK(r.applied[1].cls == "additive");
  CHECK(events == std::vector<std::string>{"apply 0001_create_users.sql", "apply 0002_add_email.sql",
                                           "apply 0010_add_index.sql"});
  const std::string full_fp = AppFingerprint(*c);
  CHECK(HasColumn(*c, "users", "email"));

  auto st = db::Status(*c, m.path());
  CHECK(st.tracked);
  CHECK(*st.current == 10);
  CHECK(st.Count("applied") == 3);
  CHECK(st.Count("pending") == 0);
  const auto& row = *Entry(st, 1).applied;
  CHECK(row.name == "create_users");
  CHECK(row.file == "0001_create_users.sql");
  CHECK(row.kind == "sql");
  CHECK(row.checksum == db::NormalizedChecksum(kCreateUsers));
  CHECK(row.phase == "expand");
  // Blank lines stand in for the five lines above the down section.
  CHECK(*row.down_source == "\n\n\n\n\nDROP TABLE users;\n");
  CHECK(row.success);
  CHECK(*row.run_id == 42);
  CHECK(row.hoist_version == HOIST_VERSION);
  CHECK(row.applied_at.size() == 24);
  CHECK(row.duration_ms >= 0);
  CHECK(row.applied_by == db::DefaultOperator());
  CHECK(row.cls == "additive");

  // Nothing left: a second up is a no-op.
  auto again = db::Up(*c, m.path(), expand, env);
  CHECK(again.applied.empty());
  CHECK(*again.from == 10);

  // Roll everything back: the schema is what it was before.
  auto d = db::Down(*c, {.steps = 3}, env);
  REQUIRE(d.rolled_back.size() == 3);
  CHECK(d.rolled_back[0].file == "0010_add_index.sql");
  CHECK(d.rolled_back[2].file == "0001_create_users.sql");
  CHECK(*d.from == 10);
  CHECK_FALSE(d.to);
  CHECK(AppFingerprint(*c) == empty_fp);
  CHECK(db::Status(*c, m.path()).Count("pending") == 3);

  // Re-apply: the same schema again.
  db::Up(*c, m.path(), expand, env);
  CHECK(AppFingerprint(*c) == full_fp);
  CHECK(Scalar(*c, "SELECT name FROM users WHERE id = 1") == "ada");

  // down to = 1 leaves only the first.
  auto d2 = db::Down(*c, {.to = 1}, env);
  CHECK(d2.rolled_back.size() == 2);
  CHECK(*d2.to == 1);
  CHECK_FALSE(HasColumn(*c, "users", "email"));
  CHECK(*db::Status(*c, m.path()).current == 1);

  // up to = 2 stops there.
  db::UpOptions to2;
  to2.to = 2;
  auto r2 = db::Up(*c, m.path(), to2, env);
  CHECK(r2.applied.size() == 1);
  CHECK(*r2.to == 2);

  // dry runs change nothing and show the SQL.
  db::UpOptions dry;
  dry.dry_run = true;
  std::vector<std::string> lines;
  env.log = [&](const std::string& l) { lines.push_back(l); };
  auto plan = db::Up(*c, m.path(), dry, env);
  CHECK(plan.dry_run);
  REQUIRE(plan.plan.size() == 1);
  CHECK(plan.plan[0]["statements"][0] == "CREATE INDEX users_email ON users (email)");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "-- apply 0010_add_index.sql\nCREATE INDEX users_email ON users (email);\n");
  auto dplan = db::Down(*c, {.steps = 1, .dry_run = true}, env);
  CHECK(dplan.plan[0]["statements"][0] == "ALTER TABLE users DROP COLUMN email");
  CHECK(*db::Status(*c, m.path()).current == 2);
  CHECK(HasColumn(*c, "users", "email"));
}

// ---- a changed file: validate detects it, up refuses it, repair accepts it --

// A string literal that spans lines is data: blanks at the end of its lines
// reach the database as written, up and (stored) down alike, as diesel, psql
// and sqlite3 run the file. Found by tests/tools/diesel-history-check on
// Plume's SQLite history (a CREATE TABLE line ending in blanks).
inline void CaseSectionsVerbatim(const Backend& b) {
  auto c = OpenDb(b.fresh_url());
  Migs m;
  m.Write("0001_notes.sql",
          "-- hoist:up\n"
          "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n"
          "INSERT INTO notes (id, body) VALUES (1, 'two spaces  \n\ta tab\t\nend');\n"
          "-- hoist:down\n"
          "DROP TABLE notes;\n");
  m.Write("0002_more.sql",
          "-- hoist:up   \n"
          "DELETE FROM notes WHERE id = 2;\n"
          "-- hoist:down\t\n"
          "INSERT INTO notes (id, body) VALUES (2, 'down  \nend');\n");
  db::Up(*c, m.path(), Any());
  CHECK(Scalar(*c, "SELECT body FROM notes WHERE id = 1") == "two spaces  \n\ta tab\t\nend");
  m.Clear();  // the down runs from the stored source
  db::DownOptions d;
  d.steps = 1;
  CHECK(*db::Down(*c, d, {}).to == 1);
  CHECK(Scalar(*c, "SELECT body FROM notes WHERE id = 2") == "down  \nend");
}

inline void CaseChangedFile(const Backend& b) {
  auto c = OpenDb(b.fresh_url());
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  db::Up(*c, m.path(), Any());

  // Another editor: CRLF line ends and trailing blanks are not a change.
  std::string crlf;
  for (char ch : std::string(kAddEmail)) crlf += ch == '\n' ? std::string("  \r\n") : std::string(1, ch);
  m.Write("0002_add_email.sql", crlf + "\r\n\r\n");
  CHECK(db::Validate(*c, m.path()).Count("applied") == 2);

  // A real edit is.
  const std::string edited = std::string(kAddEmail) + "-- and a note\n";
  m.Write("0002_add_email.sql", edited);
  m.Write("0003_add_index.sql", kAddIndex);
  auto st = db::Status(*c, m.path());
  CHECK(st.Labels("changed") == std::vector<std::string>{"0002_add_email.sql"});
  const auto& e = Entry(st, 2);
  const std::string expected = fmt::format(
      "0002_add_email.sql was changed after it was applied (applied {} with checksum {}, the file now has {}): "
      "restore the file as applied, or accept the change with migrate.repair(db, {{ dir = ..., reason = \"...\" }})",
      e.applied->applied_at, e.applied->checksum.substr(0, 12), db::NormalizedChecksum(edited).substr(0, 12));
  auto err = CatchError([&] { db::Validate(*c, m.path()); });
  CHECK(err.area() == "migrate");
  CHECK(err.code() == "changed");
  CHECK(err.message() == expected);
  db::ValidateOptions lenient;
  lenient.allow_changed = true;
  CHECK(db::Validate(*c, m.path(), lenient).Count("changed") == 1);

  auto up_err = CatchError([&] { db::Up(*c, m.path(), Any()); });
  CHECK(up_err.code() == "changed");
  CHECK(up_err.message() == expected);
  CHECK_FALSE(HasTable(*c, "nothing"));
  CHECK(*db::Status(*c, m.path()).current == 2);  // 0003 was not applied

  // Repair needs a reason, then accepts the file as the truth.
  CHECK(CatchError([&] { db::Repair(*c, {.dir = m.path()}); }).message() ==
        "repair needs a reason: it is recorded with the migration and in the journal");
  db::MigrateEnv env;
  env.applied_by = "ops@host1";
  auto rep = db::Repair(*c, {.dir = m.path(), .reason = "comment added after the fact"}, env);
  CHECK(rep.accepted == std::vector<std::string>{"0002_add_email.sql"});
  auto st2 = db::Validate(*c, m.path());
  const auto& row = *Entry(st2, 2).applied;
  CHECK(row.checksum == db::NormalizedChecksum(edited));
  CHECK(row.reason == "comment added after the fact");
  CHECK(row.repaired_by == "ops@host1");
  CHECK(row.repaired_at.size() == 24);
  CHECK(db::Up(*c, m.path(), Any()).applied.size() == 1);
}

// ---- down works after the files are gone; a missing down is refused ----------

inline void CaseDownWithoutFiles(const Backend& b) {
  auto c = OpenDb(b.fresh_url());
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  m.Write("0003_backfill.sql", "UPDATE users SET email = name || '@example.com';\n");
  m.Write("0004_add_index.sql", kAddIndex);
  db::Up(*c, m.path(), Any());
  const std::string fp2 = [&] {
    auto c2 = OpenDb(b.fresh_url());
    Migs m2;
    m2.Write("0001_create_users.sql", kCreateUsers);
    m2.Write("0002_add_email.sql", kAddEmail);
    db::Up(*c2, m2.path(), Any());
    return AppFingerprint(*c2);
  }();

  // The code rollback removed the files.
  m.Clear();
  auto st = db::Status(*c, m.path());
  CHECK(st.Labels("missing") ==
        std::vector<std::string>{"0001_create_users.sql", "0002_add_email.sql", "0003_backfill.sql",
                                 "0004_add_index.sql"});
  auto miss = CatchError([&] { db::Validate(*c, m.path()); });
  CHECK(miss.code() == "missing");
  CHECK(miss.message().rfind("4 problems with the migration history: 0001_create_users.sql is applied (since ", 0) ==
        0);

  // Rolling back 0004 works from its stored down; 0003 has none: refused
  // before anything runs, naming it.
  auto err = CatchError([&] { db::Down(*c, {.steps = 2}); });
  CHECK(err.code() == "no_down");
  CHECK(err.message() == fmt::format("cannot roll back 0003_backfill.sql: it has no '-- hoist:down' section (none "
                                     "was stored when it was applied on {}); nothing was rolled back",
                                     Entry(st, 3).applied->applied_at));
  CHECK(*db::Status(*c, m.path()).current == 4);
  auto d = db::Down(*c, {.steps = 1});
  CHECK(d.rolled_back[0].file == "0004_add_index.sql");
  CHECK(*d.to == 3);
  // Past the backfill by hand: drop its record, then 0002 down works.
  c->Exec("DELETE FROM hoist_schema_migrations WHERE version = 3");
  auto d2 = db::Down(*c, {.to = 1});
  CHECK(d2.rolled_back.size() == 1);
  CHECK_FALSE(HasColumn(*c, "users", "email"));
  CHECK(db::Status(*c, m.path()).Labels("missing") == std::vector<std::string>{"0001_create_users.sql"});
  (void)fp2;

  auto none = OpenDb(b.fresh_url());
  CHECK(CatchError([&] { db::Down(*none, {}); }).code() == "not_tracked");
  CHECK(CatchError([&] { db::Down(*c, {.steps = 5}); }).message() ==
        "cannot roll back 5 migrations: only 1 is applied");
}

// ---- a failing migration leaves the previous version, recorded as failed ----

inline void CaseFailingMigration(const Backend& b) {
  auto c = OpenDb(b.fresh_url());
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  const std::string bad =
      "-- hoist:up\n"
      "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n"
      "\n"
      "INSERT INTO no_such_table VALUES (1);\n"
      "-- hoist:down\n"
      "DROP TABLE audit;\n";
  m.Write("0003_audit.sql", bad);
  m.Write("0004_later.sql", "CREATE TABLE later (id INTEGER);\n");
  const std::string fp_before = [&] {
    auto c2 = OpenDb(b.fresh_url());
    Migs m2;
    m2.Write("0001_create_users.sql", kCreateUsers);
    m2.Write("0002_add_email.sql", kAddEmail);
    db::Up(*c2, m2.path(), Any());
    return AppFingerprint(*c2);
  }();
  std::vector<std::string> events;
  db::MigrateEnv env;
  env.on_event = [&](const db::MigrationEvent& e) { events.push_back(e.action + " " + e.file); };
  auto err = CatchError([&] { db::Up(*c, m.path(), Any(), env); });
  CHECK(err.area() == "migrate");
  CHECK(err.code() == "failed");
  std::string db_error = b.pg() ? "relation \"no_such_table\" does not exist (at line 1, column 13: INSERT INTO "
                                  "no_such_table VALUES (1)) [SQLSTATE 42P01]"
                                : "no such table: no_such_table";
  CHECK(err.message() == "0003_audit.sql failed at statement 2 (line 4: INSERT INTO no_such_table VALUES (1)): " +
                             db_error +
                             ". It was rolled back and recorded as failed; the database is at version 2");
  CHECK(events == std::vector<std::string>{"apply 0001_create_users.sql", "apply 0002_add_email.sql",
                                           "fail 0003_audit.sql"});
  // The first statement was rolled back with it.
  CHECK_FALSE(HasTable(*c, "audit"));
  CHECK(AppFingerprint(*c) == fp_before);
  auto st = db::Status(*c, m.path());
  CHECK(*st.current == 2);
  CHECK(st.Labels("failed") == std::vector<std::string>{"0003_audit.sql"});
  CHECK(st.Labels("pending") == std::vector<std::string>{"0004_later.sql"});
  const auto& row = *Entry(st, 3).applied;
  CHECK_FALSE(row.success);
  CHECK(row.error == err.message());
  CHECK(st.Text().find("error: 0003_audit.sql failed at statement 2") != std::string::npos);

  // Fixed, it applies on the next up and replaces the failure record.
  m.Write("0003_audit.sql",
          "-- hoist:up\nCREATE TABLE audit (id INTEGER PRIMARY KEY);\n-- hoist:down\nDROP TABLE audit;\n");
  auto r = db::Up(*c, m.path(), Any());
  CHECK(r.applied.size() == 2);
  auto st2 = db::Status(*c, m.path());
  CHECK(Entry(st2, 3).applied->success);
  CHECK(Entry(st2, 3).applied->error.empty());
  CHECK(*st2.current == 4);
}

// ---- the expand policy, checked inside each migration's transaction ---------

inline void CaseExpandPolicy(const Backend& b) {
  auto c = OpenDb(b.fresh_url());
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  const std::string drop =
      "-- hoist:up\n"
      "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n"
      "ALTER TABLE users DROP COLUMN email;\n"
      "-- hoist:down\n"
      "ALTER TABLE users ADD COLUMN email TEXT;\nDROP TABLE notes;\n";
  m.Write("0003_drop_email.sql", drop);
  db::UpOptions expand;
  auto err = CatchError([&] { db::Up(*c, m.path(), expand); });
  CHECK(err.code() == "refused");
  CHECK(err.message() ==
        "0003_drop_email.sql is destructive (drop column users.email: its data is deleted, and the previous version "
        "still reads it) at statement 2 (line 3: ALTER TABLE users DROP COLUMN email); policy expand refuses it. "
        "Declare it '-- hoist:phase contract' and apply it with allow_contract = true once the previous version is "
        "gone, or split it into an expand and a contract migration. It was rolled back; the database is at version "
        "2");
  CHECK(HasColumn(*c, "users", "email"));
  CHECK_FALSE(HasTable(*c, "notes"));
  auto st = db::Status(*c, m.path());
  CHECK(*st.current == 2);
  CHECK(st.Labels("pending") == std::vector<std::string>{"0003_drop_email.sql"});  // refused is not failed

  // Declared contract: still refused without allow_contract, before running.
  m.Write("0003_drop_email.sql", "-- hoist:phase contract\n" + drop);
  CHECK(CatchError([&] { db::Up(*c, m.path(), expand); }).message() ==
        "0003_drop_email.sql is declared '-- hoist:phase contract': policy expand applies it only with "
        "allow_contract = true, once the previous version of the app is gone. Nothing of it was applied; the "
        "database is at version 2");
  db::UpOptions contract;
  contract.allow_contract = true;
  auto r = db::Up(*c, m.path(), contract);
  REQUIRE(r.applied.size() == 1);
  CHECK(r.applied[0].cls == "destructive");
  CHECK_FALSE(HasColumn(*c, "users", "email"));

  // A rename is incompatible; policy any lets it through.
  m.Write("0004_rename.sql", "ALTER TABLE users RENAME COLUMN name TO full_name;\n");
  auto ren = CatchError([&] { db::Up(*c, m.path(), expand); });
  CHECK(ren.message().rfind("0004_rename.sql is incompatible (rename column users.name to full_name: the previous "
                            "version still uses the old name) at statement 1 (line 1: ALTER TABLE users RENAME "
                            "COLUMN name TO full_name); policy expand refuses it.",
                            0) == 0);
  CHECK(db::Up(*c, m.path(), Any()).applied.size() == 1);
  CHECK(HasColumn(*c, "users", "full_name"));

  // A no-transaction migration is judged by its text before it runs.
  m.Write("0005_drop_notes.sql", "-- hoist:no-transaction\n-- hoist:up\nDROP TABLE notes;\n");
  CHECK(CatchError([&] { db::Up(*c, m.path(), expand); }).message() ==
        "0005_drop_notes.sql is destructive (drop table notes: its data is deleted) at statement 1 (line 3: DROP "
        "TABLE notes); policy expand refuses it: a no-transaction migration cannot be checked and rolled back, so "
        "its text decides. Declare it '-- hoist:phase contract' and apply it with allow_contract = true once the "
        "previous version is gone. Nothing of it was applied; the database is at version 4");
  CHECK(HasTable(*c, "notes"));
  // A wrong declaration is named too.
  m.Write("0005_drop_notes.sql", "-- hoist:phase expand\n-- hoist:up\nDROP TABLE notes;\n");
  CHECK(CatchError([&] { db::Up(*c, m.path(), expand); }).message() ==
        "0005_drop_notes.sql is destructive (drop table notes: its data is deleted) at statement 1 (line 3: DROP "
        "TABLE notes), although it is declared expand; policy expand refuses it. Declare it '-- hoist:phase "
        "contract' and apply it with allow_contract = true once the previous version is gone, or split it into an "
        "expand and a contract migration. It was rolled back; the database is at version 4");
  CHECK(CatchError([&] {
          db::UpOptions bad;
          bad.policy = "expnd";
          db::Up(*c, m.path(), bad);
        }).message() == "unknown policy 'expnd' (expected \"expand\" or \"any\")");
}

// ---- baseline and imports of other trackers -------------------------------------

inline void CaseBaseline(const Backend& b) {
  // A database that predates hoist: the schema of 0001 and 0002 is there.
  auto c = OpenDb(b.fresh_url());
  c->Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)");
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  m.Write("0003_add_index.sql", kAddIndex);
  CHECK(CatchError([&] { db::Baseline(*c, {}); }).message() ==
        "baseline needs either a version or import = \"efcore\" | \"alembic\" | \"table\"");
  db::MigrateEnv env;
  std::vector<std::string> events;
  env.on_event = [&](const db::MigrationEvent& e) { events.push_back(e.action + " " + e.file); };
  auto r = db::Baseline(*c, {.version = 2, .dir = m.path(), .reason = "adopting hoist"}, env);
  CHECK(*r.baseline == 2);
  CHECK(events == std::vector<std::string>{"baseline 0002_add_email.sql"});
  auto st = db::Status(*c, m.path());
  CHECK(*st.current == 2);
  CHECK(*st.baseline == 2);
  CHECK(st.Labels("baseline") == std::vector<std::string>{"0001_create_users.sql", "0002_add_email.sql"});
  CHECK(st.Labels("pending") == std::vector<std::string>{"0003_add_index.sql"});
  CHECK(Entry(st, 2).applied->reason == "adopting hoist (baseline)");
  db::Validate(*c, m.path());
  CHECK(db::Up(*c, m.path(), Any()).applied.size() == 1);
  CHECK(CatchError([&] { db::Baseline(*c, {.version = 5}); }).code() == "already_tracked");
  auto err = CatchError([&] { db::Down(*c, {.steps = 2}); });
  CHECK(err.code() == "baseline");
  CHECK(err.message().rfind("cannot roll back 0002_add_email.sql: it is the baseline (recorded ", 0) == 0);
  CHECK(db::Down(*c, {.steps = 1}).rolled_back.size() == 1);
}

inline void CaseImports(const Backend& b) {
  // EF Core's __EFMigrationsHistory, with the scripts saved under the same ids.
  {
    auto c = OpenDb(b.fresh_url());
    c->Exec("CREATE TABLE \"__EFMigrationsHistory\" (\"MigrationId\" varchar(150) PRIMARY KEY, "
            "\"ProductVersion\" varchar(32) NOT NULL)");
    c->Exec("INSERT INTO \"__EFMigrationsHistory\" VALUES ('20240101120000_Init', '8.0.0'), "
            "('20240102090000_AddEmail', '8.0.0')");
    c->Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)");
    Migs m;
    m.Write("20240101120000_Init.sql", kCreateUsers);
    m.Write("20240102090000_AddEmail.sql", kAddEmail);
    m.Write("20240103080000_AddIndex.sql", kAddIndex);
    auto r = db::Baseline(*c, {.dir = m.path(), .import = "efcore"});
    CHECK(r.source == "__EFMigrationsHistory");
    CHECK(r.recorded.size() == 2);
    auto st = db::Status(*c, m.path());
    CHECK(st.Count("applied") == 2);
    CHECK(st.Labels("pending") == std::vector<std::string>{"20240103080000_AddIndex.sql"});
    CHECK(Entry(st, 20240102090000).applied->reason == "imported from __EFMigrationsHistory 20240102090000_AddEmail");
    CHECK(db::Up(*c, m.path(), Any()).applied.size() == 1);
    // Imported migrations keep their down: rolling back works.
    CHECK(db::Down(*c, {.steps = 2}).rolled_back.size() == 2);
    CHECK_FALSE(HasColumn(*c, "users", "email"));
  }
  // An id without a file is refused, naming it.
  {
    auto c = OpenDb(b.fresh_url());
    c->Exec("CREATE TABLE \"__EFMigrationsHistory\" (\"MigrationId\" varchar(150) PRIMARY KEY, "
            "\"ProductVersion\" varchar(32) NOT NULL)");
    c->Exec("INSERT INTO \"__EFMigrationsHistory\" VALUES ('20240101120000_Init', '8.0.0')");
    Migs m;
    m.Write("20240102090000_AddEmail.sql", kAddEmail);
    CHECK(CatchError([&] { db::Baseline(*c, {.dir = m.path(), .import = "efcore"}); }).message() ==
          "__EFMigrationsHistory lists 20240101120000_Init that has no file in " + m.path() +
              ": add the file (named with the same number), or baseline by version");
    CHECK(db::Status(*c, m.path()).Count("applied") == 0);
  }
  // Alembic keeps only the head revision: it becomes the baseline.
  {
    auto c = OpenDb(b.fresh_url());
    c->Exec("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)");
    c->Exec("INSERT INTO alembic_version VALUES ('b2c3d4e5f6a7')");
    c->Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)");
    Migs m;
    m.Write("0001_a1b2c3d4e5f6_create_users.sql", kCreateUsers);
    m.Write("0002_b2c3d4e5f6a7_add_email.sql", kAddEmail);
    m.Write("0003_c3d4e5f6a7b8_add_index.sql", kAddIndex);
    auto r = db::Baseline(*c, {.dir = m.path(), .import = "alembic"});
    CHECK(*r.baseline == 2);
    auto st = db::Status(*c, m.path());
    CHECK(st.Count("baseline") == 2);
    CHECK(st.Labels("pending") == std::vector<std::string>{"0003_c3d4e5f6a7b8_add_index.sql"});
    CHECK(Entry(st, 2).applied->reason == "imported from alembic_version b2c3d4e5f6a7");
    auto none = OpenDb(b.fresh_url());
    none->Exec("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)");
    none->Exec("INSERT INTO alembic_version VALUES ('ffff')");
    CHECK(CatchError([&] { db::Baseline(*none, {.dir = m.path(), .import = "alembic"}); }).message() ==
          "alembic_version says revision ffff but no file in " + m.path() +
              " names it: rename the file that corresponds to it NNNN_ffff_<name>.sql, or baseline by version");
  }
  // A plain table of names (the TimeTracking team's `migrations`).
  {
    auto c = OpenDb(b.fresh_url());
    c->Exec("CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, run_at TEXT)");
    c->Exec("INSERT INTO migrations (id, name) VALUES (1, '001_create_users.sql'), (2, '002_add_email.sql')");
    c->Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)");
    Migs m;
    m.Write("001_create_users.sql", kCreateUsers);
    m.Write("002_add_email.sql", kAddEmail);
    m.Write("003_add_index.sql", kAddIndex);
    auto r = db::Baseline(*c, {.dir = m.path(), .import = "table"});
    CHECK(r.source == "migrations");
    CHECK(r.recorded.size() == 2);
    auto st = db::Validate(*c, m.path());
    CHECK(st.Count("applied") == 2);
    CHECK(st.Labels("pending") == std::vector<std::string>{"003_add_index.sql"});
    CHECK(CatchError([&] { db::Baseline(*c, {.dir = m.path(), .import = "flyway"}); }).message() ==
          "unknown import 'flyway' (expected \"efcore\", \"alembic\" or \"table\")");
  }
}

// ---- lint by rehearsal: a matrix of statement kinds -------------------------------

struct LintCase {
  const char* name;
  std::string sql;       // the up section
  const char* cls;       // expected class
  const char* what;      // expected first change ("" = no schema change)
  bool no_tx = false;
};

/// The base schema each case starts from, with data (duplicate emails, NULLs).
inline void LintBase(Connection& c, bool pg) {
  c.Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, age INTEGER)");
  c.Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total INTEGER)");
  c.Exec("CREATE INDEX orders_user ON orders (user_id)");
  c.Exec("CREATE VIEW adults AS SELECT id, name FROM users WHERE age >= 18");
  c.Exec("INSERT INTO users (id, name, email, age) VALUES (1, 'ada', 'a@x', 36), (2, 'bob', 'a@x', NULL), "
         "(3, 'cy', NULL, 20)");
  c.Exec("INSERT INTO orders (id, user_id, total) VALUES (1, 1, 10), (2, 2, 20)");
  if (pg) {
    c.Exec("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$");
    c.Exec("CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()");
  } else {
    c.Exec("CREATE TRIGGER orders_touch AFTER UPDATE ON orders BEGIN SELECT 1; END");
  }
}

inline std::vector<LintCase> LintMatrix(bool pg) {
  std::vector<LintCase> v = {
      {"create table", "CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT);", "additive", "create table tags"},
      {"drop table", "DROP TABLE orders;", "destructive", "drop table orders"},
      {"rename table", "ALTER TABLE orders RENAME TO purchases;", "incompatible", "rename table orders to purchases"},
      {"add nullable column", "ALTER TABLE users ADD COLUMN nick TEXT;", "additive", "add column users.nick"},
      {"add defaulted NOT NULL column", "ALTER TABLE users ADD COLUMN active INTEGER NOT NULL DEFAULT 1;",
       "additive", "add column users.active"},
      {"drop column", "ALTER TABLE users DROP COLUMN email;", "destructive", "drop column users.email"},
      {"rename column", "ALTER TABLE users RENAME COLUMN email TO mail;", "incompatible",
       "rename column users.email to mail"},
      {"drop and re-add column of the same shape", "ALTER TABLE orders DROP COLUMN total;\nALTER TABLE orders ADD "
       "COLUMN amount INTEGER;", "incompatible", "rename column orders.total to amount"},
      {"unique index on existing column", "CREATE UNIQUE INDEX users_name ON users (name);", "incompatible",
       "add unique index users_name on users (name)"},
      {"unique index over duplicate data", "CREATE UNIQUE INDEX users_email ON users (email);", "fails-on-data", ""},
      {"create index", "CREATE INDEX users_age ON users (age);", "additive", "create index users_age on users"},
      {"drop index", "DROP INDEX orders_user;", "additive", "drop index orders_user on orders"},
      {"create view", "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 15;", "additive",
       "create view big_orders"},
      {"drop view", "DROP VIEW adults;", "incompatible", "drop view adults"},
      {"drop trigger", pg ? "DROP TRIGGER orders_touch ON orders;" : "DROP TRIGGER orders_touch;", "incompatible",
       "drop trigger orders_touch"},
      {"backfill (data only)", "UPDATE users SET age = 0 WHERE age IS NULL;", "additive", ""},
      {"delete every row", "DELETE FROM orders;", "destructive", "delete every row of orders"},
      {"a statement that fails", "INSERT INTO users (id, name) VALUES (1, 'dup');", "fails-on-data", ""},
  };
  if (pg) {
    v.push_back({"create trigger",
                 "CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();",
                 "additive", "create trigger users_touch"});
    v.push_back({"add NOT NULL column without default over rows",
                 "CREATE TABLE t (id int);\nALTER TABLE orders ADD COLUMN code TEXT NOT NULL;", "fails-on-data", ""});
    v.push_back({"add NOT NULL column without default on an empty table",
                 "DELETE FROM orders WHERE id > 0;\nALTER TABLE orders ADD COLUMN code TEXT NOT NULL;",
                 "incompatible", "add NOT NULL column orders.code without a default"});
    v.push_back({"type change", "ALTER TABLE orders ALTER COLUMN total TYPE bigint;", "incompatible",
                 "change type of column orders.total (integer -> bigint)"});
    v.push_back({"NOT NULL on a column without NULLs", "ALTER TABLE orders ALTER COLUMN total SET NOT NULL;",
                 "incompatible",
                 "add NOT NULL to existing column orders.total"});
    v.push_back({"NOT NULL over NULL data", "ALTER TABLE users ALTER COLUMN age SET NOT NULL;", "fails-on-data", ""});
    v.push_back({"drop NOT NULL", "ALTER TABLE users ALTER COLUMN name DROP NOT NULL;", "additive",
                 "drop NOT NULL from column users.name"});
    v.push_back({"UNIQUE constraint over duplicates", "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
                 "fails-on-data", ""});
    v.push_back({"foreign key on an existing column",
                 "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);",
                 "incompatible", "add foreign key (user_id) -> users(id) on orders"});
    v.push_back({"truncate", "TRUNCATE orders;", "destructive", "truncate orders"});
    v.push_back({"create index concurrently", "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);", "additive",
                 "create index users_name_idx on users", true});
  } else {
    v.push_back({"create trigger", "CREATE TRIGGER users_touch AFTER UPDATE ON users BEGIN SELECT 1; END;",
                 "additive", "create trigger users_touch"});
    v.push_back({"add NOT NULL column without default", "ALTER TABLE orders ADD COLUMN code TEXT NOT NULL;",
                 "fails-on-data", ""});
    const char* rebuild_tail =
        "INSERT INTO orders_new SELECT {} FROM orders;\nDROP TABLE orders;\nALTER TABLE orders_new RENAME TO orders;\n"
        "CREATE INDEX orders_user ON orders (user_id);\nCREATE TRIGGER orders_touch AFTER UPDATE ON orders BEGIN "
        "SELECT 1; END;";
    auto rebuild = [&](const char* create, const char* cols) {
      return std::string(create) + "\n" + fmt::format(fmt::runtime(rebuild_tail), cols);
    };
    v.push_back({"table rebuild that loses a column",
                 rebuild("CREATE TABLE orders_new (id INTEGER PRIMARY KEY, user_id INTEGER);", "id, user_id"),
                 "destructive", "drop column orders.total"});
    v.push_back({"table rebuild that keeps every column",
                 rebuild("CREATE TABLE orders_new (id INTEGER PRIMARY KEY, user_id INTEGER, total INTEGER DEFAULT 0);",
                         "id, user_id, total"),
                 "additive", "change the default of column orders.total"});
    v.push_back({"type change (rebuild)",
                 rebuild("CREATE TABLE orders_new (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL);",
                         "id, user_id, total"),
                 "incompatible", "change type of column orders.total (integer -> real)"});
    v.push_back({"NOT NULL added (rebuild)",
                 rebuild("CREATE TABLE orders_new (id INTEGER PRIMARY KEY, user_id INTEGER, total INTEGER NOT NULL);",
                         "id, user_id, total"),
                 "incompatible", "add NOT NULL to existing column orders.total"});
    v.push_back({"NOT NULL over NULL data (rebuild)",
                 "CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, age INTEGER NOT "
                 "NULL);\nINSERT INTO users_new SELECT * FROM users;\nDROP VIEW adults;\nDROP TABLE users;\n"
                 "ALTER TABLE users_new RENAME TO users;",
                 "fails-on-data", ""});
    v.push_back({"foreign key added (rebuild)",
                 rebuild("CREATE TABLE orders_new (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), "
                         "total INTEGER);",
                         "id, user_id, total"),
                 "incompatible", "add foreign key (user_id) -> users(id) on orders"});
  }
  return v;
}

inline void CaseLintMatrix(const Backend& b) {
  auto cases = LintMatrix(b.pg());
  CHECK(cases.size() >= 24);
  for (const auto& lc : cases) {
    CAPTURE(lc.name);
    auto c = OpenDb(b.fresh_url());
    LintBase(*c, b.pg());
    const std::string fp = AppFingerprint(*c);
    Migs m;
    m.Write("0001_change.sql", std::string(lc.no_tx ? "-- hoist:no-transaction\n" : "") + "-- hoist:up\n" + lc.sql + "\n");
    auto report = db::Lint(*c, m.path());
    REQUIRE(report.migrations.size() == 1);
    const auto& lm = report.migrations[0];
    CHECK(std::string(lm.rehearsed ? db::ClassName(lm.cls) : "not-rehearsed") == lc.cls);
    if (std::string(lc.cls) == "fails-on-data") {
      CHECK(lm.statement >= 1);
      CHECK_FALSE(lm.error.empty());
    } else if (std::string(lc.what).empty()) {
      CHECK(lm.classification.changes.empty());
    } else {
      REQUIRE_FALSE(lm.classification.changes.empty());
      CHECK(lm.classification.changes.front().what == lc.what);
    }
    // The real database is only read.
    CHECK(AppFingerprint(*c) == fp);
    CHECK_FALSE(HasTable(*c, "hoist_schema_migrations"));
  }
}

/// Lint's verdicts: declared phase vs measured class, fails-on-data naming
/// the statement, and rehearsal stopping after a failure.
inline void CaseLintReport(const Backend& b) {
  auto c = OpenDb(b.fresh_url());
  LintBase(*c, b.pg());
  Migs m;
  m.Write("0001_add_nick.sql", "-- hoist:phase expand\n-- hoist:up\nALTER TABLE users ADD COLUMN nick TEXT;\n");
  m.Write("0002_drop_total.sql", "-- hoist:phase expand\n-- hoist:up\nALTER TABLE orders DROP COLUMN total;\n");
  m.Write("0003_drop_nick.sql", "-- hoist:up\nALTER TABLE users DROP COLUMN nick;\n");
  m.Write("0004_index.sql", "-- hoist:phase contract\n-- hoist:up\nCREATE INDEX users_name_idx ON users (name);\n");
  m.Write("0005_unique_email.sql", "-- hoist:up\nCREATE TABLE x (id INTEGER);\n\nCREATE UNIQUE INDEX users_email ON "
                                   "users (email);\n");
  m.Write("0006_after.sql", "-- hoist:up\nCREATE TABLE after_failure (id INTEGER);\n");
  auto r = db::Lint(*c, m.path());
  CHECK_FALSE(r.ok());
  REQUIRE(r.migrations.size() == 6);
  CHECK(r.migrations[0].problems.empty());
  CHECK(r.migrations[1].problems ==
        std::vector<std::string>{"0002_drop_total.sql is declared expand but is destructive (drop column "
                                 "orders.total: its data is deleted, and the previous version still reads it)"});
  CHECK(r.migrations[2].problems ==
        std::vector<std::string>{"0003_drop_nick.sql is destructive (drop column users.nick: its data is deleted, "
                                 "and the previous version still reads it) but not declared '-- hoist:phase "
                                 "contract': policy expand will refuse it"});
  CHECK(r.migrations[3].warnings ==
        std::vector<std::string>{"0004_index.sql is declared contract but measures additive: nothing in the schema "
                                 "that the previous version could trip on (keep contract if it removes data the "
                                 "schema does not show)"});
  const auto& f = r.migrations[4];
  CHECK(f.cls == db::MigrationClass::kFailsOnData);
  CHECK(f.statement == 2);
  CHECK(f.line == 4);
  CHECK(f.sql == "CREATE UNIQUE INDEX users_email ON users (email)");
  std::string db_error = b.pg() ? "could not create unique index \"users_email\" [SQLSTATE 23505]"
                                : "UNIQUE constraint failed: users.email";
  CHECK(f.error.rfind(db_error.substr(0, 30), 0) == 0);
  REQUIRE(f.problems.size() == 1);
  CHECK(f.problems[0].rfind("0005_unique_email.sql fails on the data at statement 2 (line 4: CREATE UNIQUE INDEX "
                            "users_email ON users (email)): ",
                            0) == 0);
  CHECK_FALSE(r.migrations[5].rehearsed);
  CHECK(r.migrations[5].warnings ==
        std::vector<std::string>{"0006_after.sql was not rehearsed: an earlier migration failed"});
  CHECK(r.problems.size() == 3);
  CHECK(r.Text().find("0002_drop_total.sql    destructive    expand    drop column orders.total\n") !=
        std::string::npos);
}

// ---- several migrator processes (the real hoist binary) ----------------------

/// A project dir with the playbook every migrator process runs.
struct MigratorProject {
  TempDir dir{"migproj"};
  MigratorProject() {
    WriteFile(dir / "playbooks/mig.lua", R"lua(local hoist = require "hoist"
local db = require "hoist.db"
local migrate = require "hoist.migrate"
return hoist.playbook {
  name = "mig", version = "1.0.0", summary = "apply pending migrations", lock = false,
  params = {
    url = { type = "string", required = true },
    dir = { type = "string", required = true },
    ttl = { type = "number", default = 60 },
  },
  run = function(run, p)
    local c <close> = db.open(p.url)
    local r = migrate.up(c, p.dir, { policy = "any", lock_timeout = 120, lock_ttl = p.ttl })
    print(string.format("applied %d skipped %d", #r.applied, #r.skipped))
  end,
}
)lua");
  }
  std::vector<std::string> Args(const std::string& url, const std::string& migs, double ttl = 60) const {
    return {"run", "mig", "-e", "url=" + url, "-e", "dir=" + migs, "-e", fmt::format("ttl={}", ttl)};
  }
};

/// Starts hoist in the background (output to log); returns its pid.
inline pid_t SpawnHoist(const std::string& cwd, const std::vector<std::string>& args,
                        const std::map<std::string, std::string>& env, const std::string& log) {
  std::vector<std::string> argv = {HOIST_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::setenv("NO_COLOR", "1", 1);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  return pid;
}

/// Every migration applied exactly once by N processes started together;
/// none fails, none deadlocks. `extra` adds engine-specific migrations.
inline void CaseConcurrentProcesses(const Backend& b, const std::vector<std::pair<std::string, std::string>>& extra) {
  const std::string url = b.fresh_url();
  Migs m;
  m.Write("0001_create.sql",
          "CREATE TABLE applied_log (v INTEGER NOT NULL);\nCREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n"
          "INSERT INTO applied_log VALUES (1);\n");
  for (int v = 2; v <= 6; ++v) {
    m.Write(fmt::format("{:04}_step.sql", v), fmt::format("INSERT INTO applied_log VALUES ({});\n", v));
  }
  // A slow Lua data migration keeps the others waiting for the lock.
  m.Write("0007_slow.lua", R"lua(local time = require "hoist.time"
return {
  up = function(db)
    db:exec("INSERT INTO users (id, name) SELECT v, 'user' || v FROM applied_log")
    time.sleep(0.5)
    db:exec("INSERT INTO applied_log VALUES (7)")
  end,
  down = function(db) db:exec("DELETE FROM users") end,
}
)lua");
  int expected = 7;
  for (const auto& [file, text] : extra) {
    m.Write(file, text);
    ++expected;
  }
  m.Write("0099_last.sql", "INSERT INTO applied_log VALUES (99);\n");
  ++expected;
  const int kProcs = 4;
  std::vector<MigratorProject> projects(kProcs);
  std::vector<sys::ProcessResult> results(kProcs);
  std::vector<std::thread> threads;
  for (int i = 0; i < kProcs; ++i) {
    threads.emplace_back([&, i] { results[i] = RunHoist(projects[i].dir.path, projects[i].Args(url, m.path())); });
  }
  for (auto& t : threads) t.join();
  int applied = 0;
  for (const auto& r : results) {
    INFO(r.out);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_FALSE(r.timed_out);
    int a = 0, s = 0;
    auto pos = r.out.find("applied ");
    REQUIRE(pos != std::string::npos);
    std::sscanf(r.out.c_str() + pos, "applied %d skipped %d", &a, &s);
    applied += a;
  }
  CHECK(applied == expected);
  auto c = OpenDb(url);
  auto st = db::Status(*c, m.path());
  CHECK(st.Count("applied") == static_cast<size_t>(expected));
  CHECK(st.Count("failed") == 0);
  // The data migrations ran once each.
  CHECK(Scalar(*c, "SELECT count(*) FROM applied_log") == std::to_string(expected - static_cast<int>(extra.size())));
  CHECK(Scalar(*c, "SELECT count(DISTINCT v) FROM applied_log") ==
        std::to_string(expected - static_cast<int>(extra.size())));
  CHECK(Scalar(*c, "SELECT count(*) FROM users") == "6");
}

/// SIGKILL in the middle of a migration: the previous version stays, the
/// lock is recoverable, and re-running completes.
inline void CaseKilledMigrator(const Backend& b) {
  const std::string url = b.fresh_url();
  Migs m;
  m.Write("0001_create.sql", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\n");
  m.Write("0002_slow.lua", R"lua(local time = require "hoist.time"
local fs = require "hoist.fs"
return {
  up = function(db)
    db:exec("INSERT INTO items (id, name) VALUES (1, 'first')")
    local marker = os.getenv("HOIST_TEST_MARKER")
    if marker then
      fs.write_atomic(marker, "started")
      time.sleep(60)
    end
    db:exec("INSERT INTO items (id, name) VALUES (2, 'second')")
  end,
  down = function(db) db:exec("DELETE FROM items") end,
}
)lua");
  MigratorProject project;
  const std::string marker = project.dir / "marker";
  const double ttl = 3;
  pid_t pid = SpawnHoist(project.dir.path, project.Args(url, m.path(), ttl), {{"HOIST_TEST_MARKER", marker}},
                         project.dir / "killed.log");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(marker) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(ReadAll(project.dir / "killed.log"));
  REQUIRE(std::filesystem::exists(marker));
  REQUIRE(::kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  const double killed_at = sys::NowEpoch();

  {
    auto c = OpenDb(url);
    auto st = db::Status(*c, m.path());
    CHECK(*st.current == 1);
    CHECK(st.Labels("pending") == std::vector<std::string>{"0002_slow.lua"});
    CHECK(Scalar(*c, "SELECT count(*) FROM items") == "0");  // its first statement was rolled back
    if (!b.pg()) {
      // The dead holder's lease is still there, naming it, until it expires.
      auto lease = c->Query("SELECT owner, expires_at FROM hoist_locks WHERE name = 'hoist.migrate'");
      REQUIRE(lease.rows.size() == 1);
      CHECK(std::get<std::string>(lease.rows[0][0]).ends_with(":" + std::to_string(pid)));
      CHECK(std::get<double>(lease.rows[0][1]) <= killed_at + ttl);
    }
  }
  // Re-running waits for the lease to expire (SQLite) or finds the lock
  // released with the dead session (PostgreSQL), then completes.
  auto r = RunHoist(project.dir.path, project.Args(url, m.path()));
  INFO(r.out);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("applied 1 skipped 0") != std::string::npos);
  auto c = OpenDb(url);
  CHECK(*db::Status(*c, m.path()).current == 2);
  CHECK(Scalar(*c, "SELECT count(*) FROM items") == "2");
}

}  // namespace hoist::test::migrate
