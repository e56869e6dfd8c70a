// Where run events go: the human renderer (one line per step, colour on a
// TTY, a progress line) or the NDJSON stream (--json, docs/cli.md). Events
// are JSON objects whose "event" field names their kind.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace hoist::engine {

using json = nlohmann::json;

class Reporter {
 public:
  virtual ~Reporter() = default;
  /// One event (already masked by the caller).
  virtual void Emit(const json& event) = 0;
  /// Progress of a long primitive; done <= total (total 0 = unknown).
  virtual void Progress(const std::string& label, double done, double total, const std::string& unit) = 0;
};

struct HumanOptions {
  bool color = false;    // ANSI colours (TTY only)
  bool tty = false;      // progress line rewriting
  bool verbose = false;  // world calls and tracebacks
};

/// Step lines go to out, the final error block to err.
std::unique_ptr<Reporter> MakeHumanReporter(std::FILE* out, std::FILE* err, HumanOptions options);
std::unique_ptr<Reporter> MakeJsonReporter(std::FILE* out);
/// Discards everything (tests).
std::unique_ptr<Reporter> MakeNullReporter();

/// "1.23s" / "12ms" / "2m03s".
std::string FormatDuration(double seconds);

}  // namespace hoist::engine
