#include "net/docker_spec.h"

#include <algorithm>
#include <cctype>

#include "net/docker.h"

namespace hoist::net {
namespace {

int64_t Nanos(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

/// "[ip:][host:]container[/proto]" -> ("8080/tcp", {HostIp, HostPort}).
std::pair<std::string, json> ParsePort(const std::string& spec) {
  auto bad = [&](const std::string& why) -> DockerError {
    return DockerError(0, "invalid", "bad port \"" + spec + "\": " + why +
                                         " (expected \"container\", \"host:container\" or \"ip:host:container\", "
                                         "with an optional /tcp or /udp)");
  };
  std::string rest = spec, proto = "tcp";
  if (auto slash = rest.rfind('/'); slash != std::string::npos) {
    proto = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (proto != "tcp" && proto != "udp" && proto != "sctp") throw bad("unknown protocol " + proto);
  }
  std::vector<std::string> parts;
  size_t start = 0;
  // An IPv6 host address comes in brackets: "[::1]:8080:80".
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string::npos) throw bad("unclosed [");
    parts.push_back(rest.substr(1, close - 1));
    start = close + 2;
    if (close + 1 >= rest.size() || rest[close + 1] != ':') throw bad("expected ':' after ]");
  }
  while (true) {
    size_t colon = rest.find(':', start);
    parts.push_back(rest.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() > 3) throw bad("too many ':'");
  auto is_port = [](const std::string& p) {
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit)) return false;
    int n = std::stoi(p);
    return n >= 1 && n <= 65535;
  };
  std::string container = parts.back();
  if (!is_port(container)) throw bad("container port must be 1-65535");
  std::string host_port = parts.size() >= 2 ? parts[parts.size() - 2] : "";
  std::string host_ip = parts.size() == 3 ? parts[0] : "";
  if (!host_port.empty() && !is_port(host_port)) throw bad("host port must be 1-65535");
  return {container + "/" + proto, json{{"HostIp", host_ip}, {"HostPort", host_port}}};
}

json RestartPolicy(const std::string& restart) {
  std::string name = restart;
  int retries = 0;
  if (auto colon = restart.find(':'); colon != std::string::npos) {
    name = restart.substr(0, colon);
    std::string n = restart.substr(colon + 1);
    if (name != "on-failure" || n.empty() || !std::all_of(n.begin(), n.end(), ::isdigit)) {
      throw DockerError(0, "invalid", "bad restart policy \"" + restart + "\"");
    }
    retries = std::stoi(n);
  }
  if (name != "no" && name != "always" && name != "unless-stopped" && name != "on-failure") {
    throw DockerError(0, "invalid", "bad restart policy \"" + restart +
                                        "\" (expected no, always, unless-stopped, on-failure or on-failure:N)");
  }
  json policy{{"Name", name}};
  if (retries) policy["MaximumRetryCount"] = retries;
  return policy;
}

}  // namespace

json ContainerCreateBody(const ContainerSpec& s) {
  if (s.image.empty()) throw DockerError(0, "invalid", "create container: image is required");
  json body{{"Image", s.image}};
  json host = json::object();
  if (s.cmd) body["Cmd"] = *s.cmd;
  if (s.entrypoint) body["Entrypoint"] = *s.entrypoint;
  if (!s.env.empty()) body["Env"] = s.env;
  if (!s.labels.empty()) body["Labels"] = s.labels;
  if (!s.user.empty()) body["User"] = s.user;
  if (!s.workdir.empty()) body["WorkingDir"] = s.workdir;
  if (!s.hostname.empty()) body["Hostname"] = s.hostname;
  if (!s.stop_signal.empty()) body["StopSignal"] = s.stop_signal;
  if (s.stop_timeout) body["StopTimeout"] = *s.stop_timeout;
  if (!s.ports.empty()) {
    json exposed = json::object(), bindings = json::object();
    for (const auto& p : s.ports) {
      auto [port, binding] = ParsePort(p);
      exposed[port] = json::object();
      bindings[port].push_back(binding);
    }
    body["ExposedPorts"] = exposed;
    host["PortBindings"] = bindings;
  }
  if (s.healthcheck) {
    const Healthcheck& h = *s.healthcheck;
    if (h.test.empty()) throw DockerError(0, "invalid", "healthcheck.test must not be empty");
    std::vector<std::string> test = h.test;
    if (test[0] != "CMD" && test[0] != "CMD-SHELL" && test[0] != "NONE") test.insert(test.begin(), "CMD");
    json hc{{"Test", test}};
    if (h.interval > 0) hc["Interval"] = Nanos(h.interval);
    if (h.timeout > 0) hc["Timeout"] = Nanos(h.timeout);
    if (h.start_period > 0) hc["StartPeriod"] = Nanos(h.start_period);
    if (h.retries > 0) hc["Retries"] = h.retries;
    body["Healthcheck"] = hc;
  }
  std::vector<std::string> binds = s.binds;
  binds.insert(binds.end(), s.volumes.begin(), s.volumes.end());
  if (!binds.empty()) host["Binds"] = binds;
  if (!s.restart.empty()) host["RestartPolicy"] = RestartPolicy(s.restart);
  if (!s.network.empty()) host["NetworkMode"] = s.network;
  if (!host.empty()) body["HostConfig"] = host;
  return body;
}

std::vector<std::string> EnvEntries(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

json FilterMap(const json& filters, const std::map<std::string, std::string>& labels) {
  json out = json::object();
  for (const auto& [k, v] : filters.items()) {
    if (v.is_string()) {
      out[k] = json::array({v});
    } else if (v.is_array()) {
      out[k] = v;
    } else {
      throw DockerError(0, "invalid", "filters." + k + " must be a string or a list of strings");
    }
  }
  for (const auto& [k, v] : labels) out["label"].push_back(k + "=" + v);
  return out;
}

}  // namespace hoist::net
