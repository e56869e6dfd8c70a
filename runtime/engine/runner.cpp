#include "engine/runner.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "sys/clock.h"

namespace hoist::engine {
namespace {

std::string CodeOf(const std::exception& e) {
  if (const auto* he = dynamic_cast<const Error*>(&e)) return he->code();
  return "error";
}

// Sleeps up to `seconds`, waking early on Ctrl-C or the step deadline.
void InterruptibleSleep(double seconds) {
  auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until && StopReason().empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

Runner::Runner(StateStore& store, Reporter& reporter, int64_t run_id)
    : store_(store), reporter_(reporter), run_id_(run_id) {}

void Runner::ThrowJournal() {
  if (lease_lost_) throw Error("state", "lease_lost", journal_error_ + "; the run stops here, its undos not run");
  throw Error("journal", "failed",
              fmt::format("cannot write the journal in {}: {}; the run stops here (records it could not store "
                          "are on stderr); free space or fix the state store, then check `hoist lock status`",
                          journal_name_, journal_error_));
}

template <class F>
void Runner::Journal(const char* what, const json& record, bool strict, F&& write) {
  if (journal_error_.empty()) {
    try {
      write();
      return;
    } catch (const Error& e) {
      lease_lost_ = e.code() == "lease_lost";
      journal_error_ = Mask(lease_lost_ ? e.message() : e.what());
    } catch (const std::exception& e) {
      journal_error_ = Mask(e.what());
    }
  }
  json lost = record;
  lost["journal"] = what;
  lost["run_id"] = run_id_;
  std::fprintf(stderr, "hoist: not journaled: %s\n",
               Mask(lost.dump(-1, ' ', false, json::error_handler_t::replace)).c_str());
  if (strict) ThrowJournal();
}

std::optional<int64_t> Runner::CurrentStep() const {
  if (stack_.empty()) return std::nullopt;
  return stack_.back().seq;
}

void Runner::AnnounceParents() {
  // A parent's start line is shown only once it has children, so flat runs
  // print exactly one line per step.
  for (auto& f : stack_) {
    if (f.announced) continue;
    f.announced = true;
    reporter_.Emit({{"event", "step_group"}, {"step", f.seq}, {"name", f.name}, {"depth", &f - stack_.data()}});
  }
}

void Runner::Finished(int64_t seq, const std::string& name, size_t depth, const char* status, int attempts,
                      double seconds, json extra) {
  bool announced = stack_.back().announced;
  stack_.pop_back();
  json ev = {{"event", "step_finished"}, {"step", seq},         {"name", Mask(name)}, {"depth", depth},
             {"status", status},         {"attempts", attempts}, {"seconds", seconds}, {"group", announced}};
  for (auto& [k, v] : extra.items()) ev[k] = std::move(v);
  reporter_.Emit(ev);
}

json Runner::Step(const std::string& name, const std::function<json()>& body, StepOptions options) {
  AnnounceParents();
  std::optional<int64_t> parent = CurrentStep();
  int64_t seq = 0;
  Journal("step_started", {{"name", name}}, true, [&] { seq = store_.StepStarted(run_id_, parent, name, "step"); });
  size_t depth = stack_.size();
  reporter_.Emit({{"event", "step_started"},
                  {"step", seq},
                  {"parent", parent ? json(*parent) : json(nullptr)},
                  {"name", Mask(name)},
                  {"depth", depth}});
  stack_.push_back({seq, name});
  double start = sys::Monotonic();
  int attempts = 0;
  double delay = options.retry_delay;
  while (true) {
    ++attempts;
    json result;
    try {
      if (options.timeout) {
        DeadlineScope deadline(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*options.timeout)));
        result = body();
        // The body may have swallowed a timeout with pcall: it still counts.
        ThrowIfStopped("run");
      } else {
        result = body();
        if (Interrupted()) ThrowIfStopped("run");
      }
    } catch (const std::exception& e) {
      std::string code = CodeOf(e);
      std::string msg = Mask(e.what());
      bool retry = attempts <= options.retries && code != "interrupted" && code != "journal" && !Interrupted() &&
                   journal_error_.empty();
      if (retry) {
        Journal("retry", {{"step", seq}, {"attempt", attempts}, {"error", msg}}, false,
                [&] { store_.Event(run_id_, seq, "retry", name, {{"attempt", attempts}, {"error", msg}}, 0); });
      }
      if (retry && journal_error_.empty()) {
        reporter_.Emit({{"event", "step_retry"},
                        {"step", seq},
                        {"name", Mask(name)},
                        {"depth", depth},
                        {"attempt", attempts},
                        {"delay", delay},
                        {"error", msg}});
        if (sleep_) {
          sleep_(delay);
        } else {
          InterruptibleSleep(delay);
        }
        delay *= 2;
        continue;
      }
      double secs = sys::Monotonic() - start;
      Journal("step_finished", {{"step", seq}, {"name", name}, {"status", "failed"}, {"error", msg}}, false,
              [&] { store_.StepFinished(run_id_, seq, "failed", attempts, nullptr, msg, secs); });
      Finished(seq, name, depth, "failed", attempts, secs, {{"error", msg}, {"code", code}});
      if (retry) ThrowJournal();  // it would have retried: the journal stopped it
      throw;
    }
    double secs = sys::Monotonic() - start;
    // The step ran: its undo is registered even when its record cannot be
    // stored, so the run that stops for the journal still undoes it.
    if (options.undo) undo_stack_.push_back({seq, name, std::move(options.undo), result});
    Journal("step_finished", {{"step", seq}, {"name", name}, {"status", "ok"}}, false,
            [&] { store_.StepFinished(run_id_, seq, "ok", attempts, result, "", secs); });
    bool stored = journal_error_.empty();
    Finished(seq, name, depth, "ok", attempts, secs, json::object());
    if (!stored) ThrowJournal();
    return result;
  }
}

void Runner::World(const std::string& kind, const std::string& name, const json& data, double seconds) {
  bool undoing = !stack_.empty() && stack_.back().undo;
  Journal("event", {{"kind", kind}, {"name", name}, {"data", data}}, !undoing,
          [&] { store_.Event(run_id_, CurrentStep(), kind, name, data, seconds); });
  reporter_.Emit({{"event", "world"},
                  {"step", CurrentStep() ? json(*CurrentStep()) : json(nullptr)},
                  {"kind", kind},
                  {"name", Mask(name)},
                  {"data", json::parse(Mask(data.dump(-1, ' ', false, json::error_handler_t::replace)))},
                  {"seconds", seconds}});
}

void Runner::Note(const std::string& kind, const std::string& name, const json& data) {
  bool undoing = !stack_.empty() && stack_.back().undo;
  Journal("event", {{"kind", kind}, {"name", name}, {"data", data}}, !undoing,
          [&] { store_.Event(run_id_, CurrentStep(), kind, name, data, 0); });
}

void Runner::NoteBuffered(const std::string& kind, const std::string& name, const json& data) {
  buffered_.push_back({CurrentStep(), kind, name, data, 0});
  if (buffered_.size() >= 512) FlushBuffered();
}

void Runner::FlushBuffered() {
  if (buffered_.empty()) return;
  std::vector<StateStore::PendingEvent> batch;
  batch.swap(buffered_);
  // Recorded world calls are for replay: losing them never stops a run
  // (the step records above them do).
  Journal("calls", {{"count", batch.size()}}, false, [&] { store_.Events(run_id_, batch); });
}

std::vector<std::string> Runner::PendingUndos() const {
  std::vector<std::string> out;
  for (auto it = undo_stack_.rbegin(); it != undo_stack_.rend(); ++it) out.push_back(it->name);
  return out;
}

UnwindResult Runner::Unwind() {
  UnwindResult out;
  stack_.clear();
  while (!undo_stack_.empty()) {
    UndoEntry entry = std::move(undo_stack_.back());
    undo_stack_.pop_back();
    int64_t seq = 0;
    Journal("step_started", {{"name", "undo " + entry.name}}, false,
            [&] { seq = store_.StepStarted(run_id_, std::nullopt, "undo " + entry.name, "undo"); });
    reporter_.Emit({{"event", "undo_started"}, {"step", seq}, {"for_step", entry.seq}, {"name", Mask(entry.name)}});
    stack_.push_back({seq, "undo " + entry.name, true, true});
    double start = sys::Monotonic();
    try {
      entry.undo(entry.result);
      double secs = sys::Monotonic() - start;
      Journal("step_finished", {{"step", seq}, {"name", "undo " + entry.name}, {"status", "ok"}}, false,
              [&] { store_.StepFinished(run_id_, seq, "ok", 1, nullptr, "", secs); });
      reporter_.Emit({{"event", "undo_finished"},
                      {"step", seq},
                      {"for_step", entry.seq},
                      {"name", Mask(entry.name)},
                      {"status", "ok"},
                      {"seconds", secs}});
      out.undone.push_back(entry.name);
      stack_.pop_back();
    } catch (const std::exception& e) {
      double secs = sys::Monotonic() - start;
      std::string msg = Mask(e.what());
      Journal("step_finished", {{"step", seq}, {"name", "undo " + entry.name}, {"status", "failed"}, {"error", msg}},
              false, [&] { store_.StepFinished(run_id_, seq, "failed", 1, nullptr, msg, secs); });
      reporter_.Emit({{"event", "undo_finished"},
                      {"step", seq},
                      {"for_step", entry.seq},
                      {"name", Mask(entry.name)},
                      {"status", "failed"},
                      {"seconds", secs},
                      {"error", msg}});
      stack_.pop_back();
      out.failed_step = entry.name;
      out.failed_error = msg;
      out.not_undone.push_back(entry.name);
      while (!undo_stack_.empty()) {
        out.not_undone.push_back(undo_stack_.back().name);
        undo_stack_.pop_back();
      }
    }
  }
  return out;
}

}  // namespace hoist::engine
