// What both state stores (SQLite file, PostgreSQL) store and say: masked
// JSON text, the rows read back as JSON, and the messages written into a
// run that was abandoned. One place, so the two stores cannot drift.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/state_store.h"

namespace hoist::engine::rows {

using json = nlohmann::json;

/// JSON text for the journal, masked for secrets.
std::string MaskedJson(const json& j);
/// JSON text exactly as given (facts: run:remember refuses values holding
/// a secret, and a masked copy would be recalled corrupted).
std::string ExactJson(const json& j);
/// Stored JSON text back to JSON ("" -> null; broken text -> discarded).
json ParseStored(const std::string& s);

/// runs.error of a run whose process is gone on its host.
std::string KilledReason(int64_t pid, const std::string& host, const std::string& by_operator,
                         const std::string& by_host);
/// runs.error of the previous holder's run when `want` takes an env's
/// lease over: expired (stopped heart-beating) or its process gone here.
std::string TakeoverReason(const Lease& cur, const Lease& want, bool expired);
/// runs.error of a run whose lease `hoist lock release --force` removed.
std::string ForceReleasedReason(const std::string& by, const std::string& reason);

/// The columns every store selects, in this order, for the readers below.
inline constexpr const char* kLeaseCols =
    "env, owner, host, pid, run_id, reason, token, started_at, heartbeat_at, expires_at";
inline constexpr const char* kRunCols =
    "id, playbook, version, env, status, exit_code, operator, host, started_at, ended_at, error, sandbox";
inline constexpr const char* kRunDetailCols = "origin, source_sha256, params, hoist_version, source";
inline constexpr const char* kStepCols =
    "seq, parent_seq, name, kind, status, attempts, started_at, ended_at, seconds, result, error";
inline constexpr const char* kEventCols = "seq, step_seq, at, kind, name, data, seconds";
inline constexpr const char* kFactCols = "value, run_id, updated_at";

// Readers over a row with IsNull/Int/Double/Text(col): db::Stmt, or the
// PostgreSQL store's row view.
template <class Row>
json Nullable(const Row& r, int col, json value) {
  return r.IsNull(col) ? json(nullptr) : std::move(value);
}

template <class Row>
Lease LeaseRow(const Row& s) {
  Lease l;
  l.env = s.Text(0);
  l.owner = s.Text(1);
  l.host = s.Text(2);
  l.pid = s.Int(3);
  l.run_id = s.Int(4);
  l.reason = s.Text(5);
  l.token = s.Text(6);
  l.started_at = s.Double(7);
  l.heartbeat_at = s.Double(8);
  l.expires_at = s.Double(9);
  return l;
}

template <class Row>
json RunRow(const Row& s) {
  json j = {{"id", s.Int(0)},   {"playbook", s.Text(1)}, {"version", s.Text(2)},     {"env", s.Text(3)},
            {"status", s.Text(4)}, {"operator", s.Text(6)}, {"host", s.Text(7)}, {"started_at", s.Text(8)},
            {"sandbox", s.Int(11) != 0}};
  j["exit_code"] = Nullable(s, 5, s.Int(5));
  j["ended_at"] = Nullable(s, 9, s.Text(9));
  j["error"] = Nullable(s, 10, s.Text(10));
  return j;
}

/// kRunCols then kRunDetailCols.
template <class Row>
json RunDetailRow(const Row& s) {
  json run = RunRow(s);
  run["origin"] = s.Text(12);
  run["source_sha256"] = s.Text(13);
  run["params"] = ParseStored(s.Text(14));
  run["hoist_version"] = s.Text(15);
  run["source"] = s.Text(16);
  return run;
}

template <class Row>
json StepRow(const Row& st) {
  json j = {{"seq", st.Int(0)},     {"name", st.Text(2)},       {"kind", st.Text(3)},
            {"status", st.Text(4)}, {"started_at", st.Text(6)}, {"seconds", st.Double(8)}};
  j["parent"] = Nullable(st, 1, st.Int(1));
  j["attempts"] = Nullable(st, 5, st.Int(5));
  j["ended_at"] = Nullable(st, 7, st.Text(7));
  j["result"] = Nullable(st, 9, ParseStored(st.Text(9)));
  j["error"] = Nullable(st, 10, st.Text(10));
  return j;
}

template <class Row>
json EventRow(const Row& ev) {
  json j = {{"seq", ev.Int(0)},  {"at", ev.Text(2)},     {"kind", ev.Text(3)}, {"name", ev.Text(4)},
            {"data", ParseStored(ev.Text(5))}, {"seconds", ev.Double(6)}};
  j["step"] = Nullable(ev, 1, ev.Int(1));
  return j;
}

/// kFactCols: {value, run_id, updated_at}.
template <class Row>
json FactRow(const Row& s) {
  json j = {{"value", ParseStored(s.Text(0))}, {"updated_at", s.Text(2)}};
  j["run_id"] = Nullable(s, 1, s.Int(1));
  return j;
}

}  // namespace hoist::engine::rows
