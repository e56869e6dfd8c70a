#include "net/docker.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "core/strings.h"

namespace hoist::net {
namespace {

using std::chrono::milliseconds;

std::pair<int, int> ParseApi(std::string_view v) {
  int major = 0, minor = 0;
  std::sscanf(std::string(v).c_str(), "%d.%d", &major, &minor);
  return {major, minor};
}

/// RFC 3986 percent-encoding; `keep` lists extra characters left as they are.
std::string Encode(std::string_view s, std::string_view keep = "") {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || keep.find(static_cast<char>(c)) != keep.npos) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

/// A container, volume or exec id/name as one path segment.
std::string Segment(const std::string& what, const std::string& id) {
  if (id.empty()) throw DockerError(0, "invalid", what + " must not be empty");
  return Encode(id);
}

/// An image reference keeps its '/' and ':' ("registry:5000/team/app:1.2").
std::string ImageRef(const std::string& name) {
  if (name.empty()) throw DockerError(0, "invalid", "image name must not be empty");
  for (size_t start = 0; start <= name.size();) {
    size_t end = std::min(name.find('/', start), name.size());
    std::string_view part = std::string_view(name).substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      throw DockerError(0, "invalid", "bad image name \"" + name + "\"");
    }
    start = end + 1;
  }
  return Encode(name, "/:@");
}

std::string CodeForStatus(int status) {
  switch (status) {
    case 400: return "invalid";
    case 404: return "not_found";
    case 409: return "conflict";
    default: return "docker_error";
  }
}

/// Docker's JSON message stream (build, load): one object per line.
/// Returns the text of the "stream" messages; throws on an "error" message.
std::string ParseMessages(const std::string& body, const std::string& action, std::string* aux_id) {
  std::string log;
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    std::string line = Trim(body.substr(start, end - start));
    start = end + 1;
    if (line.empty()) continue;
    json msg = json::parse(line, nullptr, false);
    if (msg.is_discarded() || !msg.is_object()) {
      log += line + "\n";
      continue;
    }
    if (msg.contains("error")) {
      std::string err = msg["error"].is_string() ? msg["error"].get<std::string>() : msg["error"].dump();
      throw DockerError(200, "failed", action + ": " + Trim(err));
    }
    if (msg.contains("stream") && msg["stream"].is_string()) log += msg["stream"].get<std::string>();
    if (aux_id && msg.contains("aux") && msg["aux"].is_object() && msg["aux"].contains("ID")) {
      *aux_id = msg["aux"]["ID"].get<std::string>();
    }
  }
  return log;
}

std::string JoinArgs(const std::vector<std::string>& argv) { return fmt::format("{}", fmt::join(argv, " ")); }

}  // namespace

std::string MinApiVersion(std::string_view a, std::string_view b) {
  return ParseApi(a) <= ParseApi(b) ? std::string(a) : std::string(b);
}

bool LooksMultiplexed(std::string_view data) {
  if (data.empty()) return false;
  size_t pos = 0;
  while (pos < data.size()) {
    if (pos + 8 > data.size()) return false;
    auto u = reinterpret_cast<const unsigned char*>(data.data() + pos);
    if (u[0] > 3 || u[1] || u[2] || u[3]) return false;
    size_t len = (size_t{u[4]} << 24) | (size_t{u[5]} << 16) | (size_t{u[6]} << 8) | u[7];
    pos += 8 + len;
  }
  return pos == data.size();
}

Output Demultiplex(std::string_view data) {
  Output o;
  size_t pos = 0;
  while (pos + 8 <= data.size()) {
    auto u = reinterpret_cast<const unsigned char*>(data.data() + pos);
    size_t len = (size_t{u[4]} << 24) | (size_t{u[5]} << 16) | (size_t{u[6]} << 8) | u[7];
    pos += 8;
    std::string_view chunk = data.substr(pos, std::min(len, data.size() - pos));
    (u[0] == 1 ? o.out : o.err).append(chunk);
    pos += chunk.size();
  }
  return o;
}

DockerClient::DockerClient(std::string socket, HttpSend send) : socket_(std::move(socket)), send_(std::move(send)) {
  if (socket_.empty()) socket_ = "/var/run/docker.sock";
  if (socket_.starts_with("unix://")) {
    unix_socket_ = socket_.substr(7);
    base_url_ = "http://localhost";
  } else if (socket_.starts_with("tcp://")) {
    base_url_ = "http://" + socket_.substr(6);
  } else if (socket_.starts_with("http://") || socket_.starts_with("https://")) {
    base_url_ = socket_;
  } else {
    unix_socket_ = socket_;
    base_url_ = "http://localhost";
  }
  while (base_url_.ends_with("/")) base_url_.pop_back();
  version_ = SendJson({.method = "GET", .path = "/version", .action = "version", .versioned = false});
  std::string server = version_.value("ApiVersion", "");
  if (server.empty()) throw DockerError(0, "unavailable", "dockerd at " + socket_ + " did not report its API version");
  if (ParseApi(server) < ParseApi(kDockerMinApi)) {
    throw DockerError(0, "unavailable",
                      fmt::format("dockerd at {} speaks API {}, hoist needs at least {}", socket_, server,
                                  kDockerMinApi));
  }
  api_ = MinApiVersion(server, kDockerMaxApi);
}

HttpResponse DockerClient::Send(const Call& call) {
  HttpRequest req;
  req.method = call.method;
  req.url = base_url_ + (call.versioned ? "/v" + api_ : "") + call.path;
  char sep = '?';
  for (const auto& [k, v] : call.query) {
    req.url += sep + Encode(k) + "=" + Encode(v);
    sep = '&';
  }
  if (!call.content_type.empty()) req.headers.emplace_back("Content-Type", call.content_type);
  req.body = call.body;
  req.timeout = call.timeout;
  req.unix_socket = unix_socket_;
  HttpResponse resp = send_(req);
  if (!resp.ok()) {
    if (resp.stopped || resp.error_code == "timeout") {
      throw DockerError(0, resp.error_code, call.action + ": " + resp.error);
    }
    throw DockerError(0, "unavailable", "cannot reach dockerd at " + socket_ + ": " + resp.error);
  }
  if ((resp.status >= 200 && resp.status < 300) || resp.status == 304) return resp;
  std::string message;
  json err = json::parse(resp.body, nullptr, false);
  if (err.is_object() && err.contains("message") && err["message"].is_string()) {
    message = err["message"].get<std::string>();
  } else {
    message = Trim(resp.body);
    if (message.size() > 500) message = message.substr(0, 500) + "…";
    if (message.empty()) message = "no message";
  }
  throw DockerError(resp.status, CodeForStatus(resp.status),
                    fmt::format("{}: {} (HTTP {})", call.action, Trim(message), resp.status));
}

json DockerClient::SendJson(const Call& call) {
  HttpResponse resp = Send(call);
  if (resp.body.empty()) return nullptr;
  json j = json::parse(resp.body, nullptr, false);
  if (j.is_discarded()) {
    throw DockerError(resp.status, "docker_error", call.action + ": dockerd answered with invalid JSON");
  }
  return j;
}

bool DockerClient::Ping() {
  HttpResponse r = Send({.method = "GET", .path = "/_ping", .timeout = milliseconds(10000), .action = "ping",
                         .versioned = false});
  return Trim(r.body) == "OK";
}

json DockerClient::Version() { return SendJson({.method = "GET", .path = "/version", .action = "version"}); }

namespace {
std::string FiltersParam(const json& filters) { return filters.is_object() && !filters.empty() ? filters.dump() : ""; }
}  // namespace

json DockerClient::ListContainers(bool all, const json& filters) {
  Call c{.method = "GET", .path = "/containers/json", .action = "list containers"};
  if (all) c.query.emplace_back("all", "1");
  if (auto f = FiltersParam(filters); !f.empty()) c.query.emplace_back("filters", f);
  return SendJson(c);
}

json DockerClient::Inspect(const std::string& id) {
  return SendJson({.method = "GET", .path = "/containers/" + Segment("container", id) + "/json",
                   .action = "inspect container " + id});
}

json DockerClient::Create(const ContainerSpec& spec) {
  Call c{.method = "POST",
         .path = "/containers/create",
         .body = ContainerCreateBody(spec).dump(),
         .content_type = "application/json",
         .action = spec.name.empty() ? "create container" : "create container " + spec.name};
  if (!spec.name.empty()) c.query.emplace_back("name", spec.name);
  return SendJson(c);
}

bool DockerClient::Start(const std::string& id) {
  return Send({.method = "POST", .path = "/containers/" + Segment("container", id) + "/start",
               .action = "start container " + id})
             .status != 304;
}

bool DockerClient::Stop(const std::string& id, std::optional<int> timeout) {
  Call c{.method = "POST", .path = "/containers/" + Segment("container", id) + "/stop",
         .action = "stop container " + id};
  if (timeout) {
    c.query.emplace_back("t", std::to_string(*timeout));
    c.timeout = milliseconds((*timeout + 60) * 1000);
  }
  return Send(c).status != 304;
}

void DockerClient::Restart(const std::string& id, std::optional<int> timeout) {
  Call c{.method = "POST", .path = "/containers/" + Segment("container", id) + "/restart",
         .action = "restart container " + id};
  if (timeout) {
    c.query.emplace_back("t", std::to_string(*timeout));
    c.timeout = milliseconds((*timeout + 60) * 1000);
  }
  Send(c);
}

void DockerClient::Kill(const std::string& id, const std::string& signal) {
  Call c{.method = "POST", .path = "/containers/" + Segment("container", id) + "/kill",
         .action = "kill container " + id};
  if (!signal.empty()) c.query.emplace_back("signal", signal);
  Send(c);
}

void DockerClient::Remove(const std::string& id, bool force, bool volumes) {
  Call c{.method = "DELETE", .path = "/containers/" + Segment("container", id), .action = "remove container " + id};
  if (force) c.query.emplace_back("force", "1");
  if (volumes) c.query.emplace_back("v", "1");
  Send(c);
}

json DockerClient::Wait(const std::string& id, const std::string& condition, milliseconds timeout) {
  Call c{.method = "POST", .path = "/containers/" + Segment("container", id) + "/wait", .timeout = timeout,
         .action = "wait for container " + id};
  if (!condition.empty()) c.query.emplace_back("condition", condition);
  return SendJson(c);
}

Output DockerClient::Logs(const std::string& id, const LogOptions& o) {
  Call c{.method = "GET", .path = "/containers/" + Segment("container", id) + "/logs",
         .action = "logs of container " + id};
  c.query.emplace_back("stdout", o.stdout_ ? "1" : "0");
  c.query.emplace_back("stderr", o.stderr_ ? "1" : "0");
  if (o.tail) c.query.emplace_back("tail", std::to_string(*o.tail));
  if (o.since) c.query.emplace_back("since", fmt::format("{:.9f}", *o.since));
  if (o.timestamps) c.query.emplace_back("timestamps", "1");
  HttpResponse r = Send(c);
  if (LooksMultiplexed(r.body)) return Demultiplex(r.body);
  return {r.body, ""};  // a TTY container: one raw stream
}

ExecResult DockerClient::Exec(const std::string& id, const ExecOptions& o) {
  if (o.cmd.empty()) throw DockerError(0, "invalid", "exec in container " + id + ": cmd must not be empty");
  std::string action = "exec in container " + id;
  json create{{"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true}, {"Tty", false}, {"Cmd", o.cmd}};
  if (!o.env.empty()) create["Env"] = o.env;
  if (!o.user.empty()) create["User"] = o.user;
  if (!o.workdir.empty()) create["WorkingDir"] = o.workdir;
  json created = SendJson({.method = "POST", .path = "/containers/" + Segment("container", id) + "/exec",
                           .body = create.dump(), .content_type = "application/json", .action = action});
  std::string exec_id = created.value("Id", "");
  if (exec_id.empty()) throw DockerError(0, "docker_error", action + ": dockerd returned no exec id");
  HttpResponse r = Send({.method = "POST",
                         .path = "/exec/" + Segment("exec", exec_id) + "/start",
                         .body = json{{"Detach", false}, {"Tty", false}}.dump(),
                         .content_type = "application/json",
                         .timeout = o.timeout,
                         .action = action});
  ExecResult result;
  Output out = LooksMultiplexed(r.body) ? Demultiplex(r.body) : Output{r.body, ""};
  result.out = std::move(out.out);
  result.err = std::move(out.err);
  // The stream closes as the process exits; dockerd may record the exit
  // code a moment later.
  for (int attempt = 0; attempt < 100; ++attempt) {
    json info = SendJson({.method = "GET", .path = "/exec/" + Segment("exec", exec_id) + "/json", .action = action});
    if (!info.value("Running", false) && info.contains("ExitCode") && info["ExitCode"].is_number_integer()) {
      result.exit_code = info["ExitCode"].get<int>();
      return result;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  throw DockerError(0, "docker_error", action + ": dockerd reported no exit code");
}

void DockerClient::PutArchive(const std::string& id, const std::string& dir, const std::string& tar) {
  Send({.method = "PUT",
        .path = "/containers/" + Segment("container", id) + "/archive",
        .query = {{"path", dir}},
        .body = tar,
        .content_type = "application/x-tar",
        .timeout = milliseconds(600000),
        .action = "copy into container " + id + ":" + dir});
}

std::string DockerClient::GetArchive(const std::string& id, const std::string& path) {
  return Send({.method = "GET",
               .path = "/containers/" + Segment("container", id) + "/archive",
               .query = {{"path", path}},
               .timeout = milliseconds(600000),
               .action = "copy from container " + id + ":" + path})
      .body;
}

json DockerClient::ListImages(bool all, const json& filters) {
  Call c{.method = "GET", .path = "/images/json", .action = "list images"};
  if (all) c.query.emplace_back("all", "1");
  if (auto f = FiltersParam(filters); !f.empty()) c.query.emplace_back("filters", f);
  return SendJson(c);
}

json DockerClient::InspectImage(const std::string& name) {
  return SendJson({.method = "GET", .path = "/images/" + ImageRef(name) + "/json", .action = "inspect image " + name});
}

void DockerClient::TagImage(const std::string& name, const std::string& repo, const std::string& tag) {
  Call c{.method = "POST", .path = "/images/" + ImageRef(name) + "/tag", .query = {{"repo", repo}},
         .action = "tag image " + name};
  if (!tag.empty()) c.query.emplace_back("tag", tag);
  Send(c);
}

json DockerClient::RemoveImage(const std::string& name, bool force, bool prune) {
  Call c{.method = "DELETE", .path = "/images/" + ImageRef(name), .action = "remove image " + name};
  if (force) c.query.emplace_back("force", "1");
  if (!prune) c.query.emplace_back("noprune", "1");
  return SendJson(c);
}

BuildResult DockerClient::Build(const std::string& context_tar, const BuildOptions& o) {
  std::string action = o.tag.empty() ? "build image" : "build image " + o.tag;
  Call c{.method = "POST",
         .path = "/build",
         .query = {{"dockerfile", o.dockerfile}, {"rm", "1"}, {"forcerm", "1"}, {"version", "1"}},
         .body = context_tar,
         .content_type = "application/x-tar",
         .timeout = o.timeout,
         .action = action};
  if (!o.tag.empty()) c.query.emplace_back("t", o.tag);
  if (o.no_cache) c.query.emplace_back("nocache", "1");
  if (!o.build_args.empty()) c.query.emplace_back("buildargs", json(o.build_args).dump());
  if (!o.labels.empty()) c.query.emplace_back("labels", json(o.labels).dump());
  HttpResponse r = Send(c);
  BuildResult result;
  result.log = ParseMessages(r.body, action, &result.id);
  if (result.id.empty() && !o.tag.empty()) result.id = InspectImage(o.tag).value("Id", "");
  return result;
}

std::string DockerClient::LoadImages(const std::string& tar) {
  HttpResponse r = Send({.method = "POST",
                         .path = "/images/load",
                         .query = {{"quiet", "1"}},
                         .body = tar,
                         .content_type = "application/x-tar",
                         .timeout = milliseconds(600000),
                         .action = "load images"});
  return ParseMessages(r.body, "load images", nullptr);
}

std::string DockerClient::SaveImage(const std::string& name) {
  return Send({.method = "GET",
               .path = "/images/" + ImageRef(name) + "/get",
               .timeout = milliseconds(600000),
               .action = "save image " + name})
      .body;
}

json DockerClient::ListVolumes(const json& filters) {
  Call c{.method = "GET", .path = "/volumes", .action = "list volumes"};
  if (auto f = FiltersParam(filters); !f.empty()) c.query.emplace_back("filters", f);
  json j = SendJson(c);
  return j.is_object() && j.contains("Volumes") && j["Volumes"].is_array() ? j["Volumes"] : json::array();
}

json DockerClient::InspectVolume(const std::string& name) {
  return SendJson({.method = "GET", .path = "/volumes/" + Segment("volume", name), .action = "inspect volume " + name});
}

json DockerClient::CreateVolume(const std::string& name, const std::string& driver,
                                const std::map<std::string, std::string>& labels,
                                const std::map<std::string, std::string>& driver_opts) {
  json body = json::object();
  if (!name.empty()) body["Name"] = name;
  if (!driver.empty()) body["Driver"] = driver;
  if (!labels.empty()) body["Labels"] = labels;
  if (!driver_opts.empty()) body["DriverOpts"] = driver_opts;
  return SendJson({.method = "POST", .path = "/volumes/create", .body = body.dump(),
                   .content_type = "application/json",
                   .action = name.empty() ? "create volume" : "create volume " + name});
}

void DockerClient::RemoveVolume(const std::string& name, bool force) {
  Call c{.method = "DELETE", .path = "/volumes/" + Segment("volume", name), .action = "remove volume " + name};
  if (force) c.query.emplace_back("force", "1");
  Send(c);
}

json DockerClient::ListNetworks(const json& filters) {
  Call c{.method = "GET", .path = "/networks", .action = "list networks"};
  if (auto f = FiltersParam(filters); !f.empty()) c.query.emplace_back("filters", f);
  return SendJson(c);
}

sys::ProcessResult Compose(const ComposeOptions& o, const ProcessRunner& run) {
  std::map<std::string, std::string> env;
  if (!o.socket.empty()) {
    env["DOCKER_HOST"] = o.socket.find("://") == std::string::npos ? "unix://" + o.socket : o.socket;
  }
  auto probe = [&](std::vector<std::string> argv) {
    try {
      return run({.argv = std::move(argv), .env = env, .timeout = milliseconds(30000)}).ok();
    } catch (const Error& e) {
      if (e.code() == "not_found") return false;
      throw;
    }
  };
  std::vector<std::string> argv;
  if (probe({"docker", "compose", "version"})) {
    argv = {"docker", "compose"};
  } else if (probe({"docker-compose", "version"})) {
    argv = {"docker-compose"};
  } else {
    throw DockerError(0, "unavailable",
                      "docker compose needs the Docker CLI with its compose plugin (docker compose) or "
                      "docker-compose, and neither was found in PATH (install the Debian package docker-compose)");
  }
  for (const auto& f : o.files) {
    argv.push_back("-f");
    argv.push_back(f);
  }
  if (!o.project.empty()) {
    argv.push_back("-p");
    argv.push_back(o.project);
  }
  argv.insert(argv.end(), o.args.begin(), o.args.end());
  sys::ProcessResult r = run({.argv = argv, .env = env, .cwd = o.cwd, .timeout = o.timeout});
  if (!r.ok()) {
    std::string err = Trim(r.err);
    if (err.size() > 1000) err = "…" + err.substr(err.size() - 1000);
    std::string why = r.timed_out ? "timed out" : r.signal ? fmt::format("was killed by signal {}", r.signal)
                                                           : fmt::format("exited with {}", r.exit_code);
    throw DockerError(0, r.timed_out ? "timeout" : "failed",
                      fmt::format("{} {}{}", JoinArgs(argv), why, err.empty() ? "" : ": " + err));
  }
  return r;
}

}  // namespace hoist::net
