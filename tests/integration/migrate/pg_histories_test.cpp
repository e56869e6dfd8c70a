// PostgreSQL migration histories modelled on Plume and Vaultwarden
// (tests/unit/migrate/histories/{blog_pg,vault_pg}, issue 16), on the
// private cluster: applied up over populated rows, down to zero and up
// again, each table's rows compared with what raw psql keeps when it runs
// the same up and down sections one file per transaction, as diesel does.
// Also: a drop-and-recreate with rows, named or hidden in a DO block, is
// destructive; a deferred foreign key failing at COMMIT names the file and
// the version the database stays at.
#include <algorithm>
#include <filesystem>
#include <vector>

#include "support/pg_cluster.h"
#include "sys/process.h"
#include "unit/migrate/migrate_cases.h"

namespace hoist::test::migrate {
namespace {

namespace fs = std::filesystem;

const std::string kHistories = std::string(HOIST_TEST_DIR) + "/unit/migrate/histories";

/// A copy of one of histories/, grown file by file.
struct History {
  std::string name;
  Migs m;
  std::vector<std::string> files;  // copied so far, in order

  History(std::string history, int upto) : name(std::move(history)) { AddUpTo(upto); }
  void AddUpTo(int upto) {
    std::vector<std::string> all;
    for (const auto& e : fs::directory_iterator(kHistories + "/" + name)) {
      if (e.path().extension() == ".sql") all.push_back(e.path().filename());
    }
    std::sort(all.begin(), all.end());
    for (const auto& f : all) {
      if (std::stoi(f.substr(0, 4)) > upto || fs::exists(m.dir / f)) continue;
      fs::copy_file(kHistories + "/" + name + "/" + f, m.dir / f);
      files.push_back(f);
    }
  }
};

std::string Section(const std::string& text, bool up) {
  const auto u = text.find("-- hoist:up\n");
  const auto d = text.find("-- hoist:down\n");
  REQUIRE(u != std::string::npos);
  REQUIRE(d != std::string::npos);
  return up ? text.substr(u, d - u) : text.substr(d);
}

/// The database named by a cluster URL.
std::string DbName(const std::string& url) { return url.substr(url.rfind('/') + 1); }

/// What raw psql does with the files: each section sent as one command
/// string, which the server runs as one transaction (diesel's
/// batch_execute inside its transaction does the same).
void RawApply(const History& h, const std::string& db, const std::vector<std::string>& files, bool up) {
  for (const auto& f : files) PgCluster::Get().Psql(Section(ReadAll(h.m.dir / f), up), db);
}

/// "table=rows ..." for every application table of db (hoist's left out).
std::string Counts(const std::string& db) {
  return PgCluster::Get().Psql(
      "SELECT coalesce(string_agg(format('%s=%s', table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT "
      "count(*) AS c FROM %I', table_name), false, true, '')))[1]::text), ' ' ORDER BY table_name), '') FROM "
      "information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE 'hoist\\_%'",
      db);
}

/// Two databases, one migrated by hoist and one by raw psql.
struct Pair {
  PgCluster& pg = PgCluster::Get();
  std::string url = pg.Url(pg.CreateDatabase("hist"));
  std::string raw = pg.CreateDatabase("raw");
  std::unique_ptr<Connection> c = OpenDb(url);
  std::unique_ptr<Connection> r = OpenDb(pg.Url(raw));

  void Both(const std::string& sql) {
    c->Exec(sql);
    pg.Psql(sql, raw);
  }
  /// Counts equal in both, and the schemas too; returns the counts.
  std::string Same() {
    const std::string ours = Counts(DbName(url));
    CHECK(ours == Counts(raw));
    CHECK(AppFingerprint(*c) == AppFingerprint(*r));
    return ours;
  }
};

void PopulateBlog(Pair& p) {
  // Instance 1 comes from 0001's DO block. User 7 and the last post and
  // blog author repeat earlier ones: 0002 deletes them (and their comments).
  p.Both("INSERT INTO instances (domain) VALUES ('remote.example')");
  p.Both("INSERT INTO users (username, instance_id, ap_url, is_admin) SELECT 'user' || g, 1 + g / 5, 'ap:u' || g, "
         "g = 1 FROM generate_series(1, 6) g");
  p.Both("INSERT INTO users (username, instance_id, ap_url) VALUES ('dup', 1, 'ap:u2')");
  p.Both("INSERT INTO blogs (actor_id, instance_id) VALUES ('engines', 1), ('kernels', 2)");
  p.Both("INSERT INTO blog_authors (blog_id, author_id) VALUES (1, 1), (1, 2), (2, 3), (2, 7), (1, 1)");
  p.Both("INSERT INTO medias (owner_id, path) VALUES (1, 'a.png'), (2, 'b.png')");
  p.Both("INSERT INTO posts (blog_id, slug, cover_id) VALUES (1, 'one', 1), (1, 'two', 2), (2, 'three', NULL), "
         "(2, 'four', 1), (1, 'one', NULL)");
  p.Both("INSERT INTO comments (post_id, author_id, body) SELECT 1 + g % 4, 1 + g % 7, 'c' || g FROM "
         "generate_series(1, 8) g");
  p.Both("UPDATE users SET username = username || '!' WHERE id <= 2");
}

void PopulateVault(Pair& p) {
  p.Both("INSERT INTO users (uuid, email) SELECT 'u' || g, 'u' || g || '@example.org' FROM generate_series(1, 5) g");
  p.Both("INSERT INTO organizations VALUES ('o1', 'one'), ('o2', 'two')");
  p.Both("INSERT INTO ciphers (uuid, user_uuid, org_uuid, name, favorite) SELECT 'c' || g, CASE WHEN g % 4 <> 0 THEN "
         "'u' || (g % 5 + 1) END, CASE WHEN g % 4 = 0 THEN 'o' || (g % 2 + 1) END, 'cipher ' || g, g % 3 = 0 FROM "
         "generate_series(1, 12) g");
  p.Both("INSERT INTO folders SELECT 'f' || g, 'u' || g, 'folder' FROM generate_series(1, 4) g");
  p.Both("INSERT INTO folders_ciphers SELECT 'c' || g, 'f' || (g % 4 + 1) FROM generate_series(1, 6) g");
}

void PopulateSso(Pair& p) {
  p.Both("INSERT INTO sso_nonce (nonce) VALUES ('n1'), ('n2'), ('n3')");
  p.Both("INSERT INTO sso_users VALUES ('u1', 'sub-1'), ('u2', 'sub-2')");
}

/// vault_pg up to 4 over populated rows, in both databases.
void VaultAt4(Pair& p, History& h) {
  db::Up(*p.c, h.m.path(), Any());
  RawApply(h, p.raw, h.files, true);
  PopulateVault(p);
  h.AddUpTo(4);
  db::Up(*p.c, h.m.path(), Any());
  RawApply(h, p.raw, {h.files.begin() + 1, h.files.end()}, true);
  PopulateSso(p);
}

/// Down to zero with hoist and raw psql (downs newest first), then up again.
void DownToZeroAndUp(Pair& p, History& h) {
  db::DownOptions d;
  d.to = 0;
  auto down = db::Down(*p.c, d, {});
  CHECK(down.rolled_back.size() == h.files.size());
  CHECK_FALSE(down.to.has_value());
  RawApply(h, p.raw, {h.files.rbegin(), h.files.rend()}, false);
  CHECK(p.Same() == "");
  CHECK(db::Up(*p.c, h.m.path(), Any()).applied.size() == h.files.size());
  RawApply(h, p.raw, h.files, true);
  p.Same();
}

TEST_SUITE("migrate/postgres histories") {

TEST_CASE("the blog_pg history applies up and down over populated rows keeping what raw psql keeps") {
  Pair p;
  History h("blog_pg", 1);
  db::Up(*p.c, h.m.path(), Any());  // a trigger function and a DO block: dollar quotes split right
  RawApply(h, p.raw, h.files, true);
  PopulateBlog(p);
  CHECK(p.Same() == "blog_authors=5 blogs=2 comments=8 instances=2 medias=2 posts=5 users=7");

  h.AddUpTo(6);
  auto up = db::Up(*p.c, h.m.path(), Any());
  CHECK(up.to == 6);
  RawApply(h, p.raw, {h.files.begin() + 1, h.files.end()}, true);
  // The duplicates 0002 deletes, and their cascaded children, go in both.
  CHECK(p.Same() == "blog_authors=3 blogs=2 comments=7 instances=2 medias=2 posts=4 timeline=4 "
                    "timeline_definition=8 users=6");
  CHECK(Scalar(*p.c, "SELECT count(*) FROM users WHERE role = 0") == "1");
  CHECK(Scalar(*p.c, "SELECT fqn FROM users WHERE id = 6") == "user6@remote.example");
  // The trigger runs: it came through the splitter whole.
  CHECK(Scalar(*p.c, "SELECT count(*) FROM users WHERE updated_at > now() - interval '1 hour'") == "6");
  DownToZeroAndUp(p, h);
}

TEST_CASE("the vault_pg history applies up and down over populated rows keeping what raw psql keeps") {
  Pair p;
  History h("vault_pg", 1);
  db::Up(*p.c, h.m.path(), Any());
  RawApply(h, p.raw, h.files, true);
  PopulateVault(p);
  CHECK(p.Same() == "ciphers=12 folders=4 folders_ciphers=6 organizations=2 users=5");

  h.AddUpTo(4);
  CHECK(db::Up(*p.c, h.m.path(), Any()).to == 4);
  RawApply(h, p.raw, {h.files.begin() + 1, h.files.end()}, true);
  PopulateSso(p);
  // Every favourite moved into its table before the column went.
  CHECK(p.Same() == "ciphers=12 favorites=3 folders=4 folders_ciphers=6 organizations=2 sso_nonce=3 sso_users=2 "
                    "users=5");

  // Policy any, as diesel: the drop-and-recreate loses the nonces in both.
  h.AddUpTo(6);
  CHECK(db::Up(*p.c, h.m.path(), Any()).to == 6);
  RawApply(h, p.raw, {h.files.begin() + 4, h.files.end()}, true);
  CHECK(p.Same() == "ciphers=12 favorites=3 folders=4 folders_ciphers=6 organizations=2 sso_nonce=0 sso_users=2 "
                    "users=5");
  CHECK(Scalar(*p.c, "SELECT confdeltype FROM pg_constraint WHERE conname = 'sso_users_user_uuid_fkey'") == "c");
  DownToZeroAndUp(p, h);
  // The down of 0003 put the favourites back into the column.
  CHECK(Scalar(*p.c, "SELECT count(*) FROM favorites") == "0");
}

TEST_CASE("a drop-and-recreate of a table with rows is refused by policy expand at the DROP") {
  Pair p;
  History h("vault_pg", 1);
  VaultAt4(p, h);
  h.AddUpTo(5);
  auto e = CatchError([&] { db::Up(*p.c, h.m.path(), {}); });
  INFO(e.message());
  CHECK(e.code() == "refused");
  CHECK(e.message() ==
        "0005_sso_nonce_state.sql is destructive (table sso_nonce dropped and recreated: 3 rows before, 0 after: its "
        "rows were not copied into the new table) at statement 1 (line 3: DROP TABLE sso_nonce); policy expand "
        "refuses it. Declare it '-- hoist:phase contract' and apply it with allow_contract = true once the previous "
        "version is gone, or split it into an expand and a contract migration. It was rolled back; the database is "
        "at version 4");
  CHECK(Scalar(*p.c, "SELECT count(*) FROM sso_nonce") == "3");
  CHECK(Scalar(*p.c, "SELECT max(version) FROM hoist_schema_migrations WHERE success") == "4");
  // Lint by rehearsal on a copy says the same before anything runs.
  auto report = db::Lint(*p.c, h.m.path(), {}, {});
  REQUIRE(report.migrations.size() == 1);
  CHECK(report.migrations[0].cls == db::MigrationClass::kDestructive);
}

TEST_CASE("a drop-and-recreate hidden in a DO block is found by the table's new OID and refused") {
  Pair p;
  History h("vault_pg", 1);
  VaultAt4(p, h);
  // The same shape plus a column: the schema diff alone says "add column".
  h.m.Write("0005_nonce_verifier.sql",
            "-- hoist:up\n"
            "ALTER TABLE sso_users ADD COLUMN note TEXT;\n"
            "DO $$\nBEGIN\n"
            "  EXECUTE 'DROP TABLE sso_nonce';\n"
            "  EXECUTE 'CREATE TABLE sso_nonce (nonce CHAR(36) NOT NULL PRIMARY KEY, created_at TIMESTAMP NOT NULL "
            "DEFAULT now(), verifier TEXT)';\n"
            "END\n$$;\n");
  auto e = CatchError([&] { db::Up(*p.c, h.m.path(), {}); });
  INFO(e.message());
  CHECK(e.code() == "refused");
  CHECK(e.message().rfind("0005_nonce_verifier.sql is destructive (table sso_nonce dropped and recreated: 3 rows "
                          "before, 0 after: its rows were not copied into the new table) at statement 2 (line 3: DO "
                          "$$ …); policy expand refuses it.",
                          0) == 0);
  CHECK(Scalar(*p.c, "SELECT count(*) FROM sso_nonce") == "3");
  CHECK_FALSE(HasColumn(*p.c, "sso_users", "note"));
  auto report = db::Lint(*p.c, h.m.path(), {}, {});
  REQUIRE(report.migrations.size() == 1);
  CHECK(report.migrations[0].cls == db::MigrationClass::kDestructive);
  // Recreating it empty loses nothing: applied, and measured once more.
  p.c->Exec("DELETE FROM sso_nonce");
  auto up = db::Up(*p.c, h.m.path(), {});
  REQUIRE(up.applied.size() == 1);
  CHECK(up.applied[0].cls == "additive");
  CHECK(HasColumn(*p.c, "sso_users", "note"));
}

TEST_CASE("a deferred foreign key violated at COMMIT names the file and the version the database stays at") {
  Pair p;
  History h("blog_pg", 1);
  db::Up(*p.c, h.m.path(), Any());
  RawApply(h, p.raw, h.files, true);
  PopulateBlog(p);
  h.AddUpTo(6);
  db::Up(*p.c, h.m.path(), Any());
  RawApply(h, p.raw, {h.files.begin() + 1, h.files.end()}, true);
  const std::string before = p.Same();
  // timeline.post_id is DEFERRABLE INITIALLY DEFERRED: every statement
  // succeeds and the transaction fails at its end.
  const std::string orphan =
      "-- hoist:up\nINSERT INTO timeline (post_id, timeline_id) SELECT 999, id FROM timeline_definition LIMIT 1;\n";
  h.m.Write("0007_orphan_entry.sql", orphan);
  auto e = CatchError([&] { db::Up(*p.c, h.m.path(), Any()); });
  INFO(e.message());
  CHECK(e.code() == "failed");
  CHECK(e.message() ==
        "0007_orphan_entry.sql failed at COMMIT: insert or update on table \"timeline\" violates foreign key "
        "constraint \"timeline_post_id_fkey\" [SQLSTATE 23503]. DETAIL: Key (post_id)=(999) is not present in table "
        "\"posts\". It was rolled back and recorded as failed; the database is at version 6");
  CHECK(Scalar(*p.c, "SELECT success::int FROM hoist_schema_migrations WHERE version = 7") == "0");
  // Raw psql refuses it too, and both keep every row.
  sys::ProcessSpec spec;
  spec.argv = {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", p.pg.dir(), "-p", std::to_string(p.pg.port()),
               "-U", PgCluster::kUser, "-d", p.raw, "-c", Section(orphan + "-- hoist:down\n", true)};
  auto raw = sys::RunProcess(spec);
  CHECK(raw.exit_code != 0);
  CHECK(raw.err.find("timeline_post_id_fkey") != std::string::npos);
  CHECK(p.Same() == before);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test::migrate
