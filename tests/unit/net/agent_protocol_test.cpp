// Tests for net/agent_protocol: frames round-trip with their binary blobs,
// arrive in any pieces, and every way a stream can be wrong (too large,
// not a frame, bad JSON, bad blob sizes, EOF mid-frame) is one error with
// its code.
#include "net/agent_protocol.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "core/error.h"
#include "support/support.h"

namespace hoist::test {
namespace {

using net::agent::Decoder;
using net::agent::FrameReader;
using net::agent::Message;
using json = nlohmann::json;

std::string Binary() {
  std::string b;
  for (int i = 0; i < 256; ++i) b.push_back(static_cast<char>(i));
  return b + std::string("\0\0hst1", 6);
}

Message Sample() {
  Message m;
  m.head = {{"type", "call"}, {"id", 7}, {"method", "WriteAtomic"}};
  m.head["args"] = {{"path", "/srv/é app.env"}, {"data", m.Blob(Binary())}, {"empty", m.Blob("")}};
  return m;
}

TEST_SUITE("net/agent protocol") {
  TEST_CASE("a frame round-trips its JSON and its binary blobs byte for byte") {
    std::string bytes = net::agent::Encode(Sample());
    CHECK(bytes.substr(0, 4) == "hst1");
    Decoder d("the agent on host web1");
    d.Feed(bytes);
    auto m = d.Next();
    REQUIRE(m.has_value());
    CHECK(m->head["method"] == "WriteAtomic");
    CHECK(m->head["args"]["path"] == "/srv/é app.env");
    CHECK(m->BlobAt(m->head["args"]["data"]) == Binary());
    CHECK(m->BlobAt(m->head["args"]["empty"]).empty());
    CHECK_FALSE(m->head.contains("blobs"));
    CHECK_FALSE(d.Next().has_value());
    CHECK_FALSE(d.mid_frame());
  }

  TEST_CASE("frames that arrive a byte at a time, or two in one read, decode the same") {
    std::string one = net::agent::Encode(Sample());
    Message second;
    second.head = {{"type", "result"}, {"id", 8}, {"ok", true}};
    std::string two = net::agent::Encode(second);
    Decoder d("peer");
    int got = 0;
    for (char c : one + two) {
      d.Feed(std::string_view(&c, 1));
      while (auto m = d.Next()) {
        ++got;
        if (got == 1) CHECK(m->BlobAt(m->head["args"]["data"]) == Binary());
        if (got == 2) CHECK(m->head["ok"] == true);
      }
    }
    CHECK(got == 2);
    Decoder both("peer");
    both.Feed(one + two);
    CHECK(both.Next().has_value());
    CHECK(both.Next().has_value());
    CHECK_FALSE(both.Next().has_value());
  }

  TEST_CASE("an oversize frame is refused on both ends with frame_too_large before its body is read") {
    Message big;
    big.head = {{"type", "call"}};
    big.head["data"] = big.Blob(std::string(2000, 'x'));
    std::string n = std::to_string(net::agent::Encode(big).size());
    Error enc = CatchError([&] { net::agent::Encode(big, 1000); });
    CHECK(enc.code() == "frame_too_large");
    CHECK(enc.message().find("a frame of " + n + " bytes is over the agent protocol's limit of 1000 bytes") == 0);
    Decoder d("the agent on host web1", 1000);
    d.Feed(net::agent::Encode(big).substr(0, 12));  // only the header
    Error dec = CatchError([&] { d.Next(); });
    CHECK(dec.code() == "frame_too_large");
    CHECK(dec.message() ==
          "the agent on host web1 sent a frame of " + n + " bytes, over the limit of 1000 bytes: move less data per call");
  }

  TEST_CASE("bytes that are not a frame are a protocol error that shows them") {
    Decoder d("the agent on host web1");
    d.Feed("Welcome to web1!\n\x01");
    Error e = CatchError([&] { d.Next(); });
    CHECK(e.area() == "agent");
    CHECK(e.code() == "protocol");
    CHECK(e.message().find("the agent on host web1 sent bytes that are not an agent frame: \"Welcome to web1!\\x0a\\x01\"") == 0);

    std::string bad_json = net::agent::Encode(Sample());
    bad_json[12] = '[';  // the JSON object's opening brace
    bad_json[13] = '?';
    Decoder j("peer");
    j.Feed(bad_json);
    CHECK(CatchError([&] { j.Next(); }).code() == "protocol");

    // Blob sizes that do not add up to the header's count.
    Message m;
    m.head = {{"type", "x"}, {"blobs", {5}}};
    std::string lie = net::agent::Encode(m);
    Decoder b("peer");
    b.Feed(lie);
    Error sizes = CatchError([&] { b.Next(); });
    CHECK(sizes.message() == "peer sent a frame whose blob sizes do not add up to its 0 bytes");

    Message refs;
    refs.head = {{"data", {{"$blob", 3}}}};
    CHECK(CatchError([&] { refs.BlobAt(refs.head["data"]); }).code() == "protocol");
  }

  TEST_CASE("EOF between frames is the end, EOF in the middle of one is closed") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    std::string bytes = net::agent::Encode(Sample());
    std::thread writer([&] {
      // A frame in small pieces (partial reads), then half of another.
      for (size_t i = 0; i < bytes.size(); i += 7) sys::WriteAllTo(fds[1], std::string_view(bytes).substr(i, 7), "test");
      sys::WriteAllTo(fds[1], std::string_view(bytes).substr(0, bytes.size() / 2), "test");
      ::close(fds[1]);
    });
    FrameReader r(fds[0], "the agent on host web1");
    auto m = r.Read();
    REQUIRE(m.has_value());
    CHECK(m->BlobAt(m->head["args"]["data"]) == Binary());
    Error e = CatchError([&] { r.Read(); });
    writer.join();
    CHECK(e.code() == "closed");
    CHECK(e.message() == "the agent on host web1 ended in the middle of a frame");
    ::close(fds[0]);

    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    ::close(fds[1]);
    FrameReader empty(fds[0], "peer");
    CHECK_FALSE(empty.Read().has_value());
    ::close(fds[0]);
  }

  TEST_CASE("a hello of another protocol or hoist version is version_mismatch naming the host") {
    auto ok = net::agent::Hello("0.1.0");
    net::agent::CheckHello(ok, "0.1.0", "web1", false);
    auto old = net::agent::Hello("0.0.9");
    Error e = CatchError([&] { net::agent::CheckHello(old, "0.1.0", "web1", false); });
    CHECK(e.code() == "version_mismatch");
    CHECK(e.message().find("host web1: the agent is hoist 0.0.9 (protocol 1), this is hoist 0.1.0 (protocol 1)") == 0);
    auto other = net::agent::Hello("0.1.0");
    other.head["protocol"] = 99;
    CHECK(CatchError([&] { net::agent::CheckHello(other, "0.1.0", "web1", false); }).code() == "version_mismatch");
  }

  TEST_CASE("errors keep area, code and message across the wire") {
    Error e = net::agent::ErrorFrom(net::agent::ErrorJson(Error("fs", "not_found", "cannot read /x: No such file")));
    CHECK(e.area() == "fs");
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "fs: cannot read /x: No such file");
  }

  TEST_CASE("a process spec and result survive the JSON form with binary stdin and output") {
    Message m;
    sys::ProcessSpec s;
    s.argv = {"cat", "a b"};
    s.env = {{"K", "v"}};
    s.cwd = "/tmp";
    s.stdin_data = Binary();
    s.timeout = std::chrono::milliseconds(1500);
    s.max_output = 99;
    json j = net::agent::ProcessSpecJson(s, m);
    Decoder d("peer");
    m.head = {{"args", j}};
    d.Feed(net::agent::Encode(m));
    auto back = d.Next();
    auto t = net::agent::ProcessSpecFrom(back->head["args"], *back);
    CHECK(t.argv == s.argv);
    CHECK(t.env == s.env);
    CHECK(t.cwd == "/tmp");
    CHECK(*t.stdin_data == Binary());
    CHECK(t.timeout.count() == 1500);
    CHECK(t.max_output == 99);
  }
}

}  // namespace
}  // namespace hoist::test
