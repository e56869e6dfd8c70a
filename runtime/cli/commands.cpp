#include "cli/commands.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/modules.h"
#include "app/run.h"
#include "app/sandbox.h"
#include "app/test_runner.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/identity.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/secrets.h"
#include "db/connection.h"
#include "db/migrator.h"
#include "engine/params.h"
#include "engine/reporter.h"
#include "engine/state_store.h"
#include "sys/clock.h"
#include "sys/fs.h"

namespace hoist::cli {
namespace {

using json = nlohmann::json;

struct Globals {
  std::string project_dir = ".";
  bool json = false;
  int verbose = 0;
  bool quiet = false;
  bool no_color = false;
};

struct Command {
  const char* name;
  const char* help;
};

// The table of subcommands: --help order, "did you mean" candidates.
constexpr Command kCommands[] = {
    {"run", "Run a playbook (also: hoist PLAYBOOK ...)"},
    {"list", "List the playbooks: the project's, then the canned ones"},
    {"describe", "Show a playbook's summary and params"},
    {"history", "List recent runs from the journal"},
    {"show", "Show one run: steps, undos, world calls"},
    {"lock", "Inspect or force-release an environment's deploy lease"},
    {"playbook", "Export a canned playbook for customising"},
    {"migrate", "Migration status of a database (migrate status --db URL --dir DIR)"},
    {"test", "Run playbook tests (*_test.lua, hoist.testing) in sandboxes"},
    {"replay", "Re-run a journaled run against a sandbox copy, feeding back its recorded world answers"},
    {"version", "Print hoist's version"},
};

void Err(const std::string& msg) { fmt::print(stderr, "hoist: {}\n", Mask(msg)); }

void PrintJsonLine(const json& j) {
  std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
  fmt::print("{}\n", Mask(line));
}

// A missing -C dir would otherwise be searched upwards from, and its
// .hoist/ created: refuse it before anything reads or writes there.
void CheckProjectDir(const std::string& dir) {
  sys::Stat st = sys::StatPath(dir);
  if (!st.exists) throw Error("", "usage", fmt::format("--project {}: no such directory (give the directory that holds hoist.lua)", dir));
  if (st.type != "dir") throw Error("", "usage", fmt::format("--project {}: not a directory", dir));
}

hoist::app::Project OpenProject(const Globals& g) {
  CheckProjectDir(g.project_dir);
  return hoist::app::FindProject(g.project_dir);
}

// show and replay take a run id; CLI11 would say "Could not convert".
bool ParseRunId(const std::string& cmd, const std::string& text, int64_t* id) {
  try {
    size_t pos = 0;
    *id = std::stoll(text, &pos);
    if (pos == text.size() && *id > 0) return true;
  } catch (const std::exception&) {
  }
  Err(fmt::format("{}: '{}' is not a run id (a number, see hoist history)", cmd, text));
  return false;
}

// "--params: f.json: invalid JSON at line 2 column 1: unexpected end of input"
// without nlohmann's "[json.exception.parse_error.101] ..." framing.
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
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    why = why.substr(0, l) + (token.empty() ? "" : " near '" + token + "'");
  }
  return fmt::format("invalid JSON at line {} column {}: {}", line, column, why);
}

std::unique_ptr<engine::StateStore> OpenStore(const Globals& g) {
  return engine::OpenStateStore(hoist::app::StatePath(OpenProject(g)));
}

struct SandboxFlags {
  bool sandbox = false;
  std::string sandbox_db;
  bool keep = false;
  std::string expect_plan;
};

// Rehearsals keep their plan (what the hash covers) so that --expect-plan
// can say what changed, not only that something did.
std::string PlanPath(const hoist::app::Project& project, const std::string& hash) {
  return project.root + "/.hoist/plans/" + hash + ".json";
}

void SavePlan(const hoist::app::Project& project, const hoist::app::SandboxResult& r) {
  try {
    sys::MkdirP(project.root + "/.hoist/plans", 0700);
    json kept = r.plan;
    kept["observed"] = r.observed;  // beside the plan: not part of its hash
    sys::WriteAtomic(PlanPath(project, r.plan_hash), Mask(kept.dump(2, ' ', false, json::error_handler_t::replace)),
                     0600);
  } catch (const Error& e) {
    log::Warn("could not keep the plan for --expect-plan: " + e.message());
  }
}

// One line per key of a {name: sha256} map that differs.
void MapChanges(const json& was, const json& now, const std::string& what, std::vector<std::string>* out) {
  json w = was.is_object() ? was : json::object(), n = now.is_object() ? now : json::object();
  for (auto& [k, v] : n.items()) {
    if (!w.contains(k)) {
      out->push_back(fmt::format("{}{} is new", what, k));
    } else if (w[k] != v) {
      out->push_back(fmt::format("{}{} changed", what, k));
    }
  }
  for (auto& [k, v] : w.items()) {
    if (!n.contains(k)) out->push_back(fmt::format("{}{} is gone", what, k));
  }
}

std::string PlanChanges(const json& was, const json& now) {
  std::vector<std::string> out;
  for (const char* key : {"source_sha256", "params", "env"}) {
    if (was.value(key, json()) != now.value(key, json())) {
      out.push_back(fmt::format("{} was {} and is now {}", key, was.value(key, json()).dump(), now.value(key, json()).dump()));
    }
  }
  json wdb = was.value("database", json::object()), ndb = now.value("database", json::object());
  if (wdb.value("fingerprint", "") != ndb.value("fingerprint", "")) out.push_back("the database schema changed");
  json wi = was.value("inputs", json::object()), ni = now.value("inputs", json::object());
  if (wi.value("hoist", json()) != ni.value("hoist", json())) out.push_back("hoist's version changed");
  if (wi.value("config", json()) != ni.value("config", json())) out.push_back("hoist.lua changed");
  MapChanges(wi.value("stdlib", json::object()), ni.value("stdlib", json::object()), "stdlib module ", &out);
  MapChanges(wi.value("lib", json::object()), ni.value("lib", json::object()), "lib/", &out);
  json wm = wi.value("migrations", json::object()), nm = ni.value("migrations", json::object());
  for (auto& [dir, files] : nm.items()) {
    MapChanges(wm.value(dir, json::object()), files, "migration file " + dir + "/", &out);
  }
  for (auto& [dir, files] : wm.items()) {
    if (!nm.contains(dir)) out.push_back("migrations dir " + dir + " is no longer used");
  }
  json ww = was.value("world", json::object()), nw = now.value("world", json::object());
  for (auto& [k, v] : nw.items()) {
    if (!ww.contains(k)) {
      out.push_back(k + " was not looked at in the rehearsal");
    } else if (ww[k] != v) {
      out.push_back(k + " changed");
    }
  }
  for (auto& [k, v] : ww.items()) {
    if (!nw.contains(k)) out.push_back(k + " is no longer looked at");
  }
  return fmt::format("{}", fmt::join(out, "; "));
}

// Row counts seen then and now: said, never a reason to refuse.
std::string ObservedChanges(const json& was, const json& now) {
  std::vector<std::string> out;
  json wr = was.value("rows", json::object()), nr = now.value("rows", json::object());
  for (auto& [t, n] : nr.items()) {
    if (wr.contains(t) && wr[t] != n) out.push_back(fmt::format("table {} had {} rows and has {}", t, wr[t].dump(), n.dump()));
  }
  return fmt::format("{}", fmt::join(out, "; "));
}

int CmdRun(const Globals& g, const std::string& playbook, const std::vector<std::string>& sets,
           const std::string& params_file, const std::string& env, bool yes, const std::string& reason,
           const SandboxFlags& sb = {}) {
  hoist::app::RunOptions o;
  o.playbook = playbook;
  o.env = env;
  o.assume_yes = yes;
  o.reason = reason;
  o.verbose = g.verbose > 0;
  for (const auto& kv : sets) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      Err(fmt::format("-e expects key=value, got '{}'", kv));
      return kExitUsage;
    }
    o.params.cli[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!params_file.empty()) {
    std::string text;
    try {
      text = sys::ReadFile(params_file);
      o.params.file = json::parse(text);
    } catch (const json::parse_error& e) {
      Err(fmt::format("--params: {}: {}", params_file, JsonParseProblem(text, e)));
      return kExitUsage;
    } catch (const Error& e) {
      Err(fmt::format("--params: {}", e.message()));
      return kExitUsage;
    }
  }
  std::unique_ptr<engine::Reporter> reporter;
  if (g.json) {
    reporter = engine::MakeJsonReporter(stdout);
  } else {
    engine::HumanOptions h;
    h.tty = isatty(STDOUT_FILENO) != 0;
    h.color = h.tty && !g.no_color && std::getenv("NO_COLOR") == nullptr;
    h.verbose = g.verbose > 0;
    reporter = engine::MakeHumanReporter(stdout, stderr, h);
  }
  hoist::app::Project project = OpenProject(g);
  if (sb.sandbox || !sb.expect_plan.empty()) {
    hoist::app::SandboxOptions so;
    so.run = o;
    so.db.url = sb.sandbox_db;
    so.keep = sb.keep && sb.sandbox;
    std::unique_ptr<engine::Reporter> quiet;
    if (!sb.sandbox) quiet = engine::MakeNullReporter();
    hoist::app::SandboxResult r;
    try {
      r = hoist::app::RunSandbox(project, so, sb.sandbox ? *reporter : *quiet);
    } catch (const Error& e) {
      Err(e.what());
      return kExitUsage;
    }
    if (sb.sandbox) {
      SavePlan(project, r);
      if (g.json) {
        PrintJsonLine(hoist::app::SandboxReportJson(r));
      } else {
        fmt::print("{}", hoist::app::SandboxReportText(r));
      }
      return r.outcome.exit_code;
    }
    // --expect-plan: the same rehearsal again; the real run only if nothing changed.
    if (r.plan_hash != sb.expect_plan) {
      std::string why;
      try {
        why = PlanChanges(json::parse(sys::ReadFile(PlanPath(project, sb.expect_plan))), r.plan);
      } catch (const std::exception&) {
        why = "no rehearsal with that hash is kept in .hoist/plans";
      }
      Err(fmt::format("the plan changed since the rehearsal (expected {}, now {}){}; rehearse again with --sandbox",
                      sb.expect_plan.substr(0, 12), r.plan_hash.substr(0, 12), why.empty() ? "" : ": " + why));
      return kExitUsage;
    }
    try {
      json kept = json::parse(sys::ReadFile(PlanPath(project, sb.expect_plan)));
      std::string seen = ObservedChanges(kept.value("observed", json::object()), r.observed);
      if (!seen.empty()) log::Info("plan unchanged; observed since the rehearsal (not part of the plan): " + seen);
    } catch (const std::exception&) {
      // The plan matched: a kept file without observations changes nothing.
    }
  }
  return hoist::app::RunPlaybook(project, o, *reporter).exit_code;
}

int CmdList(const Globals& g) {
  auto list = hoist::app::ListPlaybooks(OpenProject(g));
  if (g.json) {
    for (const auto& p : list) {
      PrintJsonLine({{"name", p.name}, {"version", p.version}, {"summary", p.summary}, {"origin", p.origin},
                     {"path", p.display_path}});
    }
    return kExitOk;
  }
  if (list.empty()) {
    fmt::print("no playbooks: add one under playbooks/ (see docs/playbooks.md)\n");
    return kExitOk;
  }
  size_t w = 4;
  for (const auto& p : list) w = std::max(w, p.name.size());
  for (const auto& p : list) {
    fmt::print("{:<{}}  {:<8}  {:<7}  {}\n", p.name, w, p.version, p.origin, p.summary);
  }
  return kExitOk;
}

int CmdDescribe(const Globals& g, const std::string& name) {
  hoist::app::PlaybookInfo p = hoist::app::DescribePlaybook(OpenProject(g), name);
  if (g.json) {
    json params = json::array();
    for (const auto& s : p.params) {
      json j = {{"name", s.name}, {"type", engine::ParamTypeName(s.type)}, {"required", s.required},
                {"help", s.help}, {"secret", s.secret}};
      if (s.default_value) j["default"] = *s.default_value;
      if (!s.choices.empty()) j["values"] = s.choices;
      params.push_back(j);
    }
    PrintJsonLine({{"name", p.name}, {"version", p.version}, {"summary", p.summary}, {"origin", p.origin},
                   {"path", p.display_path}, {"requires", {{"hoist", p.requires_hoist}}}, {"lock", p.lock}, {"description", p.description},
                   {"params", params}});
    return kExitOk;
  }
  fmt::print("{} {} ({})\n", p.name, p.version, p.display_path);
  if (!p.summary.empty()) fmt::print("  {}\n", p.summary);
  if (!p.requires_hoist.empty()) fmt::print("  requires hoist {}\n", p.requires_hoist);
  fmt::print("  {}\n", p.lock ? "takes the environment's deploy lease" : "does not take a lease (lock = false)");
  if (!p.description.empty()) fmt::print("\n{}\n", p.description);
  if (p.params.empty()) {
    fmt::print("\nparams: none\n");
    return kExitOk;
  }
  fmt::print("\nparams:\n");
  for (const auto& s : p.params) {
    std::string type = engine::ParamTypeName(s.type);
    if (!s.choices.empty()) type = fmt::format("{}", fmt::join(s.choices, "|"));
    std::string extra = s.required ? "required" : "";
    if (s.default_value) extra = "default " + s.default_value->dump();
    if (s.secret) extra += extra.empty() ? "secret" : ", secret";
    fmt::print("  -e {}=<{}>{}\n", s.name, type, extra.empty() ? "" : "  (" + extra + ")");
    if (!s.help.empty()) fmt::print("      {}\n", s.help);
  }
  return kExitOk;
}

int CmdHistory(const Globals& g, const std::string& env, int limit) {
  auto store = OpenStore(g);
  auto runs = store->History(env.empty() ? std::nullopt : std::optional<std::string>(env), limit);
  if (g.json) {
    for (const auto& r : runs) PrintJsonLine(r);
    return kExitOk;
  }
  if (runs.empty()) {
    fmt::print("no runs yet\n");
    return kExitOk;
  }
  fmt::print("{:>5}  {:<24}  {:<20}  {:<10}  {:<12}  {}\n", "RUN", "STARTED", "PLAYBOOK", "ENV", "STATUS", "BY");
  for (const auto& r : runs) {
    fmt::print("{:>5}  {:<24}  {:<20}  {:<10}  {:<12}  {}@{}\n", r["id"].get<int64_t>(),
               r["started_at"].get<std::string>(),
               r["playbook"].get<std::string>() + " " + r["version"].get<std::string>(), r["env"].get<std::string>(),
               r["status"].get<std::string>(), r["operator"].get<std::string>(), r["host"].get<std::string>());
  }
  return kExitOk;
}

int CmdShow(const Globals& g, const std::string& id_text) {
  int64_t id = 0;
  if (!ParseRunId("show", id_text, &id)) return kExitUsage;
  auto store = OpenStore(g);
  auto run = store->GetRun(id);
  if (!run) {
    Err(fmt::format("show: no run {} in the journal (hoist history lists them)", id));
    return kExitUsage;
  }
  json r = *run;
  if (g.json) {
    PrintJsonLine(r);
    return kExitOk;
  }
  fmt::print("run {}: {} {} on {} — {}\n", id, r["playbook"].get<std::string>(), r["version"].get<std::string>(),
             r["env"].get<std::string>(), r["status"].get<std::string>());
  fmt::print("  by {}@{}, {} → {}\n", r["operator"].get<std::string>(), r["host"].get<std::string>(),
             r["started_at"].get<std::string>(), r["ended_at"].is_null() ? "(running or crashed)" : r["ended_at"].get<std::string>());
  fmt::print("  source {}, sha256 {}, hoist {}\n", r["origin"].get<std::string>(),
             r["source_sha256"].get<std::string>().substr(0, 16), r["hoist_version"].get<std::string>());
  fmt::print("  params {}\n", r["params"].dump());
  if (!r["error"].is_null()) fmt::print("  error: {}\n", r["error"].get<std::string>());
  std::map<int64_t, int> depth;
  std::map<int64_t, int> world_count;
  for (const auto& e : r["events"]) {
    if (e["kind"] == "proc" || e["kind"] == "fs" || e["kind"] == "http" || e["kind"] == "docker" || e["kind"] == "nginx") {
      if (!e["step"].is_null()) world_count[e["step"].get<int64_t>()]++;
    }
  }
  fmt::print("\nsteps:\n");
  for (const auto& s : r["steps"]) {
    int64_t seq = s["seq"].get<int64_t>();
    int d = s["parent"].is_null() ? 0 : depth[s["parent"].get<int64_t>()] + 1;
    depth[seq] = d;
    std::string mark = s["status"] == "ok" ? "✓" : s["status"] == "failed" ? "✗" : "…";
    fmt::print("  {:>3} {}{} {} ({}{}{})\n", seq, std::string(2 * d, ' '), mark, s["name"].get<std::string>(),
               engine::FormatDuration(s["seconds"].is_number() ? s["seconds"].get<double>() : 0.0),
               s["attempts"].is_number() && s["attempts"].get<int64_t>() > 1
                   ? fmt::format(", {} attempts", s["attempts"].get<int64_t>())
                   : "",
               world_count[seq] ? fmt::format(", {} world call{}", world_count[seq], world_count[seq] == 1 ? "" : "s") : "");
    if (!s["result"].is_null() && g.verbose) fmt::print("        result: {}\n", s["result"].dump());
    if (!s["error"].is_null()) fmt::print("        error: {}\n", s["error"].get<std::string>());
  }
  if (g.verbose) {
    fmt::print("\nevents:\n");
    for (const auto& e : r["events"]) {
      // Recorded world answers (for hoist replay) only at -vv.
      if (e["kind"] == "call" && g.verbose < 2) continue;
      fmt::print("  {} step {} {} {} {}\n", e["at"].get<std::string>(), e["step"].dump(), e["kind"].get<std::string>(),
                 e["name"].get<std::string>(), e["data"].dump());
    }
  }
  return kExitOk;
}

json LeaseJson(const engine::Lease& l) {
  return {{"env", l.env},       {"owner", l.owner},   {"host", l.host},
          {"pid", l.pid},       {"run_id", l.run_id}, {"reason", l.reason},
          {"started_at", sys::IsoUtc(l.started_at)}, {"heartbeat_at", sys::IsoUtc(l.heartbeat_at)},
          {"expires_at", sys::IsoUtc(l.expires_at)}, {"expired", l.expires_at <= sys::NowEpoch()}};
}

int CmdLockStatus(const Globals& g) {
  auto leases = OpenStore(g)->Leases();
  if (g.json) {
    for (const auto& l : leases) PrintJsonLine(LeaseJson(l));
    return kExitOk;
  }
  if (leases.empty()) {
    fmt::print("no environment is locked\n");
    return kExitOk;
  }
  double now = sys::NowEpoch();
  for (const auto& l : leases) {
    bool expired = l.expires_at <= now;
    fmt::print("{}: {} by {}@{} (pid {}, run {}), reason: {}\n", l.env, expired ? "EXPIRED lease" : "locked", l.owner,
               l.host, l.pid, l.run_id, l.reason);
    fmt::print("  since {}, last heartbeat {}, {} {}\n", sys::IsoUtc(l.started_at), sys::IsoUtc(l.heartbeat_at),
               expired ? "expired" : "expires", sys::IsoUtc(l.expires_at));
  }
  return kExitOk;
}

int CmdLockRelease(const Globals& g, const std::string& env, bool force, const std::string& reason) {
  if (!force) {
    Err("lock release needs --force: releasing a live run's lease lets a second run race it");
    return kExitUsage;
  }
  if (reason.empty()) {
    Err("lock release needs --reason \"...\": it is recorded in the journal");
    return kExitUsage;
  }
  hoist::app::Project project = OpenProject(g);
  std::string target = env;
  if (target.empty()) {
    auto envs = hoist::app::EnvironmentNames(project);
    if (envs.size() == 1) target = envs[0];
    if (envs.empty()) target = "default";
  }
  if (target.empty()) {
    Err("lock release: choose the environment with --env NAME");
    return kExitUsage;
  }
  auto store = engine::OpenStateStore(hoist::app::StatePath(project));
  std::string by = OperatorName() + "@" + HostName();
  auto removed = store->ForceRelease(target, by, reason);
  // Journaled as a run of its own so `hoist history` shows who and why.
  engine::RunMeta meta;
  meta.playbook = "lock-release";
  meta.version = HOIST_VERSION;
  meta.source = "";
  meta.source_sha256 = "";
  meta.origin = "cli";
  meta.params = {{"env", target}, {"reason", reason}, {"released", removed ? LeaseJson(*removed) : json(nullptr)}};
  meta.operator_name = OperatorName();
  meta.host = HostName();
  meta.env = target;
  meta.hoist_version = HOIST_VERSION;
  int64_t id = store->BeginRun(meta);
  store->FinishRun(id, "ok", 0, "");
  if (!removed) {
    fmt::print("environment '{}' was not locked (recorded as run {})\n", target, id);
  } else {
    fmt::print("released the lease on '{}' held by {}@{} (pid {}, run {}); recorded as run {}\n", target,
               removed->owner, removed->host, removed->pid, removed->run_id, id);
  }
  return kExitOk;
}

int CmdMigrateStatus(const Globals& g, const std::string& url, const std::string& dir) {
  db::OpenOptions o;
  o.readonly = true;
  auto conn = db::Open(url, o);
  db::MigrationStatus st = db::Status(*conn, dir);
  if (g.json) {
    json j = st.ToJson();
    j["db"] = conn->redacted();
    PrintJsonLine(j);
    return kExitOk;
  }
  fmt::print("{}: migrations in {}\n{}", conn->redacted(), dir, Mask(st.Text()));
  return kExitOk;
}

int CmdExport(const Globals& g, const std::string& name, std::string output, bool force) {
  auto src = hoist::app::CannedSource(name);
  if (!src) {
    Err(fmt::format("playbook export: no canned playbook '{}' (hoist list shows the canned ones)", name));
    return kExitUsage;
  }
  hoist::app::Project project = OpenProject(g);
  if (output.empty()) output = project.root + "/playbooks/" + name + ".lua";
  if (sys::StatPath(output).exists && !force) {
    Err(fmt::format("playbook export: {} exists; pass --force to overwrite it", output));
    return kExitUsage;
  }
  auto slash = output.find_last_of('/');
  if (slash != std::string::npos) sys::MkdirP(output.substr(0, slash));
  sys::WriteAtomic(output, *src, 0644);
  // Only playbooks/NAME.lua of this project shadows the canned playbook.
  std::error_code ec;
  std::string shadow = project.root + "/playbooks/" + name + ".lua";
  if (std::filesystem::equivalent(output, shadow, ec)) {
    fmt::print("wrote {} — it now takes precedence over the canned '{}'\n", output, name);
  } else {
    fmt::print("wrote {} — a copy of the canned '{}'; hoist {} still runs the canned one (run the copy with: hoist run {}, "
               "or move it to playbooks/{}.lua)\n",
               output, name, name, output, name);
  }
  return kExitOk;
}

// "hoist deploy ..." means "hoist run deploy ...": rewrite argv when the
// first word is neither an option nor a command.
std::vector<std::string> Normalize(int argc, char** argv, const Globals& g0, int* code) {
  std::vector<std::string> args(argv, argv + argc);
  *code = -1;
  // Skip leading global options that take a value.
  size_t i = 1;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-') {
    if ((args[i] == "-C" || args[i] == "--project") && i + 1 < args.size()) ++i;
    ++i;
  }
  if (i >= args.size()) return args;
  const std::string& word = args[i];
  // `hoist migrate status --db URL --dir DIR` is the command; any other
  // `hoist migrate ...` (e.g. -e action=up) is the canned migrate playbook.
  if (word == "migrate" &&
      !(i + 1 < args.size() && (args[i + 1] == "status" || args[i + 1] == "--help" || args[i + 1] == "-h"))) {
    args.insert(args.begin() + static_cast<long>(i), "run");
    return args;
  }
  for (const auto& c : kCommands) {
    if (word == c.name) return args;
  }
  std::string project_dir = g0.project_dir;
  for (size_t j = 1; j < i; ++j) {
    if ((args[j] == "-C" || args[j] == "--project") && j + 1 < args.size()) project_dir = args[j + 1];
  }
  CheckProjectDir(project_dir);
  hoist::app::Project project = hoist::app::FindProject(project_dir);
  auto names = hoist::app::PlaybookNames(project);
  bool is_playbook = std::find(names.begin(), names.end(), word) != names.end() ||
                     word.find('/') != std::string::npos || word.ends_with(".lua");
  if (is_playbook) {
    args.insert(args.begin() + static_cast<long>(i), "run");
    return args;
  }
  std::vector<std::string> candidates = names;
  for (const auto& c : kCommands) candidates.push_back(c.name);
  std::string hint = engine::Suggest(word, candidates);
  Err(fmt::format("'{}' is neither a command nor a playbook{}", word,
                  hint.empty() ? " (hoist --help lists commands, hoist list the playbooks)"
                               : " — did you mean '" + hint + "'?"));
  *code = kExitUsage;
  return args;
}

}  // namespace

int Main(int argc, char** argv) {
  InstallInterruptHandlers();
  hoist::app::InstallNativeModules();
  Globals g;
  CLI::App app{"hoist — versioned Lua playbooks for zero-downtime deploys, migrations, backups and rollbacks"};
  app.name("hoist");
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("-V,--version", std::string("hoist ") + HOIST_VERSION);
  app.add_option("-C,--project", g.project_dir, "Project dir (default: the nearest dir with hoist.lua)");
  app.add_flag("--json", g.json, "Machine output: NDJSON events on stdout (docs/cli.md)");
  app.add_flag("-v,--verbose", g.verbose, "More detail: world calls, tracebacks");
  app.add_flag("-q,--quiet", g.quiet, "Only warnings and errors in logs");
  app.add_flag("--no-color", g.no_color, "No ANSI colours (also: NO_COLOR=1)");
  app.footer("Exit codes: 0 ok, 1 failed and undone, 2 usage error, 3 undo failed, 4 lease held, 130 interrupted.");

  std::map<std::string, CLI::App*> sub;
  for (const auto& c : kCommands) sub[c.name] = app.add_subcommand(c.name, c.help);

  std::string playbook, params_file, env, reason, name, output, run_id, limit_text = "20";
  std::vector<std::string> sets;
  bool yes = false, force = false;
  auto* run = sub["run"];
  run->add_option("playbook", playbook, "Playbook name (project or canned) or path to a .lua file")->required();
  run->add_option("-e,--set", sets, "Param as key=value (repeatable)")->allow_extra_args(false);
  run->add_option("--params", params_file, "JSON file with params");
  run->add_option("--env", env, "Environment from hoist.lua");
  run->add_flag("-y,--yes", yes, "Answer yes to confirmations");
  run->add_option("--reason", reason, "Why: recorded with the lease and the run");
  SandboxFlags sandbox_flags;
  run->add_flag("--sandbox", sandbox_flags.sandbox,
                "Rehearse: a copy of the database, a simulated world; report what would change (docs/testing.md)");
  run->add_option("--sandbox-db", sandbox_flags.sandbox_db, "With --sandbox: the database to copy (default: the environment's)");
  run->add_flag("--keep-sandbox", sandbox_flags.keep, "With --sandbox: keep the copy and the sandbox journal");
  run->add_option("--expect-plan", sandbox_flags.expect_plan,
                  "Run only if a fresh rehearsal gives this plan hash (printed by --sandbox)");
  sub["describe"]->add_option("playbook", name, "Playbook name or path")->required();
  sub["history"]->add_option("--env", env, "Only this environment");
  // Numbers are taken as text and checked here: CLI11's own messages
  // ("Could not convert", a range up to 1.8e308) do not say what to give.
  sub["history"]->add_option("-n,--limit", limit_text, "How many runs (default 20)");
  sub["show"]->add_option("run", run_id, "Run id (from hoist history)")->required();
  auto* lock = sub["lock"];
  lock->require_subcommand(1);
  lock->add_subcommand("status", "Who holds which environment's lease");
  auto* release = lock->add_subcommand("release", "Force-release a lease (journaled)");
  release->add_option("--env", env, "Environment");
  release->add_flag("--force", force, "Required: you know the holder is gone");
  release->add_option("--reason", reason, "Required: recorded in the journal");
  auto* pb = sub["playbook"];
  pb->require_subcommand(1);
  auto* exp = pb->add_subcommand("export", "Write a canned playbook into playbooks/ for customising");
  exp->add_option("name", name, "Canned playbook name")->required();
  exp->add_option("-o,--output", output, "Where to write (default: playbooks/NAME.lua)");
  exp->add_flag("--force", force, "Overwrite an existing file");
  std::string db_url, migrations_dir;
  auto* mig = sub["migrate"];
  mig->require_subcommand(1);
  auto* mig_status = mig->add_subcommand("status", "Applied, pending, changed, missing, failed, out-of-order");
  mig_status->add_option("--db", db_url, "Database URL (sqlite:path.db, postgres://...)")->required();
  mig_status->add_option("--dir", migrations_dir, "Migrations directory")->required();

  std::vector<std::string> test_paths;
  sub["test"]->add_option("paths", test_paths, "Test files or dirs (default: the project's tests/)");
  std::vector<std::string> test_lib;
  hoist::app::ReplayOptions replay_opts;
  std::string replay_id;
  sub["replay"]->add_option("run", replay_id, "Run id (from hoist history)")->required();
  sub["replay"]->add_option("--db", replay_opts.db_url, "Database to copy (default: the run's environment's)");
  sub["replay"]->add_option("--save-test", replay_opts.save_test, "Write a passing *_test.lua that replays this run");
  sub["test"]->add_option("--lib", test_lib, "Extra dir for require (shared test helpers); repeatable")
      ->allow_extra_args(false);

  int early = -1;
  std::vector<std::string> args;
  try {
    args = Normalize(argc, argv, g, &early);
  } catch (const std::exception& e) {
    Err(e.what());
    return kExitUsage;
  }
  if (early >= 0) return early;
  std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
  try {
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  log::Setup(g.verbose > 0 ? log::Level::kDebug : g.quiet ? log::Level::kWarn : log::Level::kInfo, g.json);

  try {
    if (*sub["run"]) return CmdRun(g, playbook, sets, params_file, env, yes, reason, sandbox_flags);
    if (*sub["list"]) return CmdList(g);
    if (*sub["describe"]) return CmdDescribe(g, name);
    if (*sub["history"]) {
      int limit = 0;
      try {
        size_t pos = 0;
        limit = std::stoi(limit_text, &pos);
        if (pos != limit_text.size() || limit < 1) limit = 0;
      } catch (const std::exception&) {
      }
      if (limit == 0) {
        Err(fmt::format("history: --limit '{}' is not a number of runs (a whole number from 1)", limit_text));
        return kExitUsage;
      }
      return CmdHistory(g, env, limit);
    }
    if (*sub["show"]) return CmdShow(g, run_id);
    if (*lock->get_subcommand("status")) return CmdLockStatus(g);
    if (*release) return CmdLockRelease(g, env, force, reason);
    if (*exp) return CmdExport(g, name, output, force);
    if (*mig_status) return CmdMigrateStatus(g, db_url, migrations_dir);
    if (*sub["replay"]) {
      if (!ParseRunId("replay", replay_id, &replay_opts.run_id)) return kExitUsage;
      replay_opts.json = g.json;
      return hoist::app::ReplayRun(OpenProject(g), replay_opts);
    }
    if (*sub["test"] && g.verbose == 0) log::Setup(log::Level::kWarn, g.json);  // the cases are the output
    if (*sub["test"]) return hoist::app::RunTests(OpenProject(g), {test_paths, g.json, test_lib});
    if (*sub["version"]) {
      fmt::print("hoist {}\n", HOIST_VERSION);
      return kExitOk;
    }
  } catch (const std::exception& e) {
    Err(e.what());
    return kExitUsage;
  }
  return kExitUsage;
}

}  // namespace hoist::cli
