// Headless Chromium (Debian's chromium, /usr/bin/chromium) for tests of the
// HTML pages: the DOM it built from a file, and a screenshot. Without it a
// test is skipped with the reason (failed under CI=true).
#pragma once

#include <string>

namespace hoist::test {

/// Skips the test (SkipUnless) when /usr/bin/chromium is missing.
void RequireChromium();
/// The DOM Chromium built from `file` (an absolute path), serialized by
/// --dump-dom. Fails the test when Chromium fails or prints nothing.
std::string DumpDom(const std::string& file);
/// Writes a PNG of `file` rendered at width x height to `png`.
void Screenshot(const std::string& file, const std::string& png, int width, int height);

}  // namespace hoist::test
