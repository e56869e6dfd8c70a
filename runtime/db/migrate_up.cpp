// migrate up: the applier, which runs pending migrations one by one, each
// in its transaction with foreign keys checked before COMMIT, classifies
// them, takes the safety backup before a destructive one and records it.
#include "db/migrate_internal.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"
#include "db/migrate_classify.h"
#include "db/migrate_fk.h"
#include "db/migrate_schema.h"
#include "db/sql_split.h"
#include "sys/clock.h"

namespace hoist::db {

using namespace migrate_detail;

namespace {

// PRAGMA foreign_keys in a migration does nothing (hoist runs it in a
// transaction, where SQLite ignores it): say so instead of silently.
void WarnForeignKeysPragma(const MigrationFile& m, const std::vector<Statement>& statements, int first_line) {
  for (const auto& st : statements) {
    std::string head;
    for (char ch : st.sql) {
      if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') continue;
      head += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (head.size() >= 18) break;
    }
    if (head.rfind("pragmaforeign_keys", 0) == 0) {
      log::Warn(fmt::format("{}:{}: PRAGMA foreign_keys inside a migration has no effect (SQLite ignores it in a "
                            "transaction); hoist already runs every migration with foreign keys off and checks them "
                            "(PRAGMA foreign_key_check) before COMMIT",
                            m.file, first_line + st.line - 1));
    }
  }
}

class Applier {
 public:
  Applier(Connection& conn, const MigrateEnv& env) : conn_(conn), env_(env), probe_(conn) {
    applied_by_ = env.applied_by.empty() ? DefaultOperator() : env.applied_by;
  }

  AppliedMigration RowFor(const MigrationFile& m, const std::string& phase, bool no_tx, bool has_down) const {
    AppliedMigration a;
    a.version = m.version;
    a.name = m.name;
    a.file = m.file;
    a.kind = m.kind;
    a.checksum = m.checksum;
    a.phase = phase;
    a.no_transaction = no_tx;
    if (m.kind == "lua") {
      a.down_source = m.source;  // the whole file: down() is looked up when rolling back
    } else if (has_down) {
      a.down_source = StoredDown(m);
    }
    a.applied_at = sys::NowIso();
    a.run_id = env_.run_id;
    a.hoist_version = HOIST_VERSION;
    a.applied_by = applied_by_;
    return a;
  }

  void Event(const std::string& action, int64_t version, const std::string& file, double seconds, json data) {
    if (env_.on_event) env_.on_event({action, version, file, seconds, std::move(data)});
  }

  LuaMigrationHost::Info Inspect(const MigrationFile& m) {
    if (!env_.lua) {
      Fail("needs_lua", fmt::format("{} is a Lua migration: apply it from a playbook (require \"hoist.migrate\"), "
                                    "which runs Lua",
                                    m.file));
    }
    return env_.lua->Inspect(m.source, LuaChunk(m));
  }

  // Declared phase and transaction mode of a migration (Lua: header or table).
  void Describe(const MigrationFile& m, std::string* phase, bool* no_tx, bool* has_down) {
    *phase = m.phase;
    *no_tx = m.no_transaction;
    *has_down = m.has_down;
    if (m.kind != "lua") return;
    auto info = Inspect(m);
    if (!info.phase.empty()) {
      if (info.phase != "expand" && info.phase != "contract") {
        Fail("invalid", fmt::format("{}: phase = \"{}\" (expected \"expand\" or \"contract\")", m.file, info.phase));
      }
      if (!m.phase.empty() && m.phase != info.phase) {
        Fail("invalid", fmt::format("{}: the header says phase {} but the table says phase = \"{}\"", m.file, m.phase,
                                    info.phase));
      }
      *phase = info.phase;
    }
    if (info.transaction && !*info.transaction) *no_tx = true;
    *has_down = info.has_down;
  }

  const SchemaSnapshot& Before() {
    int64_t cookie = probe_.Cookie();
    if (!cached_ || cookie < 0 || cookie != cached_->cookie) cached_ = probe_.Take();
    return *cached_;
  }

  // Runs the statements (or the Lua up/down) of one migration on conn_.
  void RunBody(const MigrationFile& m, const std::vector<Statement>& statements, bool up,
               const std::optional<std::string>& lua_source, const std::string& chunk,
               const StatementHook& after = nullptr) {
    if (lua_source) {
      try {
        env_.lua->Run(conn_, *lua_source, chunk, up);
      } catch (const std::exception& e) {
        throw StatementFailure{-1, ErrorText(e)};
      }
      return;
    }
    (void)m;
    for (size_t i = 0; i < statements.size(); ++i) {
      try {
        conn_.Exec(statements[i].sql);
      } catch (const std::exception& e) {
        throw StatementFailure{static_cast<int>(i), ErrorText(e)};
      }
      if (after) after(static_cast<int>(i));
    }
  }

  // Re-runs a refused migration statement by statement in a transaction
  // that is rolled back, to find the first statement after which it is as
  // bad as it is in all (the DROP of a rebuild, not its harmless RENAME).
  int FindRefusedStatement(const std::vector<Statement>& statements, MigrationClass worst) {
    struct Stop {};
    int found = -1;
    try {
      conn_.Tx([&] {
        SchemaSnapshot before = probe_.Take();
        std::vector<Statement> so_far;
        for (size_t i = 0; i < statements.size(); ++i) {
          conn_.Exec(statements[i].sql);
          so_far.push_back(statements[i]);
          SchemaSnapshot now = probe_.Take();
          auto cmp = probe_.Compare(before, now);
          auto cls = Classify(cmp.before, cmp.after, cmp.diff, so_far);
          if (cls.cls == worst) {
            found = static_cast<int>(i);
            throw Stop{};
          }
        }
        throw Stop{};
      });
    } catch (const Stop&) {
    } catch (const std::exception&) {
    }
    cached_.reset();
    return found;
  }

  std::string Where(const MigrationFile& m, const std::vector<Statement>& statements, int index) const {
    if (index == kAtCommit) return "before COMMIT";
    if (m.kind == "lua") return "in its up function";
    if (index < 0 || index >= static_cast<int>(statements.size())) return "";
    const auto& s = statements[static_cast<size_t>(index)];
    return fmt::format("at statement {} (line {}: {})", index + 1, m.up_line + s.line - 1, StatementHead(s.sql));
  }

  // Applies one pending migration. Returns false when another migrator had
  // applied it meanwhile.
  bool Apply(const MigrationFile& m, const UpOptions& o, std::optional<int64_t>& current, UpResult& result) {
    std::string phase;
    bool no_tx = false, has_down = false;
    Describe(m, &phase, &no_tx, &has_down);
    const bool expand = o.policy == "expand";
    const std::string stays = VersionText(current);
    if (expand && phase == "contract" && !o.allow_contract) {
      Event("refuse", m.version, m.file, 0, {{"reason", "declared contract"}});
      Fail("refused", fmt::format("{} is declared '-- hoist:phase contract': policy expand applies it only with "
                                  "allow_contract = true, once the previous version of the app is gone. Nothing of "
                                  "it was applied; the database {}",
                                  m.file, stays));
    }
    std::vector<Statement> statements;
    if (m.kind == "sql") statements = SplitSql(m.up, DialectOf(conn_));
    std::optional<std::string> lua_source;
    if (m.kind == "lua") lua_source = m.source;
    AppliedMigration row = RowFor(m, phase, no_tx, has_down);
    if (MayDestroy(m, statements, phase, o)) {
      BeforeDestructive(fmt::format("{} ({})", m.file, phase == "contract" ? "a contract migration"
                                                       : m.kind == "lua"   ? "a Lua migration under policy any"
                                                                           : "it drops or deletes data"));
    }
    const double t0 = sys::Monotonic();
    Classification cls;
    bool measured = false, skipped = false;

    if (no_tx) {
      if (expand && !(phase == "contract" && o.allow_contract)) {
        for (size_t i = 0; i < statements.size(); ++i) {
          auto c = ClassifyStatementText(statements[i].sql);
          if (c && RefusedByExpand(c->cls, phase, o.allow_contract)) {
            Event("refuse", m.version, m.file, 0, {{"class", ClassName(c->cls)}, {"what", c->what}});
            Fail("refused",
                 fmt::format("{} is {} ({}: {}) {}; policy expand refuses it: a no-transaction migration cannot be "
                             "checked and rolled back, so its text decides. Declare it '-- hoist:phase contract' and "
                             "apply it with allow_contract = true once the previous version is gone. Nothing of it "
                             "was applied; the database {}",
                             m.file, ClassName(c->cls), c->what, c->why,
                             Where(m, statements, static_cast<int>(i)), stays));
          }
        }
      }
      const Recorded recorded = RecordOf(conn_, m.version);
      if (recorded == Recorded::kApplied) {
        skipped = true;
      } else {
        try {
          RunBody(m, statements, true, lua_source, LuaChunk(m));
        } catch (const StatementFailure& f) {
          row.success = false;
          row.duration_ms = (sys::Monotonic() - t0) * 1000;
          std::string done = f.index > 1    ? fmt::format("statements 1-{} stay applied", f.index)
                             : f.index == 1 ? std::string("statement 1 stays applied")
                                            : std::string("nothing of it was applied");
          std::string msg = fmt::format(
              "{} failed {}: {}. It runs without a transaction (-- hoist:no-transaction): {}; it is recorded as "
              "failed and blocks further migrations until you check the database and drop the record with "
              "migrate.repair(db, {{ reason = \"...\" }}); the database {}",
              m.file, Where(m, statements, f.index), Clause(f.message), done, stays);
          row.error = msg;
          RecordFailure(row, &msg);
          Event("fail", m.version, m.file, sys::Monotonic() - t0, {{"error", msg}});
          Fail("failed", msg);
        }
        row.duration_ms = (sys::Monotonic() - t0) * 1000;
        conn_.Tx([&] { RecordApplied(conn_, row, RecordOf(conn_, m.version)); });
      }
    } else {
      if (m.kind == "sql" && !IsPg(conn_)) WarnForeignKeysPragma(m, statements, m.up_line);
      ForeignKeysOff fk_off(conn_, RenameAsideRebuild(statements));
      auto dropped = m.kind == "sql" ? DroppedTables(statements) : std::vector<std::pair<std::string, int>>{};
      std::map<std::string, int64_t> rows_before;
      int rows_lost_at = -1;
      try {
        conn_.Tx([&] {
          const Recorded recorded = RecordOf(conn_, m.version);
          if (recorded == Recorded::kApplied) {
            skipped = true;
            return;
          }
          const SchemaSnapshot* before = expand ? &Before() : nullptr;
          // Rows of the tables it drops: a table recreated without them is
          // destructive, whatever the schema diff says.
          if (expand) {
            rows_before = CountRows(conn_, dropped);
            RunMeasuringDrops(conn_, dropped, rows_before, [&](const StatementHook& after) {
              RunBody(m, statements, true, lua_source, LuaChunk(m), after);
            });
          } else {
            RunBody(m, statements, true, lua_source, LuaChunk(m));
          }
          if (std::string broken = ForeignKeyViolations(conn_); !broken.empty()) {
            throw StatementFailure{kAtCommit, broken};
          }
          if (expand) {
            SchemaSnapshot after = probe_.Take();
            auto cmp = probe_.Compare(*before, after);
            cls = Classify(cmp.before, cmp.after, cmp.diff, statements);
            rows_lost_at = CheckRowsSurvived(cls, dropped, rows_before, CountRows(conn_, dropped));
            measured = true;
            if (RefusedByExpand(cls.cls, phase, o.allow_contract)) throw cls;
            row.cls = ClassName(cls.cls);
            cached_ = std::move(after);
          }
          row.duration_ms = (sys::Monotonic() - t0) * 1000;
          RecordApplied(conn_, row, recorded);
        });
      } catch (const Classification& refused) {
        cached_.reset();
        int at = rows_lost_at >= 0 ? rows_lost_at
                 : m.kind == "sql"  ? FindRefusedStatement(statements, refused.cls)
                                    : -1;
        // A rebuild's schema looks destructive as soon as the new table
        // exists; its data goes at the DROP TABLE that follows.
        if (at >= 0 && refused.cls == MigrationClass::kDestructive && rows_lost_at < 0) {
          for (const auto& [name, index] : dropped) {
            if (index >= at) {
              at = index;
              break;
            }
          }
        }
        const auto& c = refused.changes.front();
        std::string declared = phase == "expand" ? ", although it is declared expand" : "";
        std::string where = Where(m, statements, at);
        Event("refuse", m.version, m.file, sys::Monotonic() - t0, refused.ToJson());
        Fail("refused",
             fmt::format("{} is {} ({}: {}){}{}; policy expand refuses it. Declare it '-- hoist:phase contract' and "
                         "apply it with allow_contract = true once the previous version is gone, or split it into an "
                         "expand and a contract migration. It was rolled back; the database {}",
                         m.file, ClassName(refused.cls), c.what, c.why, where.empty() ? "" : " " + where, declared,
                         stays));
      } catch (const StatementFailure& f) {
        cached_.reset();
        row.success = false;
        row.duration_ms = (sys::Monotonic() - t0) * 1000;
        std::string msg = fmt::format("{} failed {}: {}. It was rolled back and recorded as failed; the database {}",
                                      m.file, Where(m, statements, f.index), Clause(f.message), stays);
        row.error = msg;
        RecordFailure(row, &msg);
        Event("fail", m.version, m.file, sys::Monotonic() - t0, {{"error", msg}});
        Fail("failed", msg);
      } catch (const Error& e) {
        // Everything ran; the transaction's end (COMMIT, a deferred
        // constraint) refused it: the same context as a failed statement.
        if (!IsCommitFailure(e)) throw;
        cached_.reset();
        row.success = false;
        row.duration_ms = (sys::Monotonic() - t0) * 1000;
        std::string msg = fmt::format("{} failed at COMMIT: {}. It was rolled back and recorded as failed; the "
                                      "database {}",
                                      m.file, Clause(ErrorText(e)), stays);
        row.error = msg;
        RecordFailure(row, &msg);
        Event("fail", m.version, m.file, sys::Monotonic() - t0, {{"error", msg}});
        Fail("failed", msg);
      }
    }
    double seconds = sys::Monotonic() - t0;
    if (skipped) {
      result.skipped.push_back(m.file);
      Event("skip", m.version, m.file, seconds, {{"reason", "applied by another migrator meanwhile"}});
      return false;
    }
    if (!current || m.version > *current) current = m.version;
    result.applied.push_back({m.version, m.file, seconds, measured ? ClassName(cls.cls) : ""});
    if (env_.on_event) {
      json data = {{"statements", statements.size()}, {"transaction", !no_tx}, {"kind", m.kind}};
      if (measured) data["class"] = cls.ToJson();
      Event("apply", m.version, m.file, seconds, std::move(data));
    }
    return true;
  }

  // Whether applying m can destroy data that no check inside its
  // transaction refuses: expand refuses the rest before COMMIT.
  static bool MayDestroy(const MigrationFile& m, const std::vector<Statement>& statements, const std::string& phase,
                         const UpOptions& o) {
    if (phase == "contract" && o.allow_contract) return true;
    if (o.policy == "expand") return false;
    if (m.kind == "lua") return true;
    for (const auto& st : statements) {
      auto c = ClassifyStatementText(st.sql);
      if (c && c->cls == MigrationClass::kDestructive) return true;
    }
    return false;
  }

  // Once per call: the host's safety backup before the first destructive step.
  void BeforeDestructive(const std::string& what) {
    if (backed_up_ || !env_.before_destructive) return;
    env_.before_destructive(what);
    backed_up_ = true;
  }

  void RecordFailure(const AppliedMigration& row, std::string* msg) {
    try {
      conn_.Tx([&] { Upsert(conn_, row); });
    } catch (const std::exception& e) {
      *msg += fmt::format(" (recording the failure failed too: {})", ErrorText(e));
    }
  }

  Connection& conn() { return conn_; }

 private:
  Connection& conn_;
  const MigrateEnv& env_;
  SchemaProbe probe_;
  std::optional<SchemaSnapshot> cached_;
  std::string applied_by_;
  bool backed_up_ = false;
};
}  // namespace

json UpResult::ToJson() const {
  json a = json::array();
  for (const auto& s : applied) {
    a.push_back({{"version", s.version}, {"file", s.file}, {"seconds", s.seconds},
                 {"class", s.cls.empty() ? json(nullptr) : json(s.cls)}});
  }
  return {{"from", from ? json(*from) : json(nullptr)},
          {"to", to ? json(*to) : json(nullptr)},
          {"applied", a},
          {"skipped", skipped},
          {"dry_run", dry_run},
          {"plan", plan},
          {"lock_wait_seconds", lock_wait_seconds}};
}

UpResult Up(Connection& conn, const std::string& dir, const UpOptions& o, const MigrateEnv& env) {
  if (o.policy != "expand" && o.policy != "any") {
    Fail("invalid", fmt::format("unknown policy '{}' (expected \"expand\" or \"any\")", o.policy));
  }
  auto files = LoadMigrationDir(dir);
  UpResult result;
  result.dry_run = o.dry_run;

  auto plan = [&](const MigrationStatus& st) {
    std::string code;
    ValidateOptions v;
    v.allow_missing = o.allow_missing;
    v.allow_out_of_order = o.allow_out_of_order;
    auto problems = HistoryProblems(st, v, &code);
    ThrowProblems(code, problems);
    for (const auto& e : st.entries) {
      if (e.state == "failed" && e.applied->no_transaction) {
        Fail("partial", fmt::format("{} failed part-way on {} and ran without a transaction, so some of it may be "
                                    "applied: check the database, then drop the record with migrate.repair(db, {{ "
                                    "reason = \"...\" }}) to apply it again. Its error: {}",
                                    e.label, e.applied->applied_at, e.applied->error));
      }
    }
    std::vector<const MigrationFile*> todo;
    for (const auto& e : st.entries) {
      bool wanted = e.state == "pending" || (e.state == "failed" && e.file) ||
                    (e.state == "out_of_order" && o.allow_out_of_order);
      if (!wanted || !e.file) continue;
      if (o.to && e.version > *o.to) continue;
      todo.push_back(&*e.file);
    }
    return todo;
  };

  if (o.dry_run) {
    auto st = ReadStatus(conn, dir, files);
    result.from = result.to = st.current;
    for (const auto* m : plan(st)) result.plan.push_back(PlanEntry(*m, DialectOf(conn), true));
    LogPlan(env, result.plan, "apply");
    return result;
  }

  Applier applier(conn, env);
  const double wait_start = sys::Monotonic();
  conn.Lock(kMigrateLockName, env.lock, [&] {
    result.lock_wait_seconds = sys::Monotonic() - wait_start;
    EnsureTable(conn);
    auto st = ReadStatus(conn, dir, files);
    result.from = st.current;
    std::optional<int64_t> current = st.current;
    try {
      for (const auto* m : plan(st)) applier.Apply(*m, o, current, result);
    } catch (...) {
      result.to = current;
      throw;
    }
    result.to = current;
  });
  return result;
}

}  // namespace hoist::db
