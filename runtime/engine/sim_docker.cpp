#include "engine/sim_docker.h"

#include <algorithm>

#include <fmt/format.h>

#include "sys/sha256.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;

int PortNumber(const json& v) {
  try {
    if (v.is_number_integer()) return v.get<int>();
    if (v.is_string()) return std::stoi(v.get<std::string>());
  } catch (...) {
  }
  return 0;
}

/// Where a container's app answers on the host: the first port Docker
/// publishes (`published`: create's HostConfig.PortBindings or a listing's
/// Ports), else, for host networking, where Docker records none, the
/// `hoist.port` label (hoist.bluegreen sets it). 0 = not known.
int ContainerPort(const json& labels, const json& published) {
  if (published.is_object()) {
    for (const auto& [inner, bindings] : published.items()) {
      for (const auto& b : bindings.is_array() ? bindings : json::array()) {
        if (int p = PortNumber(b.value("HostPort", json())); p > 0) return p;
      }
    }
  } else if (published.is_array()) {
    for (const auto& p : published) {
      if (int n = PortNumber(p.value("PublicPort", json())); n > 0) return n;
    }
  }
  return labels.is_object() && labels.contains("hoist.port") ? PortNumber(labels["hoist.port"]) : 0;
}

}  // namespace

void SimDocker::RunContainer(Container& c, const SimServiceScript& script) {
  c.state = "running";
  c.started_at = host_.Monotonic();
  if (c.port <= 0) return;
  c.pid = host_.AddListener("container " + c.name, c.name, c.port, script.behaviour == "listens",
                            c.started_at + script.listen_after);
}

void SimDocker::HaltContainer(Container& c) {
  if (c.pid) host_.Kill(c.pid);
  c.pid = 0;
}

void SimDocker::AddContainer(const std::string& name, const std::string& image) {
  Container c;
  c.id = fmt::format("{:064x}", next_container_++);
  c.name = name;
  c.image = image;
  c.state = "running";
  containers_.push_back(c);
}

void SimDocker::Seed(const std::string& unix_socket) {
  // Sandbox: the containers running on this host, listed once (a GET, the
  // only request the simulated world ever sends to a real service).
  net::HttpRequest list;
  list.url = "http://localhost/containers/json?all=1";
  list.unix_socket = unix_socket;
  list.timeout = std::chrono::milliseconds(5000);
  net::HttpResponse real = net::Send(list);
  json seen = real.ok() && real.status == 200 ? json::parse(real.body, nullptr, false) : json();
  json names = json::array();
  if (seen.is_array()) {
    for (const auto& c : seen) {
      Container k;
      k.id = c.value("Id", "");
      auto ns = c.value("Names", json::array());
      k.name = !ns.empty() && ns[0].is_string() ? ns[0].get<std::string>().substr(1) : k.id.substr(0, 12);
      k.image = c.value("Image", "");
      k.port = ContainerPort(c.value("Labels", json::object()), c.value("Ports", json::array()));
      if (c.value("State", "running") == "running") {
        RunContainer(k, {});
      } else {
        k.state = "exited";
      }
      containers_.push_back(k);
      names.push_back(k.name + " " + k.image + " " + k.state);
    }
  }
  host_.Observe("docker " + unix_socket, seen.is_array() ? sys::Sha256Hex(names.dump()) : "unreachable");
}

net::HttpResponse SimDocker::Handle(const net::HttpRequest& request) {
  net::HttpResponse r;
  std::string url = request.url;
  if (auto p = url.find("://"); p != std::string::npos) url = url.substr(url.find('/', p + 3));
  std::string query;
  if (auto q = url.find('?'); q != std::string::npos) {
    query = url.substr(q + 1);
    url = url.substr(0, q);
  }
  if (url.rfind("/v1.", 0) == 0) url = url.substr(url.find('/', 1));
  auto param = [&](const std::string& key) {
    for (const auto& kv : SimWords([&] {
           std::string t = query;
           std::replace(t.begin(), t.end(), '&', ' ');
           return t;
         }())) {
      if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
    }
    return std::string();
  };
  auto reply = [&](int status, const json& body) {
    r.status = status;
    r.headers = {{"Content-Type", "application/json"}};
    r.body = body.is_null() ? "" : body.dump();
    return r;
  };
  auto find = [&](const std::string& id) -> Container* {
    for (auto& c : containers_) {
      if (c.id == id || c.name == id || (id.size() >= 12 && c.id.rfind(id, 0) == 0)) return &c;
    }
    return nullptr;
  };
  auto health = [&](const Container& c) -> std::string {
    SimServiceScript script = host_.ScriptFor(c.name);
    if (script.behaviour == "never_listens") return host_.Monotonic() - c.started_at >= script.listen_after ? "unhealthy" : "starting";
    return host_.Monotonic() - c.started_at >= script.listen_after ? "healthy" : "starting";
  };
  if (seed_from_disk_ && seeded_.insert(request.unix_socket).second) Seed(request.unix_socket);
  const std::string& m = request.method;
  if (url == "/_ping") {
    r.status = 200;
    r.body = "OK";
    return r;
  }
  if (url == "/version") return reply(200, {{"ApiVersion", "1.43"}, {"Version", "simulated"}, {"Os", "linux"}});
  if (m == "GET" && url == "/containers/json") {
    bool all = param("all") == "1";
    json list = json::array();
    for (const auto& c : containers_) {
      if (!all && c.state != "running") continue;
      list.push_back({{"Id", c.id}, {"Names", {"/" + c.name}}, {"Image", c.image}, {"State", c.state},
                      {"Status", c.state}, {"Labels", c.config.value("Labels", json::object())}});
    }
    return reply(200, list);
  }
  if (m == "POST" && url == "/containers/create") {
    std::string name = param("name");
    if (!name.empty() && find(name)) {
      return reply(409, {{"message", "Conflict. The container name \"/" + name + "\" is already in use"}});
    }
    Container c;
    c.id = fmt::format("{:064x}", next_container_++);
    c.name = name.empty() ? c.id.substr(0, 12) : name;
    c.config = json::parse(request.body, nullptr, false);
    if (c.config.is_discarded()) c.config = json::object();
    c.image = c.config.value("Image", "");
    c.healthcheck = c.config.contains("Healthcheck");
    c.port = ContainerPort(c.config.value("Labels", json::object()),
                           c.config.value("HostConfig", json::object()).value("PortBindings", json::object()));
    containers_.push_back(c);
    host_.Record("docker", "create " + c.name + " (" + c.image + ")", {{"name", c.name}, {"image", c.image}});
    return reply(201, {{"Id", c.id}, {"Warnings", json::array()}});
  }
  if (m == "GET" && url.rfind("/images/", 0) == 0 && url.ends_with("/json")) {
    std::string name = url.substr(8, url.size() - 13);
    return reply(200, {{"Id", "sha256:" + sys::Sha256Hex(name)}, {"RepoTags", {name}}});
  }
  if (url.rfind("/containers/", 0) == 0) {
    std::string rest = url.substr(12);
    std::string id = rest.substr(0, rest.find('/'));
    std::string action = rest.find('/') == std::string::npos ? "" : rest.substr(rest.find('/') + 1);
    Container* c = find(id);
    if (!c) return reply(404, {{"message", "No such container: " + id}});
    auto change = [&](const std::string& what) { host_.Record("docker", what + " " + c->name, {{"name", c->name}, {"id", c->id}}); };
    if (m == "GET" && action == "json") {
      json state = {{"Status", c->state}, {"Running", c->state == "running"}, {"ExitCode", c->exit_code}};
      if (c->healthcheck && c->state == "running") state["Health"] = {{"Status", health(*c)}, {"Log", json::array()}};
      return reply(200, {{"Id", c->id}, {"Name", "/" + c->name}, {"Image", c->image}, {"State", state},
                         {"Config", c->config}});
    }
    if (m == "POST" && (action == "start" || action == "restart")) {
      if (action == "start" && c->state == "running") return reply(304, nullptr);
      change(action);
      SimServiceScript script = host_.ScriptFor(c->name);
      HaltContainer(*c);
      if (script.behaviour == "exits") {
        c->started_at = host_.Monotonic();
        c->state = "exited";
        c->exit_code = 1;
      } else {
        RunContainer(*c, script);
      }
      return reply(204, nullptr);
    }
    if (m == "POST" && (action == "stop" || action == "kill")) {
      if (c->state != "running") return reply(action == "stop" ? 304 : 409, {{"message", "container " + id + " is not running"}});
      change(action);
      HaltContainer(*c);
      c->state = "exited";
      c->exit_code = action == "kill" ? 137 : 0;
      return reply(204, nullptr);
    }
    if (m == "POST" && action == "wait") return reply(200, {{"StatusCode", c->exit_code}});
    if (m == "GET" && action == "logs") {
      r.status = 200;
      return r;
    }
    if (m == "DELETE" && action.empty()) {
      if (c->state == "running" && param("force") != "1" && param("force") != "true") {
        return reply(409, {{"message", "cannot remove a running container " + c->id + ": stop it or force"}});
      }
      change("remove");
      HaltContainer(*c);
      containers_.erase(containers_.begin() + (c - containers_.data()));
      return reply(204, nullptr);
    }
  }
  return reply(501, {{"message", "the simulated Docker engine does not support " + m + " " + url}});
}

}  // namespace hoist::engine
