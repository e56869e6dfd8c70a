// The sqlite-bluegreen example as a Docker image, for the tests that run
// its colours as containers on a private dockerd (tests/support/dockerd).
#pragma once

#include "support/dockerd.h"

namespace hoist::test {

inline constexpr const char* kExampleImage = "hoist-test/notes:latest";

/// Builds kExampleImage (FROM scratch, the statically linked example app
/// as /app) on dockerd, once per test process.
void BuildExampleImage(Dockerd& dockerd);

}  // namespace hoist::test
