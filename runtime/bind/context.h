// The run context bindings reach through the registry: the runner (journal
// of steps and world calls), the reporter (progress) and the world seam.
// Absent outside a run (e.g. while loading hoist.lua or `describe`).
#pragma once

#include <lua.hpp>

#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/reporter.h"
#include "engine/runner.h"
#include "engine/world.h"
#include "sys/clock.h"

namespace hoist::bind {

/// What hoist.sandbox asks of the host running `hoist test` (app/test_runner):
/// the binding reads the Lua arguments, the host runs the sandboxed playbook.
class SandboxHost {
 public:
  virtual ~SandboxHost() = default;
  /// sandbox.run's spec table (as JSON) -> its result table (as JSON).
  virtual nlohmann::json Run(const nlohmann::json& spec) = 0;
  /// sandbox.replay(file, db_url) -> { status, recorded_status, calls, divergence? }
  virtual nlohmann::json Replay(const std::string& file, const std::string& db_url) = 0;
  virtual void Remove(const std::string& dir) = 0;
  virtual std::string Diff(const std::string& a, const std::string& b) = 0;
};

struct Context {
  engine::World* world = nullptr;
  engine::Runner* runner = nullptr;      // null until the run starts
  engine::Reporter* reporter = nullptr;
  bool assume_yes = false;               // --yes
  bool interactive = false;              // stdin is a TTY
  std::string project_root;
  engine::StateStore* store = nullptr;   // the journal's store (run:remember/recall)
  std::string env;                       // the chosen environment's name
  /// Sandbox runs (hoist run --sandbox, hoist test): set when the world is
  /// simulated. Files the native modules write straight to disk (backups)
  /// land under sandbox_dir instead, and db.open may only reach the copies:
  /// db_redirects maps a real SQLite file (absolute path) to its copy's URL;
  /// any other database is refused.
  std::string sandbox_dir;
  std::map<std::string, std::string> db_redirects;
  /// Real backups this rehearsal's prunes "removed" (never touched): later
  /// listings in the same rehearsal leave them out, as the real run would.
  std::set<std::string> sandbox_pruned;
  /// The environment's `backups` setting (a dir, a table or null): where the
  /// safety backups hoist enforces go (EnsureSafetyBackup).
  nlohmann::json env_backups;
  /// Safety backups taken in this run: database (redacted URL) -> its
  /// migration version then (null: none applied).
  std::map<std::string, nlohmann::json> safety_backups;
  /// Set by `hoist test`: what hoist.sandbox's functions call.
  SandboxHost* sandbox_host = nullptr;
  /// The events this run raised for hoist.lua's notify targets
  /// (switch.done, rollback.done, backup.failed: RaiseEvent), in order:
  /// {event, at, data}. app/run sends them when the run has ended.
  std::vector<nlohmann::json> events;
  /// While the playbook's on.failed / on.done hook runs: its name
  /// ("on.failed"); run:step is refused then (the steps are over).
  std::string hook;
  /// The environment's hosts (hoist.lua `hosts`) as playbooks see them, in
  /// name order: [{name, ssh, address, roles, local}]. Empty: no hosts.
  nlohmann::json hosts = nlohmann::json::array();
  /// The world acting on a host of `hosts`: connected on first use and
  /// journaled like the run's own world. Callable from any thread (run:each
  /// calls it without the turn). Throws that host's connection error.
  std::function<engine::World&(const std::string& host)> host_world;
  /// The turn at the VM while run:each works hosts at once (core/turn.h).
  std::mutex turn;
};

/// RAII: world calls of this thread act on `world` (a host's) for its
/// lifetime (hosts.on, run:each); nests.
class HostScope {
 public:
  explicit HostScope(engine::World* world);
  ~HostScope();
  HostScope(const HostScope&) = delete;
  HostScope& operator=(const HostScope&) = delete;

 private:
  engine::World* saved_;
};

/// Queues a notify event of the active run (no-op outside one). `event`
/// must be one of engine::NotifyEventNames() but run.*, which the run
/// pipeline raises itself; Error{"notify","invalid"} otherwise.
void RaiseEvent(lua_State* L, const std::string& event, const nlohmann::json& data);

/// The context stored in L's registry, or nullptr.
Context* GetContext(lua_State* L);
void SetContext(lua_State* L, Context* ctx);

/// The world for this state: the host's inside a HostScope, else the
/// run's; a real world when no context is set. While a
/// playbook's description loads (SetLoadingPlaybook), throws
/// Error{"playbook","load_time","proc.run at load time: move it into run"}.
engine::World& WorldOf(lua_State* L);

/// Marks that a playbook file's top level is running (its description
/// loading): world calls are refused meanwhile.
void SetLoadingPlaybook(lua_State* L, bool on);

/// In a sandbox run, where a file the run asks to create under `path` goes
/// (inside the sandbox dir); `path` itself otherwise.
std::string SandboxPath(lua_State* L, const std::string& path);

/// Journals a world call when a run is active (no-op otherwise).
void RecordWorld(lua_State* L, const std::string& kind, const std::string& name, const nlohmann::json& data,
                 double seconds);

/// What a failed call's data["error"] holds: what() ("db: no such table",
/// which db replays compare) or a hoist::Error's bare message (docker's).
enum class JournalError { kWhat, kMessage };

/// Runs f(data) and journals it as a `kind` world call named `name`, timed,
/// whether f returns or throws: a throw adds data["error"] (see JournalError)
/// and data["code"] (the hoist::Error code, else "error") and is rethrown.
/// Returns what f returns.
template <typename F>
auto Journaled(lua_State* L, const std::string& kind, const std::string& name, nlohmann::json data, F&& f,
               JournalError text = JournalError::kWhat) {
  double start = sys::Monotonic();
  try {
    if constexpr (std::is_void_v<decltype(f(data))>) {
      f(data);
      RecordWorld(L, kind, name, data, sys::Monotonic() - start);
    } else {
      auto result = f(data);
      RecordWorld(L, kind, name, data, sys::Monotonic() - start);
      return result;
    }
  } catch (const std::exception& e) {
    auto* he = dynamic_cast<const Error*>(&e);
    data["error"] = he && text == JournalError::kMessage ? he->message() : std::string(e.what());
    data["code"] = he ? he->code() : "error";
    RecordWorld(L, kind, name, data, sys::Monotonic() - start);
    throw;
  }
}

/// The one confirmation prompt: "<question> [y/N] " on stderr, answered on
/// stdin. --yes answers yes without asking. Every answer is journaled as a
/// "confirm" note ({answer, by = "--yes" | "prompt"}). Returns the answer.
/// Throws Error{"run","not_confirmed","cannot ask \"<question>\": no terminal
/// to answer on; pass --yes to confirm"} when no terminal can answer.
bool Ask(lua_State* L, const std::string& question);

/// For an action that must not run unconfirmed (restore): `confirmed` (the
/// caller's confirm option, set after the playbook's run:confirm) or --yes
/// confirm it, else Ask. Throws Error{"run","not_confirmed"}: "<question>:
/// needs confirmation: pass --yes, or set confirm = true after run:confirm"
/// without a terminal, "<question>: not confirmed" when the answer is no.
void Confirm(lua_State* L, bool confirmed, const std::string& question);

}  // namespace hoist::bind
