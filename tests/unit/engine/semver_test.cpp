// Semantic versions and `requires = { hoist = ... }` constraints.
#include "engine/semver.h"

#include "support/support.h"

namespace hoist::engine {
namespace {

Semver V(const char* s) { return *ParseSemver(s); }

TEST_SUITE("engine/semver") {

TEST_CASE("strict parsing accepts semver and rejects the rest") {
  CHECK(ParseSemver("1.2.3") == Semver{1, 2, 3, ""});
  CHECK(ParseSemver("0.1.0-rc.1+build.5") == Semver{0, 1, 0, "rc.1"});
  for (const char* bad : {"1.2", "01.2.3", "1.2.3.4", "v1.2.3", "", "1.2.x", "1.2.3-"}) {
    CAPTURE(bad);
    CHECK(!ParseSemver(bad));
  }
}

TEST_CASE("ordering puts pre-releases first") {
  CHECK(V("1.0.0-rc.1") < V("1.0.0"));
  CHECK(V("1.2.10") > V("1.2.9"));
  CHECK(V("2.0.0") > V("1.99.99"));
}

TEST_CASE("constraints") {
  Semver v = V("0.4.2");
  CHECK(SatisfiesConstraint(v, ">=0.1"));
  CHECK(SatisfiesConstraint(v, ">=0.1, <1.0"));
  CHECK_FALSE(SatisfiesConstraint(v, ">=0.5"));
  CHECK(SatisfiesConstraint(v, "^0.4"));
  CHECK_FALSE(SatisfiesConstraint(v, "^0.3"));
  CHECK(SatisfiesConstraint(v, "~0.4.0"));
  CHECK(SatisfiesConstraint(v, "0.4.2"));
  CHECK_FALSE(SatisfiesConstraint(v, "!=0.4.2"));
  CHECK(SatisfiesConstraint(V("1.5.0"), "^1.2"));
  CHECK_FALSE(SatisfiesConstraint(V("2.0.0"), "^1.2"));
  auto e = test::CatchError([&] { SatisfiesConstraint(v, ">=banana"); });
  CHECK(e.message() == "malformed version constraint '>=banana' (expected e.g. \">=0.1\")");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::engine
