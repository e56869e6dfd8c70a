// `hoist test`: runs *_test.lua files. Each file gets a fresh VM whose
// world is simulated (a test's own top-level code can touch nothing real);
// its cases come from hoist.testing (stdlib/hoist/testing.lua), whose
// sandbox builder runs playbooks through the native hoist.sandbox module,
// which reaches app/sandbox through the host this runner installs.
#pragma once

#include <string>
#include <vector>

#include "app/project.h"

namespace hoist::app {

struct TestOptions {
  std::vector<std::string> paths;   ///< files or dirs; empty = <project>/tests
  bool json = false;                ///< NDJSON: one line per case, then the summary
  std::vector<std::string> lib;     ///< extra require dirs (shared helpers); the file's own dir is always one
};

/// Runs the tests and prints the results on stdout. Returns the exit code:
/// 0 when every case passed, 1 when one failed, 2 when no test was found.
int RunTests(const Project& project, const TestOptions& options);

}  // namespace hoist::app
