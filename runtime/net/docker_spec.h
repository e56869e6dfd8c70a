// A container spec in hoist's terms (docs/docker.md) and its translation to
// the Docker Engine API's JSON: plain C++, so the bindings only read Lua
// tables into these structs and the translation is tested without Lua.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hoist::net {

using json = nlohmann::json;

struct Healthcheck {
  /// {"CMD", ...}, {"CMD-SHELL", "cmd"} or {"NONE"}; a list starting with
  /// anything else is an argv and gets "CMD" in front.
  std::vector<std::string> test{};
  double interval = 0, timeout = 0, start_period = 0;  ///< seconds; 0 = Docker's default
  int retries = 0;
};

/// What `docker create` takes, in hoist's terms (docs/docker.md).
struct ContainerSpec {
  std::string image{};
  std::string name{};
  std::optional<std::vector<std::string>> cmd{}, entrypoint{};
  std::vector<std::string> env{};    ///< "NAME=value"
  /// Docker CLI syntax: "8080", "18080:8080", "127.0.0.1:18080:8080/tcp".
  std::vector<std::string> ports{};
  /// "/host/dir:/in/container[:ro]" or "volume-name:/in/container"; volumes
  /// are the same syntax, listed after binds.
  std::vector<std::string> binds{}, volumes{};
  std::map<std::string, std::string> labels{};
  std::optional<Healthcheck> healthcheck{};
  /// "no", "always", "unless-stopped", "on-failure" or "on-failure:N".
  std::string restart{};
  /// NetworkMode: "host", "none", "bridge" or a network's name.
  std::string network{};
  std::string user{}, workdir{}, hostname{}, stop_signal{};
  std::optional<int> stop_timeout{};
};

/// The body of POST /containers/create. Throws DockerError "invalid" for a
/// bad port or restart policy, a missing image or an empty healthcheck test.
json ContainerCreateBody(const ContainerSpec& spec);

/// env = { NAME = "v" } -> {"NAME=v", ...}, sorted by name.
std::vector<std::string> EnvEntries(const std::map<std::string, std::string>& env);

/// Docker's filter map from hoist's filters ({ name = "web", label = {"a=b"} })
/// plus labels ({ app = "api" } -> label "app=api"). Throws DockerError
/// "invalid" "filters.<key> must be a string or a list of strings".
json FilterMap(const json& filters, const std::map<std::string, std::string>& labels);

}  // namespace hoist::net
