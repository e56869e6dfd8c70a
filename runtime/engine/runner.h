// The step runner: nested steps with retries and timeouts, each journaled,
// and the undo (compensation) stack run in reverse when the run fails.
// Plain C++: step bodies and undos are std::functions (bind/ wraps Lua).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/reporter.h"
#include "engine/state_store.h"

namespace hoist::engine {

using json = nlohmann::json;

struct StepOptions {
  int retries = 0;                 // extra attempts after a failure
  double retry_delay = 1.0;        // seconds, doubled after each attempt
  std::optional<double> timeout{};  // seconds per attempt
  /// Registered when the step succeeds; receives the step's result.
  std::function<void(const json& result)> undo{};
};

struct UnwindResult {
  std::vector<std::string> undone;      // steps whose undo succeeded, in the order run
  std::string failed_step;              // the step whose undo failed ("" if none)
  std::string failed_error;
  std::vector<std::string> not_undone;  // left as they are (undo not attempted)
  bool ok() const { return failed_step.empty(); }
};

class Runner {
 public:
  /// store and reporter must outlive the runner.
  Runner(StateStore& store, Reporter& reporter, int64_t run_id);

  /// Runs body as a journaled step. Returns its result; rethrows the last
  /// failure after the retries (interrupts are never retried).
  json Step(const std::string& name, const std::function<json()>& body, StepOptions options);

  /// Records a call to the outside world (process, file, HTTP...) in the
  /// current step. data is masked when stored.
  void World(const std::string& kind, const std::string& name, const json& data, double seconds);
  /// Records a note (log line, confirmation) in the current step.
  void Note(const std::string& kind, const std::string& name, const json& data);
  /// Like Note, but buffered and journaled in batches (FlushBuffered, and
  /// every few hundred): for the recorded world calls hoist replay reads.
  void NoteBuffered(const std::string& kind, const std::string& name, const json& data);
  void FlushBuffered();

  /// Runs the registered undos in reverse order, stopping at the first that
  /// fails (later ones could make things worse, e.g. stopping the colour
  /// that still serves traffic).
  UnwindResult Unwind();
  /// The registered undos' names, newest first (what Unwind would run).
  std::vector<std::string> PendingUndos() const;

  /// Replaces the wait between retries (a sandbox skips it on its virtual clock).
  void SetSleep(std::function<void(double)> sleep) { sleep_ = std::move(sleep); }

  /// Names the state store in the error a failed journal write ends the run with.
  void SetJournalName(std::string name) { journal_name_ = std::move(name); }
  /// The first failure to write the journal ("" while it works). After one,
  /// the run stops at its next record (Error{"journal", "failed"}), undos
  /// still run, and records that could not be stored go to stderr as JSON.
  /// A write refused because the run lost its lease (a shared store's
  /// fencing) ends it with Error{"state", "lease_lost"} instead.
  const std::string& journal_error() const { return journal_error_; }
  std::optional<int64_t> CurrentStep() const;
  /// The innermost running step's name ("" outside steps).
  std::string CurrentStepName() const { return stack_.empty() ? "" : stack_.back().name; }
  int64_t run_id() const { return run_id_; }
  Reporter& reporter() { return reporter_; }

 private:
  struct Frame {
    int64_t seq;
    std::string name;
    bool announced = false;
    bool undo = false;  // an undo's frame: its records never stop the unwinding
  };
  struct UndoEntry {
    int64_t seq;
    std::string name;
    std::function<void(const json&)> undo;
    json result;
  };

  void AnnounceParents();
  // Runs one journal write. A failure is remembered and the record is
  // written to stderr instead; `strict` (a run going forward) then throws
  // Error{"journal", "failed"} so the run stops, while undos (strict=false)
  // carry on without a journal.
  template <class F>
  void Journal(const char* what, const json& record, bool strict, F&& write);
  [[noreturn]] void ThrowJournal();
  // Pops the step's frame and reports its end.
  void Finished(int64_t seq, const std::string& name, size_t depth, const char* status, int attempts, double seconds,
                json extra);

  StateStore& store_;
  Reporter& reporter_;
  int64_t run_id_;
  std::vector<Frame> stack_;
  std::vector<UndoEntry> undo_stack_;
  std::function<void(double)> sleep_;
  std::vector<StateStore::PendingEvent> buffered_;
  std::string journal_name_ = "the state store";
  std::string journal_error_;
  bool lease_lost_ = false;
};

}  // namespace hoist::engine
