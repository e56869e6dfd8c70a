#include "db/migrate_lint.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"
#include "db/migrate_fk.h"
#include "db/migrate_schema.h"
#include "db/pg_connection.h"
#include "db/sql_split.h"
#include "db/sqlite_connection.h"
#include "sys/fs.h"
#include "sys/process.h"

namespace hoist::db {
namespace {

using json = nlohmann::json;

[[noreturn]] void Fail(const std::string& code, const std::string& message) {
  throw Error("migrate", code, message);
}

std::string RandomHex() {
  std::random_device rd;
  return fmt::format("{:08x}", rd());
}

/// A sandbox copy of a database, removed on destruction.
class Sandbox {
 public:
  virtual ~Sandbox() = default;
  virtual Connection& conn() = 0;
  virtual std::string Describe() const = 0;
};

class SqliteSandbox : public Sandbox {
 public:
  SqliteSandbox(SqliteConnection& source, const LintOptions& o) {
    std::string dir = o.scratch_dir;
    if (dir.empty()) {
      const char* t = std::getenv("TMPDIR");
      dir = t && *t ? t : "/tmp";
    }
    std::string tmpl = dir + "/hoist-lint-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) Fail("failed", "cannot create a temp dir under " + dir + " for the lint copy");
    tmpdir_ = buf.data();
    path_ = tmpdir_ + "/rehearsal.db";
    sqlite3* dst = nullptr;
    int rc = sqlite3_open_v2(path_.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc == SQLITE_OK) {
      // One step: a consistent snapshot that never restarts, however busy
      // the source is.
      sqlite3_backup* b = sqlite3_backup_init(dst, "main", source.handle(), "main");
      if (!b) {
        rc = sqlite3_errcode(dst);
      } else {
        rc = sqlite3_backup_step(b, -1);
        int fin = sqlite3_backup_finish(b);
        if (rc == SQLITE_DONE) rc = fin;
      }
    }
    std::string err = dst ? sqlite3_errmsg(dst) : "out of memory";
    sqlite3_close(dst);
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
      Fail("failed", fmt::format("cannot copy {} for the rehearsal: {}", source.redacted(), err));
    }
    conn_ = Open("sqlite://" + path_);
    auto* s = dynamic_cast<SqliteConnection*>(conn_.get());
    s->Exec("PRAGMA synchronous = OFF");
    s->SetJournalMode("memory");
  }
  ~SqliteSandbox() override {
    conn_.reset();
    sys::Remove(tmpdir_, /*recursive=*/true);
  }
  Connection& conn() override { return *conn_; }
  std::string Describe() const override { return "an online backup copy in " + path_; }
  const std::string& path() const { return path_; }

 private:
  std::string tmpdir_, path_;
  std::unique_ptr<Connection> conn_;
};


class PgSandbox : public Sandbox {
 public:
  PgSandbox(PgConnection& source, const LintOptions& o) {
    name_ = fmt::format("hoist_lint_{}_{}", getpid(), RandomHex());
    auto tool = [&](const char* t) { return o.pg_bin.empty() ? std::string(t) : o.pg_bin + "/" + t; };
    // The maintenance database creates and drops the scratch one.
    admin_ = Open(WithDbname(source.conninfo(), "postgres"));
    admin_->Exec("CREATE DATABASE " + name_ + " TEMPLATE template0");
    created_ = true;
    TmpFile dump;
    sys::ProcessSpec spec;
    spec.env = source.ClientEnv();
    spec.argv = {tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", "--compress=0", "--file=" + dump.path};
    if (!o.data) spec.argv.push_back("--schema-only");
    Run(spec, "pg_dump of " + source.redacted());
    spec.env["PGDATABASE"] = name_;
    spec.argv = {tool("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error", "--dbname=" + name_, dump.path};
    Run(spec, "pg_restore into the scratch database " + name_);
    conn_ = Open(WithDbname(source.conninfo(), name_));
    describe_ = fmt::format("the scratch database {} ({} of {})", name_, o.data ? "pg_dump" : "pg_dump --schema-only",
                            source.Describe());
  }
  ~PgSandbox() override {
    conn_.reset();
    if (created_ && admin_) {
      try {
        admin_->Exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
      } catch (const std::exception&) {
        try {
          admin_->Exec("DROP DATABASE IF EXISTS " + name_);
        } catch (const std::exception&) {
        }
      }
    }
  }
  Connection& conn() override { return *conn_; }
  std::string Describe() const override { return describe_; }

 private:
  struct TmpFile {
    std::string dir, path;
    TmpFile() {
      const char* t = std::getenv("TMPDIR");
      std::string tmpl = std::string(t && *t ? t : "/tmp") + "/hoist-lint-XXXXXX";
      std::vector<char> buf(tmpl.begin(), tmpl.end());
      buf.push_back('\0');
      if (!::mkdtemp(buf.data())) Fail("failed", "cannot create a temp dir for the lint dump");
      dir = buf.data();
      path = dir + "/dump";
    }
    ~TmpFile() { sys::Remove(dir, true); }
  };

  static void Run(const sys::ProcessSpec& spec, const std::string& what) {
    sys::ProcessResult r;
    try {
      r = sys::RunProcess(spec);
    } catch (const Error& e) {
      if (e.code() == "not_found") {
        Fail("unavailable", "lint on PostgreSQL needs pg_dump and pg_restore (Debian package postgresql-client): " +
                                e.message());
      }
      throw;
    }
    if (r.interrupted) Fail("interrupted", what + ": interrupted");
    if (r.timed_out) Fail("timeout", what + ": step timeout reached");
    if (!r.ok()) {
      std::string err = r.err;
      while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
      Fail("failed", fmt::format("{} exited with {}: {}", what, r.exit_code, err));
    }
  }

  std::string name_, describe_;
  bool created_ = false;
  std::unique_ptr<Connection> admin_;
  std::unique_ptr<Connection> conn_;
};

}  // namespace

json LintedMigration::ToJson() const {
  json j = {{"version", version},
            {"file", file},
            {"phase", phase.empty() ? json(nullptr) : json(phase)},
            {"no_transaction", no_transaction},
            {"rehearsed", rehearsed},
            {"class", rehearsed ? json(ClassName(cls)) : json("not-rehearsed")},
            {"changes", classification.ToJson()["changes"]},
            {"summary", rehearsed ? (cls == MigrationClass::kFailsOnData ? std::string("fails-on-data (") + error + ")"
                                                                         : classification.Summary())
                                  : std::string("not rehearsed")},
            {"problems", problems},
            {"warnings", warnings}};
  if (cls == MigrationClass::kFailsOnData) {
    j["statement"] = statement;
    j["line"] = line;
    j["sql"] = sql;
    j["error"] = error;
  }
  return j;
}

json LintReport::ToJson() const {
  json list = json::array();
  for (const auto& m : migrations) list.push_back(m.ToJson());
  return {{"ok", ok()}, {"sandbox", sandbox}, {"migrations", list}, {"problems", problems}, {"warnings", warnings},
          {"text", Text()}};
}

std::string LintReport::Text() const {
  std::string out;
  size_t w = 4;
  for (const auto& m : migrations) w = std::max(w, m.file.size());
  if (migrations.empty()) out += "nothing pending to rehearse\n";
  for (const auto& m : migrations) {
    std::string cls = m.rehearsed ? ClassName(m.cls) : "not-rehearsed";
    std::string what;
    if (!m.rehearsed) {
      what = "an earlier migration failed";
    } else if (m.cls == MigrationClass::kFailsOnData) {
      what = m.error;
    } else if (m.classification.changes.empty()) {
      what = "no schema change";
    } else {
      what = m.classification.changes.front().what;
      if (m.classification.changes.size() > 1) what += fmt::format(" (+{} more)", m.classification.changes.size() - 1);
    }
    out += fmt::format("{:<{}}  {:<13}  {:<8}  {}\n", m.file, w, cls, m.phase.empty() ? "-" : m.phase, what);
  }
  for (const auto& p : problems) out += "problem: " + p + "\n";
  for (const auto& p : warnings) out += "warning: " + p + "\n";
  return out;
}

LintReport Lint(Connection& conn, const std::string& dir, const LintOptions& o, const MigrateEnv& env) {
  LintReport report;
  auto st = Status(conn, dir);
  {
    // History problems are reported, not thrown.
    try {
      Validate(conn, dir, {});
    } catch (const Error& e) {
      if (e.area() != "migrate") throw;
      report.problems.push_back(e.message());
    }
  }
  std::vector<const MigrationFile*> pending;
  for (const auto& e : st.entries) {
    if (e.file && (e.state == "pending" || e.state == "failed" || e.state == "out_of_order")) pending.push_back(&*e.file);
  }
  if (pending.empty()) {
    report.sandbox = "none (nothing pending)";
    return report;
  }
  std::unique_ptr<Sandbox> box;
  if (auto* s = dynamic_cast<SqliteConnection*>(&conn)) {
    box = std::make_unique<SqliteSandbox>(*s, o);
  } else if (auto* p = dynamic_cast<PgConnection*>(&conn)) {
    box = std::make_unique<PgSandbox>(*p, o);
  } else {
    Fail("unsupported", "lint supports SQLite and PostgreSQL connections");
  }
  report.sandbox = box->Describe();
  Connection& sc = box->conn();
  const Dialect dialect = sc.url().engine == Engine::kPostgres ? Dialect::kPostgres : Dialect::kSqlite;
  SchemaProbe probe(sc);
  bool failed = false;
  for (const MigrationFile* mp : pending) {
    const MigrationFile& m = *mp;
    LintedMigration lm;
    lm.version = m.version;
    lm.file = m.file;
    lm.phase = m.phase;
    lm.no_transaction = m.no_transaction;
    if (failed) {
      lm.warnings.push_back(m.file + " was not rehearsed: an earlier migration failed");
      report.migrations.push_back(std::move(lm));
      continue;
    }
    std::vector<Statement> statements;
    if (m.kind == "sql") {
      statements = SplitSql(m.up, dialect);
    } else {
      if (!env.lua) {
        lm.warnings.push_back(m.file + " was not rehearsed: Lua migrations are rehearsed from a playbook");
        report.migrations.push_back(std::move(lm));
        continue;
      }
      auto info = env.lua->Inspect(m.source, "@" + m.path);
      if (!info.phase.empty()) lm.phase = info.phase;
      if (info.transaction && !*info.transaction) lm.no_transaction = true;
    }
    lm.rehearsed = true;
    SchemaSnapshot before = probe.Take();
    auto dropped = m.kind == "sql" ? DroppedTables(statements) : std::vector<std::pair<std::string, int>>{};
    auto rows_before = CountRows(sc, dropped);
    int at = -1;
    try {
      auto body = [&](const StatementHook& after = nullptr) {
        if (m.kind == "lua") {
          env.lua->Run(sc, m.source, "@" + m.path, true);
          return;
        }
        for (size_t i = 0; i < statements.size(); ++i) {
          at = static_cast<int>(i);
          sc.Exec(statements[i].sql);
          if (after) after(at);
        }
      };
      // A Lua migration uses its own connection to the sandbox, so it must
      // not wait behind a transaction held here.
      if (lm.no_transaction || m.kind == "lua") {
        body();
      } else {
        // As the applier does: foreign keys off, checked before COMMIT.
        ForeignKeysOff fk_off(sc, RenameAsideRebuild(statements));
        sc.Tx([&] {
          RunMeasuringDrops(sc, dropped, rows_before, body);
          if (std::string broken = ForeignKeyViolations(sc); !broken.empty()) {
            at = -1;
            throw Error("db", "constraint", broken);
          }
        });
      }
    } catch (const std::exception& e) {
      failed = true;
      lm.cls = MigrationClass::kFailsOnData;
      lm.error = ErrorText(e);
      if (m.kind == "sql" && at >= 0) {
        lm.statement = at + 1;
        lm.line = m.up_line + statements[static_cast<size_t>(at)].line - 1;
        lm.sql = statements[static_cast<size_t>(at)].sql;
        lm.problems.push_back(fmt::format("{} fails on the data at statement {} (line {}: {}): {}", m.file,
                                          lm.statement, lm.line, StatementHead(lm.sql), lm.error));
      } else {
        lm.problems.push_back(fmt::format("{} fails on the data in its up function: {}", m.file, lm.error));
      }
      report.migrations.push_back(std::move(lm));
      continue;
    }
    SchemaSnapshot after = probe.Take();
    auto cmp = probe.Compare(before, after);
    lm.classification = Classify(cmp.before, cmp.after, cmp.diff, statements);
    CheckRowsSurvived(lm.classification, dropped, rows_before, CountRows(sc, dropped));
    lm.cls = lm.classification.cls;
    const bool harmful = lm.cls == MigrationClass::kDestructive || lm.cls == MigrationClass::kIncompatible;
    const auto* first = lm.classification.changes.empty() ? nullptr : &lm.classification.changes.front();
    if (harmful && lm.phase == "expand") {
      lm.problems.push_back(fmt::format("{} is declared expand but is {} ({}: {})", m.file, ClassName(lm.cls),
                                        first->what, first->why));
    } else if (harmful && lm.phase.empty()) {
      lm.problems.push_back(fmt::format("{} is {} ({}: {}) but not declared '-- hoist:phase contract': policy expand "
                                        "will refuse it",
                                        m.file, ClassName(lm.cls), first->what, first->why));
    } else if (!harmful && lm.phase == "contract") {
      lm.warnings.push_back(fmt::format("{} is declared contract but measures additive: nothing in the schema that "
                                        "the previous version could trip on (keep contract if it removes data the "
                                        "schema does not show)",
                                        m.file));
    }
    report.migrations.push_back(std::move(lm));
  }
  for (const auto& m : report.migrations) {
    report.problems.insert(report.problems.end(), m.problems.begin(), m.problems.end());
    report.warnings.insert(report.warnings.end(), m.warnings.begin(), m.warnings.end());
  }
  if (env.on_event) {
    env.on_event({"lint", 0, dir, 0, {{"ok", report.ok()}, {"problems", report.problems}, {"sandbox", report.sandbox}}});
  }
  return report;
}

}  // namespace hoist::db
