// bench_rollback: how long `hoist rollback` takes after a bad deploy, on
// the sqlite-bluegreen example behind a real nginx, against a reference
// measured in the same run: a playbook that only does `site:switch` (the
// same hoist start-up, config and verified nginx switch, without the
// standby's health check, the journal of steps and the facts). Target:
// rollback under 2 s (issue 6). Prints the median of 5 and the ratio;
// exit 1 when the target is missed.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "integration/playbooks/bluegreen_rig.h"

namespace {

using namespace hoist;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

constexpr const char* kSwitchPlaybook = R"(
local hoist = require "hoist"
local bluegreen = require "hoist.bluegreen"
return hoist.playbook {
  name = "switch-only", version = "1.0.0", lock = false,
  params = { colour = { type = "string", required = true } },
  run = function(run, p) return bluegreen.config(run).site:switch(p.colour) end,
}
)";

}  // namespace

int main() {
  test::BlueGreenRig rig;
  auto must = [&](std::vector<std::string> args) {
    auto r = rig.Hoist(args);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "bench_rollback: hoist %s failed:\n%s\n", args[0].c_str(), test::Describe(r).c_str());
      std::exit(2);
    }
    return r.seconds;
  };
  must({"deploy", "-e", "version=1"});
  must({"deploy", "-e", "version=2"});  // "bad": roll it back
  test::WriteFile(rig.path("switch-only.lua"), kSwitchPlaybook);

  std::vector<double> rollback, reference;
  rollback.push_back(must({"rollback"}));  // the first one: right after the bad deploy
  for (int i = 0; i < 4; ++i) rollback.push_back(must({"rollback"}));
  // Traffic is on green now (odd number of rollbacks): flip the same way.
  for (int i = 0; i < 5; ++i) {
    reference.push_back(must({"run", "switch-only.lua", "-e", std::string("colour=") + (i % 2 ? "green" : "blue")}));
  }
  double r = Median(rollback), ref = Median(reference);
  fmt::print("hoist rollback (health check of the standby, verified switch, journal): median {:.0f} ms "
             "(first, right after the bad deploy: {:.0f} ms; min {:.0f}, max {:.0f})\n",
             r * 1000, rollback[0] * 1000, *std::min_element(rollback.begin(), rollback.end()) * 1000,
             *std::max_element(rollback.begin(), rollback.end()) * 1000);
  fmt::print("reference: hoist run of a bare site:switch playbook: median {:.0f} ms\n", ref * 1000);
  fmt::print("ratio rollback / bare switch: {:.2f}\n", r / ref);
  bool ok = *std::max_element(rollback.begin(), rollback.end()) < 2.0;
  fmt::print("target: every rollback under 2 s: {}\n", ok ? "met" : "MISSED");
  return ok ? 0 : 1;
}
