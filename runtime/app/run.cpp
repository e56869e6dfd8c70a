#include "app/run.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/run.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/identity.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "engine/lease.h"
#include "engine/recorded_world.h"
#include "engine/runner.h"
#include "engine/state_store.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/state.h"
#include "sys/clock.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::app {
namespace {

using json = nlohmann::json;
using bind::Context;

// "area: message", masked: what a run's record and the operator see.
std::string MaskedWhat(const std::exception& e) { return Mask(e.what()); }

}  // namespace

RunOutcome RunPlaybook(const Project& project, const RunOptions& options, engine::Reporter& reporter) {
  RunOutcome outcome;
  auto usage_error = [&](const std::string& msg, const std::string& hint = "") {
    outcome.exit_code = kExitUsage;
    outcome.status = "invalid";
    outcome.error = Mask(msg);
    outcome.error_code = "invalid";
    json ev = {{"event", "run_finished"}, {"status", "invalid"}, {"exit_code", kExitUsage}, {"error", Mask(msg)},
               {"run_id", 0}};
    if (!hint.empty()) ev["hint"] = hint;
    reporter.Emit(ev);
    return outcome;
  };

  std::unique_ptr<engine::World> real_world;
  engine::World* world = options.world;
  if (!world) {
    real_world = engine::MakeRealWorld();
    world = real_world.get();
  }
  bool sandbox = !options.sandbox_dir.empty();
  Context ctx;
  // Every world call and its answer is journaled, so `hoist replay` can
  // feed the same answers back (a replay itself is not re-recorded).
  std::unique_ptr<engine::RecordingWorld> recorder;
  if (std::string_view(world->mode()) != "replay") {
    recorder = std::make_unique<engine::RecordingWorld>(
        *world, [&ctx](const std::string& op, const json& call, const json& response) {
          if (ctx.runner) ctx.runner->NoteBuffered("call", op, {{"call", call}, {"response", response}});
        });
    world = recorder.get();
  }
  ctx.world = world;
  ctx.sandbox_dir = options.sandbox_dir;
  ctx.db_redirects = options.db_redirects;
  ctx.reporter = &reporter;
  ctx.assume_yes = options.assume_yes;
  ctx.interactive = isatty(STDIN_FILENO) != 0;
  ctx.project_root = project.root;

  lua::State vm(VmOptions(project));
  lua_State* L = vm.get();
  bind::SetContext(L, &ctx);

  // Everything before the first step: any problem is a usage error (exit 2).
  Config config;
  PlaybookInfo info;
  PlaybookRef ref;
  std::string env_name;
  json params;
  int config_idx, env_idx, desc_idx;
  try {
    config = LoadConfig(vm, project);
    lua::SetMemoryLimit(L, config.memory_limit);
    config_idx = lua_gettop(L);
    if (options.env_table.is_object()) {
      env_name = options.env.empty() ? "test" : options.env;
      lua::PushJson(L, options.env_table);
      lua::PushString(L, env_name);
      lua_setfield(L, -2, "name");
    } else {
      env_name = PushEnvironment(L, config_idx, config, options.env);
    }
    env_idx = lua_gettop(L);
    lua::RawField(L, env_idx, "backups");
    ctx.env_backups = lua::ToJson(L, -1, true);
    lua_pop(L, 1);
    if (!options.sandbox_database.empty()) {
      // The playbook sees the copy wherever it reads env.database.
      lua::PushString(L, options.sandbox_database);
      lua_setfield(L, env_idx, "database");
    }
    ref = Resolve(project, options.playbook);
    info = LoadDescription(vm, ref);
    desc_idx = lua_gettop(L);
    params = engine::ValidateParams(info.params, options.params);
  } catch (const Error& e) {
    std::string hint;
    if (e.area() == "params" && !info.name.empty()) hint = "hoist describe " + info.name + " lists its params";
    return usage_error(MaskedWhat(e), hint);
  } catch (const std::exception& e) {
    return usage_error(MaskedWhat(e));
  }
  for (const auto& s : info.params) {
    if (s.secret && params.contains(s.name) && params[s.name].is_string()) RegisterSecret(params[s.name].get<std::string>());
  }
  // A URL with a password is a secret wherever it came from (-e, --params).
  RegisterJsonUrlSecrets(params);

  if (!options.state_path.empty()) config.state_path = options.state_path;
  std::unique_ptr<engine::StateStore> store;
  try {
    store = engine::OpenStateStore(config.state_path);
    if (!options.facts_from.empty()) store->SeedFacts(env_name, engine::ReadFacts(options.facts_from, env_name));
    if (options.facts.is_object() && !options.facts.empty()) store->SeedFacts(env_name, options.facts);
  } catch (const Error& e) {
    bool says_what_to_do = e.code() == "busy" || e.code() == "not_a_store";
    return usage_error(MaskedWhat(e), says_what_to_do ? "" : "check the 'state' setting in hoist.lua and the directory's permissions");
  }

  engine::RunMeta meta;
  meta.playbook = info.name;
  meta.version = info.version;
  meta.source = ref.source;
  meta.source_sha256 = sys::Sha256Hex(ref.source);
  meta.origin = ref.origin + ":" + ref.display_path;
  meta.params = engine::MaskParams(info.params, params);
  meta.operator_name = OperatorName();
  meta.host = HostName();
  meta.env = env_name;
  meta.hoist_version = HOIST_VERSION;
  meta.sandbox = sandbox;
  int64_t run_id = store->BeginRun(meta);
  outcome.run_id = run_id;
  double started = sys::Monotonic();
  reporter.Emit({{"event", "run_started"},
                 {"run_id", run_id},
                 {"playbook", info.name},
                 {"version", info.version},
                 {"source_sha256", meta.source_sha256},
                 {"origin", meta.origin},
                 {"env", env_name},
                 {"params", json::parse(Mask(meta.params.dump()))},
                 {"operator", meta.operator_name},
                 {"host", meta.host},
                 {"sandbox", sandbox}});

  // The lease: one mutating run per environment.
  engine::Lease lease;
  std::unique_ptr<engine::LeaseKeeper> keeper;
  bool leased = false;
  auto release = [&] {
    keeper.reset();
    if (!leased) return;
    leased = false;
    try {
      store->ReleaseLease(lease.env, lease.token);
    } catch (const std::exception& e) {
      log::Warn(fmt::format("could not release the lease on '{}' in {} ({}): it expires by itself within {} s",
                            lease.env, config.state_path, Mask(e.what()), config.lease_ttl));
    }
  };

  engine::Runner* active_runner = nullptr;
  auto finish = [&](const std::string& status, int code, const std::string& error, json extra) {
    if (active_runner) active_runner->FlushBuffered();
    try {
      // Under the lease still: a shared store fences this write too.
      store->FinishRun(run_id, status, code, error);
    } catch (const std::exception& e) {
      // The outcome stands (it is reported below); only its record is lost.
      log::Error(fmt::format("run {} ended {} but {} could not record it ({}): the history shows it as running",
                             run_id, status, Mask(config.state_path), Mask(e.what())));
    }
    release();
    outcome.exit_code = code;
    outcome.status = status;
    outcome.error = Mask(error);
    outcome.error_code = extra.is_object() ? extra.value("code", status == "ok" ? "" : status) : "";
    json ev = {{"event", "run_finished"}, {"run_id", run_id}, {"status", status}, {"exit_code", code},
               {"seconds", sys::Monotonic() - started}};
    if (!error.empty()) ev["error"] = Mask(error);
    for (auto& [k, v] : extra.items()) ev[k] = v;
    reporter.Emit(ev);
    return outcome;
  };

  if (info.lock) {
    lease.env = env_name;
    lease.owner = meta.operator_name;
    lease.host = meta.host;
    lease.pid = getpid();
    lease.run_id = run_id;
    lease.reason = options.reason.empty() ? fmt::format("{} {}", info.name, info.version) : options.reason;
    lease.token = engine::NewLeaseToken();
    try {
      store->AcquireLease(lease, config.lease_ttl);
    } catch (const engine::LeaseHeldError& e) {
      return finish("lease_held", kExitLeaseHeld, e.what(),
                    {{"hint", fmt::format("wait for run {} to finish; if it is dead, its lease expires by itself, or "
                                          "run: hoist lock release --env {} --force --reason \"...\"",
                                          e.holder().run_id, env_name)},
                     {"holder", {{"owner", e.holder().owner}, {"host", e.holder().host}, {"pid", e.holder().pid},
                                 {"run_id", e.holder().run_id}, {"reason", e.holder().reason}}}});
    }
    leased = true;
    std::string state_path = config.state_path;
    keeper = std::make_unique<engine::LeaseKeeper>([state_path] { return engine::OpenStateStore(state_path); }, lease,
                                                   config.lease_ttl);
  }

  engine::Runner runner(*store, reporter, run_id);
  runner.SetJournalName(config.state_path);
  active_runner = &runner;
  if (sandbox) runner.SetSleep([world](double s) { world->Sleep(s, false); });
  // A simulated world names the step in its changes; the real one ignores it.
  engine::World* named = options.world;
  if (named) named->SetStepName([&runner] { return runner.CurrentStepName(); });
  struct ForgetRunner {  // the world outlives this run's runner
    engine::World* world;
    ~ForgetRunner() {
      if (world) world->SetStepName(nullptr);
    }
  } forget_runner{named};
  ctx.runner = &runner;
  ctx.store = store.get();
  ctx.env = env_name;

  lua::RawField(L, desc_idx, "run");
  lua::PushJson(L, params);
  int params_idx = lua_gettop(L);
  bind::PushRunObject(L, run_id, info.name, info.version, env_idx, params_idx, sandbox);
  // Every environment of hoist.lua, for playbooks that look across them
  // (compare dev with prod); run.env stays the one the lease covers.
  if (lua::RawField(L, config_idx, "environments") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_setfield(L, -2, "environments");
  lua_pushvalue(L, params_idx);
  lua_remove(L, params_idx);

  std::string error, code, traceback;
  bool failed = false;
  json result;  // what run(p) returned, for --json consumers (hoist status --json)
  try {
    lua::Call(L, 2, 1);
    if (!lua_isnil(L, -1)) {
      try {
        result = json::parse(Mask(lua::ToJson(L, -1).dump()));
      } catch (const std::exception&) {
        result = nullptr;  // a value JSON cannot hold (a function) is left out, never a failure
      }
    }
    lua_pop(L, 1);
    ThrowIfStopped("run");
  } catch (const lua::ScriptError& e) {
    failed = true;
    error = MaskedWhat(e);
    code = e.code();
    traceback = Mask(e.traceback());
  } catch (const std::exception& e) {
    failed = true;
    error = MaskedWhat(e);
    code = "error";
  }
  if (!failed) {
    ctx.runner = nullptr;
    ctx.store = nullptr;
    return finish("ok", kExitOk, "", result.is_null() ? json::object() : json{{"result", result}});
  }
  bool interrupted = code == "interrupted" || Interrupted();
  ClearInterrupt();  // let the undos run; a second Ctrl-C interrupts them
  if (code == "lease_lost") {
    // Another run holds the environment now: undoing would act under its
    // lease. What this run changed is in its journal up to the refusal.
    ctx.runner = nullptr;
    ctx.store = nullptr;
    json extra = {{"code", code}, {"not_undone", runner.PendingUndos()}};
    return finish("lease_lost", kExitUndoFailed, error, extra);
  }
  engine::UnwindResult undo = runner.Unwind();
  ctx.runner = nullptr;
  ctx.store = nullptr;
  json extra = {{"undone", undo.undone}, {"code", code}};
  if (!traceback.empty()) extra["traceback"] = traceback;
  if (!undo.ok()) {
    extra["undo_failed_step"] = undo.failed_step;
    extra["undo_error"] = undo.failed_error;
    extra["not_undone"] = undo.not_undone;
    return finish("failed_undo", kExitUndoFailed, error, extra);
  }
  if (interrupted) return finish("interrupted", kExitInterrupted, error, extra);
  return finish("failed", kExitFailed, error, extra);
}

std::unique_ptr<engine::Reporter> MakeReporter(const OutputOptions& o) {
  if (o.json) return engine::MakeJsonReporter(stdout);
  engine::HumanOptions h;
  h.tty = isatty(STDOUT_FILENO) != 0;
  h.color = h.tty && !o.no_color && std::getenv("NO_COLOR") == nullptr;
  h.verbose = o.verbose;
  return engine::MakeHumanReporter(stdout, stderr, h);
}

std::unique_ptr<engine::Reporter> MakeQuietReporter() { return engine::MakeNullReporter(); }

namespace {

// "invalid JSON at line 2 column 1: unexpected end of input" without
// nlohmann's "[json.exception.parse_error.101] ..." framing.
std::string JsonParseProblem(const std::string& text, const json::parse_error& e) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  std::string why = e.what();
  if (auto c = why.find(": "); c != std::string::npos) why = why.substr(c + 2);  // after "..., column C"
  if (auto d = why.find(" - "); d != std::string::npos) why = why.substr(d + 3);  // after "syntax error while ..."
  // "; last read: 'tru<U+000A>'" -> " near 'tru'"
  if (auto l = why.find("; last read: '"); l != std::string::npos) {
    std::string token = why.substr(l + 14);
    if (!token.empty() && token.back() == '\'') token.pop_back();
    if (auto u = token.find("<U+"); u != std::string::npos) token.resize(u);
    token = TrimRight(token);
    why = why.substr(0, l) + (token.empty() ? "" : " near '" + token + "'");
  }
  return fmt::format("invalid JSON at line {} column {}: {}", line, column, why);
}

}  // namespace

json ReadParamsFile(const std::string& path) {
  std::string text;
  try {
    text = sys::ReadFile(path);
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error("", "usage", fmt::format("--params: {}: {}", path, JsonParseProblem(text, e)));
  } catch (const Error& e) {
    throw Error("", "usage", fmt::format("--params: {}", e.message()));
  }
}

}  // namespace hoist::app
