// hoist.fs through the real VM: fs.chmod on the real world in a temp dir,
// in a sandbox world (nothing on disk changes, the change is reported), and
// recorded then replayed.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bind/context.h"
#include "engine/recorded_world.h"
#include "engine/sim_world.h"
#include "support/lua_eval.h"
#include "support/support.h"
#include "sys/fs.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

unsigned ModeOnDisk(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

/// Runs code with `world` behind the seam; returns its value, or the error
/// as the user sees it in "error".
json RunIn(engine::World& world, const std::string& code) {
  lua::State vm;
  bind::Context ctx;
  ctx.world = &world;
  bind::SetContext(vm.get(), &ctx);
  try {
    vm.LoadChunk(code, "=test");
    lua::Call(vm.get(), 0, 1);
  } catch (const lua::ScriptError& e) {
    return {{"error", e.Display()}, {"code", e.code()}};
  }
  json out = lua::ToJson(vm.get(), -1, /*lenient=*/true);
  lua_pop(vm.get(), 1);
  return out;
}

std::string Chmod(const std::string& path, const std::string& mode_literal) {
  return "require('hoist.fs').chmod(" + LuaStr(path) + ", " + mode_literal + ")";
}

}  // namespace

TEST_SUITE("bind/fs") {
  TEST_CASE("fs.chmod changes a real file's mode and fs.stat reads it back") {
    TempDir dir("chmod");
    sys::WriteAtomic(dir / "app.env", "K=v\n", 0644);
    json out = RunLua(Chmod(dir / "app.env", "'0640'") + "\nreturn require('hoist.fs').stat(" +
                      LuaStr(dir / "app.env") + ").mode");
    CHECK(out == 0640);
    CHECK(ModeOnDisk(dir / "app.env") == 0640);
  }

  TEST_CASE("fs.chmod refuses a mode that is not an octal string with one message and changes nothing") {
    TempDir dir("chmod");
    std::string f = dir / "app.env";
    sys::WriteAtomic(f, "K=v\n", 0644);
    std::string where = "test:1: fs: chmod " + f + ": ";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"'rw-r-----'", "mode must be an octal string from \"0000\" to \"7777\" like \"0640\", got \"rw-r-----\""},
        {"'0999'", "mode must be an octal string from \"0000\" to \"7777\" like \"0640\", got \"0999\""},
        {"'17777'", "mode must be an octal string from \"0000\" to \"7777\" like \"0640\", got \"17777\""},
        {"' 640'", "mode must be an octal string from \"0000\" to \"7777\" like \"0640\", got \" 640\""},
        {"''", "mode must be an octal string from \"0000\" to \"7777\" like \"0640\", got \"\""},
        {"0640", "mode must be an octal string like \"0640\", got a number (Lua has no octal literals: quote it)"},
        {"nil", "mode missing: pass an octal string like \"0640\""},
    };
    for (const auto& [literal, message] : cases) {
      INFO(literal);
      lua::ScriptError e = LuaError(Chmod(f, literal));
      CHECK(e.code() == "invalid");
      CHECK(e.Display() == where + message);
      CHECK(ModeOnDisk(f) == 0644);
    }
  }

  TEST_CASE("fs.chmod of a missing file is not_found, says what to do and creates nothing") {
    TempDir dir("chmod");
    lua::ScriptError e = LuaError(Chmod(dir / "missing", "'0640'"));
    CHECK(e.code() == "not_found");
    CHECK(e.Display() == "test:1: fs: cannot chmod " + (dir / "missing") +
                             ": No such file or directory; create it first or fix the path");
    CHECK_FALSE(sys::StatPath(dir / "missing").exists);
  }

  TEST_CASE("fs.write_atomic refuses a mode with a sign or spaces, as fs.chmod does") {
    TempDir dir("chmod");
    for (const char* mode : {"+644", " 644"}) {
      INFO(mode);
      lua::ScriptError e = LuaError("require('hoist.fs').write_atomic(" + LuaStr(dir / "f") + ", 'x', { mode = '" +
                                    mode + "' })");
      CHECK(e.Display() == std::string("test:1: fs: mode must be an octal string like \"0644\", got \"") + mode + "\"");
      CHECK_FALSE(sys::StatPath(dir / "f").exists);
    }
  }

  TEST_CASE("an integer mode written as if octal is refused, fs.stat's own integer is taken") {
    TempDir dir("imode");
    for (const char* fn : {"write_atomic(p, 'x', { mode = 644 })", "mkdir_p(p, { mode = 755 })"}) {
      INFO(fn);
      lua::ScriptError e = LuaError("local p = " + LuaStr(dir / "f") + "\nrequire('hoist.fs')." + fn);
      CHECK(e.Display().find("is an integer, read as decimal (octal 1") != std::string::npos);
      CHECK(e.Display().find("write the octal string \"0" + std::string(fn).substr(std::string(fn).find("= ") + 2, 3) +
                             "\" instead") != std::string::npos);
      CHECK_FALSE(sys::StatPath(dir / "f").exists);
    }
    // The value fs.stat returns (0640 = 416) round-trips: nginx.lua rewrites a file with its own mode.
    json out = RunLua("local fs = require('hoist.fs')\nlocal p = " + LuaStr(dir / "g") +
                       "\nfs.write_atomic(p, 'x', { mode = 416 })\nreturn fs.stat(p).mode");
    CHECK(out == 416);
    CHECK(ModeOnDisk(dir / "g") == 0640);
  }

  TEST_CASE("fs.chmod in a sandbox leaves the mode on disk and reports the change") {
    TempDir dir("chmod");
    std::string f = dir / "app.env";
    sys::WriteAtomic(f, "K=v\n", 0644);
    engine::SimOptions so;
    so.seed_from_disk = true;
    engine::SimWorld world(so);
    json out = RunIn(world, Chmod(f, "'0600'") + "\nreturn require('hoist.fs').stat(" + LuaStr(f) + ").mode");
    CHECK(out == 0600);  // the run sees its own change
    CHECK(ModeOnDisk(f) == 0644);
    REQUIRE(world.changes().size() == 1);
    const engine::SimChange& c = world.changes()[0];
    CHECK(c.kind == "file");
    CHECK(c.what == "chmod 0600 " + f);
    CHECK(c.detail["before"] == "0644");
    // A missing file fails as it would for real.
    json missing = RunIn(world, Chmod(dir / "missing", "'0600'"));
    CHECK(missing["code"] == "not_found");
    CHECK(missing["error"] == "test:1: fs: cannot chmod " + (dir / "missing") +
                                  ": No such file or directory; create it first or fix the path");
  }

  TEST_CASE("fs.chmod is recorded, replays from the recording, and another mode diverges") {
    TempDir dir("chmod");
    std::string f = dir / "app.env";
    sys::WriteAtomic(f, "K=v\n", 0644);
    std::vector<engine::RecordedCall> calls;
    engine::RealWorld real;
    engine::RecordingWorld recording(real, [&](const std::string& op, const json& call, const json& response) {
      calls.push_back({op, call, response, std::nullopt, ""});
    });
    CHECK(RunIn(recording, Chmod(f, "'0640'")).is_null());
    CHECK(ModeOnDisk(f) == 0640);
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].op == "Chmod");
    CHECK(calls[0].call == json{{"path", f}, {"mode", 0640}});

    sys::Chmod(f, 0644);
    engine::ReplayWorld replay(calls);
    CHECK(RunIn(replay, Chmod(f, "'0640'")).is_null());
    CHECK_FALSE(replay.Finish().has_value());
    CHECK(ModeOnDisk(f) == 0644);  // a replay answers from the journal, it changes nothing

    engine::ReplayWorld other(calls);
    json diverged = RunIn(other, Chmod(f, "'0600'"));
    CHECK(diverged["code"] == "diverged");
    CHECK(other.Finish().has_value());
  }
}

}  // namespace hoist::test
