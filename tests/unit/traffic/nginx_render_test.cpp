// hoist.nginx without a running nginx: reading which colour a conf routes
// to, and rendering a switch that changes only the server lines.
#include <doctest/doctest.h>

#include "support/support.h"
#include "support/lua_eval.h"

namespace hoist::test {
namespace {

std::string Site(const std::string& conf, const std::string& extra = "") {
  return "local nginx = require 'hoist.nginx'\n"
         "local site = nginx.site{ conf = " + LuaStr(conf) + ", upstream = 'api',"
         " servers = { blue = '127.0.0.1:5001', green = '127.0.0.1:5002' }" + extra + " }\n";
}

std::string Active(const TempDir& dir, const std::string& text) {
  WriteFile(dir / "up.conf", text);
  return RunLua(Site(dir / "up.conf") + "return site:active()").get<std::string>();
}

std::string Render(const TempDir& dir, const std::string& text, const std::string& colour,
                   const std::string& extra = "") {
  WriteFile(dir / "up.conf", text);
  return RunLua(Site(dir / "up.conf", extra) + "return site:render('" + colour + "')").get<std::string>();
}

TEST_SUITE("traffic/nginx") {
  TEST_CASE("active reads the live colour") {
    TempDir dir("ngx");
    CHECK(Active(dir, "upstream api {\n    server 127.0.0.1:5001;\n}\n") == "blue");
    CHECK(Active(dir, "upstream api { server 127.0.0.1:5002 max_fails=3 fail_timeout=5s; keepalive 16; }") == "green");
    // One line per colour, the idle one down (or backup).
    CHECK(Active(dir, "upstream api {\n  server 127.0.0.1:5001 down;\n  server 127.0.0.1:5002;\n}\n") == "green");
    CHECK(Active(dir, "upstream api {\n  server 127.0.0.1:5001;\n  server 127.0.0.1:5002 backup;\n}\n") == "blue");
    // Comments, strings and other upstreams do not confuse it.
    CHECK(Active(dir,
                 "# upstream api { server 127.0.0.1:5002; }\n"
                 "upstream other { server 127.0.0.1:5002; }\n"
                 "map $http_x $y { default \"upstream api {\"; }\n"
                 "upstream api {\n    server 127.0.0.1:5001; # was 127.0.0.1:5002\n}\n") == "blue");
  }

  TEST_CASE("active says clearly when it cannot tell") {
    TempDir dir("ngx");
    WriteFile(dir / "up.conf", "upstream api {\n  server 127.0.0.1:5001;\n  server 127.0.0.1:5002;\n}\n");
    // (not a tail call, so that the calling line is on the stack)
    auto e = LuaError(Site(dir / "up.conf") + "local colour = site:active()\nreturn colour");
    CHECK(e.area() == "nginx");
    CHECK(e.code() == "ambiguous");
    CHECK(e.message() == "upstream api in " + (dir / "up.conf") + " routes to several colours at once: blue and green");
    CHECK(e.where() == "test:3:");

    WriteFile(dir / "up.conf", "upstream api {\n  server 10.0.0.9:80;\n}\n");
    e = LuaError(Site(dir / "up.conf") + "return site:active()");
    CHECK(e.code() == "unknown");
    CHECK(e.message() == "upstream api in " + (dir / "up.conf") +
                             " routes to 10.0.0.9:80, which is not one of blue (127.0.0.1:5001), green (127.0.0.1:5002)");

    WriteFile(dir / "up.conf", "upstream api {\n  server 127.0.0.1:5001 down;\n  server 127.0.0.1:5002 down;\n}\n");
    CHECK(LuaError(Site(dir / "up.conf") + "return site:active()").code() == "unknown");

    WriteFile(dir / "up.conf", "upstream web {\n  server 127.0.0.1:5001;\n}\n");
    e = LuaError(Site(dir / "up.conf") + "return site:active()");
    CHECK(e.code() == "parse");
    CHECK(e.message() == dir / "up.conf" + ": no 'upstream api { ... }' block");

    e = LuaError(Site(dir / "missing.conf") + "return site:active()");
    CHECK(e.code() == "not_found");
  }

  TEST_CASE("render changes only the address, every other byte stays") {
    TempDir dir("ngx");
    std::string before =
        "# Managed by hand, except the server line.\n"
        "upstream api {\n"
        "    server 127.0.0.1:5001 max_fails=3 fail_timeout=5s;  # blue\n"
        "    keepalive 16;\n"
        "}\n"
        "\n"
        "upstream other { server 127.0.0.1:5001; }\n";
    std::string after = Render(dir, before, "green");
    std::string expected = before;
    expected.replace(expected.find("5001"), 4, "5002");
    CHECK(after == expected);
    // The file itself is untouched by render.
    CHECK(ReadAll(dir / "up.conf") == before);
    // Rendering the active colour is the identity.
    CHECK(Render(dir, before, "blue") == before);
  }

  TEST_CASE("render toggles down flags when both colours have a line") {
    TempDir dir("ngx");
    std::string before =
        "upstream api {\n"
        "    server 127.0.0.1:5001 weight=2;\n"
        "    server 127.0.0.1:5002 weight=2 down;\n"
        "}\n";
    std::string green = Render(dir, before, "green");
    CHECK(green ==
          "upstream api {\n"
          "    server 127.0.0.1:5001 weight=2 down;\n"
          "    server 127.0.0.1:5002 weight=2;\n"
          "}\n");
    CHECK(Render(dir, green, "blue") == before);
  }

  TEST_CASE("render with several addresses per colour") {
    TempDir dir("ngx");
    WriteFile(dir / "up.conf", "upstream api {\n    server 10.0.0.1:80 max_fails=2;\n    server 10.0.0.2:80 max_fails=2;\n}\n");
    auto out = RunLua("local nginx = require 'hoist.nginx'\n"
                      "local site = nginx.site{ conf = " + LuaStr(dir / "up.conf") + ", upstream = 'api',"
                      " servers = { blue = { '10.0.0.1:80', '10.0.0.2:80' }, green = { '10.0.1.1:80', '10.0.1.2:80', '10.0.1.3:80' } } }\n"
                      "return { site:active(), site:render('green') }");
    CHECK(out[0] == "blue");
    CHECK(out[1] ==
          "upstream api {\n    server 10.0.1.1:80 max_fails=2;\n    server 10.0.1.2:80 max_fails=2;\n"
          "    server 10.0.1.3:80 max_fails=2;\n}\n");
  }

  TEST_CASE("render from a template") {
    TempDir dir("ngx");
    std::string tmpl = "# {{colour}} is live\nupstream api {\n    server {{address}};\n    keepalive 8;\n}\n";
    std::string out = Render(dir, "anything at all", "green", ", template = " + LuaStr(tmpl));
    CHECK(out == "# green is live\nupstream api {\n    server 127.0.0.1:5002;\n    keepalive 8;\n}\n");
    auto e = LuaError(Site(dir / "up.conf", ", template = 'upstream api { server 127.0.0.1:5001; }'") +
                      "return site:render('green')");
    CHECK(e.code() == "render");
    CHECK(e.message() == "the template for upstream api renders a file routing to blue, not green");
  }

  TEST_CASE("site spec errors") {
    auto e = LuaError("require('hoist.nginx').site{ conf = '/x', upstream = 'api', servers = { blue = 'a:1' }, writ = 'inplace' }");
    CHECK(e.code() == "invalid");
    CHECK(e.message().rfind("unknown option 'writ' for nginx.site (expected one of: conf, upstream,", 0) == 0);
    e = LuaError("require('hoist.nginx').site{ conf = '/x', upstream = 'api', servers = { blue = 'a:1', green = 'a:1' } }");
    CHECK(e.message().find("a:1 is listed for both") != std::string::npos);
    e = LuaError("require('hoist.nginx').site{ conf = '/x', upstream = 'api', servers = { blue = 'a:1' }, write = 'sed' }");
    CHECK(e.message() == "nginx.site: write must be \"rename\" or \"inplace\", got sed");
    e = LuaError("local s = require('hoist.nginx').site{ conf = '/x', upstream = 'api', servers = { blue = 'a:1' } }\n"
                 "s:switch('purple', { verify = false })");
    CHECK(e.message() == "unknown colour purple (this site has: blue)");
    e = LuaError("local s = require('hoist.nginx').site{ conf = '/x', upstream = 'api', servers = { blue = 'a:1' } }\n"
                 "s:switch('blue')");
    CHECK(e.message() == "site:switch: give verify = { url = ..., expect_header | expect_body | expect = ... } "
                         "(or verify = false to skip the proof by traffic)");
  }
}

}  // namespace
}  // namespace hoist::test
