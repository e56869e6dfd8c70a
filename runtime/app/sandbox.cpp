#include "app/sandbox.h"

#include "app/hosts.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "app/hosts.h"
#include "core/error.h"
#include "core/log.h"
#include "core/secrets.h"
#include "db/backup.h"
#include "db/connection.h"
#include "db/schema.h"
#include "db/sql_split.h"
#include "db/url.h"
#include "engine/recorded_world.h"
#include "engine/state_store.h"
#include "lua/embedded.h"
#include "sys/clock.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::app {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/hoist-sandbox-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  // mkdtemp creates it 0700: the copy may hold production data.
  if (!mkdtemp(buf.data())) throw Error("sandbox", "failed", "cannot create a temp dir under " + tmpl + ": " + std::strerror(errno));
  return buf.data();
}

std::string Canonical(const std::string& path) {
  std::error_code ec;
  auto c = fs::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

struct Snapshot {
  db::Schema schema;
  std::string fingerprint;
  std::map<std::string, int64_t> rows;
};

// path (relative to root) -> sha256 of every regular file under root,
// in name order; {} when root does not exist.
json HashTree(const std::string& root, const std::string& only_ext = "") {
  json out = json::object();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    if (!only_ext.empty() && it->path().extension() != only_ext) continue;
    files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) out[fs::relative(f, root, ec).string()] = sys::Sha256Hex(sys::ReadFile(f));
  return out;
}

// What the run read outside the world seam decides what it does as much as
// the files it read through it: hoist.lua, the stdlib in effect, the
// project's lib/, and the migration sources of every migrations dir the run
// used (an edited migration file is a different plan).
json PlanInputs(const Project& project, const json& journal) {
  json in = {{"hoist", HOIST_VERSION}};
  if (!project.config_path.empty()) in["config"] = sys::Sha256Hex(sys::ReadFile(project.config_path));
  json stdlib = json::object();
  if (const char* dev = std::getenv("HOIST_STDLIB_PATH"); dev && *dev) {
    stdlib = HashTree(dev, ".lua");
  } else {
    for (const auto& f : lua::EmbeddedFiles()) {
      if (f.kind == lua::EmbeddedKind::kStdlib) stdlib[std::string(f.name)] = sys::Sha256Hex(std::string(f.source));
    }
  }
  in["stdlib"] = stdlib;
  json lib = HashTree(project.root + "/lib", ".lua");
  if (!lib.empty()) in["lib"] = lib;
  json migrations = json::object();
  for (const auto& ev : journal.value("events", json::array())) {
    if (ev.value("kind", "") != "migrate" || !ev.contains("data") || !ev["data"].is_object()) continue;
    const json& dir = ev["data"].value("dir", json());
    if (!dir.is_string() || dir.get<std::string>().empty()) continue;
    std::string d = dir.get<std::string>();
    std::string abs = d[0] == '/' ? d : project.root + "/" + d;
    // Keyed as the project names it, so a moved checkout is the same plan.
    std::string key = abs.rfind(project.root + "/", 0) == 0 ? abs.substr(project.root.size() + 1) : abs;
    if (!migrations.contains(key)) migrations[key] = HashTree(abs);
  }
  if (!migrations.empty()) in["migrations"] = migrations;
  return in;
}

Snapshot Take(const std::string& url) {
  db::OpenOptions o;
  o.readonly = true;
  auto conn = db::Open(url, o);
  Snapshot s;
  s.schema = conn->ReadSchema();
  s.fingerprint = db::Fingerprint(s.schema);
  for (const auto& t : conn->Tables()) {
    // hoist's own lock table is bookkeeping, not the application's data.
    if (db::IsInternalTable(t)) continue;
    auto r = conn->Query("SELECT count(*) FROM " + db::QuoteIdent(t));
    if (!r.rows.empty() && std::holds_alternative<int64_t>(r.rows[0][0])) s.rows[t] = std::get<int64_t>(r.rows[0][0]);
  }
  conn->Close();
  return s;
}

// Builds a fresh SQLite database from a SQL script (a hoist.testing fixture).
void BuildFromSql(const std::string& path, const std::string& sql_file) {
  std::string script = sys::ReadFile(sql_file);
  db::OpenOptions o;
  o.create = true;
  auto conn = db::Open("sqlite://" + path, o);
  conn->Exec("PRAGMA synchronous=OFF");  // a throwaway fixture: no fsync per statement
  for (const auto& st : db::SplitSql(script, db::Dialect::kSqlite)) {
    try {
      conn->Exec(st.sql);
    } catch (const Error& e) {
      throw Error("sandbox", "fixture", fmt::format("{}:{}: {}", sql_file, st.line, e.message()));
    }
  }
  conn->Close();
}

std::string RandomSuffix() {
  std::string hex = sys::Sha256Hex(fmt::format("{}-{}-{}", getpid(), sys::NowEpoch(), sys::Monotonic()));
  return hex.substr(0, 12);
}

struct PgCopy {
  std::string url;       // conninfo of the scratch database (password included: a registered secret)
  std::string admin;     // conninfo of the server's postgres database
  std::string name;
  std::string method;
};

/// PostgreSQL: a scratch database on the source's server. CREATE DATABASE
/// ... TEMPLATE copies at file level in one statement but needs nobody
/// connected to the source; a live source is dumped (pg_dump, a consistent
/// snapshot that blocks no writer) and restored into an empty one instead.
PgCopy CopyPostgres(const db::DbUrl& src, const std::string& dir) {
  PgCopy c;
  c.name = "hoist_sandbox_" + RandomSuffix();
  c.admin = src.conninfo + " dbname=postgres";  // libpq: the last dbname wins
  c.url = src.conninfo + " dbname=" + db::ConninfoQuote(c.name);
  std::string source_db = src.dbname.empty() ? src.user : src.dbname;
  auto admin = db::Open(c.admin);
  // PostgreSQL waits 5 s for the source's sessions to end before it refuses
  // a TEMPLATE in use: a source with sessions (a live app's) is dumped
  // without asking. One that connects between the two statements costs the 5 s.
  auto sessions = admin->Query("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", {source_db});
  if (std::get<int64_t>(sessions.rows.at(0).at(0)) == 0) {
    try {
      admin->Exec("CREATE DATABASE " + db::QuoteIdent(c.name) + " TEMPLATE " + db::QuoteIdent(source_db));
      c.method = "template";
    } catch (const Error&) {
      // "source database ... is being accessed by other users": dump instead.
    }
  }
  if (c.method.empty()) {
    admin->Exec("CREATE DATABASE " + db::QuoteIdent(c.name));
    c.method = "pg_dump";
    try {
      db::backup::CreateOptions co;
      co.dir = dir;
      co.label = "sandbox";
      auto dump = db::backup::CreatePostgres(src.conninfo, src.redacted, co);
      db::backup::RestoreOptions ro;
      ro.safety_backup = false;
      db::backup::RestorePostgres(dump.path, c.url, db::ParseUrl(c.url).redacted, ro);
    } catch (...) {
      admin->Exec("DROP DATABASE IF EXISTS " + db::QuoteIdent(c.name));
      throw;
    }
  }
  admin->Close();
  return c;
}

void DropPostgres(const PgCopy& c) {
  try {
    auto admin = db::Open(c.admin);
    try {
      admin->Exec("DROP DATABASE IF EXISTS " + db::QuoteIdent(c.name) + " WITH (FORCE)");
    } catch (const Error&) {
      admin->Exec("DROP DATABASE IF EXISTS " + db::QuoteIdent(c.name));  // before PostgreSQL 13
    }
    admin->Close();
  } catch (const std::exception& e) {
    log::Warn(Mask(fmt::format("could not drop the sandbox database {}: {}", c.name, e.what())));
  }
}

}  // namespace

void RemoveSandbox(const std::string& dir) {
  if (dir.empty() || dir.find("hoist-sandbox-") == std::string::npos) return;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

SandboxResult RunSandbox(const Project& project, const SandboxOptions& options, engine::Reporter& reporter) {
  SandboxResult res;
  res.dir = MakeTempDir();
  std::optional<PgCopy> pg_copy;
  struct Cleanup {
    SandboxResult& r;
    bool keep;
    std::optional<PgCopy>& pg;
    ~Cleanup() {
      if (keep) return;
      if (pg) DropPostgres(*pg);
      RemoveSandbox(r.dir);
      r.dir.clear();
    }
  } cleanup{res, options.keep, pg_copy};

  RunOptions run = options.run;
  run.sandbox_dir = res.dir;
  run.state_path = res.dir + "/state.db";
  // A rehearsal of this host's environment recalls what the real run would
  // (which release each colour runs, the last deploy): without them
  // contract, rollback and migrate take other paths than the real run.
  if (!options.world && !run.env_table.is_object()) run.facts_from = StatePath(project);
  sys::MkdirP(res.dir + "/db", 0700);

  // The source database: named, built from a fixture, or the environment's.
  std::string env_url;
  if (run.env_table.is_object()) {
    env_url = run.env_table.value("database", "");
    if (env_url.rfind("sqlite:", 0) == 0 && env_url.size() > 7 && env_url[7] != '/') {
      env_url = "sqlite://" + project.root + "/" + env_url.substr(7);
    }
  } else if (!options.db.none) {
    env_url = EnvironmentDatabase(project, run.env);
  }
  std::string source_url = options.db.none ? "" : options.db.url.empty() ? env_url : options.db.url;
  double t0 = sys::Monotonic();
  if (!options.db.sql_file.empty()) {
    std::string path = res.dir + "/db/fixture.db";
    BuildFromSql(path, options.db.sql_file);
    res.source = options.db.sql_file;
    res.copy_url = "sqlite://" + path;
  } else if (!options.db.none && !source_url.empty()) {
    db::DbUrl src = db::ParseUrl(source_url, project.root);
    res.source = src.redacted;
    if (src.engine == db::Engine::kPostgres) {
      pg_copy = CopyPostgres(src, res.dir + "/db");
      res.copy_url = pg_copy->url;
      res.copy_method = pg_copy->method;
      run.db_redirects[src.redacted] = res.copy_url;
    } else if (src.memory()) {
      throw Error("sandbox", "invalid", "an in-memory database cannot be copied into a sandbox");
    } else if (!sys::StatPath(src.path).exists && !options.db.url.empty()) {
      throw Error("sandbox", "not_found", fmt::format("cannot copy {} into the sandbox: no such file", src.path));
    } else if (!sys::StatPath(src.path).exists) {
      // The environment's SQLite file before its first deploy: the rehearsal
      // starts where the real run would, without one (the playbook decides
      // whether to create it, or to refuse a missing file).
      res.copy_method = "none: no database file yet";
      res.copy_url = "sqlite://" + res.dir + "/db/" + fs::path(src.path).filename().string();
      run.db_redirects[Canonical(src.path)] = res.copy_url;
    } else {
      res.copy_method = "sqlite backup";
      db::backup::CreateOptions co;
      co.dir = res.dir + "/db";
      co.label = "sandbox";
      auto copy = db::backup::CreateSqlite(src.path, co);
      // The copy keeps the original's file name: backups the run takes are
      // named after their source (app-predeploy-...), as in the real run.
      std::string named = res.dir + "/db/" + fs::path(src.path).filename().string();
      fs::rename(copy.path, named);
      res.copy_url = "sqlite://" + named;
      run.db_redirects[Canonical(src.path)] = res.copy_url;
    }
  }
  if (!env_url.empty() && !res.copy_url.empty()) {
    // The environment's own database reaches the copy too, whatever the source.
    db::DbUrl env_db = db::ParseUrl(env_url, project.root);
    if (env_db.engine == db::Engine::kSqlite && !env_db.memory()) {
      run.db_redirects[Canonical(env_db.path)] = res.copy_url;
    } else if (env_db.engine == db::Engine::kPostgres) {
      run.db_redirects[env_db.redacted] = res.copy_url;
    }
  }
  res.copy_seconds = sys::Monotonic() - t0;
  run.sandbox_database = res.copy_url;

  Snapshot before;
  auto exists = [](const std::string& url) {
    db::DbUrl u = db::ParseUrl(url);
    return u.engine != db::Engine::kSqlite || sys::StatPath(u.path).exists;
  };
  if (!res.copy_url.empty() && exists(res.copy_url)) before = Take(res.copy_url);
  if (before.fingerprint.empty()) before.fingerprint = db::Fingerprint(db::Schema{});
  res.fingerprint_before = before.fingerprint;

  if (!options.keep_copy_as.empty() && !res.copy_url.empty() && exists(res.copy_url) &&
      db::ParseUrl(res.copy_url).engine == db::Engine::kSqlite) {
    fs::copy_file(db::ParseUrl(res.copy_url).path, options.keep_copy_as, fs::copy_options::overwrite_existing);
  }

  std::unique_ptr<engine::SimWorld> own_world;
  engine::World* world = options.world;
  if (!world) {
    engine::SimOptions so;
    so.seed_from_disk = true;
    own_world = std::make_unique<engine::SimWorld>(so);
    // The real nginx is not part of the simulated world: requests to it
    // would be refused, and every switch verification and bake would fail.
    // A simulated one in its place routes by the include as the run left it.
    if (!run.env_table.is_object()) {
      try {
        for (const auto& [port, conf] : EnvironmentFrontends(project, run.env)) own_world->AddFrontend(port, conf);
      } catch (const Error&) {
        // No usable environment: the run itself reports that, precisely.
      }
    }
    world = own_world.get();
  }
  world->AddRealDir(res.dir);
  // The changes it would make: what a sandbox reports (the caller's own
  // world, when it brought one, is simulated too).
  auto* sim = dynamic_cast<engine::SimWorld*>(world);
  run.world = world;
  // Another host of the environment is simulated too, on its own. A
  // rehearsal of a real environment reads that host as it is, through its
  // agent (never writing there but the agent's own upload); `hoist test`
  // scripts every host, so there each starts empty.
  std::mutex host_sims_mu;
  std::map<std::string, std::unique_ptr<engine::SimWorld>> host_sims;
  std::unique_ptr<engine::RealWorld> machine;
  std::unique_ptr<HostWorlds> real_hosts;
  std::vector<HostConfig> hosts;
  if (!run.host_world && sim) {
    if (own_world && !run.env_table.is_object()) {
      machine = std::make_unique<engine::RealWorld>();
      try {
        hosts = EnvironmentHosts(project, run.env, nullptr);
        real_hosts = std::make_unique<HostWorlds>(hosts, *machine, nullptr);
      } catch (const Error&) {
        // No usable environment: the run itself reports that, precisely.
      }
    }
    run.host_world = [&](const std::string& host) -> engine::World* {
      engine::World* seed = real_hosts ? &real_hosts->Get(host) : nullptr;  // its connection error, as a real run's
      std::lock_guard lock(host_sims_mu);
      auto& w = host_sims[host];
      if (w) return w.get();
      w = std::make_unique<engine::SimWorld>(
          engine::SimOptions{.seed_from_disk = seed != nullptr, .host = host, .seed = seed});
      for (const auto& h : hosts) {
        // The lb's simulated nginx routes by its include, as on one host.
        if (h.name != host || std::find(h.roles.begin(), h.roles.end(), "lb") == h.roles.end()) continue;
        try {
          for (const auto& [port, conf] : EnvironmentFrontends(project, run.env)) w->AddFrontend(port, conf);
        } catch (const Error&) {
        }
      }
      // ... to the app hosts' simulated services, by their addresses.
      w->SetPeers([&](const std::string& address) -> engine::SimWorld* {
        for (const auto& h : hosts) {
          if (h.address == address) return dynamic_cast<engine::SimWorld*>(run.host_world(h.name));
        }
        return nullptr;
      });
      return w.get();
    };
  }

  if (options.foreign_lease) {
    auto store = engine::OpenStateStore(run.state_path);
    store->AcquireLease(*options.foreign_lease, 3600);
  }

  double t1 = sys::Monotonic();
  res.outcome = RunPlaybook(project, run, reporter);
  res.run_seconds = sys::Monotonic() - t1;
  if (res.outcome.run_id > 0) {
    auto store = engine::OpenStateStore(run.state_path);
    if (auto j = store->GetRun(res.outcome.run_id)) res.journal = *j;
  }
  if (sim) res.changes = sim->changes();
  for (const auto& [host, w] : host_sims) {
    for (auto c : w->changes()) {
      c.what = host + ": " + c.what;
      c.detail["host"] = host;
      res.changes.push_back(std::move(c));
    }
  }

  if (!res.copy_url.empty()) {
    Snapshot after;
    if (exists(res.copy_url)) after = Take(res.copy_url);
    db::SchemaDiff d = db::Diff(before.schema, after.schema);
    res.schema_diff = d.ToJson();
    if (!d.empty()) res.schema_text = d.Text();
    for (const auto& [t, n] : before.rows) res.rows[t].before = n;
    for (const auto& [t, n] : after.rows) res.rows[t].after = n;
  }

  // The plan: everything the rehearsal's outcome depended on.
  json observed = json::object();
  if (sim) {
    for (const auto& [k, v] : sim->observed()) observed[k] = v;
  }
  // Row counts are observations of a database that may be taking writes:
  // reported beside the plan, never part of its hash.
  json rows = json::object();
  for (const auto& [t, c] : res.rows) rows[t] = c.before;
  res.observed = {{"rows", rows}};
  res.plan = {{"playbook", res.journal.value("playbook", "")},
              {"version", res.journal.value("version", "")},
              {"source_sha256", res.journal.value("source_sha256", "")},
              {"params", res.journal.value("params", json::object())},
              {"env", res.journal.value("env", "")},
              {"database", {{"fingerprint", before.fingerprint}}},
              {"inputs", PlanInputs(project, res.journal)},
              {"world", observed}};
  if (!run.facts_from.empty()) {
    // What it recalled steers it as much as what it read (last_deploy
    // decides whether contract may run): a deploy since then changes the plan.
    json facts = json::object();
    json remembered = engine::ReadFacts(run.facts_from, res.journal.value("env", ""));
    for (const auto& [k, v] : remembered.items()) facts[k] = v.value("value", json());
    res.plan["facts"] = facts;
  }
  res.plan_hash = sys::Sha256Hex(res.plan.dump());
  return res;
}

std::string LineDiff(const std::string& before, const std::string& after, size_t context) {
  auto lines = [](const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  };
  auto a = lines(before), b = lines(after);
  // LCS table; config files are small. Beyond that, say so instead.
  if (a.size() * b.size() > 4'000'000) return fmt::format("  ({} lines -> {} lines)\n", a.size(), b.size());
  std::vector<std::vector<int>> L(a.size() + 1, std::vector<int>(b.size() + 1, 0));
  for (size_t i = a.size(); i-- > 0;)
    for (size_t j = b.size(); j-- > 0;) L[i][j] = a[i] == b[j] ? L[i + 1][j + 1] + 1 : std::max(L[i + 1][j], L[i][j + 1]);
  struct Op {
    char tag;
    std::string text;
  };
  std::vector<Op> ops;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i < a.size() && j < b.size() && a[i] == b[j]) {
      ops.push_back({' ', a[i]});
      ++i, ++j;
    } else if (i < a.size() && (j == b.size() || L[i + 1][j] >= L[i][j + 1])) {
      ops.push_back({'-', a[i++]});
    } else {
      ops.push_back({'+', b[j++]});
    }
  }
  std::string out;
  size_t last = 0;
  bool any = false;
  for (size_t k = 0; k < ops.size(); ++k) {
    bool near = false;
    for (size_t m = k >= context ? k - context : 0; m <= k + context && m < ops.size(); ++m) {
      near = near || ops[m].tag != ' ';
    }
    if (!near) continue;
    if (any && k > last + 1) out += "  ...\n";
    out += fmt::format("  {} {}\n", ops[k].tag, ops[k].text);
    last = k;
    any = true;
  }
  return out;
}

json SandboxReportJson(const SandboxResult& r) {
  json changes = json::array();
  for (const auto& c : r.changes) {
    json d = c.detail;
    d.erase("content");
    d.erase("previous");
    changes.push_back({{"kind", c.kind}, {"what", c.what}, {"step", c.step}, {"detail", d}});
  }
  json rows = json::object();
  for (const auto& [t, c] : r.rows) {
    rows[t] = {{"before", c.before < 0 ? json(nullptr) : json(c.before)}, {"after", c.after < 0 ? json(nullptr) : json(c.after)}};
  }
  json j = {{"event", "sandbox_report"},
            {"status", r.outcome.status},
            {"exit_code", r.outcome.exit_code},
            {"source", r.source},
            {"copy_method", r.copy_method},
            {"copy_seconds", r.copy_seconds},
            {"run_seconds", r.run_seconds},
            {"changes", changes},
            {"schema_diff", r.schema_diff},
            {"rows", rows},
            {"plan_hash", r.plan_hash},
            {"plan", r.plan},
            {"observed", r.observed}};
  if (!r.dir.empty()) j["kept"] = r.dir;
  return json::parse(Mask(j.dump(-1, ' ', false, json::error_handler_t::replace)));
}

std::string SandboxReportText(const SandboxResult& r) {
  std::string out;
  out += fmt::format("\nsandbox report: {} ({})\n", r.outcome.status,
                     r.source.empty()                        ? "no database"
                     : r.copy_method.rfind("none", 0) == 0 ? "no database yet at " + r.source
                                                             : "a copy of " + r.source);
  out += fmt::format("  database copy{} {}, run {}\n", r.copy_method.empty() ? "" : " (" + r.copy_method + ")",
                     fmt::format("{:.3f} s", r.copy_seconds),
                     fmt::format("{:.3f} s", r.run_seconds));
  out += "\nworld changes it would make, in order:\n";
  if (r.changes.empty()) out += "  none\n";
  int n = 0;
  for (const auto& c : r.changes) {
    out += fmt::format("  {:>2}. {}{}\n", ++n, c.what, c.step.empty() ? "" : "   (step \"" + c.step + "\")");
    if (c.kind == "file" && c.detail.contains("content")) {
      std::string before = c.detail.contains("previous") ? c.detail["previous"].get<std::string>() : "";
      std::string diff = LineDiff(before, c.detail["content"].get<std::string>());
      std::istringstream in(diff);
      for (std::string l; std::getline(in, l);) out += "      " + l + "\n";
    }
  }
  out += "\ndatabase:\n";
  if (r.copy_url.empty()) {
    out += "  (no database)\n";
  } else {
    out += r.schema_text.empty() ? "  schema: no differences\n" : "  schema:\n";
    if (!r.schema_text.empty()) {
      std::istringstream in(r.schema_text);
      for (std::string l; std::getline(in, l);) out += "    " + l + "\n";
    }
    out += "  rows:\n";
    for (const auto& [t, c] : r.rows) {
      auto show = [](int64_t v) { return v < 0 ? std::string("-") : std::to_string(v); };
      out += fmt::format("    {:<28} {:>10} -> {:<10}{}\n", t, show(c.before), show(c.after),
                         c.before == c.after ? "" : "  (changed)");
    }
  }
  out += fmt::format("\nplan hash: {}\n", r.plan_hash);
  out += fmt::format("  run it for real with: --expect-plan {}\n", r.plan_hash);
  if (!r.dir.empty()) out += fmt::format("  sandbox kept in {}\n", r.dir);
  return Mask(out);
}

}  // namespace hoist::app

namespace hoist::app {
namespace {

struct ReplayOutcome {
  SandboxResult sandbox;
  std::optional<engine::Divergence> divergence;
  std::string recorded_status;
  size_t calls = 0;
};

/// What the recorded run recalled before remembering it itself: a replay
/// starts from those facts, whatever the store holds now.
json RecalledFacts(const json& run) {
  json facts = json::object();
  std::set<std::string> remembered;
  for (const auto& e : run.value("events", json::array())) {
    if (e.value("kind", "") != "state") continue;
    const std::string name = e.value("name", "");
    if (name.rfind("remember ", 0) == 0) {
      remembered.insert(name.substr(9));
    } else if (name.rfind("recall ", 0) == 0) {
      std::string key = name.substr(7);
      json row = e.value("data", json::object());
      if (remembered.count(key) || facts.contains(key) || row.value("value", json()).is_null()) continue;
      facts[key] = row;
    }
  }
  return facts;
}

// Replays a journaled run (the `hoist show --json` shape) in a sandbox.
ReplayOutcome Replay(const Project& project, const json& run, const std::string& db_url,
                     const std::string& keep_copy_as) {
  std::string source = run.value("source", "");
  if (source.empty()) {
    throw Error("replay", "invalid", fmt::format("run {} has no recorded playbook source", run.value("id", 0)));
  }
  std::string tmp = MakeTempDir();
  struct Rm {
    std::string d;
    ~Rm() { RemoveSandbox(d); }
  } rm{tmp};
  std::string file = tmp + "/" + run.value("playbook", "playbook") + ".lua";
  sys::WriteAtomic(file, source, 0600);
  auto calls = engine::RecordedCalls(run);
  // One replay world per host: each answers its host's calls in order
  // (hosts worked at once interleave in the journal, never within a host).
  std::map<std::string, std::vector<engine::RecordedCall>> by_host;
  for (const auto& c : calls) by_host[c.call.value("host", "local")].push_back(c);
  engine::ReplayWorld world(by_host["local"]);
  std::map<std::string, std::unique_ptr<engine::ReplayWorld>> host_worlds;
  for (auto& [host, host_calls] : by_host) {
    if (host != "local") host_worlds[host] = std::make_unique<engine::ReplayWorld>(host_calls, host);
  }
  SandboxOptions so;
  so.run.playbook = file;
  so.run.env = run.value("env", "");
  so.run.params.file = run.value("params", json::object());
  so.run.assume_yes = true;
  if (run.contains("env_table")) so.run.env_table = run["env_table"];
  so.run.facts = RecalledFacts(run);
  so.db.url = db_url;
  so.world = &world;
  std::mutex host_worlds_mu;
  so.run.host_world = [&](const std::string& host) -> engine::World* {
    std::lock_guard lock(host_worlds_mu);
    auto& w = host_worlds[host];
    // A host the recording never reached: its first call diverges.
    if (!w) w = std::make_unique<engine::ReplayWorld>(std::vector<engine::RecordedCall>{}, host);
    return w.get();
  };
  so.keep_copy_as = keep_copy_as;
  ReplayOutcome out;
  auto quiet = engine::MakeNullReporter();
  out.sandbox = RunSandbox(project, so, *quiet);
  out.divergence = world.Finish();
  for (const auto& [host, w] : host_worlds) {
    if (out.divergence) break;
    out.divergence = w->Finish();
    if (out.divergence) out.divergence->step += (out.divergence->step.empty() ? "host " : " on host ") + host;
  }
  if (!out.divergence) out.divergence = engine::CompareDbOutcomes(run, out.sandbox.journal);
  out.recorded_status = run.value("status", "");
  out.calls = calls.size();
  return out;
}

std::string LuaQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

int ReplayRun(const Project& project, const ReplayOptions& options) {
  auto store = engine::OpenStateStore(StatePath(project));
  auto run = store->GetRun(options.run_id);
  if (!run) {
    fmt::print(stderr, "hoist: replay: no run {} in the journal (hoist history lists them)\n", options.run_id);
    return 2;
  }
  std::string fixture;
  std::string base;
  if (!options.save_test.empty()) {
    base = options.save_test;
    if (base.ends_with("_test.lua")) base = base.substr(0, base.size() - 9);
    fixture = base + ".replay.db";
    std::string parent = fs::path(options.save_test).parent_path().string();
    if (!parent.empty()) sys::MkdirP(parent, 0755);
  }
  ReplayOutcome r;
  try {
    r = Replay(project, *run, options.db_url, fixture);
  } catch (const Error& e) {
    fmt::print(stderr, "hoist: {}\n", Mask(e.what()));
    return 2;
  }
  bool status_matches = r.sandbox.outcome.status == r.recorded_status;
  bool matched = !r.divergence && status_matches;
  if (options.json) {
    json j = {{"event", "replay"},
              {"run_id", options.run_id},
              {"matched", matched},
              {"calls", r.calls},
              {"recorded_status", r.recorded_status},
              {"status", r.sandbox.outcome.status}};
    if (r.divergence) {
      j["divergence"] = {{"index", r.divergence->index},
                         {"step", r.divergence->step},
                         {"expected", r.divergence->expected},
                         {"actual", r.divergence->actual}};
    }
    fmt::print("{}\n", Mask(j.dump(-1, ' ', false, json::error_handler_t::replace)));
  } else {
    fmt::print("replay of run {}: {} {} ({} recorded world calls) against a copy of {}\n", options.run_id,
               run->value("playbook", ""), run->value("version", ""), r.calls, r.sandbox.source.empty() ? "no database" : r.sandbox.source);
    if (r.divergence) {
      fmt::print("DIVERGED at {}\n", Mask(r.divergence->Text()));
    } else if (!status_matches) {
      fmt::print("DIVERGED: every world call matched, but the run ended {} (recorded: {})\n",
                 r.sandbox.outcome.status, r.recorded_status);
    } else {
      fmt::print("matched: all {} world calls in order, and the run ended {} as recorded\n", r.calls,
                 r.recorded_status);
    }
  }
  if (!options.save_test.empty()) {
    if (!matched) {
      fmt::print(stderr, "hoist: replay: not writing {}: the replay did not match\n", options.save_test);
      std::error_code ec;
      fs::remove(fixture, ec);
      return 1;
    }
    json rec = *run;
    rec.erase("steps");
    sys::WriteAtomic(base + ".replay.json", rec.dump(1), 0600);
    std::string name = fs::path(base).filename().string();
    std::string test = fmt::format(
        "-- Replay of run {} ({} {}, {}): written by `hoist replay --save-test`.\n"
        "-- The playbook source, params and every world answer are in {}.replay.json;\n"
        "-- the database as it was before the run is {}.replay.db.\n"
        "local t = require \"hoist.testing\"\n\n"
        "t.case({}, function()\n"
        "  local r = t.replay(t.path(\"{}.replay.json\"), {{ db = {{ sqlite = \"{}.replay.db\" }} }})\n"
        "  t.eq(r.divergence, nil, \"divergence\")\n"
        "  t.status(r, {})\n"
        "end)\n",
        options.run_id, run->value("playbook", ""), run->value("version", ""), run->value("started_at", ""), name, name,
        LuaQuote(fmt::format("run {} replays as recorded", options.run_id)), name, name,
        LuaQuote(r.recorded_status));
    sys::WriteAtomic(options.save_test, test, 0644);
    fmt::print("wrote {} (with {}.replay.json and {}.replay.db)\n", options.save_test, base, base);
  }
  return matched ? 0 : 1;
}

/// For hoist.testing's t.replay: the recording in a .replay.json file.
json ReplayFile(const Project& project, const std::string& path, const std::string& db_url) {
  json run = json::parse(sys::ReadFile(path));
  ReplayOutcome r = Replay(project, run, db_url, "");
  json out = {{"status", r.sandbox.outcome.status}, {"recorded_status", r.recorded_status}, {"calls", r.calls}};
  if (r.divergence) {
    out["divergence"] = {{"index", r.divergence->index},
                         {"step", r.divergence->step},
                         {"expected", r.divergence->expected},
                         {"actual", r.divergence->actual},
                         {"text", r.divergence->Text()}};
  }
  return out;
}

}  // namespace hoist::app
