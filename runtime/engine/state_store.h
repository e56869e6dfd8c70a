// The state store: the run journal (runs, steps, events) and the
// per-environment deploy lease. A SQLite file (.hoist/state.db) for one
// machine, or PostgreSQL shared by several operators (state_store_pg.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hoist::engine {

using json = nlohmann::json;

struct RunMeta {
  std::string playbook;
  std::string version;
  std::string source;          // full playbook source, kept for replay
  std::string source_sha256;
  std::string origin;          // "project:playbooks/x.lua" or "canned"
  json params = json::object();  // already masked
  std::string operator_name;
  std::string host;
  std::string env;
  std::string hoist_version;
  bool sandbox = false;
};

struct Lease {
  std::string env;
  std::string owner;     // operator name
  std::string host;
  int64_t pid = 0;
  int64_t run_id = 0;
  std::string reason;
  std::string token;     // unique per holder; release/heartbeat must match
  double started_at = 0;
  double heartbeat_at = 0;
  double expires_at = 0;
};

/// True when the lease's holder ran on this host and its pid is gone.
bool HolderGoneHere(const Lease& lease);

/// Thrown when another live holder has the lease (code "lease_held").
class LeaseHeldError : public Error {
 public:
  explicit LeaseHeldError(Lease holder);
  const Lease& holder() const { return holder_; }

 private:
  Lease holder_;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  /// Journal. Every text stored is masked for secrets first.
  virtual int64_t BeginRun(const RunMeta& meta) = 0;
  virtual void FinishRun(int64_t run, const std::string& status, int exit_code, const std::string& error) = 0;
  /// Returns the step's sequence number within the run.
  virtual int64_t StepStarted(int64_t run, std::optional<int64_t> parent, const std::string& name,
                              const std::string& kind) = 0;
  virtual void StepFinished(int64_t run, int64_t seq, const std::string& status, int attempts,
                            const json& result, const std::string& error, double seconds) = 0;
  /// A world call, log line or note inside a run (step may be absent).
  virtual void Event(int64_t run, std::optional<int64_t> step, const std::string& kind, const std::string& name,
                     const json& data, double seconds) = 0;

  /// Newest first: {id, playbook, version, env, status, started_at, ...}.
  struct PendingEvent {
    std::optional<int64_t> step;
    std::string kind, name;
    json data;
    double seconds = 0;
  };
  /// Several events in one transaction: the recorded world calls of a run
  /// arrive by the thousand (polling loops), one commit each would make
  /// the journal, not the run, the slow part.
  virtual void Events(int64_t run, const std::vector<PendingEvent>& events) {
    for (const auto& e : events) Event(run, e.step, e.kind, e.name, e.data, e.seconds);
  }

  virtual std::vector<json> History(const std::optional<std::string>& env, int limit) = 0;
  /// The run with its steps and events, or nullopt.
  virtual std::optional<json> GetRun(int64_t id) = 0;

  /// Takes env's lease for `ttl` seconds, replacing an expired one.
  /// Throws LeaseHeldError when a live holder exists.
  virtual void AcquireLease(const Lease& want, double ttl) = 0;
  /// Extends our lease; false when it is no longer ours (released by force).
  virtual bool Heartbeat(const std::string& env, const std::string& token, double ttl) = 0;
  virtual void ReleaseLease(const std::string& env, const std::string& token) = 0;
  /// Removes env's lease whoever holds it; returns what was removed.
  /// Removes env's lease whoever holds it; the holder's run, if still
  /// "running", is marked "abandoned" saying who released it and why.
  virtual std::optional<Lease> ForceRelease(const std::string& env, const std::string& by = "",
                                            const std::string& reason = "") = 0;
  virtual std::vector<Lease> Leases() = 0;

  /// Per-environment facts a playbook records for the next run (which
  /// release each colour runs, the schema version after a deploy).
  /// Values are JSON, masked for secrets when stored. Stores without
  /// facts (test fakes) keep these defaults, which throw state/unsupported.
  virtual void Remember(const std::string& env, const std::string& key, const json& value, int64_t run);
  /// {value, run_id, updated_at} or nullopt when never remembered.
  virtual std::optional<json> Recall(const std::string& env, const std::string& key);
  /// Every key of env: {key: {value, run_id, updated_at}}.
  virtual json RecallAll(const std::string& env);
  /// Stores facts as RecallAll gives them (run_id and updated_at kept):
  /// a sandbox's own store starts from the real one's.
  virtual void SeedFacts(const std::string& env, const json& facts);
};

/// Opens the store at `location`: a file path (created 0600, its directory
/// 0700) or a postgres:// / postgresql:// URL. Throws Error{"state",...}.
std::unique_ptr<StateStore> OpenStateStore(const std::string& location);

/// RecallAll(env) of the store at `location`, read-only: nothing is created
/// or written, and a store that does not exist yet has no facts ({}).
/// Throws Error{"state",...} when it exists but cannot be read.
json ReadFacts(const std::string& location, const std::string& env);

}  // namespace hoist::engine
