#include "app/playbook.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "bind/context.h"
#include "core/error.h"
#include "core/strings.h"
#include "engine/semver.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/embedded.h"
#include "sys/fs.h"

namespace hoist::app {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kPlaybookMeta = "hoist.Playbook";

[[noreturn]] void Invalid(const std::string& where, const std::string& msg) {
  throw Error("playbook", "invalid", where + ": " + msg);
}

// Param names: [A-Za-z_][A-Za-z0-9_-]*; playbook names: [a-z0-9][a-z0-9_.-]*.
bool IsIdentifier(const std::string& s, bool lowercase) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool digit = c >= '0' && c <= '9';
    bool lower = c >= 'a' && c <= 'z';
    bool alpha = lower || (!lowercase && c >= 'A' && c <= 'Z');
    bool first_ok = lowercase ? (lower || digit) : (alpha || c == '_');
    bool rest_ok = alpha || digit || c == '_' || c == '-' || (lowercase && c == '.');
    if (!(i == 0 ? first_ok : rest_ok)) return false;
  }
  return true;
}

std::vector<engine::ParamSpec> ReadParams(lua_State* L, int desc, const std::string& where) {
  std::vector<engine::ParamSpec> out;
  lua::RawField(L, desc, "params");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return out;
  }
  if (!lua_istable(L, -1)) Invalid(where, "'params' must be a table of param specs");
  int pt = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, pt) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) Invalid(where, "param names must be strings");
    engine::ParamSpec s;
    s.name = lua_tostring(L, -2);
    std::string pw = fmt::format("{}: param '{}'", where, s.name);
    if (!IsIdentifier(s.name, /*lowercase=*/false)) {
      throw Error("playbook", "invalid", pw + ": name must be letters, digits, '_' or '-'");
    }
    if (!lua_istable(L, -1)) throw Error("playbook", "invalid", pw + ": spec must be a table like { type = \"string\" }");
    int st = lua_gettop(L);
    try {
      lua::CheckKeys(L, st, "a param spec", {"type", "required", "default", "help", "values", "secret"});
      s.type = engine::ParseParamType(lua::OptStringField(L, st, "type").value_or("string"));
      s.required = lua::OptBooleanField(L, st, "required").value_or(false);
      s.help = lua::OptStringField(L, st, "help").value_or("");
      s.secret = lua::OptBooleanField(L, st, "secret").value_or(false);
      if (auto values = lua::OptStringListField(L, st, "values")) s.choices = *values;
    } catch (const Error& e) {
      throw Error("playbook", "invalid", pw + ": " + e.message());
    }
    if (s.type == engine::ParamType::kEnum && s.choices.empty()) {
      throw Error("playbook", "invalid", pw + ": an enum needs values = { ... }");
    }
    lua::RawField(L, st, "default");
    if (!lua_isnil(L, -1)) {
      json d = lua::ToJson(L, -1);
      engine::ParamInput probe;
      probe.file = {{s.name, d}};
      try {
        engine::ValidateParams({s}, probe);
      } catch (const Error& e) {
        lua_pop(L, 1);
        // ValidateParams names the param itself; pw already does.
        std::string why = e.message();
        std::string own = "param '" + s.name + "': ";
        if (why.rfind(own, 0) == 0) why = why.substr(own.size());
        throw Error("playbook", "invalid", pw + ": bad default: " + why);
      }
      s.default_value = d;
    }
    lua_pop(L, 2);
    out.push_back(std::move(s));
  }
  lua_pop(L, 1);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace

PlaybookRef Resolve(const Project& p, const std::string& ref) {
  PlaybookRef r;
  bool is_path = ref.find('/') != std::string::npos || (ref.size() > 4 && ref.ends_with(".lua"));
  std::error_code ec;
  if (is_path) {
    // fopen succeeds on a directory and reads nothing: say what it is.
    if (fs::is_directory(ref, ec)) {
      throw Error("playbook", "invalid",
                  ref + " is a directory, not a playbook file (give a .lua file, or a playbook name: hoist list shows them)");
    }
    if (!sys::TryReadFile(ref, &r.source)) {
      throw Error("playbook", "not_found", "cannot read playbook file " + ref + ": no such file");
    }
    r.name = fs::path(ref).stem().string();
    r.display_path = ref;
    r.origin = "file";
    return r;
  }
  std::string project_file = p.root + "/playbooks/" + ref + ".lua";
  if (fs::is_directory(project_file, ec)) {
    throw Error("playbook", "invalid", "playbooks/" + ref + ".lua is a directory, not a playbook file");
  }
  if (sys::TryReadFile(project_file, &r.source)) {
    r.name = ref;
    r.display_path = "playbooks/" + ref + ".lua";
    r.origin = "project";
    return r;
  }
  if (const auto* f = lua::FindEmbedded(lua::EmbeddedKind::kPlaybook, ref)) {
    r.name = ref;
    r.source.assign(f->source);
    r.display_path = "hoist:" + std::string(f->path);
    r.origin = "canned";
    return r;
  }
  std::string hint = Suggest(ref, PlaybookNames(p));
  throw Error("playbook", "not_found",
              fmt::format("no playbook '{}' in {}/playbooks or among the canned playbooks{}", ref, p.root,
                          hint.empty() ? " (hoist list shows them)" : " (did you mean '" + hint + "'?)"));
}

// [-0, +1] Runs the playbook chunk and validates the description it returns.
PlaybookInfo LoadDescription(lua::State& vm, const PlaybookRef& ref) {
  lua_State* L = vm.get();
  std::string source = ref.source;
  if (source.rfind("#!", 0) == 0) source.insert(0, "--");
  vm.LoadChunk(source, "@" + ref.display_path);
  bind::SetLoadingPlaybook(L, true);
  try {
    lua::Call(L, 0, 1);
  } catch (...) {
    bind::SetLoadingPlaybook(L, false);
    throw;
  }
  bind::SetLoadingPlaybook(L, false);
  const std::string& where = ref.display_path;
  bool ok = lua_istable(L, -1) && lua_getmetatable(L, -1);
  if (ok) {
    luaL_getmetatable(L, kPlaybookMeta);
    ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!ok) {
    Invalid(where, fmt::format("must return hoist.playbook{{ ... }} (got a {})", luaL_typename(L, -1)));
  }
  int desc = lua_gettop(L);
  PlaybookInfo info;
  info.origin = ref.origin;
  info.display_path = ref.display_path;
  static const std::vector<std::string> kKeys = {"name", "version", "summary", "requires", "params", "run", "lock",
                                                 "description", "on"};
  lua_pushnil(L);
  while (lua_next(L, desc) != 0) {
    lua_pop(L, 1);
    std::string key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      std::string hint = Suggest(key, kKeys);
      Invalid(where, fmt::format("unknown playbook field '{}'{}", key,
                                 hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
  }
  try {
    info.name = lua::CheckStringField(L, desc, "name");
    info.version = lua::CheckStringField(L, desc, "version");
    info.summary = lua::OptStringField(L, desc, "summary").value_or("");
    info.description = lua::OptStringField(L, desc, "description").value_or("");
    info.lock = lua::OptBooleanField(L, desc, "lock").value_or(true);
  } catch (const Error& e) {
    Invalid(where, e.message());
  }
  if (!IsIdentifier(info.name, /*lowercase=*/true)) {
    Invalid(where, fmt::format("playbook name '{}' must be lowercase letters, digits, '-', '_' or '.'", info.name));
  }
  // A project playbook is found by its file name: another declared name
  // would be listed under one and journaled under the other.
  if (ref.origin == "project" && info.name != ref.name) {
    throw Error("playbook", "invalid",
                fmt::format("{} declares name \"{}\": rename the file or the name", where, info.name));
  }
  if (!engine::ParseSemver(info.version)) {
    Invalid(where, fmt::format("version '{}' is not semver (expected MAJOR.MINOR.PATCH, e.g. 1.2.0)", info.version));
  }
  lua::RawField(L, desc, "requires");
  if (lua_istable(L, -1)) {
    lua::CheckKeys(L, -1, "requires", {"hoist"});
    info.requires_hoist = lua::OptStringField(L, -1, "hoist").value_or("");
  } else if (!lua_isnil(L, -1)) {
    Invalid(where, "'requires' must be a table like { hoist = \">=0.1\" }");
  }
  lua_pop(L, 1);
  if (!info.requires_hoist.empty()) {
    auto self = *engine::ParseSemver(HOIST_VERSION);
    bool met;
    try {
      met = engine::SatisfiesConstraint(self, info.requires_hoist);
    } catch (const Error& e) {
      Invalid(where, e.message());
    }
    if (!met) {
      Invalid(where, fmt::format("requires hoist {} but this is hoist {}; upgrade hoist", info.requires_hoist,
                                 HOIST_VERSION));
    }
  }
  lua::RawField(L, desc, "run");
  if (!lua_isfunction(L, -1)) Invalid(where, "'run' must be a function(run, params)");
  lua_pop(L, 1);
  lua::RawField(L, desc, "on");
  if (lua_istable(L, -1)) {
    static const std::vector<std::string> kHooks = {"failed", "done"};
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (std::find(kHooks.begin(), kHooks.end(), key) == kHooks.end()) {
        std::string hint = Suggest(key, kHooks);
        lua_pop(L, 3);
        Invalid(where, fmt::format("unknown hook 'on.{}'{}; on takes: failed, done", key,
                                   hint.empty() ? "" : " (did you mean 'on." + hint + "'?)"));
      }
      if (!lua_isfunction(L, -1)) {
        lua_pop(L, 3);
        Invalid(where, fmt::format("'on.{}' must be a function(run, summary)", key));
      }
      (key == "failed" ? info.on_failed : info.on_done) = true;
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    lua_pop(L, 1);
    Invalid(where, "'on' must be a table like { failed = function(run, summary) ... end, done = ... }");
  }
  lua_pop(L, 1);
  info.params = ReadParams(L, desc, where);
  return info;
}

std::optional<std::string> CannedSource(const std::string& name) {
  if (const auto* f = lua::FindEmbedded(lua::EmbeddedKind::kPlaybook, name)) return std::string(f->source);
  return std::nullopt;
}

PlaybookInfo DescribePlaybook(const Project& project, const std::string& ref) {
  PlaybookRef r = Resolve(project, ref);
  lua::State vm(VmOptions(project));
  return LoadDescription(vm, r);
}

std::vector<std::string> PlaybookNames(const Project& project) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(project.root + "/playbooks", ec)) {
    if (e.path().extension() == ".lua") names.insert(e.path().stem().string());
  }
  for (const auto& f : lua::EmbeddedFiles()) {
    if (f.kind == lua::EmbeddedKind::kPlaybook) names.insert(std::string(f.name));
  }
  return {names.begin(), names.end()};
}

std::vector<PlaybookInfo> ListPlaybooks(const Project& project) {
  std::vector<PlaybookInfo> out;
  for (const auto& name : PlaybookNames(project)) {
    try {
      out.push_back(DescribePlaybook(project, name));
    } catch (const std::exception& e) {
      PlaybookInfo bad;
      bad.name = name;
      bad.version = "?";
      bad.summary = std::string("BROKEN: ") + e.what();
      bad.origin = "project";
      out.push_back(bad);
    }
  }
  return out;
}

std::string DescribeText(const PlaybookInfo& p) {
  std::string out = fmt::format("{} {} ({})\n", p.name, p.version, p.display_path);
  if (!p.summary.empty()) out += fmt::format("  {}\n", p.summary);
  if (!p.requires_hoist.empty()) out += fmt::format("  requires hoist {}\n", p.requires_hoist);
  out += fmt::format("  {}\n", p.lock ? "takes the environment's deploy lease" : "does not take a lease (lock = false)");
  if (p.on_failed || p.on_done) {
    out += fmt::format("  hooks: {}\n", p.on_failed && p.on_done ? "on.failed, on.done" : p.on_failed ? "on.failed" : "on.done");
  }
  if (!p.description.empty()) out += fmt::format("\n{}\n", p.description);
  if (p.params.empty()) return out + "\nparams: none\n";
  out += "\nparams:\n";
  for (const auto& s : p.params) {
    std::string type = engine::ParamTypeName(s.type);
    if (!s.choices.empty()) type = Join(s.choices, "|");
    std::string extra = s.required ? "required" : "";
    if (s.default_value) extra = "default " + s.default_value->dump();
    if (s.secret) extra += extra.empty() ? "secret" : ", secret";
    out += fmt::format("  -e {}=<{}>{}\n", s.name, type, extra.empty() ? "" : "  (" + extra + ")");
    if (!s.help.empty()) out += fmt::format("      {}\n", s.help);
  }
  return out;
}

nlohmann::json DescribeJson(const PlaybookInfo& p) {
  using json = nlohmann::json;
  json params = json::array();
  for (const auto& s : p.params) {
    json j = {{"name", s.name}, {"type", engine::ParamTypeName(s.type)}, {"required", s.required},
              {"help", s.help}, {"secret", s.secret}};
    if (s.default_value) j["default"] = *s.default_value;
    if (!s.choices.empty()) j["values"] = s.choices;
    params.push_back(j);
  }
  return {{"name", p.name}, {"version", p.version}, {"summary", p.summary}, {"origin", p.origin},
          {"path", p.display_path}, {"requires", {{"hoist", p.requires_hoist}}}, {"lock", p.lock},
          {"description", p.description}, {"params", params}};
}

namespace {

// An export never overwrites a file unless asked (a customised copy is work).
void WriteExport(const std::string& output, const std::string& source, bool force) {
  if (sys::StatPath(output).exists && !force) {
    throw Error("", "usage", fmt::format("playbook export: {} exists; pass --force to overwrite it", output));
  }
  auto slash = output.find_last_of('/');
  if (slash != std::string::npos) sys::MkdirP(output.substr(0, slash));
  sys::WriteAtomic(output, source, 0644);
}

// `hoist playbook export hoist.bluegreen`: a stdlib module into lib/, where
// require finds the project's fork first (lua/state.cpp says so per run).
std::string ExportStdlibModule(const Project& project, const std::string& name, std::string output, bool force) {
  const auto* f = lua::FindEmbedded(lua::EmbeddedKind::kStdlib, name);
  if (!f) {
    std::vector<std::string> names;
    for (const auto& e : lua::EmbeddedFiles()) {
      if (e.kind == lua::EmbeddedKind::kStdlib) names.emplace_back(e.name);
    }
    std::string hint = Suggest(name, names);
    throw Error("", "usage", fmt::format("playbook export: no Lua stdlib module '{}'{} (the Lua ones: {}; the others are "
                                         "C++ and cannot be forked)",
                                         name, hint.empty() ? "" : " — did you mean '" + hint + "'?", Join(names, ", ")));
  }
  std::string rel = name == "hoist" ? "hoist/init" : name;
  for (auto& c : rel) if (c == '.') c = '/';
  std::string fork = project.root + "/lib/" + rel + ".lua";
  if (output.empty()) output = fork;
  WriteExport(output, std::string(f->source), force);
  std::error_code ec;
  if (std::filesystem::equivalent(output, fork, ec)) {
    return fmt::format("wrote {} — this project's fork of {}: every run here now uses it instead of hoist's own "
                       "(and says so)\n",
                       output, name);
  }
  return fmt::format("wrote {} — a copy of {}; runs use it only from lib/{}.lua\n", output, name, rel);
}

}  // namespace

std::string ExportPlaybook(const Project& project, const std::string& name, std::string output, bool force) {
  if (name == "hoist" || name.rfind("hoist.", 0) == 0) return ExportStdlibModule(project, name, output, force);
  auto src = CannedSource(name);
  if (!src) {
    throw Error("", "usage",
                fmt::format("playbook export: no canned playbook '{}' (hoist list shows the canned ones)", name));
  }
  if (output.empty()) output = project.root + "/playbooks/" + name + ".lua";
  WriteExport(output, *src, force);
  // Only playbooks/NAME.lua of this project shadows the canned playbook.
  std::error_code ec;
  std::string shadow = project.root + "/playbooks/" + name + ".lua";
  if (std::filesystem::equivalent(output, shadow, ec)) {
    return fmt::format("wrote {} — it now takes precedence over the canned '{}'\n", output, name);
  }
  return fmt::format(
      "wrote {} — a copy of the canned '{}'; hoist {} still runs the canned one (run the copy with: hoist run {}, "
      "or move it to playbooks/{}.lua)\n",
      output, name, name, output, name);
}

}  // namespace hoist::app
