// The agent on real test hosts (network namespaces with their own sshd,
// support/ssh_lab): hoist uploads itself to a host without it or with
// another version, refuses a damaged upload, and a RemoteWorld then acts
// on that host through `hoist agent --stdio` over the host's one master,
// journaled with the host's name; an error there keeps its area and code.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/interrupt.h"
#include "db/connection.h"
#include "engine/recorded_world.h"
#include "engine/remote_world.h"
#include "net/agent_upload.h"
#include "net/ssh.h"
#include "support/ssh_lab.h"
#include "support/support.h"
#include "sys/fs.h"
#include "sys/process.h"
#include "sys/sha256.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

net::SshHostSpec Spec(const SshLab& lab, const std::string& name, int max_channels = 8) {
  net::SshHostSpec s;
  s.name = name;
  s.target = lab.Target(name);
  s.config_file = lab.ssh_config();
  s.max_channels = max_channels;
  s.connect_timeout = std::chrono::seconds(5);
  return s;
}

net::AgentUploadOptions Upload() {
  net::AgentUploadOptions o;
  o.local_binary = HOIST_BINARY;  // this test binary is not hoist
  return o;
}

std::string AgentPath(const SshLab& lab, const std::string& name) {
  return lab.CacheDir(name) + "/hoist/" +
         net::AgentDirName(HOIST_VERSION, net::LocalBinarySha256(HOIST_BINARY)) + "/hoist";
}

std::vector<std::string> Leftovers(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string n = e.path().filename();
    if (n != "hoist") out.push_back(n);
  }
  return out;
}

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

TEST_SUITE("net/agent") {
  TEST_CASE("hoist uploads itself to a host without it, and a second connect uses what is there") {
    SshLab lab({"web1"});
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    std::string path = AgentPath(lab, "web1");
    CHECK(net::ProbeAgent(web1, Upload()).found.empty());

    net::AgentInstall first;
    auto world = engine::ConnectRemoteWorld(web1, Upload(), &first);
    CHECK(first.path == path);
    CHECK(first.found.empty());
    CHECK(first.uploaded);
    CHECK(first.version == HOIST_VERSION);
    CHECK(sys::Sha256FileHex(path) == sys::Sha256FileHex(HOIST_BINARY));
    CHECK(ModeOf(path) == 0755);
    std::string dir = path.substr(0, path.rfind('/'));
    CHECK(ModeOf(dir) == 0700);
    CHECK(ModeOf(lab.CacheDir("web1") + "/hoist") == 0700);
    CHECK(Leftovers(dir).empty());
    CHECK(world->connection().agent_hello()["hoist"] == HOIST_VERSION);
    world.reset();

    net::AgentInstall second;
    world = engine::ConnectRemoteWorld(web1, Upload(), &second);
    CHECK_FALSE(second.uploaded);
    CHECK(second.found == std::string("hoist ") + HOIST_VERSION);
    CHECK(world->RunProcess({.argv = {"true"}}).exit_code == 0);
    // Every channel, the upload's and the agent's, went through one login.
    CHECK(lab.Logins("web1") == 1);

    // hoist hosts reports the agent it finds there (not hoist on PATH).
    TempDir project("agent-hosts");
    WriteFile(project / "hoist.lua", "return { environments = { prod = { hosts = {\n  web1 = { ssh = \"" +
                                         lab.Target("web1") + "\", ssh_config = \"" + lab.ssh_config() +
                                         "\" },\n} } } }\n");
    auto r = RunHoist(project.path, {"hosts"}, {{"XDG_RUNTIME_DIR", lab.dir()}});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find(std::string("web1  ok    ") + lab.Target("web1") + ": Linux") != std::string::npos);
    CHECK(r.out.find(std::string(", agent hoist ") + HOIST_VERSION + " (") != std::string::npos);
    auto j = RunHoist(project.path, {"--json", "hosts"}, {{"XDG_RUNTIME_DIR", lab.dir()}});
    auto ev = json::parse(j.out);
    CHECK(ev["hosts"][0]["hoist_version"] == HOIST_VERSION);
    CHECK(ev["hosts"][0]["agent_path"] == path);
  }

  TEST_CASE("an older hoist at the agent path is replaced by this one, and a host without one is reported so") {
    SshLab lab({"web1", "web2"});
    std::string path = AgentPath(lab, "web1");
    WriteFile(path, "#!/bin/sh\necho 'hoist 0.0.9'\n");
    REQUIRE(::chmod(path.c_str(), 0755) == 0);
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    net::AgentInstall got;
    auto world = engine::ConnectRemoteWorld(web1, Upload(), &got);
    CHECK(got.found == "hoist 0.0.9");
    CHECK(got.uploaded);
    CHECK(sys::Sha256FileHex(path) == sys::Sha256FileHex(HOIST_BINARY));
    CHECK(world->RunProcess({.argv = {"true"}}).exit_code == 0);
    // The other host's cache is its own: nothing there.
    CHECK_FALSE(sys::StatPath(AgentPath(lab, "web2")).exists);
    net::SshHost web2(Spec(lab, "web2"), lab.dir() + "/ctl");
    CHECK(net::ProbeAgent(web2, Upload()).found.empty());
  }

  TEST_CASE("a damaged upload is refused naming the host, removed, and the agent path is not touched") {
    SshLab lab({"web1"});
    std::string path = AgentPath(lab, "web1");
    WriteFile(path, "#!/bin/sh\necho 'hoist 0.0.9'\n");
    REQUIRE(::chmod(path.c_str(), 0755) == 0);
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    net::AgentUploadOptions o = Upload();
    // Bytes changed on their way (after hoist hashed them): the host's
    // sha256sum sees what arrived.
    o.tamper = [](std::string& bytes) { bytes[bytes.size() / 2] ^= 0x55; };
    Error e = CatchError([&] { net::EnsureAgent(web1, o); });
    CHECK(e.area() == "agent");
    CHECK(e.code() == "checksum_mismatch");
    std::string sha = net::LocalBinarySha256(HOIST_BINARY);
    CHECK(e.message().find("host web1 (" + lab.Target("web1") + "): the uploaded hoist arrived damaged (sha256 ") == 0);
    CHECK(e.message().find(", " + sha + " here); it was removed and " + path + " was not touched. Run again") !=
          std::string::npos);
    CHECK(ReadAll(path) == "#!/bin/sh\necho 'hoist 0.0.9'\n");
    CHECK(Leftovers(path.substr(0, path.rfind('/'))).empty());
    // Undamaged, it goes through.
    CHECK(net::EnsureAgent(web1, Upload()).uploaded);
  }

  TEST_CASE("a remote world runs processes, writes and reads files and starts services on its host, journaled with its name") {
    SshLab lab({"web1"});
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    auto remote = engine::ConnectRemoteWorld(web1, Upload());
    std::vector<engine::RecordedCall> calls;
    engine::RecordingWorld world(*remote, [&](const std::string& op, const json& call, const json& response) {
      calls.push_back({op, call, response, std::nullopt, ""});
    });
    const auto& h = lab.host("web1");

    auto where = world.RunProcess({.argv = {"ip", "-o", "-4", "addr", "show", "dev", "eth0"}});
    CHECK(where.exit_code == 0);
    CHECK(where.out.find(h.address + "/30") != std::string::npos);  // it ran in web1's namespace

    std::string file = h.dir + "/srv/app.env";
    world.MkdirP(h.dir + "/srv", 0700);
    world.WriteAtomic(file, std::string("K=v\n\0\xff", 6), 0600);
    CHECK(ReadAll(file) == std::string("K=v\n\0\xff", 6));
    CHECK(ModeOf(file) == 0600);
    CHECK(world.ReadFile(file) == std::string("K=v\n\0\xff", 6));

    sys::ServiceSpec blue{.name = "blue", .argv = {"sleep", "60"}, .pid_file = h.dir + "/blue.pid",
                          .log_file = h.dir + "/blue.log"};
    pid_t pid = world.StartService(blue);
    CHECK(world.ServiceStatusOf(blue).state == "running");
    // The service lives in the host's namespace: started there, not here.
    auto ns = sys::RunProcess({.argv = {"ip", "netns", "identify", std::to_string(pid)}});
    CHECK(ns.out == h.netns + "\n");
    CHECK(world.StopService(blue, std::chrono::milliseconds(2000)).how == "term");

    REQUIRE(calls.size() == 7);
    for (const auto& c : calls) CHECK(c.call["host"] == "web1");
    CHECK(calls[0].op == "RunProcess");
    CHECK(calls[4].op == "StartService");
    CHECK(calls[4].response["ok"] == pid);
    CHECK(lab.Logins("web1") == 1);

    // Where the SQLite file lives: a backup, its verify and an integrity
    // check made there (db/backup's own functions, run by the agent).
    {
      db::OpenOptions o;
      o.create = true;
      auto c = db::Open("sqlite://" + h.dir + "/app.db", o);
      c->Exec("CREATE TABLE t (x INTEGER)");
      c->Exec("INSERT INTO t VALUES (42)");
    }
    json b = remote->BackupSqlite(h.dir + "/app.db", h.dir + "/backups", {{"label", "pre-deploy"}});
    CHECK(sys::StatPath(b["path"]).exists);
    CHECK(remote->VerifyBackup(b["path"])["ok"] == true);
    CHECK(remote->IntegrityCheck(h.dir + "/app.db")["ok"] == true);
    FlipByte(b["path"], 200);
    json damaged = remote->VerifyBackup(b["path"]);
    CHECK(damaged["ok"] == false);
    CHECK(damaged["checksum_ok"] == false);
  }

  TEST_CASE("an error on the remote host keeps its area and code, Ctrl-C reaches it, and the agent's channel holds a slot") {
    SshLab lab({"web1"});
    net::SshHost web1(Spec(lab, "web1", /*max_channels=*/2), lab.dir() + "/ctl");
    auto world = engine::ConnectRemoteWorld(web1, Upload());
    const auto& h = lab.host("web1");
    Error local = CatchError([&] { sys::ReadFile(h.dir + "/missing"); });
    Error remote = CatchError([&] { world->ReadFile(h.dir + "/missing"); });
    CHECK(remote.area() == "fs");
    CHECK(remote.code() == "not_found");
    CHECK(remote.message() == "host web1: " + local.message());
    Error proc = CatchError([&] { world->RunProcess({.argv = {"no-such-program-hoist"}}); });
    CHECK(proc.area() == "proc");
    CHECK(proc.code() == "not_found");

    // Ctrl-C here stops the process there (a cancel frame), and the
    // conversation goes on.
    std::thread ctrl_c([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      RequestInterrupt();
    });
    auto r = world->RunProcess({.argv = {"sleep", "20"}});
    ctrl_c.join();
    ClearInterrupt();
    CHECK(r.interrupted);
    CHECK(r.seconds < 10);
    CHECK(world->RunProcess({.argv = {"echo", "after"}}).out == "after\n");

    // Two slots: the agent holds one, so one command at a time remains.
    net::ChannelSlot other = web1.TakeSlot();
    std::atomic<bool> ran = false;
    std::thread waiter([&] {
      web1.Run({"true"});
      ran = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK_FALSE(ran.load());  // both slots taken: it waits
    world.reset();            // the agent's channel ends and frees its slot
    waiter.join();
    CHECK(ran.load());
  }
}

}  // namespace
}  // namespace hoist::test
