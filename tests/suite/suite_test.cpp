// The suite's own checks, as cases of hoist_unit: every ctest entry outside
// the integration label is then one of hoist_unit's cases, so "ctest entries
// without the integration label" and "hoist_unit's case count" are one
// number, and a split name shows as a mismatch however it is counted.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sys/process.h"

namespace hoist::test {
namespace {

sys::ProcessResult CmakeScript(std::vector<std::string> defines, const std::string& script) {
  sys::ProcessSpec p;
  p.argv = {HOIST_CMAKE};
  for (auto& d : defines) p.argv.push_back("-D" + d);
  p.argv.insert(p.argv.end(), {"-P", std::string(HOIST_SOURCE_DIR) + "/cmake/" + script});
  p.timeout = std::chrono::seconds(120);
  return sys::RunProcess(p);
}

TEST_SUITE("suite") {
  TEST_CASE("suite: ctest entries equal doctest cases") {
    auto r = CmakeScript({"BUILD_DIR=" HOIST_BUILD_DIR, "CTEST=" HOIST_CTEST,
                          "EXES=" HOIST_UNIT_EXE "=unit|" HOIST_INTEGRATION_EXE "=integration"},
                         "check_test_count.cmake");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
  }

  TEST_CASE("suite: includes keep to the floors") {
    auto r = CmakeScript({"ROOT=" HOIST_SOURCE_DIR}, "check_floors.cmake");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
  }

  // .ci/run calls ./dev test: a label filter there would drop the package test.
  TEST_CASE("suite: ./dev test runs the package test") {
    auto r = CmakeScript({"ROOT=" HOIST_SOURCE_DIR, "BUILD_DIR=" HOIST_BUILD_DIR, "CTEST=" HOIST_CTEST},
                         "check_dev_test.cmake");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
  }
}

}  // namespace
}  // namespace hoist::test
