#include "cli/commands.h"
#include "cli/init.h"

#include <unistd.h>

#include <algorithm>
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

#include "app/agent.h"
#include "app/hosts.h"
#include "app/inspect.h"
#include "app/modules.h"
#include "app/plan.h"
#include "app/playbook.h"
#include "app/project.h"
#include "app/run.h"
#include "app/run_page.h"
#include "app/sandbox.h"
#include "app/state.h"
#include "app/test_runner.h"
#include "cli/docgen.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/identity.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/secrets.h"
#include "core/strings.h"

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
  bool hidden = false;  // left out of --help, the man page and completions
};

// The table of subcommands: --help order, "did you mean" candidates.
constexpr Command kCommands[] = {
    {"init", "Write a first hoist.lua, playbooks/ and migration into this project (docs/cli.md)"},
    {"run", "Run a playbook (also: hoist PLAYBOOK ...)"},
    {"list", "List the playbooks: the project's, then the canned ones"},
    {"describe", "Show a playbook's summary and params"},
    {"history", "List recent runs from the journal"},
    {"show", "Show one run: steps, undos, world calls"},
    {"lock", "Inspect or force-release an environment's deploy lease"},
    {"state", "Move the journal and facts into PostgreSQL (state migrate --to postgresql://...)"},
    {"hosts", "Reach every host of an environment over ssh: what runs there, or why not"},
    {"playbook", "Export a canned playbook for customising"},
    {"migrate", "Migration status of a database (migrate status --db URL --dir DIR)"},
    {"test", "Run playbook tests (*_test.lua, hoist.testing) in sandboxes"},
    {"replay", "Re-run a journaled run against a sandbox copy, feeding back its recorded world answers"},
    {"version", "Print hoist's version"},
    {"completions", "Print a shell completion script: hoist completions bash|zsh"},
    // The package build runs it (CMakeLists.txt): hoist(1) from this table.
    {"man", "Print the hoist(1) man page (roff)", true},
    // Started by another hoist over ssh (docs/fleet.md), not by people.
    {"agent", "Serve world calls for a hoist on another host: hoist agent --stdio (docs/fleet.md)", true},
};

void Err(const std::string& msg) { fmt::print(stderr, "hoist: {}\n", Mask(msg)); }

void PrintJsonLine(const json& j) {
  std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
  fmt::print("{}\n", Mask(line));
}

hoist::app::Project OpenProject(const Globals& g) { return hoist::app::OpenProject(g.project_dir); }

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

struct SandboxFlags {
  bool sandbox = false;
  std::string sandbox_db;
  bool keep = false;
  std::string expect_plan;
};

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
    try {
      o.params.file = hoist::app::ReadParamsFile(params_file);
    } catch (const Error& e) {
      Err(e.message());
      return kExitUsage;
    }
  }
  auto reporter = hoist::app::MakeReporter({g.json, g.verbose > 0, g.no_color});
  hoist::app::Project project = OpenProject(g);
  if (sb.sandbox || !sb.expect_plan.empty()) {
    hoist::app::SandboxOptions so;
    so.run = o;
    so.db.url = sb.sandbox_db;
    so.keep = sb.keep && sb.sandbox;
    auto quiet = hoist::app::MakeQuietReporter();
    hoist::app::SandboxResult r;
    try {
      r = hoist::app::RunSandbox(project, so, sb.sandbox ? *reporter : *quiet);
    } catch (const Error& e) {
      Err(e.what());
      return kExitUsage;
    }
    if (sb.sandbox) {
      hoist::app::KeepPlan(project, r);
      if (g.json) {
        PrintJsonLine(hoist::app::SandboxReportJson(r));
      } else {
        fmt::print("{}", hoist::app::SandboxReportText(r));
      }
      return r.outcome.exit_code;
    }
    // --expect-plan: the same rehearsal again; the real run only if nothing changed.
    if (std::string why = hoist::app::CheckExpectedPlan(project, sb.expect_plan, r); !why.empty()) {
      Err(why);
      return kExitUsage;
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
    PrintJsonLine(hoist::app::DescribeJson(p));
  } else {
    fmt::print("{}", hoist::app::DescribeText(p));
  }
  return kExitOk;
}

// --html: pages instead of text; under --json, one line saying what was written.
int PrintWritten(const Globals& g, const std::string& message, const std::string& path) {
  if (g.json) {
    PrintJsonLine({{"html", path}, {"message", Trim(message)}});
  } else {
    fmt::print("{}", message);
  }
  return kExitOk;
}

int CmdHistory(const Globals& g, const std::string& env, int limit, const std::string& html_dir) {
  if (!html_dir.empty()) {
    return PrintWritten(g, hoist::app::WriteHistoryPages(OpenProject(g), env, limit, html_dir), html_dir);
  }
  auto runs = hoist::app::History(OpenProject(g), env, limit);
  if (g.json) {
    for (const auto& r : runs) PrintJsonLine(r);
  } else {
    fmt::print("{}", hoist::app::HistoryText(runs));
  }
  return kExitOk;
}

int CmdShow(const Globals& g, const std::string& id_text, const std::string& html_file) {
  int64_t id = 0;
  if (!ParseRunId("show", id_text, &id)) return kExitUsage;
  if (!html_file.empty()) return PrintWritten(g, hoist::app::WriteRunPage(OpenProject(g), id, html_file), html_file);
  auto run = hoist::app::GetRun(OpenProject(g), id);
  if (!run) {
    Err(fmt::format("show: no run {} in the journal (hoist history lists them)", id));
    return kExitUsage;
  }
  if (g.json) {
    PrintJsonLine(*run);
  } else {
    fmt::print("{}", hoist::app::RunText(*run, g.verbose));
  }
  return kExitOk;
}

int CmdHosts(const Globals& g, const std::string& env) {
  std::string env_name;
  auto hosts = hoist::app::EnvironmentHosts(OpenProject(g), env, &env_name);
  auto checks = hoist::app::CheckHosts(hosts);
  if (g.json) {
    PrintJsonLine(hoist::app::HostsJson(env_name, checks));
  } else {
    fmt::print("{}", Mask(hoist::app::HostsText(env_name, checks)));
  }
  bool all_ok = std::all_of(checks.begin(), checks.end(), [](const auto& c) { return c.ok; });
  return all_ok ? kExitOk : kExitFailed;
}

int CmdLockStatus(const Globals& g) {
  auto leases = hoist::app::Leases(OpenProject(g));
  if (g.json) {
    for (const auto& l : leases) PrintJsonLine(l);
  } else {
    fmt::print("{}", hoist::app::LeasesText(leases));
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
  fmt::print("{}", hoist::app::ReleaseLease(OpenProject(g), env, reason));
  return kExitOk;
}

int CmdMigrateStatus(const Globals& g, const std::string& url, const std::string& dir) {
  auto report = hoist::app::MigrationStatus(url, dir);
  if (g.json) {
    PrintJsonLine(report.json);
  } else {
    fmt::print("{}", Mask(report.text));
  }
  return kExitOk;
}

int CmdStateMigrate(const Globals& g, const hoist::app::StateMigrateOptions& o) {
  auto report = hoist::app::MigrateState(OpenProject(g), o);
  if (g.json) {
    PrintJsonLine(report.json);
  } else {
    fmt::print("{}", Mask(report.text));
  }
  return kExitOk;
}

int CmdExport(const Globals& g, const std::string& name, const std::string& output, bool force) {
  fmt::print("{}", hoist::app::ExportPlaybook(OpenProject(g), name, output, force));
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
  hoist::app::Project project = hoist::app::OpenProject(project_dir);
  auto names = hoist::app::PlaybookNames(project);
  bool is_playbook = std::find(names.begin(), names.end(), word) != names.end() ||
                     word.find('/') != std::string::npos || word.ends_with(".lua");
  if (is_playbook) {
    args.insert(args.begin() + static_cast<long>(i), "run");
    return args;
  }
  std::vector<std::string> candidates = names;
  for (const auto& c : kCommands) {
    if (!c.hidden) candidates.push_back(c.name);
  }
  std::string hint = Suggest(word, candidates);
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
  for (const auto& c : kCommands) {
    sub[c.name] = app.add_subcommand(c.name, c.help);
    if (c.hidden) sub[c.name]->group("");
  }

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
  std::string html;
  sub["show"]->add_option("--html", html, "Write the run as one self-contained HTML page (a timeline) to FILE");
  sub["history"]->add_option("--html", html, "Write DIR/index.html and DIR/run-<id>.html for each run listed");
  sub["hosts"]->add_option("--env", env, "Environment from hoist.lua");
  auto* lock = sub["lock"];
  lock->require_subcommand(1);
  lock->add_subcommand("status", "Who holds which environment's lease");
  auto* release = lock->add_subcommand("release", "Force-release a lease (journaled)");
  release->add_option("--env", env, "Environment");
  release->add_flag("--force", force, "Required: you know the holder is gone");
  release->add_option("--reason", reason, "Required: recorded in the journal");
  auto* state = sub["state"];
  state->require_subcommand(1);
  hoist::app::StateMigrateOptions state_opts;
  auto* state_migrate = state->add_subcommand("migrate", "Copy the SQLite journal and facts into a PostgreSQL state store");
  state_migrate->add_option("--to", state_opts.to, "The PostgreSQL state store (postgresql://...)")->required();
  state_migrate->add_option("--from", state_opts.from, "The SQLite state file (default: the project's)");
  state_migrate->add_flag("--renumber", state_opts.renumber,
                          "Give the copied runs new ids when the target has other runs with theirs");
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

  InitFlags init_flags;
  AddInitOptions(sub["init"], &init_flags);
  std::string shell;
  sub["completions"]->add_option("shell", shell, "bash or zsh")->required();

  bool agent_stdio = false;
  sub["agent"]->add_flag("--stdio", agent_stdio, "Speak the agent protocol on stdin and stdout (required)");

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
    if (*sub["agent"]) {
      if (!agent_stdio) {
        Err("agent: give --stdio (hoist starts its agent over ssh as `hoist agent --stdio`; docs/fleet.md)");
        return kExitUsage;
      }
      return hoist::app::RunAgentStdio();
    }
    if (*sub["init"]) return RunInit(g.project_dir, init_flags);
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
      return CmdHistory(g, env, limit, html);
    }
    if (*sub["show"]) return CmdShow(g, run_id, html);
    if (*sub["hosts"]) return CmdHosts(g, env);
    if (*lock->get_subcommand("status")) return CmdLockStatus(g);
    if (*release) return CmdLockRelease(g, env, force, reason);
    if (*exp) return CmdExport(g, name, output, force);
    if (*state_migrate) return CmdStateMigrate(g, state_opts);
    if (*mig_status) return CmdMigrateStatus(g, db_url, migrations_dir);
    if (*sub["replay"]) {
      if (!ParseRunId("replay", replay_id, &replay_opts.run_id)) return kExitUsage;
      replay_opts.json = g.json;
      return hoist::app::ReplayRun(OpenProject(g), replay_opts);
    }
    if (*sub["test"] && g.verbose == 0) log::Setup(log::Level::kWarn, g.json);  // the cases are the output
    if (*sub["test"]) return hoist::app::RunTests(OpenProject(g), {test_paths, g.json, test_lib});
    if (*sub["completions"]) {
      if (shell != "bash" && shell != "zsh") {
        Err(fmt::format("completions: no completions for '{}': give bash or zsh", shell));
        return kExitUsage;
      }
      fmt::print("{}", shell == "bash" ? BashCompletion(app) : ZshCompletion(app));
      return kExitOk;
    }
    if (*sub["man"]) {
      fmt::print("{}", ManPage(app, HOIST_VERSION));
      return kExitOk;
    }
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
