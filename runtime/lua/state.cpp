#include "lua/state.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "lua/boundary.h"
#include "lua/embedded.h"
#include "lua/modules.h"
#include "sys/fs.h"

namespace hoist::lua {
namespace {

constexpr int kHookEvery = 1000;  // VM instructions between Ctrl-C/timeout checks

// Runs every kHookEvery instructions. Raising from a hook is allowed and no
// C++ object lives in this frame. Once a stop is pending the hook re-arms at
// every instruction: a playbook loop that pcalls the error away is hit again
// by the first instruction it runs outside the pcall.
void StopHook(lua_State* L, lua_Debug*) {
  const char* code = nullptr;
  if (Interrupted()) {
    code = "interrupted";
  } else {
    auto d = CurrentDeadline();
    if (d != Clock::time_point::max() && Clock::now() >= d) code = "timeout";
  }
  if (!code) {
    if (lua_gethookcount(L) != kHookEvery) lua_sethook(L, StopHook, LUA_MASKCOUNT, kHookEvery);
    return;
  }
  lua_sethook(L, StopHook, LUA_MASKCOUNT, 1);
  // Only C values below: lua_error longjmps out of this frame. Level 0 in a
  // hook is the Lua function that was running.
  luaL_where(L, 0);
  size_t n = 0;
  const char* where = lua_tolstring(L, -1, &n);
  if (n > 0 && where[n - 1] == ' ') --n;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, "run");
  lua_setfield(L, -2, "area");
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, code[0] == 'i' ? "interrupted (Ctrl-C)" : "step timeout reached");
  lua_setfield(L, -2, "message");
  lua_pushlstring(L, where, n);
  lua_setfield(L, -2, "where");
  luaL_setmetatable(L, "hoist.Error");
  lua_error(L);
}

// The first "<dir>/<rel>.lua" or "<dir>/<rel>/init.lua" among the
// project's lua dirs (registry hoist.lua_path), or "".
std::string FindInLuaPath(lua_State* L, const std::string& rel) {
  std::string out;
  lua_getfield(L, LUA_REGISTRYINDEX, "hoist.lua_path");
  int n = lua_istable(L, -1) ? static_cast<int>(lua_rawlen(L, -1)) : 0;
  for (int i = 1; i <= n && out.empty(); ++i) {
    lua_rawgeti(L, -1, i);
    std::string dir = lua_tostring(L, -1);
    lua_pop(L, 1);
    for (std::string cand : {dir + "/" + rel + ".lua", dir + "/" + rel + "/init.lua"}) {
      if (sys::StatPath(cand).exists) {
        out = cand;
        break;
      }
    }
  }
  lua_pop(L, 1);
  return out;
}

// Said once per process and module: every VM of a run requires it again.
void SayForkOnce(const std::string& name, const std::string& path) {
  static std::mutex mu;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(mu);
  if (!said.insert(name).second) return;
  log::Info(fmt::format("require \"{}\": the project's fork {} replaces hoist's own (it does not get hoist's "
                        "fixes; `hoist playbook export {} -o FILE` writes hoist {}'s version to compare)",
                        name, path, name, HOIST_VERSION));
}

// Searcher: native modules, then the project's lua dirs (a project may fork
// a Lua stdlib module: lib/hoist/bluegreen.lua, said in the run output),
// then the stdlib (dev path or embedded). Returns the loader and its extra
// value.
int SearcherImpl(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) throw Error("lua", "invalid", "require: module name must be a string");
  std::string name = lua_tostring(L, 1);
  std::string rel = name;
  for (auto& c : rel) if (c == '.') c = '/';
  for (const auto& m : NativeModules()) {
    if (m.name == name) {
      // A Lua file cannot stand in for C++: say so rather than ignore it.
      if (std::string shadow = FindInLuaPath(L, rel); !shadow.empty()) {
        throw Error("lua", "invalid",
                    fmt::format("{}: {} is one of hoist's native (C++) modules and cannot be replaced by a Lua file; "
                                "give your module another name (e.g. lib/myapp/{}.lua)",
                                shadow, name, rel.substr(rel.find_last_of('/') + 1)));
      }
      lua_pushcfunction(L, m.open);
      lua_pushstring(L, ":native:");
      return 2;
    }
  }

  lua_getfield(L, LUA_REGISTRYINDEX, "hoist.stdlib_path");
  std::string stdlib_path = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);

  std::string source, chunkname;
  bool found = false;
  bool stdlib_name = name == "hoist" || name.rfind("hoist.", 0) == 0;
  if (std::string path = FindInLuaPath(L, rel); !path.empty() && sys::TryReadFile(path, &source)) {
    chunkname = "@" + path;
    found = true;
    bool is_stdlib = !stdlib_path.empty() || FindEmbedded(EmbeddedKind::kStdlib, name) != nullptr;
    if (stdlib_name && is_stdlib) SayForkOnce(name, path);
  }
  if (!found && stdlib_name) {
    if (!stdlib_path.empty()) {
      for (std::string cand : {stdlib_path + "/" + rel + ".lua", stdlib_path + "/" + rel + "/init.lua"}) {
        if (sys::TryReadFile(cand, &source)) {
          chunkname = "@" + cand;
          found = true;
          break;
        }
      }
    } else if (const auto* f = FindEmbedded(EmbeddedKind::kStdlib, name)) {
      source.assign(f->source);
      chunkname = "@" + std::string(f->path);
      found = true;
    }
  }
  if (!found) {
    lua_pushfstring(L, "no module '%s' in hoist's stdlib or the project's lua dirs", name.c_str());
    return 1;
  }
  int st = luaL_loadbufferx(L, source.data(), source.size(), chunkname.c_str(), "t");
  if (st != LUA_OK) {
    std::string msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "syntax error";
    lua_pop(L, 1);
    throw Error("lua", "syntax", msg);
  }
  lua_pushstring(L, chunkname.c_str() + 1);
  return 2;
}

constexpr lua_CFunction Searcher = Protect<SearcherImpl>;

int LockedIndex(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  return luaL_error(L, "undeclared global '%s' (playbooks cannot read globals that do not exist; declare a local)",
                    key ? key : "?");
}

int LockedNewIndex(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  return luaL_error(L, "assignment to undeclared global '%s' (use a local)", key ? key : "?");
}

// print goes to stdout through the same path as hoist.log would, but
// playbooks are expected to use hoist.log; keep print for quick debugging.
int Print(lua_State* L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; ++i) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  lua_getfield(L, LUA_REGISTRYINDEX, "hoist.print");
  if (lua_isfunction(L, -1)) {
    lua_insert(L, -2);
    lua_call(L, 1, 0);
  } else {
    lua_pop(L, 1);
    fputs(lua_tostring(L, -1), stdout);
    lua_pop(L, 1);
  }
  return 0;
}

void Remove(lua_State* L, const char* table, const char* field) {
  lua_getglobal(L, table);
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    lua_setfield(L, -2, field);
  }
  lua_pop(L, 1);
}

int OpenAll(lua_State* L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
  luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 1);
  lua_settop(L, 0);

  // Base functions that load code or reach outside the allow-list go.
  for (const char* g : {"dofile", "loadfile", "load", "loadstring"}) {
    lua_pushnil(L);
    lua_setglobal(L, g);
  }
  lua_pushcfunction(L, Print);
  lua_setglobal(L, "print");
  // os keeps only clock/date/time/difftime/getenv.
  for (const char* f : {"execute", "exit", "remove", "rename", "tmpname", "setlocale"}) Remove(L, "os", f);
  // package: no C loaders, no path searching, only our searcher.
  Remove(L, "package", "loadlib");
  Remove(L, "package", "searchpath");
  lua_getglobal(L, "package");
  lua_pushstring(L, "");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, "");
  lua_setfield(L, -2, "cpath");
  lua_createtable(L, 2, 0);
  lua_getfield(L, -2, "searchers");
  lua_rawgeti(L, -1, 1);  // the preload searcher stays first
  lua_rawseti(L, -3, 1);
  lua_pop(L, 1);
  lua_pushcfunction(L, Searcher);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, -2, "searchers");
  lua_pop(L, 1);
  // string.dump would hand out bytecode; nothing may load it anyway.
  Remove(L, "string", "dump");

  // Lock the globals table.
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, LockedIndex);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, LockedNewIndex);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  return 0;
}

}  // namespace

struct State::Memory {
  size_t used = 0;
  size_t limit = kDefaultMemoryLimit;
  bool hit = false;
  lua_State* L = nullptr;
  std::string where;  // the Lua line running when the limit was hit
};

namespace {

void* Allocate(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* m = static_cast<State::Memory*>(ud);
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    m->used -= old;
    return nullptr;
  }
  if (nsize > old) {
    size_t more = nsize - old;
    if (m->used + more > m->limit) {
      m->hit = true;
      m->where.clear();
      // The error unwinds the stack before anyone can ask where it was:
      // note the running Lua line now (lua_getstack/"Sl" do not allocate).
      lua_Debug ar;
      for (int level = 0; m->L && lua_getstack(m->L, level, &ar); ++level) {
        if (lua_getinfo(m->L, "Sl", &ar) && ar.currentline > 0) {
          m->where = std::string(ar.short_src) + ":" + std::to_string(ar.currentline) + ":";
          break;
        }
      }
      return nullptr;
    }
    // A step past its deadline (or Ctrl-C) that only allocates runs few
    // instructions between huge copies: fail its big allocations so the
    // stop is noticed now, not after the next gigabyte.
    if (more >= (size_t{1} << 20) && !StopReason().empty()) return nullptr;
  }
  void* p = std::realloc(ptr, nsize);
  if (p) m->used = m->used - old + nsize;
  return p;
}

State::Memory* MemoryOf(lua_State* L) {
  void* ud = nullptr;
  if (lua_getallocf(L, &ud) != Allocate) return nullptr;
  return static_cast<State::Memory*>(ud);
}

}  // namespace

void SetMemoryLimit(lua_State* L, size_t bytes) {
  if (auto* m = MemoryOf(L)) m->limit = bytes;
}

std::string MemoryLimitWhere(lua_State* L) {
  auto* m = MemoryOf(L);
  return m ? m->where : std::string();
}

size_t MemoryLimit(lua_State* L) {
  auto* m = MemoryOf(L);
  return m ? m->limit : 0;
}

bool MemoryLimitHit(lua_State* L) {
  auto* m = MemoryOf(L);
  if (!m || !m->hit) return false;
  m->hit = false;  // reported once
  return true;
}

State::State(StateOptions options) : memory_(std::make_unique<Memory>()), L_(lua_newstate(Allocate, memory_.get())) {
  if (!L_) throw Error("lua", "memory", "cannot create a Lua state (out of memory)");
  memory_->L = L_;
  lua_atpanic(L_, [](lua_State* L) -> int {
    // As luaL_newstate's: say what escaped every protected call (a bug).
    std::fprintf(stderr, "hoist: PANIC: unprotected error in call to Lua API (%s)\n",
                 lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string");
    return 0;
  });
  if (options.stdlib_path.empty()) {
    if (const char* p = std::getenv("HOIST_STDLIB_PATH"); p && *p) options.stdlib_path = p;
  }
  if (!options.stdlib_path.empty()) {
    lua_pushstring(L_, options.stdlib_path.c_str());
    lua_setfield(L_, LUA_REGISTRYINDEX, "hoist.stdlib_path");
  }
  lua_createtable(L_, static_cast<int>(options.lua_path.size()), 0);
  int i = 1;
  for (const auto& dir : options.lua_path) {
    lua_pushstring(L_, dir.c_str());
    lua_rawseti(L_, -2, i++);
  }
  lua_setfield(L_, LUA_REGISTRYINDEX, "hoist.lua_path");
  RegisterErrorType(L_);
  lua_pushcfunction(L_, OpenAll);
  try {
    Call(L_, 0, 0);
  } catch (...) {
    lua_close(L_);
    throw;
  }
  lua_sethook(L_, StopHook, LUA_MASKCOUNT, kHookEvery);
}

State::~State() { lua_close(L_); }

void State::LoadChunk(std::string_view source, const std::string& chunkname) {
  int st = luaL_loadbufferx(L_, source.data(), source.size(), chunkname.c_str(), "t");
  if (st != LUA_OK) {
    ScriptError err = ErrorFromValue(L_, -1, "");
    lua_pop(L_, 1);
    throw ScriptError("", "syntax", err.message(), "", "");
  }
}

void State::LoadFile(const std::string& path, const std::string& display_path) {
  std::string source;
  if (!sys::TryReadFile(path, &source)) {
    throw Error("lua", "not_found", "cannot read " + display_path + ": no such file");
  }
  // A shebang line is allowed, like lua.c does.
  if (source.rfind("#!", 0) == 0) source.insert(0, "--");
  LoadChunk(source, "@" + display_path);
}

const EmbeddedFile* FindEmbedded(EmbeddedKind kind, std::string_view name) {
  for (const auto& f : EmbeddedFiles()) {
    if (f.kind == kind && f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace hoist::lua
