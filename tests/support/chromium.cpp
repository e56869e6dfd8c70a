#include "support/chromium.h"

#include <unistd.h>

#include <chrono>

#include "support/support.h"
#include "sys/process.h"

namespace hoist::test {
namespace {

constexpr const char* kChromium = "/usr/bin/chromium";

sys::ProcessResult RunChromium(const std::string& file, std::vector<std::string> extra) {
  TempDir profile("chromium");
  sys::ProcessSpec spec;
  // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
  spec.argv = {kChromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
               "--user-data-dir=" + profile.path};
  for (auto& a : extra) spec.argv.push_back(std::move(a));
  spec.argv.push_back("file://" + file);
  spec.env = {{"HOME", profile.path}};
  spec.timeout = std::chrono::milliseconds(90000);
  return sys::RunProcess(spec);
}

}  // namespace

void RequireChromium() {
  SkipUnless(::access(kChromium, X_OK) == 0,
             "headless Chromium (/usr/bin/chromium, Debian's chromium package) is not installed: ./dev test installs it");
}

std::string DumpDom(const std::string& file) {
  auto r = RunChromium(file, {"--dump-dom"});
  INFO("chromium exit " << r.exit_code << "\n" << r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.find("</html>") != std::string::npos);
  return r.out;
}

void Screenshot(const std::string& file, const std::string& png, int width, int height) {
  auto r = RunChromium(file, {"--screenshot=" + png, "--window-size=" + std::to_string(width) + "," +
                                                         std::to_string(height), "--hide-scrollbars"});
  INFO("chromium exit " << r.exit_code << "\n" << r.err);
  REQUIRE(r.exit_code == 0);
}

}  // namespace hoist::test
