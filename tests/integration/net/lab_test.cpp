// The test hosts' LAN (support/ssh_lab), which the fleet tests stand on: a
// process Spawned in one host's namespace is reached from another host at
// its LAN address and nowhere else, nginx in a load balancer's namespace
// proxies the test's requests to backends on two hosts, a service of the
// test's own namespace bound on the gateway is reached from a host, two
// labs at once get separate LANs, and nothing has a way out.
#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/colour_server.h"
#include "support/nginx_server.h"
#include "support/ssh_lab.h"
#include "support/support.h"
#include "sys/probe.h"

namespace hoist::test {
namespace {

constexpr int kPort = 8080;  // a fresh namespace has every port free

std::vector<std::string> Backend(const std::string& colour, const std::string& address) {
  return {HOIST_TEST_BACKEND, "--colour", colour, "--address", address, "--port", std::to_string(kPort)};
}

std::string At(const std::string& address, int port) { return address + ":" + std::to_string(port); }

// Waited for from the test's namespace, which reaches the LAN through the
// gateway; the checks below then ask from inside the hosts.
void WaitAccepts(const std::string& address, int port, const std::string& log) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!sys::TcpConnect(address, port, std::chrono::milliseconds(200)).ok) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                    At(address, port) << " did not accept within 10 s: " << ReadAll(log));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// What the backend's client mode printed inside the host's namespace:
// "200 <colour>" or "connect: <strerror>".
std::string From(SshLab& lab, const std::string& host, const std::string& mode, const std::string& target) {
  auto r = lab.Exec(host, {HOIST_TEST_BACKEND, mode, target}, std::chrono::seconds(10));
  INFO(r.err);
  std::string out = r.out;
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// br_netfilter hands bridged frames to iptables when this is 1; the lab's
// bridge must work either way, and a failure should say which it was.
std::string BridgeNf() {
  std::string v = ReadAll("/proc/sys/net/bridge/bridge-nf-call-iptables");
  return v.empty() ? "absent" : v.substr(0, 1);
}

TEST_SUITE("net/lab") {
  TEST_CASE("a listener Spawned in one host is reached from another at its LAN address, and the hosts stay apart") {
    INFO("bridge-nf-call-iptables: " << BridgeNf());
    SshLab lab({"web1", "web2"});
    const auto& web1 = lab.host("web1");
    const auto& web2 = lab.host("web2");
    CHECK(web1.lan_address == lab.lan_prefix() + ".2");
    CHECK(web2.lan_address == lab.lan_prefix() + ".3");
    std::string log = lab.dir() + "/web2-backend.log";
    lab.Spawn("web2", Backend("web2", web2.lan_address), log);
    WaitAccepts(web2.lan_address, kPort, log);

    CHECK(From(lab, "web1", "--get", At(web2.lan_address, kPort)) == "200 web2");
    // web1 is a namespace of its own: web2's listener is not on its loopback...
    CHECK(From(lab, "web1", "--connect", At("127.0.0.1", kPort)) == "connect: Connection refused");
    // ...and the /30s end in the test's namespace: web1 has no route to web2's.
    CHECK(From(lab, "web1", "--connect", At(web2.address, 22)) == "connect: Network is unreachable");
  }

  TEST_CASE("nginx in the load balancer's namespace proxies the test's requests to backends on two hosts") {
    INFO("bridge-nf-call-iptables: " << BridgeNf());
    SshLab lab({"web1", "web2", "lb1"});
    for (const char* name : {"web1", "web2"}) {
      const auto& h = lab.host(name);
      std::string log = lab.dir() + "/" + name + "-backend.log";
      lab.Spawn(name, Backend(name, h.lan_address), log);
      WaitAccepts(h.lan_address, kPort, log);
    }
    const auto& lb1 = lab.host("lb1");
    TempDir dir("lab-nginx");
    NginxOptions o;
    o.netns = lb1.netns;
    o.listen_address = "0.0.0.0";
    o.client_address = lb1.address;
    o.upstream_conf = "upstream api {\n    server " + At(lab.host("web1").lan_address, kPort) + ";\n    server " +
                      At(lab.host("web2").lan_address, kPort) + ";\n}\n";
    NginxServer nginx(dir.path, o);
    nginx.StartOrSkip();
    CHECK(nginx.url("/x") == "http://" + At(lb1.address, nginx.port()) + "/x");
    auto where = sys::RunProcess({.argv = {"ip", "netns", "identify", std::to_string(nginx.MasterPid())},
                                  .timeout = std::chrono::seconds(10)});
    CHECK(where.out == lb1.netns + "\n");

    // Round robin over two servers: four requests are two each.
    std::multiset<std::string> colours;
    for (int i = 0; i < 4; ++i) {
      Answer a = HttpGet(lb1.address, nginx.port());
      INFO(a.error << " " << ReadAll(nginx.error_log()));
      CHECK(a.status == 200);
      colours.insert(a.colour);
    }
    CHECK(colours == std::multiset<std::string>{"web1", "web1", "web2", "web2"});
    // Not on the test's loopback: nginx listens in lb1's namespace only.
    CHECK_FALSE(sys::TcpConnect("127.0.0.1", nginx.port(), std::chrono::milliseconds(500)).ok);
  }

  TEST_CASE("a service of the test's namespace bound on the LAN gateway is reached from a host, which has no way out") {
    INFO("bridge-nf-call-iptables: " << BridgeNf());
    SshLab lab({"app1"});
    ColourServer gateway("gateway", 0, lab.lan_gateway());
    CHECK(From(lab, "app1", "--get", gateway.address()) == "200 gateway");
    CHECK(lab.Exec("app1", {"ip", "-4", "route", "show", "default"}).out == "");
    // The test's namespace may well reach this; a host must not.
    CHECK(From(lab, "app1", "--connect", "1.1.1.1:443") == "connect: Network is unreachable");
  }

  TEST_CASE("two labs at once get LANs of their own") {
    SshLab a({"a1"});
    SshLab b({"b1"});
    CHECK(a.lan_prefix() != b.lan_prefix());
    ColourServer on_b("b", 0, b.lan_gateway());
    CHECK(From(b, "b1", "--get", on_b.address()) == "200 b");
    CHECK(From(a, "a1", "--connect", on_b.address()) == "connect: Network is unreachable");
  }
}

}  // namespace
}  // namespace hoist::test
