// Rehearsal plans: a --sandbox run keeps its plan (what the hash covers)
// under .hoist/plans/, so that a later --expect-plan can say what changed,
// not only that something did.
#pragma once

#include <string>

#include "app/project.h"
#include "app/sandbox.h"

namespace hoist::app {

/// Keeps the plan of a rehearsal (0600) with its observations beside it
/// (row counts: not part of the hash). A failure to keep it is a warning.
void KeepPlan(const Project& project, const SandboxResult& r);

/// "" when the rehearsal r has the expected plan hash; otherwise the
/// message that refuses the run, naming what changed since the kept plan.
/// When the plan matches, differing observations are logged (never a
/// reason to refuse: an app taking writes changes its row counts).
std::string CheckExpectedPlan(const Project& project, const std::string& expected, const SandboxResult& r);

}  // namespace hoist::app
