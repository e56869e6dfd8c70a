// tests/bench/startup: start-up cost of `hoist run`, measured against lua5.4
// in the same run (issue: foundation, docs/performance.md). Prints medians
// and ratios; exits 1 when a target is missed.
//
//   startup [--hoist PATH] [--runs N]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

double RunOnce(const std::vector<std::string>& argv, const std::string& cwd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(cwd.c_str()) != 0) _exit(127);
    FILE* null = std::fopen("/dev/null", "w");
    dup2(fileno(null), 1);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto t1 = std::chrono::steady_clock::now();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench: %s exited with status %d\n", argv[0].c_str(), status);
    std::exit(2);
  }
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

double Median(const std::vector<std::string>& argv, const std::string& cwd, int runs) {
  for (int i = 0; i < 3; ++i) RunOnce(argv, cwd);  // warm caches
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) t.push_back(RunOnce(argv, cwd));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void Write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string hoist = HOIST_BINARY;
  int runs = 51;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--hoist") hoist = argv[i + 1];
    if (a == "--runs") runs = std::atoi(argv[i + 1]);
  }
  char tmpl[] = "/tmp/hoist-bench-XXXXXX";
  fs::path dir = mkdtemp(tmpl);
  Write(dir / "playbooks/noop.lua",
        "return require('hoist').playbook { name = 'noop', version = '1.0.0', run = function() end }\n");
  Write(dir / "playbooks/steps20.lua",
        "local proc = require 'hoist.proc'\n"
        "return require('hoist').playbook { name = 'steps20', version = '1.0.0', run = function(run)\n"
        "  for i = 1, 20 do run:step('true ' .. i, function() proc.run({'/bin/true'}, { check = true }) end) end\n"
        "end }\n");
  Write(dir / "loop.lua", "for i = 1, 20 do os.execute('/bin/true') end\n");

  double lua_noop = Median({"lua5.4", "-e", ""}, dir, runs);
  double hoist_noop = Median({hoist, "run", "noop"}, dir, runs);
  double lua_20 = Median({"lua5.4", (dir / "loop.lua").string()}, dir, runs);
  double hoist_20 = Median({hoist, "run", "steps20"}, dir, runs);
  fs::remove_all(dir);

  double r1 = hoist_noop / lua_noop, r2 = hoist_20 / lua_20;
  bool ok1 = r1 < 3.0 && hoist_noop < 10.0, ok2 = r2 < 1.5;
  std::printf("startup benchmark (median of %d runs each, journal and lease included)\n", runs);
  std::printf("  lua5.4 -e ''                      %7.2f ms\n", lua_noop);
  std::printf("  hoist run noop                    %7.2f ms   ratio %.2fx  (target < 3x and < 10 ms: %s)\n",
              hoist_noop, r1, ok1 ? "met" : "MISSED");
  std::printf("  lua5.4: 20 x os.execute(/bin/true) %6.2f ms\n", lua_20);
  std::printf("  hoist run: 20 steps of proc.run    %6.2f ms   ratio %.2fx  (target < 1.5x: %s)\n", hoist_20, r2,
              ok2 ? "met" : "MISSED");
  return ok1 && ok2 ? 0 : 1;
}
