// `hoist state migrate`: a project's SQLite journal and facts copied into a
// PostgreSQL state store, once (see MigrateSqliteStateToPg in state_store_pg.h).
#include <sys/stat.h>

#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "db/sqlite.h"
#include "engine/state_store_pg.h"
#include "sys/sha256.h"

namespace hoist::engine {
namespace {

using db::Null;
using db::Value;

// A SQLite cell as JSON, by its storage class (the journal's text stays text).
json Cell(const db::Stmt& s, int c) {
  switch (sqlite3_column_type(s.get(), c)) {
    case SQLITE_NULL:
      return nullptr;
    case SQLITE_INTEGER:
      return s.Int(c);
    case SQLITE_FLOAT:
      return s.Double(c);
    default:
      return s.Text(c);
  }
}

Value ToValue(const json& j) {
  if (j.is_null()) return Null{};
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number()) return j.get<double>();
  if (j.is_boolean()) return j.get<bool>();
  return j.get<std::string>();
}

constexpr const char* kRunColumns =
    "playbook, version, origin, source_sha256, source, params, operator, host, env, hoist_version, sandbox, "
    "started_at, ended_at, status, exit_code, error, pid";

struct SqliteRun {
  int64_t id = 0;
  std::vector<json> cols;  // kRunColumns
  std::string key;
};

// What makes a run the same run wherever its store file went: who ran
// what, where and when.
std::string ImportKey(const SqliteRun& r) {
  json who = {r.cols[7], r.cols[16], r.cols[11], r.cols[0], r.cols[3], r.cols[8]};
  return "sqlite:" + sys::Sha256Hex(who.dump());
}

std::vector<json> Rows(db::Sqlite& src, const std::string& sql, int64_t run, int ncols) {
  auto s = src.Prepare(sql);
  s.Bind(1, run);
  std::vector<json> out;
  while (s.Step()) {
    json row = json::array();
    for (int c = 0; c < ncols; ++c) row.push_back(Cell(s, c));
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace

StateMigration MigrateSqliteStateToPg(const std::string& sqlite_path, const std::string& url, bool renumber) {
  struct stat st {};
  if (::stat(sqlite_path.c_str(), &st) != 0) {
    throw Error("state", "not_found",
                fmt::format("no state store at {} to migrate (give the SQLite file with --from)", sqlite_path));
  }
  // Brings an older store's tables up to date first (runs.pid, kv).
  OpenStateStore(sqlite_path).reset();
  db::Sqlite src(sqlite_path, SQLITE_OPEN_READONLY);
  auto pg = OpenPgStateSchema(url);
  StateMigration m;
  m.from = sqlite_path;
  m.to = pg->redacted();

  std::vector<SqliteRun> runs;
  {
    auto s = src.Prepare(fmt::format("SELECT id, {} FROM runs ORDER BY id", kRunColumns));
    while (s.Step()) {
      SqliteRun r;
      r.id = s.Int(0);
      for (int c = 1; c <= 17; ++c) r.cols.push_back(Cell(s, c));
      r.cols[10] = r.cols[10].is_number() && r.cols[10].get<int64_t>() != 0;  // sandbox: 0/1 -> boolean
      r.key = ImportKey(r);
      runs.push_back(std::move(r));
    }
  }

  try {
    pg->Tx([&] {
      // Two migrates at once would both find a run missing and copy it.
      pg->Query("SELECT pg_advisory_xact_lock(hashtextextended('hoist state migrate', 0))");
      std::map<int64_t, int64_t> ids;  // SQLite id -> PostgreSQL id
      std::vector<const SqliteRun*> todo;
      std::vector<int64_t> conflicts;
      for (const auto& r : runs) {
        auto had = pg->Query("SELECT id FROM hoist.runs WHERE import_key = $1", {r.key});
        if (!had.rows.empty()) {
          ids[r.id] = std::get<int64_t>(had.rows[0][0]);
          ++m.runs_present;
          continue;
        }
        if (!renumber && !pg->Query("SELECT 1 FROM hoist.runs WHERE id = $1", {r.id}).rows.empty()) {
          conflicts.push_back(r.id);
        }
        todo.push_back(&r);
      }
      if (!conflicts.empty()) {
        std::string list;
        for (size_t i = 0; i < conflicts.size() && i < 10; ++i) list += (i ? ", " : "") + std::to_string(conflicts[i]);
        if (conflicts.size() > 10) list += fmt::format(" and {} more", conflicts.size() - 10);
        throw Error("state", "conflict",
                    fmt::format("{} already has other runs with the ids of {} run(s) of {} (run {}): nothing was "
                                "copied. Run it again with --renumber to give the copied runs new ids (the mapping "
                                "is printed, and a later migrate still copies nothing twice)",
                                m.to, conflicts.size(), sqlite_path, list));
      }
      for (const SqliteRun* r : todo) {
        std::vector<Value> params;
        for (const auto& c : r->cols) params.push_back(ToValue(c));
        params.push_back(r->key);
        std::string placeholders;
        for (size_t i = 1; i <= params.size(); ++i) placeholders += fmt::format("{}${}", i > 1 ? ", " : "", i);
        int64_t id = 0;
        if (renumber) {
          auto got = pg->Query(fmt::format("INSERT INTO hoist.runs({}, import_key) VALUES({}) RETURNING id", kRunColumns,
                                           placeholders),
                               params);
          id = std::get<int64_t>(got.rows.at(0)[0]);
          if (id != r->id) m.renumbered.emplace_back(r->id, id);
        } else {
          params.push_back(r->id);
          pg->Exec(fmt::format("INSERT INTO hoist.runs({}, import_key, id) VALUES({}, ${})", kRunColumns, placeholders,
                               params.size()),
                   params);
          id = r->id;
        }
        ids[r->id] = id;
        ++m.runs_copied;
        auto steps = Rows(src,
                          "SELECT seq, parent_seq, name, kind, status, attempts, started_at, ended_at, seconds, result, "
                          "error FROM steps WHERE run_id = ? ORDER BY seq",
                          r->id, 11);
        if (!steps.empty()) {
          pg->Exec(
              "INSERT INTO hoist.steps(run_id, seq, parent_seq, name, kind, status, attempts, started_at, ended_at, "
              "seconds, result, error) SELECT $1::bigint, (s->>0)::bigint, (s->>1)::bigint, s->>2, s->>3, s->>4, "
              "(s->>5)::integer, s->>6, s->>7, (s->>8)::float8, s->>9, s->>10 FROM json_array_elements($2::json) s",
              {id, json(steps).dump(-1, ' ', false, json::error_handler_t::replace)});
          m.steps += static_cast<int64_t>(steps.size());
        }
        auto events = Rows(src,
                           "SELECT seq, step_seq, at, kind, name, data, seconds FROM events WHERE run_id = ? ORDER BY seq",
                           r->id, 7);
        if (!events.empty()) {
          pg->Exec(
              "INSERT INTO hoist.events(run_id, seq, step_seq, at, kind, name, data, seconds) SELECT $1::bigint, "
              "(e->>0)::bigint, (e->>1)::bigint, e->>2, e->>3, e->>4, e->>5, (e->>6)::float8 "
              "FROM json_array_elements($2::json) e",
              {id, json(events).dump(-1, ' ', false, json::error_handler_t::replace)});
          m.events += static_cast<int64_t>(events.size());
        }
      }
      // Runs started in PostgreSQL from now on follow the copied ids.
      pg->Query("SELECT setval(pg_get_serial_sequence('hoist.runs', 'id'), GREATEST((SELECT max(id) FROM hoist.runs), 1))");
      // Facts the target has already are newer than a local copy: kept.
      auto kv = src.Prepare("SELECT env, key, value, run_id, updated_at FROM kv ORDER BY env, key");
      while (kv.Step()) {
        Value run = Null{};
        if (!kv.IsNull(3)) {
          auto it = ids.find(kv.Int(3));
          run = it != ids.end() ? it->second : kv.Int(3);
        }
        int64_t n = pg->Exec(
            "INSERT INTO hoist.facts(env, key, value, run_id, updated_at) VALUES($1, $2, $3, $4, $5) "
            "ON CONFLICT (env, key) DO NOTHING",
            {kv.Text(0), kv.Text(1), kv.Text(2), run, kv.Text(4)});
        (n == 1 ? m.facts_copied : m.facts_kept) += 1;
      }
    });
  } catch (const Error& e) {
    if (e.area() == "state") throw;
    throw Error("state", e.code(), fmt::format("migrating {} into {}: {}; nothing was copied", sqlite_path, m.to,
                                               e.message()));
  }
  return m;
}

}  // namespace hoist::engine
