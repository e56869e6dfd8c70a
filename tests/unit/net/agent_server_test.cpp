// engine/agent_server and engine/remote_world over a pipe pair: the agent
// serves the real world of a temp dir on one thread, a RemoteWorld calls
// it from the test. Files, processes and database operations act for
// real; errors keep the area, code and message the local call raises; a
// mismatched hello ends the conversation; RecordingWorld journals the host.
#include "engine/agent_server.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "core/error.h"
#include "core/interrupt.h"
#include "db/connection.h"
#include "engine/recorded_world.h"
#include "engine/remote_world.h"
#include "support/support.h"
#include "sys/fs.h"
#include "unit/net/test_server.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

/// An agent on a thread and a RemoteWorld talking to it through two pipes.
struct PipeAgent {
  int to_agent[2], from_agent[2];
  engine::RealWorld real;
  std::thread server;
  int server_exit = -1;
  std::unique_ptr<engine::RemoteWorld> world;

  explicit PipeAgent(std::string agent_version = HOIST_VERSION, std::string client_version = HOIST_VERSION) {
    REQUIRE(::pipe2(to_agent, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(from_agent, O_CLOEXEC) == 0);
    server = std::thread([this, agent_version] {
      server_exit = engine::ServeAgent(to_agent[0], from_agent[1], real, {agent_version, "web1"});
      ::close(from_agent[1]);
    });
    auto conn = std::make_unique<engine::AgentConnection>("web1", from_agent[0], to_agent[1], nullptr, client_version);
    conn->Hello();
    world = std::make_unique<engine::RemoteWorld>(std::move(conn));
  }
  ~PipeAgent() {
    world.reset();
    ::close(to_agent[1]);  // EOF: the agent ends
    if (server.joinable()) server.join();
    ::close(to_agent[0]);
    ::close(from_agent[0]);
  }
};

std::string BinaryBytes() {
  std::string b;
  for (int i = 0; i < 512; ++i) b.push_back(static_cast<char>(i % 256));
  return b;
}

TEST_SUITE("net/agent server") {
  TEST_CASE("files written, read and listed through the agent are the real files on its host") {
    TempDir dir("agent");
    PipeAgent a;
    engine::World& w = *a.world;
    CHECK(w.host() == "web1");
    w.MkdirP(dir / "conf", 0700);
    w.WriteAtomic(dir / "conf/app.env", BinaryBytes(), 0640);
    CHECK(ReadAll(dir / "conf/app.env") == BinaryBytes());
    CHECK(w.ReadFile(dir / "conf/app.env") == BinaryBytes());
    sys::Stat st = w.StatPath(dir / "conf/app.env");
    CHECK(st.exists);
    CHECK(st.type == "file");
    CHECK(st.size == 512);
    CHECK(st.mode == 0640);
    CHECK(w.StatPath(dir / "conf").mode == 0700);
    w.Chmod(dir / "conf/app.env", 0600);
    CHECK(sys::StatPath(dir / "conf/app.env").mode == 0600);
    w.WriteAtomic(dir / "conf/other", "first", 0600);
    w.WriteInPlace(dir / "conf/other", "in place");
    CHECK(ReadAll(dir / "conf/other") == "in place");
    CHECK(w.ListDir(dir / "conf") == std::vector<std::string>{"app.env", "other"});
    CHECK(w.Glob(dir / "conf/*.env") == std::vector<std::string>{dir / "conf/app.env"});
    CHECK(w.Remove(dir / "conf/other", false));
    CHECK_FALSE(w.StatPath(dir / "conf/other").exists);
    CHECK(w.Now() > 1.7e9);
    CHECK(w.Monotonic() > 0);
  }

  TEST_CASE("a process run through the agent gets its argv, env, cwd and binary stdin, and its exit and output come back") {
    TempDir dir("agent");
    PipeAgent a;
    sys::ProcessSpec s;
    s.argv = {"sh", "-c", "cat; printf '%s|%s|%s' \"$1\" \"$K\" \"$(pwd)\" >&2; exit 3", "sh", "two words"};
    s.env = {{"K", "v a l"}};
    s.cwd = dir.path;
    s.stdin_data = BinaryBytes();
    auto r = a.world->RunProcess(s);
    CHECK(r.exit_code == 3);
    CHECK(r.out == BinaryBytes());
    CHECK(r.err == "two words|v a l|" + dir.path);
    auto limited = a.world->RunProcess({.argv = {"printf", "0123456789"}, .max_output = 4});
    CHECK(limited.out == "0123");
    CHECK(limited.truncated);
    auto slow = a.world->RunProcess({.argv = {"sleep", "5"}, .timeout = std::chrono::milliseconds(100)});
    CHECK(slow.timed_out);
  }

  TEST_CASE("an error on the agent keeps the area, code and message of the same local call") {
    TempDir dir("agent");
    PipeAgent a;
    Error local = CatchError([&] { sys::ReadFile(dir / "missing"); });
    Error remote = CatchError([&] { a.world->ReadFile(dir / "missing"); });
    CHECK(remote.area() == local.area());
    CHECK(remote.code() == "not_found");
    CHECK(remote.message() == "host web1: " + local.message());
    Error proc = CatchError([&] { a.world->RunProcess({.argv = {"no-such-program-hoist"}}); });
    CHECK(proc.area() == "proc");
    CHECK(proc.code() == "not_found");
    CHECK(proc.message() == "host web1: no such program: no-such-program-hoist (searched PATH)");
    Error svc = CatchError([&] { a.world->StartService({.name = "blue", .argv = {"sleep", "1"}}); });
    CHECK(svc.area() == "service");
    CHECK(svc.code() == "invalid");
    Error relative = CatchError([&] { a.world->ReadFile("relative/path"); });
    CHECK(relative.code() == "invalid");
    CHECK(relative.message() ==
          "host web1: ReadFile: \"relative/path\" must be an absolute path on the host (the agent's working directory is not "
          "the project's)");
    // The conversation goes on after an error.
    a.world->WriteAtomic(dir / "after", "x", 0600);
    CHECK(a.world->ReadFile(dir / "after") == "x");
  }

  TEST_CASE("HTTP through the agent reaches a unix socket on its host, and a transport failure is data") {
    TempDir dir("agent");
    std::string sock = dir / "api.sock";
    TestServer server([](const ServedRequest& r) { return HttpAnswer(201, "unix " + r.target + " " + r.body); }, sock);
    PipeAgent a;
    net::HttpRequest req;
    req.method = "POST";
    req.url = "http://localhost/containers/create";
    req.body = std::string("{\"x\":\"\xff\"}");
    req.unix_socket = sock;
    auto resp = a.world->Http(req);
    CHECK(resp.status == 201);
    CHECK(resp.body == "unix /containers/create " + req.body);
    net::HttpRequest missing;
    missing.url = "http://localhost/_ping";
    missing.unix_socket = dir / "nobody.sock";
    auto err = a.world->Http(missing);
    CHECK(err.error_code == "connect_failed");
    CHECK(err.error == "cannot connect: No such file or directory");
  }

  TEST_CASE("the caller's step deadline stops a process on the agent's host") {
    PipeAgent a;
    sys::ProcessResult r;
    {
      DeadlineScope step(std::chrono::milliseconds(300));
      r = a.world->RunProcess({.argv = {"sleep", "10"}});
    }
    CHECK(r.timed_out);
    CHECK(r.seconds < 5);
    CHECK(a.world->RunProcess({.argv = {"true"}}).exit_code == 0);  // the next call has no deadline
  }

  TEST_CASE("an unknown method is an error naming it, and the agent keeps serving") {
    PipeAgent a;
    Error e = CatchError([&] { a.world->connection().Call("Teleport", {{"to", "mars"}}); });
    CHECK(e.area() == "agent");
    CHECK(e.code() == "unknown_method");
    CHECK(e.message() == std::string("host web1: the agent (hoist ") + HOIST_VERSION +
                             ") has no method \"Teleport\": the hoist that called it is another version");
    CHECK(a.world->Now() > 0);
  }

  TEST_CASE("an agent of another hoist version is refused at the hello, on both ends") {
    int to_agent[2], from_agent[2];
    REQUIRE(::pipe2(to_agent, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(from_agent, O_CLOEXEC) == 0);
    engine::RealWorld real;
    int server_exit = -1;
    std::thread server([&] {
      server_exit = engine::ServeAgent(to_agent[0], from_agent[1], real, {"0.0.9", "web1"});
      ::close(from_agent[1]);
    });
    engine::AgentConnection conn("web1", from_agent[0], to_agent[1]);
    Error e = CatchError([&] { conn.Hello(); });
    ::close(to_agent[1]);
    server.join();
    CHECK(server_exit == 2);
    CHECK(e.area() == "agent");
    CHECK(e.code() == "version_mismatch");
    // The agent refused first: its message, from its side of the wire.
    CHECK(e.message().find(std::string("host web1: the hoist that started this agent is hoist ") + HOIST_VERSION +
                           " (protocol 1), this is hoist 0.0.9 (protocol 1)") == 0);
    ::close(to_agent[0]);
    ::close(from_agent[0]);
  }

  TEST_CASE("an agent that never answers its hello is a timeout naming the host, not a hang") {
    int to_agent[2], from_agent[2];
    REQUIRE(::pipe2(to_agent, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(from_agent, O_CLOEXEC) == 0);
    engine::AgentConnection conn("web1", from_agent[0], to_agent[1]);
    Error e = CatchError([&] { conn.Hello(std::chrono::milliseconds(200)); });
    CHECK(e.code() == "timeout");
    CHECK(e.message() ==
          "host web1: the agent did not answer its hello within 0.2 s; run the agent there by hand (ssh HOST <agent "
          "path> agent --stdio < /dev/null) to see what it waits for");
    for (int fd : {to_agent[0], to_agent[1], from_agent[0], from_agent[1]}) ::close(fd);
  }

  TEST_CASE("a service started through the agent runs on its host and stops through it") {
    TempDir dir("agent");
    PipeAgent a;
    sys::ServiceSpec s{.name = "blue", .argv = {"sleep", "30"}, .pid_file = dir / "blue.pid", .log_file = dir / "blue.log"};
    pid_t pid = a.world->StartService(s);
    CHECK(pid > 0);
    CHECK(a.world->ProcessAlive(pid));
    CHECK(a.world->ReadPidFile(dir / "blue.pid") == pid);
    CHECK(a.world->CmdLine(pid).find("sleep") != std::string::npos);
    CHECK(a.world->ServiceStatusOf(s).state == "running");
    auto stopped = a.world->StopService(s, std::chrono::milliseconds(2000));
    CHECK(stopped.how == "term");
    CHECK(a.world->ServiceStatusOf(s).state == "down");
    CHECK_FALSE(a.world->TcpConnect("127.0.0.1", 1, std::chrono::milliseconds(200)).ok);
  }

  TEST_CASE("a SQLite backup, its verify and an integrity check run where the database file is") {
    TempDir dir("agent");
    {
      db::OpenOptions o;
      o.create = true;
      auto c = db::Open("sqlite://" + dir / "app.db", o);
      c->Exec("CREATE TABLE t (x INTEGER)");
      c->Exec("INSERT INTO t VALUES (1), (2)");
    }
    PipeAgent a;
    json b = a.world->BackupSqlite(dir / "app.db", dir / "backups", {{"label", "pre-deploy"}});
    std::string path = b["path"];
    CHECK(path.find(dir / "backups/app-pre-deploy-") == 0);
    CHECK(sys::StatPath(path).exists);
    CHECK(sys::StatPath(b["manifest_path"]).exists);
    CHECK(b["manifest"]["sha256"] == b["sha256"]);
    json v = a.world->VerifyBackup(path);
    CHECK(v["ok"] == true);
    CHECK(v["checksum_ok"] == true);
    json i = a.world->IntegrityCheck(dir / "app.db");
    CHECK(i["ok"] == true);
    CHECK(i["method"] == "integrity_check");
    Error missing = CatchError([&] { a.world->BackupSqlite(dir / "nope.db", dir / "backups"); });
    CHECK(missing.area() == "backup");
    CHECK(missing.code() == "not_found");
  }

  TEST_CASE("hoist agent --stdio, the real binary, answers over its stdin and stdout only, and ends at EOF") {
    TempDir dir("agent");
    sys::Coprocess agent({.argv = {HOIST_BINARY, "agent", "--stdio"}});
    {
      auto conn = std::make_unique<engine::AgentConnection>("web1", agent.stdout_fd(), agent.stdin_fd(),
                                                            [&] { return agent.StderrTail(); });
      conn->Hello();
      CHECK(conn->agent_hello()["hoist"] == HOIST_VERSION);
      CHECK(conn->agent_hello()["pid"] == agent.pid());
      engine::RemoteWorld w(std::move(conn));
      // A child's output comes back in the answer, never on the agent's stdout.
      auto r = w.RunProcess({.argv = {"sh", "-c", "echo out; echo err >&2"}});
      CHECK(r.out == "out\n");
      CHECK(r.err == "err\n");
      w.WriteAtomic(dir / "f", "x", 0600);
      CHECK(ReadAll(dir / "f") == "x");
    }
    agent.CloseStdin();
    auto r = agent.Wait();
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());

    auto no_flag = RunHoist(dir.path, {"agent"});
    CHECK(no_flag.exit_code == 2);
    CHECK(no_flag.err ==
          "hoist: agent: give --stdio (hoist starts its agent over ssh as `hoist agent --stdio`; docs/fleet.md)\n");
    // Something that is not a frame: exit 2, the reason on stderr, nothing on stdout.
    auto garbage = RunHoist(dir.path, {"agent", "--stdio"}, {}, std::string("hello?\n"));
    CHECK(garbage.exit_code == 2);
    CHECK(garbage.out.empty());
    CHECK(garbage.err.find("sent bytes that are not an agent frame: \"hello?\\x0a\"") != std::string::npos);
  }

  TEST_CASE("a recording of a remote world journals its host, and a replay for that host matches it") {
    TempDir dir("agent");
    PipeAgent a;
    std::vector<engine::RecordedCall> calls;
    engine::RecordingWorld rec(*a.world, [&](const std::string& op, const json& call, const json& response) {
      calls.push_back({op, call, response, std::nullopt, ""});
    });
    CHECK(rec.host() == "web1");
    rec.WriteAtomic(dir / "f", "data", 0600);
    CHECK(rec.ReadFile(dir / "f") == "data");
    REQUIRE(calls.size() == 2);
    CHECK(calls[0].call["host"] == "web1");
    CHECK(calls[1].call == json{{"path", dir / "f"}, {"host", "web1"}});
    engine::ReplayWorld replay(calls, "web1");
    replay.WriteAtomic(dir / "f", "data", 0600);
    CHECK(replay.ReadFile(dir / "f") == "data");
    CHECK_FALSE(replay.Finish().has_value());
    // The same calls replayed as local ones are another host's: a divergence.
    engine::ReplayWorld local(calls);
    CHECK(CatchError([&] { local.WriteAtomic(dir / "f", "data", 0600); }).code() == "diverged");
  }
}

}  // namespace
}  // namespace hoist::test
