// Foreign keys during SQLite migrations (issue 16): migrations run with
// foreign keys off, as SQLite's ALTER TABLE procedure prescribes, and are
// checked with PRAGMA foreign_key_check before COMMIT. The histories under
// histories/ model real projects' (see its README): table rebuilds under
// ON DELETE CASCADE and a rename-aside rebuild with child rows, applied up
// and down over populated databases, keep every row raw sqlite3 keeps.
#include <doctest/doctest.h>

#include <filesystem>
#include <mutex>
#include <vector>

#include "core/log.h"
#include "unit/migrate/migrate_cases.h"
#include "sys/process.h"

namespace hoist::test::migrate {
namespace {

namespace fs = std::filesystem;

const std::string kHistories = std::string(HOIST_TEST_DIR) + "/unit/migrate/histories";

/// A copy of one of histories/, with its files up to `upto`.
struct History {
  Migs m;
  History(const std::string& name, int upto) {
    for (const auto& e : fs::directory_iterator(kHistories + "/" + name)) {
      std::string f = e.path().filename();
      if (e.path().extension() == ".sql" && std::stoi(f.substr(0, 4)) <= upto) fs::copy_file(e.path(), m.dir / f);
    }
  }
  void Add(const std::string& name, const std::string& file) const {
    fs::copy_file(kHistories + "/" + name + "/" + file, m.dir / file);
  }
};

std::string Counts(Connection& c, const std::vector<std::string>& tables) {
  std::string out;
  for (const auto& t : tables) out += t + "=" + Scalar(c, "SELECT count(*) FROM " + t) + " ";
  return out;
}

const std::vector<std::string> kBlogTables = {"users", "blogs", "posts", "comments"};

void PopulateBlog(Connection& c) {
  c.Exec("INSERT INTO users VALUES (1, 'ada'), (2, 'grace'), (3, 'linus')");
  c.Exec("INSERT INTO blogs VALUES (1, 1, 'engines'), (2, 2, 'compilers'), (3, 3, 'kernels')");
  c.Exec("INSERT INTO posts (blog_id, body) SELECT b.id, 'post ' || b.id || '-' || n.n FROM blogs b, "
         "(SELECT 1 AS n UNION ALL SELECT 2) n");
  c.Exec("INSERT INTO comments (post_id, author_id, body) SELECT p.id, 1 + p.id % 3, 'nice' FROM posts p");
  c.Exec("INSERT INTO comments (post_id, author_id, body) SELECT p.id, NULL, 'anon' FROM posts p WHERE p.id <= 4");
}

/// What raw sqlite3 (foreign keys off, as its CLI starts) keeps after
/// running the same files' up sections on a copy of db.
std::string RawSqlite3Counts(const std::string& db, const std::string& copy, const std::vector<std::string>& ups,
                             const std::vector<std::string>& tables) {
  fs::copy_file(db, copy, fs::copy_options::overwrite_existing);
  for (const auto& file : ups) {
    std::string text = ReadAll(file);
    std::string up = text.substr(0, text.find("-- hoist:down"));
    sys::ProcessSpec spec;
    spec.argv = {"sqlite3", "-bail", copy};
    spec.stdin_data = up;
    auto r = sys::RunProcess(spec);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  auto c = OpenDb("sqlite://" + copy);
  return Counts(*c, tables);
}

struct Warnings {
  static std::vector<std::string>& Lines() {
    static std::vector<std::string> lines;
    return lines;
  }
  Warnings() {
    Lines().clear();
    log::SetObserver([](void*, log::Level level, std::string_view m) {
      if (level == log::Level::kWarn) Lines().emplace_back(m);
    }, nullptr);
  }
  ~Warnings() { log::SetObserver(nullptr, nullptr); }
};

TEST_SUITE("migrate/foreign_keys") {
  TEST_CASE("table rebuilds under ON DELETE CASCADE keep every child row, up and down") {
    TempDir t("fk");
    const std::string path = t / "blog.db";
    auto c = OpenDb("sqlite://" + path);
    REQUIRE(Scalar(*c, "PRAGMA foreign_keys") == "1");  // hoist's connections enforce them
    History h("blog", 1);
    db::Up(*c, h.m.path(), Any());
    PopulateBlog(*c);
    const std::string before = Counts(*c, kBlogTables);
    REQUIRE(before == "users=3 blogs=3 posts=6 comments=10 ");
    h.Add("blog", "0002_constraints.sql");
    std::string raw = RawSqlite3Counts(path, t / "raw.db", {h.m.dir / "0002_constraints.sql"}, kBlogTables);
    CHECK(raw == before);

    auto up = db::Up(*c, h.m.path(), Any());
    CHECK(up.to == 2);
    CHECK(Counts(*c, kBlogTables) == before);  // with foreign keys on, DROP TABLE users emptied them all
    CHECK(Scalar(*c, "PRAGMA foreign_keys") == "1");  // the connection's setting is back
    CHECK(c->Query("PRAGMA foreign_key_check").rows.empty());
    CHECK(Scalar(*c, "SELECT sql FROM sqlite_master WHERE name = 'users'").find("UNIQUE") != std::string::npos);

    db::DownOptions d;
    d.steps = 1;
    auto down = db::Down(*c, d, {});
    CHECK(down.to == 1);
    CHECK(Counts(*c, kBlogTables) == before);
    CHECK(Scalar(*c, "PRAGMA foreign_keys") == "1");
    // The cascade still works where the application relies on it.
    c->Exec("DELETE FROM users WHERE id = 1");
    CHECK(Scalar(*c, "SELECT count(*) FROM blogs") == "2");
  }

  TEST_CASE("lint by rehearsal rebuilds the same way: no rows vanish in the copy, no false failure") {
    TempDir t("fk");
    auto c = OpenDb("sqlite://" + (t / "blog.db"));
    History h("blog", 1);
    db::Up(*c, h.m.path(), Any());
    PopulateBlog(*c);
    h.Add("blog", "0002_constraints.sql");
    db::LintOptions lo;
    auto report = db::Lint(*c, h.m.path(), lo, {});
    INFO(report.Text());
    REQUIRE(report.migrations.size() == 1);
    CHECK(report.migrations[0].rehearsed);
    CHECK(report.migrations[0].error.empty());
  }

  TEST_CASE("a rename-aside rebuild with child rows applies up and down, references kept") {
    TempDir t("fk");
    const std::string path = t / "vault.db";
    auto c = OpenDb("sqlite://" + path);
    History h("vault", 1);
    db::Up(*c, h.m.path(), Any());
    c->Exec("INSERT INTO users VALUES ('u1', 'a@example.org'), ('u2', 'b@example.org')");
    c->Exec("INSERT INTO ciphers VALUES ('c1', 'u1', 'x'), ('c2', 'u1', 'y'), ('c3', 'u2', 'z')");
    c->Exec("INSERT INTO folders_ciphers VALUES ('c1', 'f1'), ('c3', 'f2')");
    const std::vector<std::string> tables = {"users", "ciphers", "folders_ciphers"};
    const std::string before = Counts(*c, tables);
    h.Add("vault", "0002_ciphers_favorite.sql");
    // Today's SQLite repoints folders_ciphers to oldCiphers on the rename;
    // with foreign keys on, DROP TABLE oldCiphers then failed.
    auto up = db::Up(*c, h.m.path(), Any());
    CHECK(up.to == 2);
    CHECK(Counts(*c, tables) == before);
    CHECK(HasColumn(*c, "ciphers", "favorite"));
    std::string child = Scalar(*c, "SELECT sql FROM sqlite_master WHERE name = 'folders_ciphers'");
    CHECK(child.find("REFERENCES ciphers") != std::string::npos);
    CHECK(child.find("oldCiphers") == std::string::npos);
    CHECK(c->Query("PRAGMA foreign_key_check").rows.empty());
    CHECK(Scalar(*c, "PRAGMA legacy_alter_table") == "0");  // only for that migration

    db::DownOptions d;
    d.steps = 1;
    CHECK(db::Down(*c, d, {}).to == 1);
    CHECK(Counts(*c, tables) == before);
    CHECK_FALSE(HasColumn(*c, "ciphers", "favorite"));
    CHECK(c->Query("PRAGMA foreign_key_check").rows.empty());
  }

  TEST_CASE("a migration that leaves a foreign key broken is refused before COMMIT, naming the row") {
    TempDir t("fk");
    auto c = OpenDb("sqlite://" + (t / "blog.db"));
    History h("blog", 1);
    db::Up(*c, h.m.path(), Any());
    PopulateBlog(*c);
    const std::string before = Counts(*c, kBlogTables);
    h.m.Write("0002_drop_ada.sql", "UPDATE users SET name = 'ada l.' WHERE id = 1;\nDELETE FROM users WHERE id = 1;\n");
    auto e = CatchError([&] { db::Up(*c, h.m.path(), Any()); });
    INFO(e.message());
    CHECK(e.code() == "failed");
    CHECK(e.message().rfind("0002_drop_ada.sql failed before COMMIT: PRAGMA foreign_key_check found 3 rows violating "
                            "foreign keys (",
                            0) == 0);
    CHECK(e.message().find("blogs rowid 1 references a missing row of users") != std::string::npos);
    CHECK(e.message().find("It was rolled back and recorded as failed; the database is at version 1") !=
          std::string::npos);
    CHECK(Counts(*c, kBlogTables) == before);
    CHECK(Scalar(*c, "SELECT name FROM users WHERE id = 1") == "ada");
    CHECK(Scalar(*c, "SELECT success FROM hoist_schema_migrations WHERE version = 2") == "0");
    CHECK(Scalar(*c, "PRAGMA foreign_keys") == "1");
  }

  TEST_CASE("a table dropped and recreated without its rows is destructive: expand refuses it at the DROP") {
    TempDir t("fk");
    auto c = OpenDb("sqlite://" + (t / "vault.db"));
    History h("vault", 2);
    db::Up(*c, h.m.path(), Any());
    c->Exec("INSERT INTO sso_nonce VALUES ('n1', '2026-01-01'), ('n2', '2026-01-02')");
    h.Add("vault", "0003_sso_nonce_verifier.sql");
    // The schema diff alone calls it "add column sso_nonce.verifier".
    auto e = CatchError([&] { db::Up(*c, h.m.path(), {}); });
    INFO(e.message());
    CHECK(e.code() == "refused");
    CHECK(e.message().find("0003_sso_nonce_verifier.sql is destructive (table sso_nonce dropped and recreated: 2 rows "
                           "before, 0 after: its rows were not copied into the new table) at statement 1 (line 3: "
                           "DROP TABLE sso_nonce)") != std::string::npos);
    CHECK(Scalar(*c, "SELECT count(*) FROM sso_nonce") == "2");
    // Lint by rehearsal says the same before anything runs.
    auto report = db::Lint(*c, h.m.path(), {}, {});
    REQUIRE(report.migrations.size() == 1);
    CHECK(report.migrations[0].cls == db::MigrationClass::kDestructive);
    // An empty table may be recreated freely: nothing is lost.
    c->Exec("DELETE FROM sso_nonce");
    CHECK(db::Up(*c, h.m.path(), {}).to == 3);
  }

  TEST_CASE("UPDATE ... SET col = NULL without WHERE is at least incompatible") {
    TempDir t("fk");
    auto c = OpenDb("sqlite://" + (t / "a.db"));
    Migs m;
    m.Write("0001_t.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT);\nINSERT INTO t (email) VALUES ('a@b');\n");
    db::Up(*c, m.path(), Any());
    m.Write("0002_forget.sql", "UPDATE t SET email = NULL;\n");
    auto e = CatchError([&] { db::Up(*c, m.path(), {}); });
    CHECK(e.code() == "refused");
    CHECK(e.message().find("set a column of every row of t to NULL") != std::string::npos);
    CHECK(Scalar(*c, "SELECT email FROM t") == "a@b");
  }

  TEST_CASE("the expand refusal of a rebuild names the DROP that loses the column, not the first statement") {
    TempDir t("fk");
    auto c = OpenDb("sqlite://" + (t / "a.db"));
    Migs m;
    m.Write("0001_t.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT);\n");
    db::Up(*c, m.path(), Any());
    m.Write("0002_rebuild.sql",
            "ALTER TABLE t RENAME TO t_old;\n"
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);\n"
            "INSERT INTO t SELECT id, a FROM t_old;\n"
            "DROP TABLE t_old;\n");
    auto e = CatchError([&] { db::Up(*c, m.path(), {}); });
    INFO(e.message());
    CHECK(e.code() == "refused");
    CHECK(e.message().find("at statement 4 (line 4: DROP TABLE t_old)") != std::string::npos);
  }

  TEST_CASE("a failing down statement is reported at its line in the file, as an up statement is") {
    TempDir t("fk");
    auto c = OpenDb("sqlite://" + (t / "a.db"));
    Migs m;
    m.Write("0001_t.sql",
            "-- hoist:up\nCREATE TABLE t (id INTEGER PRIMARY KEY);\n\n-- hoist:down\nDROP TABLE t;\n"
            "DROP TABLE nope;\n");
    db::Up(*c, m.path(), Any());
    db::DownOptions d;
    d.steps = 1;
    Error e = CatchError([&] { db::Down(*c, d, {}); });
    INFO(e.message());
    CHECK(e.message().find("at statement 2 of its down (line 6: DROP TABLE nope)") != std::string::npos);
  }

  TEST_CASE("PRAGMA foreign_keys written inside a migration is warned about, naming file and line") {
    TempDir t("fk");
    auto c = OpenDb("sqlite://" + (t / "a.db"));
    Migs m;
    m.Write("0001_t.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY);\nPRAGMA foreign_keys = OFF;\n");
    Warnings w;
    db::Up(*c, m.path(), Any());
    REQUIRE(Warnings::Lines().size() == 1);
    CHECK(Warnings::Lines()[0].rfind("0001_t.sql:2: PRAGMA foreign_keys inside a migration has no effect", 0) == 0);
  }
}

}  // namespace
}  // namespace hoist::test::migrate
