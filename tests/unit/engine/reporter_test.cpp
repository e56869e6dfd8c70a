// The human reporter's progress line: sizes an operator can read at a
// glance, and nothing at all when the output is not a terminal.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "engine/reporter.h"

namespace hoist::engine {
namespace {

std::string ProgressText(bool tty, double done, double total, const std::string& unit) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* out = ::open_memstream(&buf, &len);
  {
    auto r = MakeHumanReporter(out, out, HumanOptions{.color = false, .tty = tty});
    r->Progress("verify app.db", done, total, unit);
  }
  std::fclose(out);
  std::string s(buf, len);
  std::free(buf);
  return s;
}

TEST_SUITE("engine/reporter") {
  TEST_CASE("progress shows byte counts in kB, MB and GB and other units as whole numbers") {
    CHECK(ProgressText(true, 0, 483328, "bytes") == "\r\033[K  verify app.db 0% (0 B of 483 kB)");
    CHECK(ProgressText(true, 550e6, 1.1e9, "bytes") == "\r\033[K  verify app.db 50% (550.0 MB of 1.10 GB)");
    CHECK(ProgressText(true, 17, 68, "pages") == "\r\033[K  verify app.db 25% (17 of 68 pages)");
    CHECK(ProgressText(true, 2.5e6, 0, "bytes") == "\r\033[K  verify app.db 2.5 MB");
  }

  TEST_CASE("no progress line when the output is not a terminal") {
    CHECK(ProgressText(false, 1, 2, "bytes").empty());
  }
}

}  // namespace
}  // namespace hoist::engine
