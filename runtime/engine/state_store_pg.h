// The state store in PostgreSQL (`state = "postgresql://..."` in hoist.lua):
// the journal, facts and leases shared by every operator machine and CI
// runner. Its lease carries a fencing token; every write of a run that
// holds a lease is refused in the same statement once the lease is not
// that run's any more (docs/fleet.md, "State in PostgreSQL").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "db/connection.h"
#include "engine/state_store.h"

namespace hoist::engine {

/// True for postgres:// and postgresql:// locations.
bool IsPostgresState(const std::string& location);

/// Opens (and on first use creates, under an advisory transaction lock so
/// two hoists starting at once agree) the store in schema "hoist" of the
/// database at url. Throws Error{"state", code, "cannot open the state
/// store <url, password masked>: ..."}.
std::unique_ptr<StateStore> OpenPgStateStore(const std::string& url);

/// RecallAll(env) without creating anything: {} when the schema is absent.
json ReadPgFacts(const std::string& url, const std::string& env);

/// A connection to url's state schema, created when missing (see above):
/// for `hoist state migrate`, which writes the tables directly.
std::unique_ptr<db::Connection> OpenPgStateSchema(const std::string& url);

/// What `hoist state migrate` copied.
struct StateMigration {
  std::string from, to;       // the SQLite path, the URL (password masked)
  int64_t runs_copied = 0;     // with their steps and events
  int64_t runs_present = 0;    // copied by an earlier migrate: skipped
  int64_t steps = 0, events = 0;
  int64_t facts_copied = 0;
  int64_t facts_kept = 0;      // the target already had env+key: its value kept
  /// SQLite run id -> PostgreSQL run id, where they differ (--renumber).
  std::vector<std::pair<int64_t, int64_t>> renumbered;
};

/// Copies the runs (steps, events) and facts of the SQLite store at
/// sqlite_path into the PostgreSQL store at url, in one transaction. Each
/// copied run keeps a key made from its content (host, pid, start, playbook,
/// source hash), so a second migrate copies nothing twice. Run ids are kept;
/// when the target has a different run under one of them, nothing is copied
/// (Error{"state","conflict"}) unless renumber: then every run not yet
/// copied gets a new id and facts follow their run. Live leases are not
/// copied.
StateMigration MigrateSqliteStateToPg(const std::string& sqlite_path, const std::string& url, bool renumber);

}  // namespace hoist::engine
