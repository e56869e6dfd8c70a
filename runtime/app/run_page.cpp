#include "app/run_page.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "app/inspect.h"
#include "core/error.h"
#include "core/secrets.h"
#include "engine/reporter.h"
#include "sys/clock.h"
#include "sys/fs.h"

namespace hoist::app {

using json = nlohmann::json;

namespace {

// Layout of the timeline, in CSS pixels: names on the left, bars on the right.
constexpr double kWidth = 1160;
constexpr double kLabelWidth = 330;
constexpr double kRightPad = 28;
constexpr double kAxisTop = 34;
constexpr double kRowHeight = 22;
constexpr double kBarHeight = 14;
constexpr double kChartWidth = kWidth - kLabelWidth - kRightPad;

// The journal is masked when stored; Mask() again costs little and keeps a
// secret registered in this process out of the page too.
std::string Esc(std::string_view raw) {
  std::string s = Mask(raw);
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  const json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// At most n bytes, not cutting a UTF-8 sequence in two.
std::string Cut(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "…";
}

// Journal timestamps are sys::IsoUtc's "2026-11-21T10:15:00.123Z".
std::optional<double> ParseIso(const std::string& s) {
  struct tm tm {};
  int ms = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) < 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + ms / 1000.0;
}

std::optional<double> TimeOf(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) return std::nullopt;
  return ParseIso(j[key].get<std::string>());
}

double Seconds(const json& j) { return j.contains("seconds") && j["seconds"].is_number() ? j["seconds"].get<double>() : 0; }

std::string Bytes(double n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = n;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string Duration(const json& run) {
  auto a = TimeOf(run, "started_at"), b = TimeOf(run, "ended_at");
  if (!a || !b) return "";
  return engine::FormatDuration(std::max(0.0, *b - *a));
}

// What a run released, for the history table: the usual param names.
std::string Release(const json& run) {
  if (!run.contains("params") || !run["params"].is_object()) return "";
  for (const char* k : {"version", "release", "image", "tag"}) {
    const json& p = run["params"];
    if (p.contains(k) && (p[k].is_string() || p[k].is_number())) return Str(p, k);
  }
  return "";
}

const char* kStyle = R"css(
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 20px 24px; color: #1f2328; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 22px 0 8px; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; background: #6e7781; font-size: 13px; }
.status-ok { background: #2e7d32; } .status-failed, .status-failed_undo { background: #d93025; }
.status-interrupted, .status-abandoned, .status-running { background: #b26a00; }
dl.summary { display: grid; grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr); gap: 2px 16px; margin: 8px 0; }
dl.summary dd.wide { grid-column: span 3; } .param { margin-right: 14px; white-space: pre-wrap; }
dl.summary dt { color: #57606a; } dl.summary dd { margin: 0; }
table { border-collapse: collapse; margin: 4px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #e5e7ea; text-align: left; vertical-align: top; }
th { color: #57606a; font-weight: 600; }
.error { background: #fdecea; border-left: 4px solid #d93025; padding: 6px 10px; white-space: pre-wrap; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 6px 0 4px; font-size: 13px; color: #57606a; }
.legend svg { vertical-align: middle; margin-right: 4px; }
svg.timeline { display: block; width: 100%; height: auto; max-width: 1160px; background: #fbfbfc; border: 1px solid #e5e7ea; }
svg text { font-size: 12px; fill: #1f2328; } svg .axis text { fill: #57606a; font-size: 11px; }
svg .grid { stroke: #e5e7ea; } svg .axis line.base { stroke: #8c959f; }
svg .label.undo { fill: #8a5a00; } svg .label.failed { fill: #b3261e; font-weight: 600; }
svg .call { fill: #24292f; opacity: .7; } svg .call-time { fill: #24292f; opacity: .35; } svg .retry { stroke: #b26a00; stroke-width: 2; }
svg .switch line { stroke: #8250df; stroke-width: 2; stroke-dasharray: 5 3; } svg .switch text { fill: #8250df; font-weight: 600; }
svg .backup { fill: #0969da; stroke: #fff; } svg .probe { stroke: #fff; }
td.data { max-width: 560px; overflow-wrap: anywhere; }
a { color: #0969da; }
)css";

std::string Head(const std::string& title) {
  // No fetch of any kind is allowed: the page works from a file, offline.
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
      "<meta name=\"generator\" content=\"hoist {}\">\n<title>{}</title>\n<style>{}</style>\n</head>\n",
      HOIST_VERSION, title, kStyle);
}

struct Row {
  const json* step = nullptr;  // null: the run's own row
  int64_t seq = 0;
  int depth = 0;
  double start = 0, end = 0;
  bool group = false;
};

// Fill colours are attributes as well as CSS so that what the DOM says is
// what is drawn.
const char* FillOf(const std::string& kind, const std::string& status, bool group) {
  if (status == "failed") return "#d93025";
  if (status == "running") return "#9e9e9e";
  if (kind == "undo") return "#e8a317";
  return group ? "#a9c7f0" : "#3b7dd8";
}

// An axis label: milliseconds for runs under a second, then seconds, then minutes.
std::string Tick(double seconds, double span) {
  if (span < 1) return fmt::format("{}ms", static_cast<int64_t>(std::lround(seconds * 1000)));
  if (seconds < 60) return fmt::format("{:g}s", std::round(seconds * 1000) / 1000);
  int64_t whole = std::llround(seconds);
  return fmt::format("{}m{:02}s", whole / 60, whole % 60);
}

double NiceStep(double span) {
  double target = span / 8;
  double p = std::pow(10.0, std::floor(std::log10(target)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= target) return m * p;
  }
  return 10 * p;
}

bool IsRecordedAnswer(const json& e) { return Str(e, "kind") == "call"; }
bool IsNote(const std::string& kind) { return kind == "log" || kind == "state" || kind == "confirm" || kind == "retry"; }
bool IsSwitch(const json& e) { return Str(e, "kind") == "nginx" && Str(e, "name").rfind("switch ", 0) == 0; }
bool IsBackup(const json& e) { return Str(e, "kind") == "backup" && Str(e, "name").rfind("create ", 0) == 0; }

std::string Legend() {
  auto swatch = [](const std::string& shape, const std::string& text) {
    return fmt::format("<span><svg width=\"22\" height=\"14\" aria-hidden=\"true\">{}</svg>{}</span>", shape, text);
  };
  std::string out = "<div class=\"legend\">";
  out += swatch("<rect x=\"1\" y=\"2\" width=\"20\" height=\"10\" fill=\"#3b7dd8\"/>", "step");
  out += swatch("<rect x=\"1\" y=\"2\" width=\"20\" height=\"10\" fill=\"#a9c7f0\"/>", "step with nested steps");
  out += swatch("<rect x=\"1\" y=\"2\" width=\"20\" height=\"10\" fill=\"#d93025\"/>", "failed");
  out += swatch("<rect x=\"1\" y=\"2\" width=\"20\" height=\"10\" fill=\"#e8a317\"/>", "undo");
  out += swatch("<rect x=\"1\" y=\"2\" width=\"20\" height=\"10\" fill=\"#3b7dd8\"/>"
                "<line x1=\"11\" y1=\"0\" x2=\"11\" y2=\"14\" stroke=\"#b26a00\" stroke-width=\"2\"/>",
                "failed attempt, retried");
  out += swatch("<rect x=\"10\" y=\"1\" width=\"2\" height=\"12\" fill=\"#24292f\" opacity=\".65\"/>",
                "world call (hover for details)");
  out += swatch("<circle cx=\"11\" cy=\"7\" r=\"5\" fill=\"#2e7d32\"/>", "health probe ok");
  out += swatch("<circle cx=\"11\" cy=\"7\" r=\"5\" fill=\"#d93025\"/>", "health probe failed");
  out += swatch("<rect x=\"6\" y=\"2\" width=\"10\" height=\"10\" fill=\"#0969da\"/>", "backup");
  out += swatch("<line x1=\"11\" y1=\"0\" x2=\"11\" y2=\"14\" stroke=\"#8250df\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/>",
                "traffic switched");
  return out + "</div>\n";
}

std::string Timeline(const json& run) {
  const json& steps = run["steps"];
  const json& events = run["events"];
  double t0 = TimeOf(run, "started_at").value_or(0);
  double t_end = TimeOf(run, "ended_at").value_or(t0);
  for (const auto& s : steps) {
    if (auto a = TimeOf(s, "started_at")) {
      t0 = std::min(t0, *a);
      t_end = std::max(t_end, *a + Seconds(s));
    }
  }
  for (const auto& e : events) {
    if (IsRecordedAnswer(e)) continue;
    if (auto a = TimeOf(e, "at")) t_end = std::max(t_end, *a);
  }
  double span = std::max(t_end - t0, 0.001);
  auto X = [&](double t) { return kLabelWidth + (std::clamp(t, t0, t0 + span) - t0) / span * kChartWidth; };

  // Rows: the run itself, then the steps in the order they started (a
  // child always after its parent).
  std::vector<Row> rows;
  rows.push_back({nullptr, 0, 0, t0, t_end, false});
  std::map<int64_t, size_t> row_of;
  for (const auto& s : steps) {
    Row r;
    r.step = &s;
    r.seq = s["seq"].get<int64_t>();
    if (!s["parent"].is_null() && row_of.count(s["parent"].get<int64_t>())) {
      Row& parent = rows[row_of[s["parent"].get<int64_t>()]];
      parent.group = true;
      r.depth = parent.depth + 1;
    }
    r.start = TimeOf(s, "started_at").value_or(t0);
    r.end = Str(s, "status") == "running" ? t_end : r.start + Seconds(s);
    row_of[r.seq] = rows.size();
    rows.push_back(r);
  }
  auto RowY = [&](size_t i) { return kAxisTop + 10 + static_cast<double>(i) * kRowHeight; };
  double height = RowY(rows.size()) + 8;

  std::string out = fmt::format(
      "<svg class=\"timeline\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" role=\"img\" "
      "aria-label=\"timeline of run {2}\" data-span-seconds=\"{3:.3f}\">\n",
      kWidth, height, run["id"].get<int64_t>(), span);

  // Axis: a label per nice step, a grid line through every row.
  double step = NiceStep(span);
  out += "<g class=\"axis\">\n";
  out += fmt::format("<line class=\"base\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>\n", kLabelWidth,
                     kAxisTop, kLabelWidth + kChartWidth, kAxisTop);
  for (int k = 0; k * step <= span + step * 1e-6; ++k) {
    double t = k * step;
    double x = X(t0 + t);
    out += fmt::format("<line class=\"grid\" x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\"/>"
                       "<text class=\"tick\" x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4}</text>\n",
                       x, kAxisTop, height - 4, kAxisTop - 6, Esc(Tick(t, span)));
  }
  out += "</g>\n";

  // Bars with their names.
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    double y = RowY(i);
    double x = X(r.start), w = std::max(2.0, X(r.end) - x);
    if (!r.step) {
      std::string status = Str(run, "status");
      out += fmt::format(
          "<g class=\"row run\"><text class=\"label\" x=\"8\" y=\"{0:.1f}\">run {1}</text>"
          "<rect class=\"bar run status-{2}\" data-run=\"{1}\" x=\"{3:.1f}\" y=\"{4:.1f}\" width=\"{5:.1f}\" "
          "height=\"4\" fill=\"#8c959f\"><title>run {1}: {2}, {6}</title></rect></g>\n",
          y + kBarHeight - 3, run["id"].get<int64_t>(), Esc(status), x, y + kBarHeight / 2 - 2, w,
          Esc(engine::FormatDuration(t_end - t0)));
      continue;
    }
    const json& s = *r.step;
    std::string kind = Str(s, "kind"), status = Str(s, "status"), name = Str(s, "name");
    int64_t attempts = s["attempts"].is_number() ? s["attempts"].get<int64_t>() : 1;
    std::string mark = status == "ok" ? (kind == "undo" ? "↩" : "✓") : status == "failed" ? "✗" : "…";
    double indent = 8 + 14.0 * r.depth;
    size_t room = static_cast<size_t>(std::max(8.0, (kLabelWidth - indent - 14) / 6.8));
    std::string shown = name.size() > room ? Cut(name, room - 1) : name;
    std::string cls = kind == "undo" ? "undo" : "step";
    if (status == "failed") cls += " failed";
    if (r.group) cls += " group";
    std::string extra;
    if (!s["parent"].is_null()) extra += fmt::format(" data-parent=\"{}\"", s["parent"].get<int64_t>());
    if (kind == "undo") {
      // The step it undid: the newest completed step of that name before it.
      std::string undid = name.rfind("undo ", 0) == 0 ? name.substr(5) : name;
      for (size_t j = i; j-- > 1;) {
        const json& o = *rows[j].step;
        if (Str(o, "kind") == "step" && Str(o, "name") == undid && Str(o, "status") == "ok") {
          extra += fmt::format(" data-undoes=\"{}\"", rows[j].seq);
          break;
        }
      }
    }
    std::string tip = fmt::format("{} — {}, {}", name, status, engine::FormatDuration(r.end - r.start));
    if (attempts > 1) tip += fmt::format(", {} attempts", attempts);
    if (!Str(s, "error").empty()) tip += "\n" + Str(s, "error");
    out += fmt::format(
        "<g class=\"row\"><text class=\"label {0}\" x=\"{1:.1f}\" y=\"{2:.1f}\">{3} {4}<title>{5}</title></text>"
        "<rect class=\"bar {0}\" data-step=\"{6}\" data-name=\"{5}\" data-kind=\"{7}\" data-status=\"{8}\" "
        "data-attempts=\"{9}\" data-depth=\"{10}\"{11} x=\"{12:.1f}\" y=\"{13:.1f}\" width=\"{14:.1f}\" "
        "height=\"{15:.0f}\" rx=\"2\" fill=\"{16}\"><title>{17}</title></rect>",
        cls, indent, y + kBarHeight - 3, mark, Esc(shown), Esc(name), r.seq, Esc(kind), Esc(status), attempts,
        r.depth, extra, x, y, w, kBarHeight, FillOf(kind, status, r.group), Esc(tip));
    if (attempts > 1 || status == "failed") {
      std::string note = attempts > 1 ? fmt::format("{} attempts", attempts) : "";
      if (!note.empty()) {
        double tx = std::min(x + w + 4, kWidth - 80);
        out += fmt::format("<text class=\"attempts\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>", tx, y + kBarHeight - 3,
                           note);
      }
    }
    out += "</g>\n";
  }

  // Marks on the rows: retries, world calls, probes, backups; then the
  // switch across every row.
  std::string marks, switches;
  for (const auto& e : events) {
    if (IsRecordedAnswer(e)) continue;
    std::string kind = Str(e, "kind"), name = Str(e, "name");
    size_t i = 0;
    if (!e["step"].is_null() && row_of.count(e["step"].get<int64_t>())) i = row_of[e["step"].get<int64_t>()];
    double y = RowY(i);
    double at = TimeOf(e, "at").value_or(t0);
    std::string step_attr = e["step"].is_null() ? "" : fmt::format(" data-step=\"{}\"", e["step"].get<int64_t>());
    const json& data = e.contains("data") ? e["data"] : json();
    if (kind == "retry") {
      double x = X(at);
      marks += fmt::format(
          "<line class=\"retry\"{} data-attempt=\"{}\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\">"
          "<title>attempt {} failed, retried: {}</title></line>\n",
          step_attr, Esc(Str(data, "attempt")), x, y - 3, x, y + kBarHeight + 3, Esc(Str(data, "attempt")),
          Esc(Str(data, "error")));
      continue;
    }
    if (IsNote(kind)) continue;
    double secs = Seconds(e);
    std::string tip = fmt::format("{} {} ({})\n{}", kind, name, engine::FormatDuration(secs), Cut(Dump(data), 600));
    if (kind == "health") {
      bool ok = data.is_object() && data.value("ok", false);
      marks += fmt::format(
          "<circle class=\"probe {}\"{} data-kind=\"health\" data-name=\"{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" "
          "fill=\"{}\"><title>{}</title></circle>\n",
          ok ? "ok" : "failed", step_attr, Esc(name), X(at), y + kBarHeight / 2, ok ? "#2e7d32" : "#d93025", Esc(tip));
    } else if (IsBackup(e)) {
      marks += fmt::format(
          "<rect class=\"backup\"{} data-kind=\"backup\" data-name=\"{}\" data-size=\"{}\" data-sha256=\"{}\" "
          "x=\"{:.1f}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"#0969da\"><title>backup {}, {}, sha256 {}"
          "</title></rect>\n",
          step_attr, Esc(name), Esc(Str(data, "size")), Esc(Str(data, "sha256")), X(at) - 5, y + kBarHeight / 2 - 5,
          Esc(Str(data, "path")), Esc(data.contains("size") && data["size"].is_number() ? Bytes(data["size"].get<double>()) : "?"),
          Esc(Str(data, "sha256")));
    } else {
      // A tick where the call began; how long it took as a strip under
      // the bar, so a slow call does not hide its step's colour.
      double x1 = X(at - secs), x2 = X(at);
      marks += fmt::format(
          "<rect class=\"call\"{} data-kind=\"{}\" data-name=\"{}\" data-seconds=\"{:.3f}\" x=\"{:.1f}\" "
          "y=\"{:.1f}\" width=\"2\" height=\"{:.0f}\" fill=\"#24292f\"><title>{}</title></rect>\n",
          step_attr, Esc(kind), Esc(name), secs, x1 - 1, y - 2, kBarHeight + 4, Esc(tip));
      if (x2 - x1 > 3) {
        marks += fmt::format(
            "<rect class=\"call-time\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"3\" fill=\"#24292f\">"
            "<title>{}</title></rect>\n",
            x1, y + kBarHeight + 1, x2 - x1, Esc(tip));
      }
    }
    if (IsSwitch(e)) {
      double x = X(at);
      switches += fmt::format(
          "<g class=\"switch\"{} data-name=\"{}\" data-at=\"{}\"><line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" "
          "y2=\"{:.1f}\"/><text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">⇄ traffic {}</text><title>{}</title></g>\n",
          step_attr, Esc(name), Esc(Str(e, "at")), x, kAxisTop, x, height - 4, x + (x > kWidth - 200 ? -4 : 4),
          kAxisTop + 12, x > kWidth - 200 ? "end" : "start", Esc(name.substr(7)), Esc(tip));
    }
  }
  out += marks + switches + "</svg>\n";
  return out;
}

std::string EventTables(const json& run) {
  std::string out;
  std::string switches, probes, backups, calls;
  double t0 = TimeOf(run, "started_at").value_or(0);
  std::map<int64_t, std::string> step_name;
  for (const auto& s : run["steps"]) step_name[s["seq"].get<int64_t>()] = Str(s, "name");
  size_t n_switch = 0, n_probe = 0, n_backup = 0, n_calls = 0;
  for (const auto& e : run["events"]) {
    if (IsRecordedAnswer(e)) continue;
    std::string kind = Str(e, "kind"), name = Str(e, "name");
    const json& data = e.contains("data") ? e["data"] : json();
    double at = TimeOf(e, "at").value_or(t0);
    std::string when = fmt::format("+{}", engine::FormatDuration(std::max(0.0, at - t0)));
    std::string step = e["step"].is_null() ? "" : step_name[e["step"].get<int64_t>()];
    if (IsSwitch(e)) {
      ++n_switch;
      switches += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", Esc(when), Esc(name.substr(7)),
                              Esc(engine::FormatDuration(Seconds(e))), Esc(step));
    }
    if (kind == "health") {
      ++n_probe;
      bool ok = data.is_object() && data.value("ok", false);
      probes += fmt::format("<tr class=\"probe {}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"data\">{}</td></tr>\n",
                            ok ? "ok" : "failed", Esc(when), Esc(name), Esc(engine::FormatDuration(Seconds(e))),
                            Esc(step), Esc(Str(data, "error")));
    }
    if (IsBackup(e)) {
      ++n_backup;
      std::string size = data.contains("size") && data["size"].is_number()
                             ? fmt::format("{} ({} bytes)", Bytes(data["size"].get<double>()), Str(data, "size"))
                             : "";
      backups += fmt::format(
          "<tr class=\"backup\"><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>\n",
          Esc(when), Esc(Str(data, "path")), Esc(size), Esc(Str(data, "sha256")), Esc(step));
    }
    ++n_calls;
    calls += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"data mono\">{}</td></tr>\n",
        Esc(when), Esc(step), Esc(kind), Esc(name), Esc(engine::FormatDuration(Seconds(e))), Esc(Cut(Dump(data), 400)));
  }
  if (n_switch) {
    out += "<h2>Traffic switches</h2>\n<table class=\"switches\"><tr><th>at</th><th>switch</th><th>took</th><th>step</th></tr>\n" +
           switches + "</table>\n";
  }
  if (n_probe) {
    out += "<h2>Health probes</h2>\n<table class=\"probes\"><tr><th>at</th><th>probe</th><th>took</th><th>step</th><th>error</th></tr>\n" +
           probes + "</table>\n";
  }
  if (n_backup) {
    out += "<h2>Backups</h2>\n<table class=\"backups\"><tr><th>at</th><th>file</th><th>size</th><th>sha256</th><th>step</th></tr>\n" +
           backups + "</table>\n";
  }
  out += fmt::format("<h2>World calls and notes ({})</h2>\n", n_calls);
  if (n_calls) {
    out += "<details><summary>every call to the outside world, with what it answered (masked)</summary>\n"
           "<table class=\"calls\"><tr><th>at</th><th>step</th><th>kind</th><th>name</th><th>took</th><th>data</th></tr>\n" +
           calls + "</table></details>\n";
  }
  return out;
}

}  // namespace

std::string RunPageName(int64_t id) { return fmt::format("run-{}.html", id); }

std::string RunPage(const json& run) {
  int64_t id = run["id"].get<int64_t>();
  std::string status = Str(run, "status");
  std::string out = Head(Esc(fmt::format("hoist run {}: {} {} on {} — {}", id, Str(run, "playbook"),
                                         Str(run, "version"), Str(run, "env"), status)));
  out += fmt::format("<body class=\"run-page\" data-run=\"{}\" data-status=\"{}\">\n", id, Esc(status));
  out += fmt::format("<h1>run {} · {}@{} · <span class=\"status status-{}\">{}</span></h1>\n", id,
                     Esc(Str(run, "playbook")), Esc(Str(run, "version")), Esc(status), Esc(status));
  auto item = [](const std::string& k, const std::string& v_html) {
    return fmt::format("<dt>{}</dt><dd>{}</dd>\n", k, v_html);
  };
  std::string ended = run["ended_at"].is_null() ? "(running, or it crashed)" : Str(run, "ended_at");
  std::string dl = "<dl class=\"summary\">\n";
  dl += item("environment", Esc(Str(run, "env")));
  dl += item("status", fmt::format("{}{}", Esc(status),
                                   run["exit_code"].is_null() ? "" : fmt::format(" (exit {})", Str(run, "exit_code"))));
  dl += item("playbook", fmt::format("{} {} <span class=\"mono\">({})</span>", Esc(Str(run, "playbook")),
                                     Esc(Str(run, "version")), Esc(Str(run, "origin"))));
  dl += item("operator", Esc(Str(run, "operator") + "@" + Str(run, "host")));
  dl += item("started", Esc(Str(run, "started_at")));
  dl += item("ended", Esc(ended));
  dl += item("duration", Esc(Duration(run)));
  dl += item("hoist", Esc(Str(run, "hoist_version")) + (run.value("sandbox", false) ? " (sandbox)" : ""));
  dl += fmt::format("<dt>sha256</dt><dd class=\"wide mono sha256\">{}</dd>\n", Esc(Str(run, "source_sha256")));
  std::string params;
  if (run["params"].is_object()) {
    for (const auto& [k, v] : run["params"].items()) {
      params += fmt::format("<code class=\"param\" data-param=\"{}\">{}={}</code> ", Esc(k), Esc(k),
                            Esc(v.is_string() ? v.get<std::string>() : Dump(v)));
    }
  }
  dl += fmt::format("<dt>params</dt><dd class=\"wide params\">{}</dd>\n", params.empty() ? "none" : params);
  out += dl + "</dl>\n";
  if (!run["error"].is_null()) out += fmt::format("<div class=\"error\">{}</div>\n", Esc(Str(run, "error")));

  out += "<h2>Timeline</h2>\n" + Legend() + Timeline(run);
  std::string failures;
  for (const auto& s : run["steps"]) {
    if (Str(s, "status") != "failed") continue;
    failures += fmt::format("<tr class=\"failed\"><td>{}</td><td class=\"data\">{}</td></tr>\n", Esc(Str(s, "name")),
                            Esc(Str(s, "error")));
  }
  if (!failures.empty()) {
    out += "<h2>Failed steps</h2>\n<table class=\"failures\"><tr><th>step</th><th>error</th></tr>\n" + failures +
           "</table>\n";
  }
  out += EventTables(run);
  out += fmt::format("<p class=\"generated\">written by hoist {} at {}</p>\n</body>\n</html>\n", HOIST_VERSION,
                     sys::NowIso());
  return out;
}

std::string HistoryPage(const std::vector<json>& runs) {
  std::string out = Head("hoist history");
  out += "<body class=\"history-page\">\n<h1>hoist history</h1>\n";
  if (runs.empty()) out += "<p>no runs yet</p>\n";
  // Environments in the order their newest run appears.
  std::vector<std::string> envs;
  for (const auto& r : runs) {
    std::string env = Str(r, "env");
    if (std::find(envs.begin(), envs.end(), env) == envs.end()) envs.push_back(env);
  }
  for (const auto& env : envs) {
    out += fmt::format("<section class=\"env\" data-env=\"{0}\">\n<h2>{1}</h2>\n", Esc(env),
                       env.empty() ? "(no environment)" : Esc(env));
    out += "<table class=\"runs\"><tr><th>run</th><th>started</th><th>playbook</th><th>status</th><th>duration</th>"
           "<th>by</th><th>release</th></tr>\n";
    for (const auto& r : runs) {
      if (Str(r, "env") != env) continue;
      int64_t id = r["id"].get<int64_t>();
      std::string status = Str(r, "status");
      out += fmt::format(
          "<tr class=\"run status-{0}\" data-run=\"{1}\"><td><a href=\"{2}\">{1}</a></td><td>{3}</td><td>{4} {5}</td>"
          "<td><span class=\"status status-{0}\">{0}</span></td><td>{6}</td><td>{7}</td><td>{8}</td></tr>\n",
          Esc(status), id, Esc(RunPageName(id)), Esc(Str(r, "started_at")), Esc(Str(r, "playbook")),
          Esc(Str(r, "version")), Esc(Duration(r)), Esc(Str(r, "operator") + "@" + Str(r, "host")), Esc(Release(r)));
    }
    out += "</table>\n</section>\n";
  }
  out += fmt::format("<p class=\"generated\">written by hoist {} at {}</p>\n</body>\n</html>\n", HOIST_VERSION,
                     sys::NowIso());
  return out;
}

namespace {

void WritePage(const std::string& area, const std::string& file, const std::string& html) {
  try {
    sys::WriteAtomic(file, html, 0600);
  } catch (const Error& e) {
    // sys's message already names the file.
    throw Error(area, "failed", e.code() == "not_found" ? e.message() + " (create its directory first)" : e.message());
  }
}

}  // namespace

std::string WriteRunPage(const Project& project, int64_t id, const std::string& file) {
  auto run = GetRun(project, id);
  if (!run) throw Error("show", "not_found", fmt::format("no run {} in the journal (hoist history lists them)", id));
  WritePage("show", file, RunPage(*run));
  return fmt::format("wrote {} (run {}, {} steps)\n", file, id, (*run)["steps"].size());
}

std::string WriteHistoryPages(const Project& project, const std::string& env, int limit, const std::string& dir) {
  std::vector<json> runs;
  for (const auto& row : History(project, env, limit)) {
    auto run = GetRun(project, row["id"].get<int64_t>());
    if (run) runs.push_back(std::move(*run));
  }
  try {
    sys::MkdirP(dir, 0700);
  } catch (const Error& e) {
    throw Error("history", "failed", fmt::format("cannot create {}: {}", dir, e.message()));
  }
  for (const auto& r : runs) WritePage("history", dir + "/" + RunPageName(r["id"].get<int64_t>()), RunPage(r));
  WritePage("history", dir + "/index.html", HistoryPage(runs));
  return fmt::format("wrote {}/index.html and {} run page{}\n", dir, runs.size(), runs.size() == 1 ? "" : "s");
}

}  // namespace hoist::app
