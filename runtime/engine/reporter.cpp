#include "engine/reporter.h"

#include <cmath>
#include <mutex>

#include <fmt/format.h>

#include "sys/clock.h"

namespace hoist::engine {
namespace {

constexpr const char* kGreen = "\033[32m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kDim = "\033[2m";
constexpr const char* kBold = "\033[1m";
constexpr const char* kReset = "\033[0m";

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

class HumanReporter final : public Reporter {
 public:
  HumanReporter(std::FILE* out, std::FILE* err, HumanOptions o) : out_(out), err_(err), o_(o) {}

  void Emit(const json& ev) override {
    std::lock_guard lock(mu_);
    ClearProgress();
    const std::string kind = Str(ev, "event");
    if (kind == "run_started") {
      Line(fmt::format("{}{} {}{} {}(env {}, run {}{}){}", C(kBold), Str(ev, "playbook"), Str(ev, "version"), C(kReset),
                       C(kDim), Str(ev, "env").empty() ? "-" : Str(ev, "env"), ev.value("run_id", 0),
                       ev.value("sandbox", false) ? ", sandbox" : "", C(kReset)));
    } else if (kind == "step_group") {
      Line(fmt::format("{}▸ {}", Indent(ev), Str(ev, "name")));
    } else if (kind == "step_finished") {
      bool ok = Str(ev, "status") == "ok";
      std::string tries = ev.value("attempts", 1) > 1 ? fmt::format(", {} attempts", ev.value("attempts", 1)) : "";
      Line(fmt::format("{}{}{}{} {} {}({}{}){}", Indent(ev), C(ok ? kGreen : kRed), ok ? "✓" : "✗", C(kReset),
                       Str(ev, "name"), C(kDim), FormatDuration(ev.value("seconds", 0.0)), tries, C(kReset)));
      if (!ok) Line(fmt::format("{}  {}{}{}", Indent(ev), C(kRed), Str(ev, "error"), C(kReset)));
    } else if (kind == "step_retry") {
      Line(fmt::format("{}{}↻ {}{} attempt {} failed, retrying in {}: {}", Indent(ev), C(kYellow), Str(ev, "name"),
                       C(kReset), ev.value("attempt", 0), FormatDuration(ev.value("delay", 0.0)), Str(ev, "error")));
    } else if (kind == "undo_started") {
      if (!undo_header_) {
        Line(fmt::format("{}undoing completed steps, newest first:{}", C(kYellow), C(kReset)));
        undo_header_ = true;
      }
    } else if (kind == "undo_finished") {
      bool ok = Str(ev, "status") == "ok";
      Line(fmt::format("  {}↩{} undo {} {}({}){}", C(ok ? kYellow : kRed), C(kReset), Str(ev, "name"), C(kDim),
                       FormatDuration(ev.value("seconds", 0.0)), C(kReset)));
      if (!ok) Line(fmt::format("    {}{}{}", C(kRed), Str(ev, "error"), C(kReset)));
    } else if (kind == "world") {
      if (o_.verbose) {
        Line(fmt::format("{}    · {} {} ({}){}", C(kDim), Str(ev, "kind"), Str(ev, "name"),
                         FormatDuration(ev.value("seconds", 0.0)), C(kReset)));
      }
    } else if (kind == "run_finished") {
      RunFinished(ev);
      std::fflush(err_);
    } else if (kind == "message") {
      Line(Str(ev, "text"));
    } else if (kind == "notify") {
      Notified(ev);
    }
    std::fflush(out_);
  }

  void Progress(const std::string& label, double done, double total, const std::string& unit) override {
    if (!o_.tty) return;
    std::lock_guard lock(mu_);
    double now = sys::Monotonic();
    bool finished = total > 0 && done >= total;
    if (!finished && now - last_progress_ < 0.1) return;
    last_progress_ = now;
    std::string amount = total <= 0       ? Amount(done, unit)
                         : unit == "bytes" ? Amount(done, unit) + " of " + Amount(total, unit)
                                           : fmt::format("{:.0f} of {}", done, Amount(total, unit));
    std::string text = total > 0 ? fmt::format("  {} {:.0f}% ({})", label, 100.0 * done / total, amount)
                                 : fmt::format("  {} {}", label, amount);
    fmt::print(out_, "\r\033[K{}{}{}", C(kDim), text, C(kReset));
    std::fflush(out_);
    progress_shown_ = true;
  }

 private:
  const char* C(const char* code) const { return o_.color ? code : ""; }
  /// "1.2 GB" for bytes; "17 pages" for other units.
  static std::string Amount(double n, const std::string& unit) {
    if (unit != "bytes") return fmt::format("{:.0f} {}", n, unit);
    if (n < 1e3) return fmt::format("{:.0f} B", n);
    if (n < 1e6) return fmt::format("{:.0f} kB", n / 1e3);
    if (n < 1e9) return fmt::format("{:.1f} MB", n / 1e6);
    return fmt::format("{:.2f} GB", n / 1e9);
  }
  static std::string Indent(const json& ev) { return std::string(2 + 2 * ev.value("depth", 0), ' '); }

  void Line(const std::string& s) { fmt::print(out_, "{}\n", s); }
  void ErrLine(const std::string& s) {
    std::fflush(out_);
    fmt::print(err_, "{}\n", s);
  }

  void ClearProgress() {
    if (progress_shown_) {
      fmt::print(out_, "\r\033[K");
      progress_shown_ = false;
    }
  }

  void RunFinished(const json& ev) {
    std::string status = Str(ev, "status");
    double secs = ev.value("seconds", 0.0);
    int code = ev.value("exit_code", 0);
    auto run = ev.value("run_id", 0);
    // Beside the run's own outcome, never instead of it.
    auto hook_error = [&] {
      if (Str(ev, "hook_error").empty()) return;
      ErrLine(fmt::format("{}error in the {} hook{} (the run's outcome stands): {}", C(kRed), Str(ev, "hook"), C(kReset),
                          Str(ev, "hook_error")));
    };
    if (status == "ok") {
      Line(fmt::format("{}✓ done{} in {} — run {}", C(kGreen), C(kReset), FormatDuration(secs), run));
      hook_error();
      return;
    }
    std::string err = Str(ev, "error");
    if (!err.empty()) ErrLine(fmt::format("{}error:{} {}", C(kRed), C(kReset), err));
    hook_error();
    if (o_.verbose && !Str(ev, "traceback").empty()) ErrLine(Str(ev, "traceback"));
    if (!Str(ev, "hint").empty()) ErrLine(fmt::format("hint: {}", Str(ev, "hint")));
    if (status == "failed_undo") {
      ErrLine(fmt::format("{}✗ FAILED and an undo failed{} — run {} (exit {}). Operator action needed:", C(kRed), C(kReset),
                       run, code));
      for (const auto& s : ev.value("undone", json::array())) ErrLine(fmt::format("  undone:       {}", s.get<std::string>()));
      ErrLine(fmt::format("  undo FAILED:  {} — {}", Str(ev, "undo_failed_step"), Str(ev, "undo_error")));
      for (const auto& s : ev.value("not_undone", json::array())) {
        ErrLine(fmt::format("  still in effect: {}", s.get<std::string>()));
      }
      ErrLine(fmt::format("  inspect with: hoist show {}", run));
    } else if (status == "invalid") {
      ErrLine(fmt::format("{}✗ nothing ran{} (exit {})", C(kRed), C(kReset), code));
    } else if (status == "lease_held") {
      ErrLine(fmt::format("{}✗ not started{}: the environment is locked (exit {})", C(kRed), C(kReset), code));
    } else {
      std::string what = status == "interrupted" ? "interrupted" : "failed";
      size_t n = ev.value("undone", json::array()).size();
      ErrLine(fmt::format("{}✗ {}{} after {}{} — run {} (exit {})", C(kRed), what, C(kReset), FormatDuration(secs),
                       n ? fmt::format(", {} step(s) undone", n) : "", run, code));
    }
  }

  // A delivery that failed is a warning on stderr; one that worked, or a
  // rehearsal's unsent one, shows with -v.
  void Notified(const json& ev) {
    std::string what = fmt::format("{} to {}", Str(ev, "notify_event"), Str(ev, "url"));
    if (ev.value("delivered", false)) {
      if (o_.verbose) Line(fmt::format("{}  notified {}{}", C(kDim), what, C(kReset)));
    } else if (!Str(ev, "skipped").empty()) {
      if (o_.verbose) Line(fmt::format("{}  not sent (a rehearsal): {}{}", C(kDim), what, C(kReset)));
    } else {
      size_t n = ev.value("attempts", json::array()).size();
      ErrLine(fmt::format("{}warning:{} notification {} not delivered after {} attempt{}: {} (the run's outcome "
                          "stands; hoist show {} -v has each attempt)",
                          C(kYellow), C(kReset), what, n, n == 1 ? "" : "s", Str(ev, "error"), ev.value("run_id", 0)));
    }
  }

  std::FILE* out_;
  std::FILE* err_;
  HumanOptions o_;
  std::mutex mu_;
  bool undo_header_ = false;
  bool progress_shown_ = false;
  double last_progress_ = 0;
};

class JsonReporter final : public Reporter {
 public:
  explicit JsonReporter(std::FILE* out) : out_(out) {}

  void Emit(const json& ev) override {
    json e = ev;
    e["ts"] = sys::NowIso();
    Write(e);
  }

  void Progress(const std::string& label, double done, double total, const std::string& unit) override {
    double now = sys::Monotonic();
    bool finished = total > 0 && done >= total;
    if (!finished && now - last_progress_ < 0.25) return;
    last_progress_ = now;
    Write({{"event", "progress"}, {"label", label}, {"done", done}, {"total", total}, {"unit", unit},
           {"ts", sys::NowIso()}});
  }

 private:
  void Write(const json& e) {
    std::string line = e.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::lock_guard lock(mu_);
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
  }

  std::FILE* out_;
  std::mutex mu_;
  double last_progress_ = 0;
};

class NullReporter final : public Reporter {
 public:
  void Emit(const json&) override {}
  void Progress(const std::string&, double, double, const std::string&) override {}
};

}  // namespace

std::unique_ptr<Reporter> MakeHumanReporter(std::FILE* out, std::FILE* err, HumanOptions options) {
  return std::make_unique<HumanReporter>(out, err, options);
}
std::unique_ptr<Reporter> MakeJsonReporter(std::FILE* out) { return std::make_unique<JsonReporter>(out); }
std::unique_ptr<Reporter> MakeNullReporter() { return std::make_unique<NullReporter>(); }

std::string FormatDuration(double seconds) {
  if (seconds < 1.0) return fmt::format("{}ms", static_cast<int>(std::lround(seconds * 1000)));
  if (seconds < 60.0) return fmt::format("{:.2f}s", seconds);
  int m = static_cast<int>(seconds / 60);
  return fmt::format("{}m{:02}s", m, static_cast<int>(seconds) % 60);
}

}  // namespace hoist::engine
