// hoist.docker: the Docker Engine API client for playbooks. A client is a
// "hoist.docker.Client" userdata whose requests go through the run's world
// (sandbox runs answer for dockerd); every call is journaled.
#include <lua.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <new>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "net/docker.h"
#include "net/tar.h"
#include "sys/fs.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kMeta = "hoist.docker.Client";
constexpr size_t kJournalText = 4096;

struct Client {
  std::unique_ptr<net::DockerClient> docker;
  engine::World* world = nullptr;  // set before each call: the caller's run world
  std::string socket;
};

Client& CheckClient(lua_State* L) {
  auto* c = static_cast<Client*>(luaL_testudata(L, 1, kMeta));
  if (!c) throw Error("docker", "invalid", "expected a docker client (call it as client:method(...))");
  if (!c->docker) throw Error("docker", "invalid", "docker client for " + c->socket + " is closed");
  c->world = &WorldOf(L);
  return *c;
}

milliseconds Seconds(double s) { return milliseconds(static_cast<int64_t>(s * 1000)); }

std::string Tail(const std::string& s) {
  return s.size() <= kJournalText ? s : "…" + s.substr(s.size() - kJournalText);
}

/// Runs f, journaling it as a "docker" world call (with its error, if any).
template <typename F>
auto Journaled(lua_State* L, const std::string& name, json data, F&& f) {
  return bind::Journaled(L, "docker", name, std::move(data), std::forward<F>(f), JournalError::kMessage);
}

std::optional<double> OptSeconds(lua_State* L, int idx, const char* key) {
  auto v = lua::OptNumberField(L, idx, key);
  if (v && *v < 0) throw Error("docker", "invalid", std::string(key) + " must be >= 0 seconds");
  return v;
}

/// env = { NAME = "v" } or { "NAME=v" } -> {"NAME=v"} (sorted for the map form).
std::vector<std::string> EnvList(lua_State* L, int idx, const char* key) {
  lua::RawField(L, idx, key);
  bool is_list = lua_istable(L, -1) && lua_rawlen(L, -1) > 0;
  lua_pop(L, 1);
  if (is_list) return *lua::OptStringListField(L, idx, key);
  return net::EnvEntries(lua::OptStringMapField(L, idx, key));
}

/// filters = { label = {"a=b"}, name = "web" }, labels = { app = "api" } -> Docker's filter map.
json Filters(lua_State* L, int idx) {
  json filters = json::object();
  lua::RawField(L, idx, "filters");
  if (lua_istable(L, -1)) {
    try {
      filters = lua::ToJson(L, -1);
    } catch (...) {
      lua_pop(L, 1);
      throw;
    }
  } else if (!lua_isnil(L, -1)) {
    lua_pop(L, 1);
    throw Error("docker", "invalid", "filters must be a table");
  }
  lua_pop(L, 1);
  return net::FilterMap(filters, lua::OptStringMapField(L, idx, "labels"));
}

net::Healthcheck ReadHealthcheck(lua_State* L, int idx) {
  net::Healthcheck h;
  lua::CheckKeys(L, idx, "healthcheck", {"test", "interval", "timeout", "retries", "start_period"});
  lua::RawField(L, idx, "test");
  if (lua_type(L, -1) == LUA_TSTRING) {
    h.test = {"CMD-SHELL", lua_tostring(L, -1)};
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    auto test = lua::OptStringListField(L, idx, "test");
    if (!test || test->empty()) throw Error("docker", "invalid", "healthcheck.test is required");
    h.test = *test;
  }
  h.interval = OptSeconds(L, idx, "interval").value_or(0);
  h.timeout = OptSeconds(L, idx, "timeout").value_or(0);
  h.start_period = OptSeconds(L, idx, "start_period").value_or(0);
  h.retries = static_cast<int>(lua::OptIntegerField(L, idx, "retries").value_or(0));
  return h;
}

net::ContainerSpec ReadSpec(lua_State* L, int idx) {
  lua::CheckTable(L, idx, "container spec");
  lua::CheckKeys(L, idx, "docker create",
                 {"image", "name", "cmd", "entrypoint", "env", "ports", "binds", "volumes", "labels", "healthcheck",
                  "restart", "network", "user", "workdir", "hostname", "stop_signal", "stop_timeout"});
  net::ContainerSpec s;
  s.image = lua::CheckStringField(L, idx, "image");
  s.name = lua::OptStringField(L, idx, "name").value_or("");
  s.cmd = lua::OptStringListField(L, idx, "cmd");
  s.entrypoint = lua::OptStringListField(L, idx, "entrypoint");
  s.env = EnvList(L, idx, "env");
  s.ports = lua::OptStringListField(L, idx, "ports").value_or(std::vector<std::string>{});
  s.binds = lua::OptStringListField(L, idx, "binds").value_or(std::vector<std::string>{});
  s.volumes = lua::OptStringListField(L, idx, "volumes").value_or(std::vector<std::string>{});
  s.labels = lua::OptStringMapField(L, idx, "labels");
  lua::RawField(L, idx, "healthcheck");
  if (lua_istable(L, -1)) {
    try {
      s.healthcheck = ReadHealthcheck(L, lua_gettop(L));
    } catch (...) {
      lua_pop(L, 1);
      throw;
    }
  } else if (!lua_isnil(L, -1)) {
    lua_pop(L, 1);
    throw Error("docker", "invalid", "healthcheck must be a table");
  }
  lua_pop(L, 1);
  s.restart = lua::OptStringField(L, idx, "restart").value_or("");
  s.network = lua::OptStringField(L, idx, "network").value_or("");
  s.user = lua::OptStringField(L, idx, "user").value_or("");
  s.workdir = lua::OptStringField(L, idx, "workdir").value_or("");
  s.hostname = lua::OptStringField(L, idx, "hostname").value_or("");
  s.stop_signal = lua::OptStringField(L, idx, "stop_signal").value_or("");
  if (auto t = lua::OptIntegerField(L, idx, "stop_timeout")) s.stop_timeout = static_cast<int>(*t);
  return s;
}

// --- module functions -------------------------------------------------------

/// The one idempotent close behind client:close(), __close and __gc.
void CloseClient(Client& c) { c.docker.reset(); }

/// docker.connect{ socket = "/var/run/docker.sock" } -> client
int l_connect(lua_State* L) {
  lua::CheckKeys(L, 1, "docker.connect", {"socket"});
  std::string socket = lua::OptStringField(L, 1, "socket").value_or("/var/run/docker.sock");
  void* mem = lua_newuserdatauv(L, sizeof(Client), 0);
  auto* c = new (mem) Client();
  luaL_setmetatable(L, kMeta);  // from here __gc runs, whatever happens next
  c->socket = socket;
  c->world = &WorldOf(L);
  net::HttpSend send = [c](const net::HttpRequest& r) { return c->world->Http(r); };
  Journaled(L, "connect " + socket, {{"socket", socket}}, [&](json& data) {
    c->docker = std::make_unique<net::DockerClient>(socket, send);
    data["api_version"] = c->docker->api_version();
    data["server_version"] = c->docker->server_version().value("Version", "");
    return 0;
  });
  return 1;
}

/// docker.compose(files, project, args, { socket, cwd, timeout }) -> { code, stdout, stderr }
int l_compose(lua_State* L) {
  net::ComposeOptions o;
  if (lua_type(L, 1) == LUA_TSTRING) {
    o.files = {lua_tostring(L, 1)};
  } else if (!lua_isnoneornil(L, 1)) {
    o.files = lua::CheckStringList(L, 1, "files");
  }
  o.project = lua::OptString(L, 2, "project").value_or("");
  if (!lua_isnoneornil(L, 3)) o.args = lua::CheckStringList(L, 3, "args");
  lua::CheckKeys(L, 4, "docker.compose", {"socket", "cwd", "timeout"});
  o.socket = lua::OptStringField(L, 4, "socket").value_or("");
  o.cwd = lua::OptStringField(L, 4, "cwd").value_or("");
  if (auto t = OptSeconds(L, 4, "timeout")) o.timeout = Seconds(*t);
  engine::World& world = WorldOf(L);
  auto r = Journaled(L, "compose " + fmt::format("{}", fmt::join(o.args, " ")),
                     {{"files", o.files}, {"project", o.project}, {"args", o.args}}, [&](json& data) {
                       auto res = net::Compose(o, [&](const sys::ProcessSpec& spec) { return world.RunProcess(spec); });
                       data["exit_code"] = res.exit_code;
                       data["stdout"] = Tail(res.out);
                       data["stderr"] = Tail(res.err);
                       return res;
                     });
  lua_createtable(L, 0, 3);
  lua::SetField(L, "code", static_cast<lua_Integer>(r.exit_code));
  lua::SetField(L, "stdout", r.out);
  lua::SetField(L, "stderr", r.err);
  return 1;
}

// --- client methods ---------------------------------------------------------

int l_close(lua_State* L) {
  if (auto* c = static_cast<Client*>(luaL_testudata(L, 1, kMeta))) CloseClient(*c);
  return 0;
}

int l_gc(lua_State* L) {
  if (auto* c = static_cast<Client*>(luaL_testudata(L, 1, kMeta))) {
    CloseClient(*c);
    c->~Client();
  }
  return 0;
}

int l_tostring(lua_State* L) {
  auto* c = static_cast<Client*>(luaL_testudata(L, 1, kMeta));
  std::string s = !c                 ? "hoist.docker.Client(?)"
                  : c->docker        ? fmt::format("hoist.docker.Client({}, API {})", c->socket, c->docker->api_version())
                                     : fmt::format("hoist.docker.Client({}, closed)", c->socket);
  lua::PushString(L, s);
  return 1;
}

int l_ping(lua_State* L) {
  Client& c = CheckClient(L);
  bool ok = Journaled(L, "ping", {}, [&](json&) { return c.docker->Ping(); });
  lua_pushboolean(L, ok);
  return 1;
}

int l_version(lua_State* L) {
  Client& c = CheckClient(L);
  lua::PushJson(L, Journaled(L, "version", {}, [&](json&) { return c.docker->Version(); }));
  return 1;
}

/// client:containers{ all, filters, labels } -> list of Docker's container summaries
int l_containers(lua_State* L) {
  Client& c = CheckClient(L);
  lua::CheckKeys(L, 2, "docker containers", {"all", "filters", "labels"});
  bool all = lua::OptBooleanField(L, 2, "all").value_or(false);
  json filters = Filters(L, 2);
  lua::PushJson(L, Journaled(L, "list containers", {{"all", all}, {"filters", filters}}, [&](json& data) {
                  json r = c.docker->ListContainers(all, filters);
                  data["count"] = r.size();
                  return r;
                }));
  return 1;
}

int l_inspect(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  lua::PushJson(L, Journaled(L, "inspect " + id, {{"container", id}}, [&](json& data) {
                  json r = c.docker->Inspect(id);
                  if (r.contains("State")) data["state"] = r["State"];
                  return r;
                }));
  return 1;
}

/// client:exists(id) -> boolean (inspect, with not_found as false)
int l_exists(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  bool found = Journaled(L, "exists " + id, {{"container", id}}, [&](json& data) {
    try {
      c.docker->Inspect(id);
      data["exists"] = true;
      return true;
    } catch (const net::DockerError& e) {
      if (e.code() != "not_found") throw;
      data["exists"] = false;
      return false;
    }
  });
  lua_pushboolean(L, found);
  return 1;
}

/// client:create{ image, name, ... } -> id, warnings
int l_create(lua_State* L) {
  Client& c = CheckClient(L);
  net::ContainerSpec spec = ReadSpec(L, 2);
  json body = net::ContainerCreateBody(spec);
  json r = Journaled(L, "create " + (spec.name.empty() ? spec.image : spec.name), {{"name", spec.name}, {"spec", body}},
                     [&](json& data) {
                       json res = c.docker->Create(spec);
                       data["id"] = res.value("Id", "");
                       return res;
                     });
  lua::PushString(L, r.value("Id", ""));
  lua::PushJson(L, r.contains("Warnings") && r["Warnings"].is_array() ? r["Warnings"] : json::array());
  return 2;
}

int l_start(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  bool started = Journaled(L, "start " + id, {{"container", id}}, [&](json& data) {
    bool s = c.docker->Start(id);
    data["changed"] = s;
    return s;
  });
  lua_pushboolean(L, started);
  return 1;
}

int l_stop(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  lua::CheckKeys(L, 3, "docker stop", {"timeout"});
  auto t = lua::OptIntegerField(L, 3, "timeout");
  std::optional<int> timeout = t ? std::optional<int>(static_cast<int>(*t)) : std::nullopt;
  bool stopped = Journaled(L, "stop " + id, {{"container", id}, {"timeout", t ? json(*t) : json(nullptr)}},
                          [&](json& data) {
                            bool s = c.docker->Stop(id, timeout);
                            data["changed"] = s;
                            return s;
                          });
  lua_pushboolean(L, stopped);
  return 1;
}

int l_restart(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  lua::CheckKeys(L, 3, "docker restart", {"timeout"});
  auto t = lua::OptIntegerField(L, 3, "timeout");
  std::optional<int> timeout = t ? std::optional<int>(static_cast<int>(*t)) : std::nullopt;
  Journaled(L, "restart " + id, {{"container", id}}, [&](json&) {
    c.docker->Restart(id, timeout);
    return 0;
  });
  return 0;
}

int l_kill(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  lua::CheckKeys(L, 3, "docker kill", {"signal"});
  std::string signal = lua::OptStringField(L, 3, "signal").value_or("");
  Journaled(L, "kill " + id, {{"container", id}, {"signal", signal}}, [&](json&) {
    c.docker->Kill(id, signal);
    return 0;
  });
  return 0;
}

int l_remove(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  lua::CheckKeys(L, 3, "docker remove", {"force", "volumes"});
  bool force = lua::OptBooleanField(L, 3, "force").value_or(false);
  bool volumes = lua::OptBooleanField(L, 3, "volumes").value_or(false);
  Journaled(L, "remove " + id, {{"container", id}, {"force", force}, {"volumes", volumes}}, [&](json&) {
    c.docker->Remove(id, force, volumes);
    return 0;
  });
  return 0;
}

/// client:wait(id, { condition, timeout }) -> { status_code, error }
int l_wait(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  lua::CheckKeys(L, 3, "docker wait", {"condition", "timeout"});
  std::string condition = lua::OptStringField(L, 3, "condition").value_or("");
  auto timeout = OptSeconds(L, 3, "timeout");
  json r = Journaled(L, "wait " + id, {{"container", id}, {"condition", condition}}, [&](json& data) {
    json res = c.docker->Wait(id, condition, timeout ? Seconds(*timeout) : milliseconds(0));
    data["result"] = res;
    return res;
  });
  lua_createtable(L, 0, 2);
  lua::SetField(L, "status_code", static_cast<lua_Integer>(r.value("StatusCode", -1)));
  if (r.contains("Error") && r["Error"].is_object() && r["Error"].contains("Message")) {
    std::string msg = r["Error"]["Message"].get<std::string>();
    if (!msg.empty()) lua::SetField(L, "error", msg);
  }
  return 1;
}

/// client:logs(id, { stdout, stderr, tail, since, timestamps }) -> { stdout, stderr }
int l_logs(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  lua::CheckKeys(L, 3, "docker logs", {"stdout", "stderr", "tail", "since", "timestamps"});
  net::LogOptions o;
  o.stdout_ = lua::OptBooleanField(L, 3, "stdout").value_or(true);
  o.stderr_ = lua::OptBooleanField(L, 3, "stderr").value_or(true);
  if (auto t = lua::OptIntegerField(L, 3, "tail")) o.tail = static_cast<int>(*t);
  o.since = lua::OptNumberField(L, 3, "since");
  o.timestamps = lua::OptBooleanField(L, 3, "timestamps").value_or(false);
  net::Output out = Journaled(L, "logs " + id, {{"container", id}}, [&](json& data) {
    net::Output res = c.docker->Logs(id, o);
    data["stdout_bytes"] = res.out.size();
    data["stderr_bytes"] = res.err.size();
    return res;
  });
  lua_createtable(L, 0, 2);
  lua::SetField(L, "stdout", out.out);
  lua::SetField(L, "stderr", out.err);
  return 1;
}

/// client:exec(id, argv, { env, user, workdir, timeout }) -> { ok, code, stdout, stderr }
int l_exec(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  net::ExecOptions o;
  o.cmd = lua::CheckStringList(L, 3, "argv");
  lua::CheckKeys(L, 4, "docker exec", {"env", "user", "workdir", "timeout"});
  o.env = EnvList(L, 4, "env");
  o.user = lua::OptStringField(L, 4, "user").value_or("");
  o.workdir = lua::OptStringField(L, 4, "workdir").value_or("");
  if (auto t = OptSeconds(L, 4, "timeout")) o.timeout = Seconds(*t);
  net::ExecResult r = Journaled(L, "exec " + id + " " + fmt::format("{}", fmt::join(o.cmd, " ")),
                                {{"container", id}, {"argv", o.cmd}}, [&](json& data) {
                                  net::ExecResult res = c.docker->Exec(id, o);
                                  data["exit_code"] = res.exit_code;
                                  data["stdout"] = Tail(res.out);
                                  data["stderr"] = Tail(res.err);
                                  return res;
                                });
  lua_createtable(L, 0, 4);
  lua::SetFieldBool(L, "ok", r.exit_code == 0);
  lua::SetField(L, "code", static_cast<lua_Integer>(r.exit_code));
  lua::SetField(L, "stdout", r.out);
  lua::SetField(L, "stderr", r.err);
  return 1;
}

/// client:put_file(id, path, data, { mode = "0644" }): one file into the container.
int l_put_file(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  std::string path = lua::CheckString(L, 3, "path");
  std::string data = lua::CheckString(L, 4, "data");
  lua::CheckKeys(L, 5, "docker put_file", {"mode"});
  uint32_t mode = 0644;
  if (auto m = lua::OptStringField(L, 5, "mode")) {
    char* end = nullptr;
    long v = std::strtol(m->c_str(), &end, 8);
    if (m->empty() || *end != '\0' || v < 0 || v > 07777) {
      throw Error("docker", "invalid", "mode must be an octal string like \"0644\", got \"" + *m + "\"");
    }
    mode = static_cast<uint32_t>(v);
  }
  std::filesystem::path p(path);
  if (!p.is_absolute() || !p.has_filename()) {
    throw Error("docker", "invalid", "put_file needs an absolute file path in the container, got \"" + path + "\"");
  }
  std::string tar = net::WriteTar({{.path = p.filename().string(), .type = '0', .mode = mode, .data = data}});
  Journaled(L, "put_file " + id + ":" + path, {{"container", id}, {"path", path}, {"bytes", data.size()}},
            [&](json&) {
              c.docker->PutArchive(id, p.parent_path().string(), tar);
              return 0;
            });
  return 0;
}

/// client:get_file(id, path) -> contents of one regular file in the container.
int l_get_file(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  std::string path = lua::CheckString(L, 3, "path");
  std::string data = Journaled(L, "get_file " + id + ":" + path, {{"container", id}, {"path", path}}, [&](json& d) {
    auto entries = net::ReadTar(c.docker->GetArchive(id, path));
    if (entries.empty() || entries[0].type != '0') {
      throw net::DockerError(0, "invalid", "get_file " + id + ":" + path + ": not a regular file");
    }
    d["bytes"] = entries[0].data.size();
    return entries[0].data;
  });
  lua::PushString(L, data);
  return 1;
}

/// client:copy_in(id, host_path, container_dir): like `docker cp host_path id:container_dir`.
int l_copy_in(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  std::string host = lua::CheckString(L, 3, "host_path");
  std::string dir = lua::CheckString(L, 4, "container_dir");
  std::string tar = net::TarPath(host);
  Journaled(L, "copy_in " + host + " -> " + id + ":" + dir,
            {{"container", id}, {"host_path", host}, {"dir", dir}, {"bytes", tar.size()}}, [&](json&) {
              c.docker->PutArchive(id, dir, tar);
              return 0;
            });
  return 0;
}

/// client:copy_out(id, container_path, host_dir) -> list of the paths written under host_dir.
int l_copy_out(lua_State* L) {
  Client& c = CheckClient(L);
  std::string id = lua::CheckString(L, 2, "container");
  std::string path = lua::CheckString(L, 3, "container_path");
  std::string dir = lua::CheckString(L, 4, "host_dir");
  auto entries = Journaled(L, "copy_out " + id + ":" + path + " -> " + dir,
                           {{"container", id}, {"path", path}, {"host_dir", dir}}, [&](json& data) {
                             auto e = net::ReadTar(c.docker->GetArchive(id, path));
                             net::ExtractTar(e, dir);
                             data["entries"] = e.size();
                             return e;
                           });
  lua_createtable(L, static_cast<int>(entries.size()), 0);
  for (size_t i = 0; i < entries.size(); ++i) {
    lua::PushString(L, entries[i].path);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int l_images(lua_State* L) {
  Client& c = CheckClient(L);
  lua::CheckKeys(L, 2, "docker images", {"all", "filters", "labels"});
  bool all = lua::OptBooleanField(L, 2, "all").value_or(false);
  json filters = Filters(L, 2);
  lua::PushJson(L, Journaled(L, "list images", {{"filters", filters}}, [&](json& data) {
                  json r = c.docker->ListImages(all, filters);
                  data["count"] = r.size();
                  return r;
                }));
  return 1;
}

int l_image(lua_State* L) {
  Client& c = CheckClient(L);
  std::string name = lua::CheckString(L, 2, "image");
  lua::PushJson(L, Journaled(L, "inspect image " + name, {{"image", name}}, [&](json&) {
                  return c.docker->InspectImage(name);
                }));
  return 1;
}

/// client:tag(image, repo, tag)
int l_tag(lua_State* L) {
  Client& c = CheckClient(L);
  std::string name = lua::CheckString(L, 2, "image");
  std::string repo = lua::CheckString(L, 3, "repo");
  std::string tag = lua::OptString(L, 4, "tag").value_or("");
  Journaled(L, "tag " + name + " " + repo + (tag.empty() ? "" : ":" + tag),
            {{"image", name}, {"repo", repo}, {"tag", tag}}, [&](json&) {
              c.docker->TagImage(name, repo, tag);
              return 0;
            });
  return 0;
}

int l_remove_image(lua_State* L) {
  Client& c = CheckClient(L);
  std::string name = lua::CheckString(L, 2, "image");
  lua::CheckKeys(L, 3, "docker remove_image", {"force", "prune"});
  bool force = lua::OptBooleanField(L, 3, "force").value_or(false);
  bool prune = lua::OptBooleanField(L, 3, "prune").value_or(true);
  lua::PushJson(L, Journaled(L, "remove image " + name, {{"image", name}, {"force", force}}, [&](json& data) {
                  json r = c.docker->RemoveImage(name, force, prune);
                  data["result"] = r;
                  return r;
                }));
  return 1;
}

/// client:build{ context = dir | tar = string, tag, dockerfile, build_args, labels, no_cache, timeout } -> { id, log }
int l_build(lua_State* L) {
  Client& c = CheckClient(L);
  lua::CheckTable(L, 2, "build options");
  lua::CheckKeys(L, 2, "docker build",
                 {"context", "tar", "tag", "dockerfile", "build_args", "labels", "no_cache", "timeout"});
  auto dir = lua::OptStringField(L, 2, "context");
  auto tar = lua::OptStringField(L, 2, "tar");
  if (dir.has_value() == tar.has_value()) throw Error("docker", "invalid", "build needs context (a directory) or tar");
  net::BuildOptions o;
  o.tag = lua::OptStringField(L, 2, "tag").value_or("");
  o.dockerfile = lua::OptStringField(L, 2, "dockerfile").value_or("Dockerfile");
  o.build_args = lua::OptStringMapField(L, 2, "build_args");
  o.labels = lua::OptStringMapField(L, 2, "labels");
  o.no_cache = lua::OptBooleanField(L, 2, "no_cache").value_or(false);
  if (auto t = OptSeconds(L, 2, "timeout")) o.timeout = Seconds(*t);
  std::string context = dir ? net::TarDirectory(*dir) : *tar;
  net::BuildResult r = Journaled(L, "build " + (o.tag.empty() ? dir.value_or("<tar>") : o.tag),
                                 {{"context", dir.value_or("<tar>")}, {"tag", o.tag}, {"bytes", context.size()}},
                                 [&](json& data) {
                                   net::BuildResult res = c.docker->Build(context, o);
                                   data["id"] = res.id;
                                   data["log"] = Tail(res.log);
                                   return res;
                                 });
  lua_createtable(L, 0, 2);
  lua::SetField(L, "id", r.id);
  lua::SetField(L, "log", r.log);
  return 1;
}

/// client:load(tar) or client:load{ path = "image.tar" } -> dockerd's output
int l_load(lua_State* L) {
  Client& c = CheckClient(L);
  std::string tar, what = "<tar>";
  if (lua_type(L, 2) == LUA_TSTRING) {
    tar = lua::CheckString(L, 2, "tar");
  } else {
    lua::CheckTable(L, 2, "load options");
    lua::CheckKeys(L, 2, "docker load", {"path"});
    what = lua::CheckStringField(L, 2, "path");
    tar = c.world->ReadFile(what);
  }
  std::string out = Journaled(L, "load " + what, {{"source", what}, {"bytes", tar.size()}}, [&](json& data) {
    std::string o = c.docker->LoadImages(tar);
    data["output"] = Tail(o);
    return o;
  });
  lua::PushString(L, out);
  return 1;
}

/// client:save(image) -> the `docker save` archive, or client:save(image, { path = "x.tar" }) writes it.
int l_save(lua_State* L) {
  Client& c = CheckClient(L);
  std::string name = lua::CheckString(L, 2, "image");
  lua::CheckKeys(L, 3, "docker save", {"path"});
  auto path = lua::OptStringField(L, 3, "path");
  std::string tar = Journaled(L, "save " + name, {{"image", name}, {"path", path.value_or("")}}, [&](json& data) {
    std::string t = c.docker->SaveImage(name);
    data["bytes"] = t.size();
    if (path) c.world->WriteAtomic(*path, t, 0644);
    return t;
  });
  if (path) return 0;
  lua::PushString(L, tar);
  return 1;
}

int l_volumes(lua_State* L) {
  Client& c = CheckClient(L);
  lua::CheckKeys(L, 2, "docker volumes", {"filters", "labels"});
  json filters = Filters(L, 2);
  lua::PushJson(L, Journaled(L, "list volumes", {{"filters", filters}}, [&](json& data) {
                  json r = c.docker->ListVolumes(filters);
                  data["count"] = r.size();
                  return r;
                }));
  return 1;
}

int l_volume(lua_State* L) {
  Client& c = CheckClient(L);
  std::string name = lua::CheckString(L, 2, "volume");
  lua::PushJson(L, Journaled(L, "inspect volume " + name, {{"volume", name}}, [&](json&) {
                  return c.docker->InspectVolume(name);
                }));
  return 1;
}

/// client:create_volume{ name, driver, labels, driver_opts } -> Docker's volume
int l_create_volume(lua_State* L) {
  Client& c = CheckClient(L);
  lua::CheckKeys(L, 2, "docker create_volume", {"name", "driver", "labels", "driver_opts"});
  std::string name = lua::OptStringField(L, 2, "name").value_or("");
  std::string driver = lua::OptStringField(L, 2, "driver").value_or("");
  auto labels = lua::OptStringMapField(L, 2, "labels");
  auto opts = lua::OptStringMapField(L, 2, "driver_opts");
  lua::PushJson(L, Journaled(L, "create volume " + name, {{"name", name}, {"driver", driver}}, [&](json&) {
                  return c.docker->CreateVolume(name, driver, labels, opts);
                }));
  return 1;
}

int l_remove_volume(lua_State* L) {
  Client& c = CheckClient(L);
  std::string name = lua::CheckString(L, 2, "volume");
  lua::CheckKeys(L, 3, "docker remove_volume", {"force"});
  bool force = lua::OptBooleanField(L, 3, "force").value_or(false);
  Journaled(L, "remove volume " + name, {{"volume", name}, {"force", force}}, [&](json&) {
    c.docker->RemoveVolume(name, force);
    return 0;
  });
  return 0;
}

int l_networks(lua_State* L) {
  Client& c = CheckClient(L);
  lua::CheckKeys(L, 2, "docker networks", {"filters", "labels"});
  json filters = Filters(L, 2);
  lua::PushJson(L, Journaled(L, "list networks", {{"filters", filters}}, [&](json& data) {
                  json r = c.docker->ListNetworks(filters);
                  data["count"] = r.size();
                  return r;
                }));
  return 1;
}

/// client.socket, client.api_version, else the methods.
int l_index(lua_State* L) {
  auto* c = static_cast<Client*>(luaL_testudata(L, 1, kMeta));
  std::string key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (c && key == "socket") {
    lua::PushString(L, c->socket);
    return 1;
  }
  if (c && key == "api_version") {
    if (c->docker) {
      lua::PushString(L, c->docker->api_version());
    } else {
      lua_pushnil(L);
    }
    return 1;
  }
  luaL_getmetatable(L, kMeta);
  lua_getfield(L, -1, "methods");
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

void RegisterMeta(lua_State* L) {
  if (luaL_newmetatable(L, kMeta)) {
    const luaL_Reg methods[] = {{"ping", lua::Protect<l_ping>},
                                {"version", lua::Protect<l_version>},
                                {"containers", lua::Protect<l_containers>},
                                {"inspect", lua::Protect<l_inspect>},
                                {"exists", lua::Protect<l_exists>},
                                {"create", lua::Protect<l_create>},
                                {"start", lua::Protect<l_start>},
                                {"stop", lua::Protect<l_stop>},
                                {"restart", lua::Protect<l_restart>},
                                {"kill", lua::Protect<l_kill>},
                                {"remove", lua::Protect<l_remove>},
                                {"wait", lua::Protect<l_wait>},
                                {"logs", lua::Protect<l_logs>},
                                {"exec", lua::Protect<l_exec>},
                                {"put_file", lua::Protect<l_put_file>},
                                {"get_file", lua::Protect<l_get_file>},
                                {"copy_in", lua::Protect<l_copy_in>},
                                {"copy_out", lua::Protect<l_copy_out>},
                                {"images", lua::Protect<l_images>},
                                {"image", lua::Protect<l_image>},
                                {"tag", lua::Protect<l_tag>},
                                {"remove_image", lua::Protect<l_remove_image>},
                                {"build", lua::Protect<l_build>},
                                {"load", lua::Protect<l_load>},
                                {"save", lua::Protect<l_save>},
                                {"volumes", lua::Protect<l_volumes>},
                                {"volume", lua::Protect<l_volume>},
                                {"create_volume", lua::Protect<l_create_volume>},
                                {"remove_volume", lua::Protect<l_remove_volume>},
                                {"networks", lua::Protect<l_networks>},
                                {"close", l_close},
                                {nullptr, nullptr}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pushcfunction(L, lua::Protect<l_index>);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lua::Protect<l_tostring>);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, kMeta);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

}  // namespace

int OpenDocker(lua_State* L) {
  RegisterMeta(L);
  const luaL_Reg fns[] = {{"connect", lua::Protect<l_connect>}, {"compose", lua::Protect<l_compose>}, {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind
