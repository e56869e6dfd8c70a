// The sandbox against a real running nginx: the simulated world reads the
// real include and adopts the real master and workers (read-only), then
// switches, HUPs and confirms a worker generation only in memory. The real
// nginx keeps its workers (a real HUP would replace them) and its include.
#include <doctest/doctest.h>

#include <set>

#include "bind/context.h"
#include "engine/sim_world.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/state.h"
#include "support/nginx_server.h"
#include "support/support.h"
#include "sys/probe.h"
#include "sys/sha256.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

TEST_SUITE("traffic/sandbox") {
  TEST_CASE("a sandboxed switch signals nothing real: the real nginx keeps its workers and its include") {
    TempDir dir("sbxngx");
    NginxOptions o;
    o.worker_processes = 2;
    o.upstream_conf = "upstream api {\n    server 127.0.0.1:5001 max_fails=3;\n}\n";
    NginxServer nginx(dir.path, o);
    nginx.StartOrSkip();
    pid_t master = nginx.MasterPid();
    auto workers = sys::ChildPids(master);  // Start waited for both
    REQUIRE(workers.size() == 2);
    std::string conf_before = sys::Sha256Hex(ReadAll(nginx.upstream_conf()));

    engine::SimOptions so;
    so.seed_from_disk = true;
    engine::SimWorld world(so);
    lua::State vm;
    bind::Context ctx;
    ctx.world = &world;
    bind::SetContext(vm.get(), &ctx);
    vm.LoadChunk(R"(
      local conf, pid_file, main_conf, prefix = ...
      local site = require("hoist.nginx").site{ conf = conf, upstream = "api", pid_file = pid_file,
        main_conf = main_conf, prefix = prefix,
        servers = { blue = "127.0.0.1:5001", green = "127.0.0.1:5002" } }
      local rec = site:switch("green", { verify = false })
      return { now = site:active(), old = rec.old_workers, new = rec.new_workers }
    )", "=test");
    lua::PushString(vm.get(), nginx.upstream_conf());
    lua::PushString(vm.get(), nginx.pid_file());
    lua::PushString(vm.get(), nginx.main_conf());
    lua::PushString(vm.get(), nginx.dir());
    lua::Call(vm.get(), 4, 1);
    json out = lua::ToJson(vm.get(), -1, true);

    // In the sandbox: switched, a new generation confirmed.
    CHECK(out["now"] == "green");
    CHECK(out["old"].size() == 2);
    CHECK(out["new"].size() == 2);
    bool hup = false;
    for (const auto& c : world.changes()) hup = hup || c.what == "kill -1 " + std::to_string(master);
    CHECK(hup);
    // For real: the same workers, the same bytes.
    CHECK(sys::ChildPids(master) == workers);
    CHECK(sys::Sha256Hex(ReadAll(nginx.upstream_conf())) == conf_before);
  }
}

}  // namespace
}  // namespace hoist::test
