#include "app/run.h"

#include <unistd.h>

#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "app/hosts.h"
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
#include "engine/notify.h"
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

// What the run is about, for notifications: the release param a deploy
// names (release, version, image), else null.
json ReleaseOf(const json& params) {
  for (const char* k : {"release", "version", "image"}) {
    if (params.contains(k) && params[k].is_string()) return params[k];
  }
  return nullptr;
}

// The top-level steps of a run as its journal has them, for a payload.
json StepSummary(engine::StateStore& store, int64_t run_id, const engine::UnwindResult* undo) {
  json list = json::array();
  int ok = 0, failed = 0;
  json failed_step = nullptr;
  try {
    if (auto run = store.GetRun(run_id)) {
      for (const auto& st : (*run)["steps"]) {
        if (!st["parent"].is_null() || st["kind"] != "step") continue;
        std::string status = st["status"].get<std::string>();
        if (status == "ok") ++ok;
        if (status == "failed") {
          ++failed;
          if (failed_step.is_null()) failed_step = st["name"];
        }
        list.push_back({{"name", st["name"]}, {"status", status}, {"seconds", st["seconds"]}});
      }
    }
  } catch (const std::exception&) {
    // A journal that cannot be read leaves the list empty; the run stands.
  }
  json s = {{"total", list.size()}, {"ok", ok},       {"failed", failed}, {"failed_step", failed_step},
            {"undone", json::array()}, {"undo_failed_step", nullptr}, {"undo_error", nullptr}, {"list", list}};
  if (undo) {
    s["undone"] = undo->undone;
    if (!undo->ok()) {
      s["undo_failed_step"] = undo->failed_step;
      s["undo_error"] = Mask(undo->failed_error);
    }
  }
  return s;
}

// Waits between delivery attempts; Ctrl-C cuts it short.
void NotifySleep(double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!Interrupted() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Sends a run's events to hoist.lua's notify targets, journaling each
// delivery. Nothing here throws or touches the run's outcome.
struct Notifier {
  const std::vector<engine::NotifyTarget>& targets;
  engine::StateStore& store;
  engine::Reporter& reporter;
  int64_t run_id;
  std::string playbook, env;
  bool send;  // false in a sandbox or a replay: journaled as not sent

  void Send(const json& ev) {
    const std::string name = ev["event"].get<std::string>();
    for (const auto& t : targets) {
      if (!engine::Wants(t, name, playbook, env)) continue;
      const std::string where = engine::RedactNotifyUrl(t.url);
      json record = {{"event", name}, {"url", where}, {"format", t.format}};
      engine::Delivery d;
      if (send) {
        try {
          d = engine::Deliver(t, engine::NotifyRequest(t, ev), NotifySleep);
        } catch (const std::exception& e) {
          d.error = Mask(e.what());
        }
        record["delivered"] = d.delivered;
        record["attempts"] = d.attempts;
        if (!d.delivered) record["error"] = d.error;
      } else {
        record["delivered"] = false;
        record["skipped"] = "a rehearsal sends no notifications";
      }
      try {
        store.Event(run_id, std::nullopt, "notify", name + " -> " + where, record, d.seconds);
      } catch (const std::exception& e) {
        log::Warn(fmt::format("could not journal the {} notification to {}: {}", name, where, Mask(e.what())));
      }
      json out = record;
      out["notify_event"] = name;
      out["event"] = "notify";
      out["run_id"] = run_id;
      reporter.Emit(out);
    }
  }
};

// The common payload of a run event (docs/notifications.md).
json RunEvent(const std::string& name, const engine::RunMeta& meta, int64_t run_id, const json& release,
              const std::string& status, json exit_code, const std::string& error, double seconds, json steps,
              const std::string& hook_error = "") {
  json run = {{"id", run_id},
              {"env", meta.env},
              {"playbook", meta.playbook},
              {"version", meta.version},
              {"release", release},
              {"operator", meta.operator_name},
              {"host", meta.host},
              {"status", status},
              {"exit_code", std::move(exit_code)},
              {"error", error.empty() ? json(nullptr) : json(Mask(error))},
              {"seconds", seconds},
              {"sandbox", meta.sandbox}};
  if (!hook_error.empty()) run["hook_error"] = Mask(hook_error);
  return {{"event", name}, {"at", sys::NowIso()}, {"hoist", HOIST_VERSION}, {"run", run},
          {"steps", std::move(steps)}, {"data", json::object()}};
}

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
  engine::CallSink journal = [&ctx](const std::string& op, const json& call, const json& response) {
    if (ctx.runner) ctx.runner->NoteBuffered("call", op, {{"call", call}, {"response", response}});
  };
  std::unique_ptr<engine::RecordingWorld> recorder;
  if (std::string_view(world->mode()) != "replay") {
    recorder = std::make_unique<engine::RecordingWorld>(*world, journal);
    world = recorder.get();
  }
  ctx.world = world;
  // Declared before the VM: playbook objects may reach a host until it closes.
  std::unique_ptr<HostWorlds> host_worlds;
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
    lua::RawField(L, env_idx, "hosts");
    std::vector<HostConfig> hosts = ParseHosts(lua::ToJson(L, -1, true), env_name, project.root);
    lua_pop(L, 1);
    ctx.hosts = HostsForPlaybooks(hosts);
    host_worlds = std::make_unique<HostWorlds>(
        std::move(hosts), *world, journal, options.host_world);
    ctx.host_world = [hw = host_worlds.get()](const std::string& name) -> engine::World& { return hw->Get(name); };
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

  const json release_of = ReleaseOf(params);
  // A rehearsal (sandbox, hoist test) or a replay tells nobody.
  Notifier notifier{config.notify, *store, reporter, run_id, info.name, env_name,
                    !sandbox && std::string_view(world->mode()) != "replay"};
  double run_seconds = 0;  // as run_finished reports it
  // The events after a run ended: what it raised, in order, then its end.
  auto notify_end = [&](const std::string& status, int code, const std::string& error, const json& steps,
                        const std::string& hook_error) {
    if (config.notify.empty()) return;
    for (const auto& raised : ctx.events) {
      json ev = RunEvent(raised["event"].get<std::string>(), meta, run_id, release_of, status, code, error,
                         sys::Monotonic() - started, steps, hook_error);
      ev["at"] = raised["at"];
      ev["data"] = json::parse(Mask(raised["data"].dump(-1, ' ', false, json::error_handler_t::replace)), nullptr,
                               /*allow_exceptions=*/false);
      if (ev["data"].is_discarded()) ev["data"] = json::object();
      notifier.Send(ev);
    }
    double secs = run_seconds;
    if (status == "ok") {
      notifier.Send(RunEvent("run.succeeded", meta, run_id, release_of, status, code, error, secs, steps, hook_error));
      return;
    }
    notifier.Send(RunEvent("run.failed", meta, run_id, release_of, status, code, error, secs, steps, hook_error));
    if (status == "failed_undo") {
      notifier.Send(RunEvent("run.undo_failed", meta, run_id, release_of, status, code, error, secs, steps, hook_error));
    } else if (!steps["undone"].empty()) {
      notifier.Send(RunEvent("run.undone", meta, run_id, release_of, status, code, error, secs, steps, hook_error));
    }
  };

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
      if (status == "lease_lost") {
        // Refused by the fence, as expected: whoever took or released the
        // lease marked this run abandoned, with who and why.
        log::Warn(fmt::format("run {} lost its lease, so its end is not recorded: {} shows it as abandoned "
                              "(hoist show {} says by whom)",
                              run_id, Mask(config.state_path), run_id));
      } else {
        log::Error(fmt::format("run {} ended {} but {} could not record it ({}): the history shows it as running",
                               run_id, status, Mask(config.state_path), Mask(e.what())));
      }
    }
    release();
    outcome.exit_code = code;
    outcome.status = status;
    outcome.error = Mask(error);
    outcome.error_code = extra.is_object() ? extra.value("code", status == "ok" ? "" : status) : "";
    run_seconds = sys::Monotonic() - started;
    json ev = {{"event", "run_finished"}, {"run_id", run_id}, {"status", status}, {"exit_code", code},
               {"seconds", run_seconds}};
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
      finish("lease_held", kExitLeaseHeld, e.what(),
                    {{"hint", fmt::format("wait for run {} to finish; if it is dead, its lease expires by itself, or "
                                          "run: hoist lock release --env {} --force --reason \"...\"",
                                          e.holder().run_id, env_name)},
                     {"holder", {{"owner", e.holder().owner}, {"host", e.holder().host}, {"pid", e.holder().pid},
                                 {"run_id", e.holder().run_id}, {"reason", e.holder().reason}}}});
      notify_end("lease_held", kExitLeaseHeld, Mask(e.what()), StepSummary(*store, run_id, nullptr), "");
      return outcome;
    }
    leased = true;
    std::string state_path = config.state_path;
    keeper = std::make_unique<engine::LeaseKeeper>([state_path] { return engine::OpenStateStore(state_path); }, lease,
                                                   config.lease_ttl);
  }

  if (!config.notify.empty()) {
    notifier.Send(RunEvent("run.started", meta, run_id, release_of, "running", nullptr, "", 0,
                           StepSummary(*store, run_id, nullptr)));
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
  // A copy of the run object below the call, for the on.failed/on.done hooks.
  lua_pushvalue(L, -2);
  lua_insert(L, -4);
  const int run_obj_idx = lua_gettop(L) - 3;

  // on.failed / on.done: called with the run and its summary after the
  // steps (and undos); an error in one is reported beside the run's own
  // outcome and changes nothing of it.
  auto run_hook = [&](const char* which, const std::string& status, int code, const std::string& error,
                      const engine::UnwindResult* undo) -> std::string {
    if (!(std::string_view(which) == "failed" ? info.on_failed : info.on_done)) return "";
    const std::string hook = std::string("on.") + which;
    runner.FlushBuffered();
    json summary = RunEvent(std::string_view(which) == "failed" ? "run.failed" : "run.succeeded", meta, run_id,
                            release_of, status, code, error, sys::Monotonic() - started,
                            StepSummary(*store, run_id, undo));
    std::string hook_error;
    ctx.hook = hook;
    try {
      lua::RawField(L, desc_idx, "on");
      lua::RawField(L, -1, which);
      lua_remove(L, -2);
      lua_pushvalue(L, run_obj_idx);
      lua::PushJson(L, summary);
      lua::Call(L, 2, 0);
      ThrowIfStopped("hook");
    } catch (const std::exception& e) {
      hook_error = MaskedWhat(e);
    }
    ctx.hook.clear();
    try {
      runner.Note("hook", hook, hook_error.empty() ? json{{"ok", true}} : json{{"ok", false}, {"error", hook_error}});
      runner.FlushBuffered();
    } catch (const std::exception&) {
      // The journal's own failure is the run's to report, not the hook's.
    }
    return hook_error;
  };

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
  auto end = [&](const std::string& status, int exit_code, json extra, const std::string& hook,
                 const std::string& hook_error, const engine::UnwindResult* undo) {
    ctx.runner = nullptr;
    ctx.store = nullptr;
    if (!hook_error.empty()) {
      extra["hook"] = hook;
      extra["hook_error"] = hook_error;
    }
    finish(status, exit_code, error, extra);
    notify_end(status, exit_code, error, StepSummary(*store, run_id, undo), hook_error);
    return outcome;
  };
  if (!failed) {
    std::string hook_error = run_hook("done", "ok", kExitOk, "", nullptr);
    return end("ok", kExitOk, result.is_null() ? json::object() : json{{"result", result}}, "on.done", hook_error,
               nullptr);
  }
  bool interrupted = code == "interrupted" || Interrupted();
  ClearInterrupt();  // let the undos run; a second Ctrl-C interrupts them
  if (code == "lease_lost") {
    // Another run holds the environment now: undoing would act under its
    // lease. What this run changed is in its journal up to the refusal.
    json extra = {{"code", code}, {"not_undone", runner.PendingUndos()}};
    return end("lease_lost", kExitUndoFailed, extra, "", "", nullptr);
  }
  engine::UnwindResult undo = runner.Unwind();
  json extra = {{"undone", undo.undone}, {"code", code}};
  if (!traceback.empty()) extra["traceback"] = traceback;
  std::string status = "failed";
  int exit_code = kExitFailed;
  if (!undo.ok()) {
    extra["undo_failed_step"] = undo.failed_step;
    extra["undo_error"] = undo.failed_error;
    extra["not_undone"] = undo.not_undone;
    status = "failed_undo";
    exit_code = kExitUndoFailed;
  } else if (interrupted) {
    status = "interrupted";
    exit_code = kExitInterrupted;
  }
  std::string hook_error = run_hook("failed", status, exit_code, error, &undo);
  return end(status, exit_code, extra, "on.failed", hook_error, &undo);
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
