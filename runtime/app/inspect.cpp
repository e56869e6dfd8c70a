#include "app/inspect.h"

#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "core/identity.h"
#include "db/connection.h"
#include "db/migrator.h"
#include "engine/reporter.h"
#include "engine/state_store.h"
#include "sys/clock.h"

namespace hoist::app {

using json = nlohmann::json;

namespace {

std::unique_ptr<engine::StateStore> OpenStore(const Project& project) {
  return engine::OpenStateStore(StatePath(project));
}

json LeaseJson(const engine::Lease& l) {
  return {{"env", l.env},       {"owner", l.owner},   {"host", l.host},
          {"pid", l.pid},       {"run_id", l.run_id}, {"reason", l.reason},
          {"started_at", sys::IsoUtc(l.started_at)}, {"heartbeat_at", sys::IsoUtc(l.heartbeat_at)},
          {"expires_at", sys::IsoUtc(l.expires_at)}, {"expired", l.expires_at <= sys::NowEpoch()}};
}

// Every World call of a recorded run is one "call" event (what replay feeds
// back), whatever primitive made it: services, probes, signals, sleeps and
// database files too, not only the kinds that also write a readable record.
bool IsWorldEvent(const json& e) { return e["kind"] == "call"; }

}  // namespace

std::vector<json> History(const Project& project, const std::string& env, int limit) {
  return OpenStore(project)->History(env.empty() ? std::nullopt : std::optional<std::string>(env), limit);
}

std::string HistoryText(const std::vector<json>& runs) {
  if (runs.empty()) return "no runs yet\n";
  std::string out = fmt::format("{:>5}  {:<24}  {:<20}  {:<10}  {:<12}  {}\n", "RUN", "STARTED", "PLAYBOOK", "ENV",
                                "STATUS", "BY");
  for (const auto& r : runs) {
    out += fmt::format("{:>5}  {:<24}  {:<20}  {:<10}  {:<12}  {}@{}\n", r["id"].get<int64_t>(),
                       r["started_at"].get<std::string>(),
                       r["playbook"].get<std::string>() + " " + r["version"].get<std::string>(),
                       r["env"].get<std::string>(), r["status"].get<std::string>(), r["operator"].get<std::string>(),
                       r["host"].get<std::string>());
  }
  return out;
}

std::optional<json> GetRun(const Project& project, int64_t id) { return OpenStore(project)->GetRun(id); }

std::string RunText(const json& r, int verbose) {
  std::string out;
  out += fmt::format("run {}: {} {} on {} — {}\n", r["id"].get<int64_t>(), r["playbook"].get<std::string>(),
                     r["version"].get<std::string>(), r["env"].get<std::string>(), r["status"].get<std::string>());
  out += fmt::format("  by {}@{}, {} → {}\n", r["operator"].get<std::string>(), r["host"].get<std::string>(),
                     r["started_at"].get<std::string>(),
                     r["ended_at"].is_null() ? "(running or crashed)" : r["ended_at"].get<std::string>());
  out += fmt::format("  source {}, sha256 {}, hoist {}\n", r["origin"].get<std::string>(),
                     r["source_sha256"].get<std::string>().substr(0, 16), r["hoist_version"].get<std::string>());
  out += fmt::format("  params {}\n", r["params"].dump());
  if (!r["error"].is_null()) out += fmt::format("  error: {}\n", r["error"].get<std::string>());
  std::map<int64_t, int> depth;
  std::map<int64_t, int> world_count;
  // Per step, the calls each host got ("local" for this machine): how far each got.
  std::map<int64_t, std::map<std::string, int>> host_count;
  for (const auto& e : r["events"]) {
    if (!IsWorldEvent(e) || e["step"].is_null()) continue;
    int64_t step = e["step"].get<int64_t>();
    world_count[step]++;
    const json& call = e["data"].value("call", json::object());
    host_count[step][call.is_object() ? call.value("host", "local") : "local"]++;
  }
  auto per_host = [&](int64_t seq) {
    const auto& hosts = host_count[seq];
    if (hosts.empty() || (hosts.size() == 1 && hosts.begin()->first == "local")) return std::string();
    std::string parts;
    for (const auto& [h, n] : hosts) parts += (parts.empty() ? "" : ", ") + fmt::format("{} {}", h, n);
    return " (" + parts + ")";
  };
  out += "\nsteps:\n";
  for (const auto& s : r["steps"]) {
    int64_t seq = s["seq"].get<int64_t>();
    int d = s["parent"].is_null() ? 0 : depth[s["parent"].get<int64_t>()] + 1;
    depth[seq] = d;
    std::string mark = s["status"] == "ok" ? "✓" : s["status"] == "failed" ? "✗" : "…";
    int64_t attempts = s["attempts"].is_number() ? s["attempts"].get<int64_t>() : 1;
    out += fmt::format("  {:>3} {}{} {} ({}{}{})\n", seq, std::string(2 * d, ' '), mark, s["name"].get<std::string>(),
                       engine::FormatDuration(s["seconds"].is_number() ? s["seconds"].get<double>() : 0.0),
                       attempts > 1 ? fmt::format(", {} attempts", attempts) : "",
                       world_count[seq] ? fmt::format(", {} world call{}{}", world_count[seq],
                                                      world_count[seq] == 1 ? "" : "s", per_host(seq))
                                        : "");
    if (!s["result"].is_null() && verbose) out += fmt::format("        result: {}\n", s["result"].dump());
    if (!s["error"].is_null()) out += fmt::format("        error: {}\n", s["error"].get<std::string>());
  }
  // Deliveries and hooks: after the steps, as they happened after the run.
  std::string after;
  for (const auto& e : r["events"]) {
    const json& d = e["data"];
    if (e["kind"] == "notify" && d.contains("url")) {
      std::string how = d.value("delivered", false) ? "delivered"
                        : d.contains("skipped")     ? "not sent (a rehearsal)"
                                                    : "NOT delivered: " + d.value("error", std::string());
      size_t n = d.contains("attempts") ? d["attempts"].size() : 0;
      after += fmt::format("  {} {}{}\n", e["name"].get<std::string>(), how,
                           n > 1 ? fmt::format(" ({} attempts)", n) : "");
    } else if (e["kind"] == "hook") {
      after += fmt::format("  hook {} {}\n", e["name"].get<std::string>(),
                           d.value("ok", false) ? "ok" : "FAILED: " + d.value("error", std::string()));
    }
  }
  if (!after.empty()) out += "\nafter the run:\n" + after;
  if (verbose) {
    out += "\nevents:\n";
    for (const auto& e : r["events"]) {
      // Recorded world answers (for hoist replay) only at -vv.
      if (e["kind"] == "call" && verbose < 2) continue;
      out += fmt::format("  {} step {} {} {} {}\n", e["at"].get<std::string>(), e["step"].dump(),
                         e["kind"].get<std::string>(), e["name"].get<std::string>(), e["data"].dump());
    }
  }
  return out;
}

std::vector<json> Leases(const Project& project) {
  std::vector<json> out;
  for (const auto& l : OpenStore(project)->Leases()) out.push_back(LeaseJson(l));
  return out;
}

std::string LeasesText(const std::vector<json>& leases) {
  if (leases.empty()) return "no environment is locked\n";
  std::string out;
  for (const auto& l : leases) {
    bool expired = l["expired"].get<bool>();
    out += fmt::format("{}: {} by {}@{} (pid {}, run {}), reason: {}\n", l["env"].get<std::string>(),
                       expired ? "EXPIRED lease" : "locked", l["owner"].get<std::string>(),
                       l["host"].get<std::string>(), l["pid"].get<int64_t>(), l["run_id"].get<int64_t>(),
                       l["reason"].get<std::string>());
    out += fmt::format("  since {}, last heartbeat {}, {} {}\n", l["started_at"].get<std::string>(),
                       l["heartbeat_at"].get<std::string>(), expired ? "expired" : "expires",
                       l["expires_at"].get<std::string>());
  }
  return out;
}

std::string ReleaseLease(const Project& project, const std::string& env, const std::string& reason) {
  std::string target = env;
  if (target.empty()) {
    auto envs = EnvironmentNames(project);
    if (envs.size() == 1) target = envs[0];
    if (envs.empty()) target = "default";
  }
  if (target.empty()) throw Error("", "usage", "lock release: choose the environment with --env NAME");
  auto store = OpenStore(project);
  auto removed = store->ForceRelease(target, OperatorName() + "@" + HostName(), reason);
  // Journaled as a run of its own so `hoist history` shows who and why.
  engine::RunMeta meta;
  meta.playbook = "lock-release";
  meta.version = HOIST_VERSION;
  meta.origin = "cli";
  meta.params = {{"env", target}, {"reason", reason}, {"released", removed ? LeaseJson(*removed) : json(nullptr)}};
  meta.operator_name = OperatorName();
  meta.host = HostName();
  meta.env = target;
  meta.hoist_version = HOIST_VERSION;
  int64_t id = store->BeginRun(meta);
  store->FinishRun(id, "ok", 0, "");
  if (!removed) return fmt::format("environment '{}' was not locked (recorded as run {})\n", target, id);
  return fmt::format("released the lease on '{}' held by {}@{} (pid {}, run {}); recorded as run {}\n", target,
                     removed->owner, removed->host, removed->pid, removed->run_id, id);
}

MigrationReport MigrationStatus(const std::string& url, const std::string& dir) {
  db::OpenOptions o;
  o.readonly = true;
  auto conn = db::Open(url, o);
  db::MigrationStatus st = db::Status(*conn, dir);
  MigrationReport r;
  r.json = st.ToJson();
  r.json["db"] = conn->redacted();
  r.text = fmt::format("{}: migrations in {}\n{}", conn->redacted(), dir, st.Text());
  return r;
}

}  // namespace hoist::app
