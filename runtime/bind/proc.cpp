// hoist.proc: run a process from an argv array (never a shell unless
// proc.sh is called), through the world seam, journaled as a world call.
#include <lua.hpp>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/modules.h"
#include "bind/service.h"
#include "core/error.h"
#include "core/secrets.h"
#include "core/interrupt.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/process.h"

namespace hoist::bind {
namespace {

constexpr size_t kJournalTail = 4096;  // bytes of output kept per stream in the journal

// Masked before it is cut: a secret straddling the cut would otherwise
// survive as an unmasked half.
std::string Tail(const std::string& raw) {
  std::string s = Mask(raw);
  return s.size() <= kJournalTail ? s : "…" + s.substr(s.size() - kJournalTail);
}

// Reads the options table at idx into spec (argv excluded). Returns check.
bool ReadOptions(lua_State* L, int idx, sys::ProcessSpec& spec) {
  lua::CheckKeys(L, idx, "proc.run", {"env", "cwd", "stdin", "timeout", "kill_grace", "check", "inherit_env",
                                      "capture", "max_output"});
  if (auto cwd = lua::OptStringField(L, idx, "cwd")) spec.cwd = *cwd;
  if (auto in = lua::OptStringField(L, idx, "stdin")) spec.stdin_data = *in;
  if (auto t = lua::OptNumberField(L, idx, "timeout")) {
    if (*t <= 0) throw Error("proc", "invalid", "timeout must be > 0 seconds");
    spec.timeout = std::chrono::milliseconds(static_cast<int64_t>(*t * 1000));
  }
  if (auto g = lua::OptNumberField(L, idx, "kill_grace")) {
    spec.kill_grace = std::chrono::milliseconds(static_cast<int64_t>(*g * 1000));
  }
  if (auto inherit = lua::OptBooleanField(L, idx, "inherit_env")) spec.inherit_env = *inherit;
  if (auto cap = lua::OptBooleanField(L, idx, "capture")) spec.capture = *cap;
  if (auto mo = lua::OptIntegerField(L, idx, "max_output")) spec.max_output = static_cast<size_t>(*mo);
  for (auto& [name, value] : lua::OptStringMapField(L, idx, "env")) spec.env[name] = std::move(value);
  return lua::OptBooleanField(L, idx, "check").value_or(false);
}

int Run(lua_State* L, sys::ProcessSpec spec, bool check) {
  std::string display = fmt::format("{}", fmt::join(spec.argv, " "));
  sys::ProcessResult r = WorldOf(L).RunProcess(spec);
  RecordWorld(L, "proc", display,
              {{"argv", spec.argv},
               {"cwd", spec.cwd},
               {"exit_code", r.exit_code},
               {"signal", r.signal},
               {"timed_out", r.timed_out},
               {"stdout", Tail(r.out)},
               {"stderr", Tail(r.err)}},
              r.seconds);
  // Ctrl-C or the step's own deadline stop the step, not just the process.
  if (r.interrupted) throw Error("proc", "interrupted", display + ": interrupted (Ctrl-C)");
  if (r.timed_out && StopReason() == "timeout") throw Error("proc", "timeout", display + ": step timeout reached");
  if (check && !r.ok()) {
    std::string why = r.timed_out  ? "timed out"
                      : r.signal   ? fmt::format("was killed by signal {}", r.signal)
                                   : fmt::format("exited with {}", r.exit_code);
    std::string err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    if (err.size() > 500) err = "…" + err.substr(err.size() - 500);
    throw Error("proc", r.timed_out ? "timeout" : "failed",
                fmt::format("{} {}{}", display, why, err.empty() ? "" : ": " + err));
  }
  lua_createtable(L, 0, 8);
  lua_pushboolean(L, r.ok());
  lua_setfield(L, -2, "ok");
  lua_pushinteger(L, r.exit_code);
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, r.signal);
  lua_setfield(L, -2, "signal");
  lua_pushboolean(L, r.timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushboolean(L, r.truncated);
  lua_setfield(L, -2, "truncated");
  lua::SetField(L, "stdout", r.out);
  lua::SetField(L, "stderr", r.err);
  lua::SetFieldNumber(L, "seconds", r.seconds);
  return 1;
}

/// proc.run(argv, opts) -> { ok, code, signal, timed_out, stdout, stderr, seconds }
int l_run(lua_State* L) {
  sys::ProcessSpec spec;
  spec.argv = lua::CheckStringList(L, 1, "argv");
  if (spec.argv.empty()) throw Error("proc", "invalid", "argv must not be empty");
  bool check = ReadOptions(L, 2, spec);
  return Run(L, std::move(spec), check);
}

/// proc.sh(command, opts): the explicit opt-in to /bin/sh -c.
int l_sh(lua_State* L) {
  std::string command = lua::CheckString(L, 1, "command");
  sys::ProcessSpec spec = sys::ShellSpec(command);
  bool check = ReadOptions(L, 2, spec);
  return Run(L, std::move(spec), check);
}

}  // namespace

int OpenProc(lua_State* L) {
  const luaL_Reg fns[] = {{"run", lua::Protect<l_run>}, {"sh", lua::Protect<l_sh>}, {nullptr, nullptr}};
  luaL_newlib(L, fns);
  lua_pushcfunction(L, ServiceNew), lua_setfield(L, -2, "service");  // proc.service: bind/service.cpp
  return 1;
}

}  // namespace hoist::bind
