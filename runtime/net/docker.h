// The Docker Engine API client: JSON over HTTP over dockerd's unix socket.
// It sends through an HttpSend so a sandbox world can answer instead of
// dockerd. Errors are DockerError (a hoist::Error{"docker", code, ...})
// carrying Docker's own message and the HTTP status.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "net/docker_spec.h"
#include "net/http.h"
#include "sys/process.h"

namespace hoist::net {

using json = nlohmann::json;

/// Docker answered with an error status (or could not be reached: status 0).
/// Codes: 400 "invalid", 404 "not_found", 409 "conflict", other statuses
/// "docker_error"; "unavailable" (cannot reach dockerd), "timeout",
/// "interrupted", "failed" (a build or load that reported an error).
/// Messages: "<action>: <Docker's message> (HTTP <status>)".
class DockerError : public Error {
 public:
  DockerError(int status, std::string code, std::string message)
      : Error("docker", std::move(code), std::move(message)), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

/// The API version hoist speaks at most, and at least.
inline constexpr std::string_view kDockerMaxApi = "1.43";
inline constexpr std::string_view kDockerMinApi = "1.40";

struct Output {
  std::string out, err;
};

/// True when data is a sequence of Docker stream frames (8-byte headers:
/// stream type 0-3, three zero bytes, big-endian length), i.e. output of a
/// container without a TTY.
bool LooksMultiplexed(std::string_view data);
/// Splits a multiplexed stream into stdout and stderr (stdin and "system
/// error" frames go to err). A truncated last frame keeps what arrived.
Output Demultiplex(std::string_view data);

struct LogOptions {
  bool stdout_ = true, stderr_ = true;
  std::optional<int> tail{};      ///< last N lines
  std::optional<double> since{};  ///< epoch seconds
  bool timestamps = false;
};

struct ExecOptions {
  std::vector<std::string> cmd{};
  std::vector<std::string> env{};
  std::string user{}, workdir{};
  std::chrono::milliseconds timeout{0};  ///< 0 = none
};

struct ExecResult {
  int exit_code = -1;
  std::string out, err;
};

struct BuildOptions {
  std::string tag{};
  std::string dockerfile = "Dockerfile";
  std::map<std::string, std::string> build_args{}, labels{};
  bool no_cache = false;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

struct BuildResult {
  std::string id;   ///< "sha256:..."
  std::string log;  ///< the builder's output
};

class DockerClient {
 public:
  /// socket: "/var/run/docker.sock", "unix:///path" or "tcp://host:port".
  /// Negotiates the API version (GET /version: the lower of the server's
  /// and kDockerMaxApi). Throws DockerError "unavailable" when dockerd cannot
  /// be reached ("cannot reach dockerd at <socket>: <why>") or speaks an API
  /// older than kDockerMinApi.
  DockerClient(std::string socket, HttpSend send);

  const std::string& socket() const { return socket_; }
  const std::string& api_version() const { return api_; }
  /// The server's /version answer from the negotiation.
  const json& server_version() const { return version_; }

  /// True when /_ping answers OK; throws "unavailable" like the constructor.
  bool Ping();
  json Version();

  // Containers. `id` is an id, an id prefix or a name.
  /// filters: Docker's filter map ({"label": ["a=b"], "name": ["web"]}).
  json ListContainers(bool all, const json& filters = json::object());
  json Inspect(const std::string& id);
  /// Returns {"Id": ..., "Warnings": [...]}.
  json Create(const ContainerSpec& spec);
  /// false when it was already running (HTTP 304).
  bool Start(const std::string& id);
  /// false when it was already stopped. timeout: seconds before SIGKILL.
  bool Stop(const std::string& id, std::optional<int> timeout = std::nullopt);
  void Restart(const std::string& id, std::optional<int> timeout = std::nullopt);
  void Kill(const std::string& id, const std::string& signal = "");
  void Remove(const std::string& id, bool force = false, bool volumes = false);
  /// condition: "not-running" (default), "next-exit" or "removed". Returns
  /// {"StatusCode": n, ...}; throws "timeout" when timeout passes first.
  json Wait(const std::string& id, const std::string& condition = "",
            std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  Output Logs(const std::string& id, const LogOptions& options = {});
  ExecResult Exec(const std::string& id, const ExecOptions& options);
  /// Extracts a tar archive into directory `dir` of the container.
  void PutArchive(const std::string& id, const std::string& dir, const std::string& tar);
  /// A tar archive of `path` in the container (a file or a directory).
  std::string GetArchive(const std::string& id, const std::string& path);

  // Images.
  json ListImages(bool all = false, const json& filters = json::object());
  json InspectImage(const std::string& name);
  void TagImage(const std::string& name, const std::string& repo, const std::string& tag);
  json RemoveImage(const std::string& name, bool force = false, bool prune = true);
  /// POST /build with a tar context. Throws "failed" with the builder's
  /// error when a step fails.
  BuildResult Build(const std::string& context_tar, const BuildOptions& options);
  /// POST /images/load with a `docker save` archive; returns the output.
  std::string LoadImages(const std::string& tar);
  /// GET /images/{name}/get: the image as a `docker save` archive.
  std::string SaveImage(const std::string& name);

  // Volumes and networks.
  json ListVolumes(const json& filters = json::object());
  json InspectVolume(const std::string& name);
  json CreateVolume(const std::string& name, const std::string& driver = "",
                    const std::map<std::string, std::string>& labels = {},
                    const std::map<std::string, std::string>& driver_opts = {});
  void RemoveVolume(const std::string& name, bool force = false);
  json ListNetworks(const json& filters = json::object());

 private:
  struct Call {
    std::string method;
    std::string path;  ///< without the /vX.Y prefix
    std::vector<std::pair<std::string, std::string>> query{};
    std::string body{};
    std::string content_type{};
    std::chrono::milliseconds timeout{std::chrono::seconds(60)};
    std::string action{};  ///< "create container web", for messages
    bool versioned = true;
  };
  /// Sends; returns a 2xx or 304 response, throws DockerError otherwise.
  HttpResponse Send(const Call& call);
  json SendJson(const Call& call);

  std::string socket_;
  std::string unix_socket_;  ///< "" for tcp://
  std::string base_url_;
  HttpSend send_;
  std::string api_;
  json version_;
};

/// The lower of two "major.minor" API versions.
std::string MinApiVersion(std::string_view a, std::string_view b);

using ProcessRunner = std::function<sys::ProcessResult(const sys::ProcessSpec&)>;

struct ComposeOptions {
  std::vector<std::string> files{};
  std::string project{};
  std::vector<std::string> args{};   ///< e.g. {"up", "-d"}
  std::string socket{};              ///< sets DOCKER_HOST when not empty
  std::string cwd{};
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

/// Runs `docker compose -f ... -p project args...`, or `docker-compose` when
/// the compose plugin is missing, through run (the world's process runner).
/// Throws DockerError "unavailable" when neither exists, and "failed" when
/// the command exits non-zero (with its stderr). Returns the result.
sys::ProcessResult Compose(const ComposeOptions& options, const ProcessRunner& run);

}  // namespace hoist::net
