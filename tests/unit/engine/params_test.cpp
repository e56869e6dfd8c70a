// Param validation: types, defaults, and the exact messages operators see.
#include "engine/params.h"

#include "core/strings.h"
#include "support/support.h"

namespace hoist::engine {
namespace {

using test::CatchError;

std::vector<ParamSpec> Specs() {
  ParamSpec version{"version", ParamType::kString, true, std::nullopt, "release to deploy"};
  ParamSpec replicas{"replicas", ParamType::kInteger, false, json(1), "instances"};
  ParamSpec ratio{"ratio", ParamType::kNumber, false, std::nullopt, ""};
  ParamSpec migrate{"migrate", ParamType::kBoolean, false, json(true), ""};
  ParamSpec mode{"mode", ParamType::kEnum, false, json("safe"), "", {"fast", "safe"}};
  ParamSpec hosts{"hosts", ParamType::kList, false, std::nullopt, ""};
  ParamSpec token{"token", ParamType::kString, false, std::nullopt, "", {}, true};
  return {version, replicas, ratio, migrate, mode, hosts, token};
}

TEST_SUITE("engine/params") {

TEST_CASE("cli strings are converted to the declared types") {
  ParamInput in;
  in.cli = {{"version", "1.2.0"}, {"replicas", "3"}, {"ratio", "0.25"}, {"migrate", "no"},
            {"mode", "fast"},     {"hosts", "a,b,,c"}};
  json v = ValidateParams(Specs(), in);
  CHECK(v == json({{"version", "1.2.0"}, {"replicas", 3}, {"ratio", 0.25}, {"migrate", false}, {"mode", "fast"},
                   {"hosts", {"a", "b", "c"}}}));
}

TEST_CASE("defaults fill in and absent optional params stay absent") {
  ParamInput in;
  in.cli = {{"version", "1"}};
  json v = ValidateParams(Specs(), in);
  CHECK(v == json({{"version", "1"}, {"replicas", 1}, {"migrate", true}, {"mode", "safe"}}));
}

TEST_CASE("an empty list default (Lua's {}, which JSON sees as an object) is an empty list") {
  ParamSpec hosts{"hosts", ParamType::kList, false, json::object(), ""};
  ParamInput in;
  json v = ValidateParams({hosts}, in);
  CHECK(v == json({{"hosts", json::array()}}));
  in.file = {{"hosts", json::object()}};
  CHECK(ValidateParams({hosts}, in) == json({{"hosts", json::array()}}));
}

TEST_CASE("every problem is listed with type and help") {
  ParamInput in;
  in.cli = {{"replicas", "2.5"}, {"migrate", "maybe"}, {"verison", "1"}};
  auto e = CatchError([&] { ValidateParams(Specs(), in); });
  CHECK(e.area() == "params");
  CHECK(e.code() == "invalid");
  CHECK(e.message() ==
        "invalid params:\n"
        "  - param 'verison' is not declared; did you mean 'version'?\n"
        "  - missing required param 'version' (string: release to deploy)\n"
        "  - param 'replicas': '2.5' is not an integer (integer: instances)\n"
        "  - param 'migrate': 'maybe' is not a boolean (use true or false) (boolean)");
}

TEST_CASE("the params file is typed and -e wins over it") {
  ParamInput in;
  in.file = {{"version", "from-file"}, {"replicas", 4}, {"hosts", {"x", "y"}}};
  in.cli = {{"version", "from-cli"}};
  json v = ValidateParams(Specs(), in);
  CHECK(v["version"] == "from-cli");
  CHECK(v["replicas"] == 4);
  CHECK(v["hosts"] == json({"x", "y"}));
  in.file = {{"version", "1"}, {"replicas", "four"}};
  in.cli.clear();
  CHECK(CatchError([&] { ValidateParams(Specs(), in); }).message() ==
        "param 'replicas': expected an integer, got string (integer: instances)");
}

TEST_CASE("out-of-range numbers from --params are refused naming the param, never wrapped") {
  ParamInput in;
  in.file = json::parse(R"({"version": "1", "replicas": 18446744073709551615})");
  CHECK(CatchError([&] { ValidateParams(Specs(), in); }).message() ==
        "param 'replicas': 18446744073709551615 is out of range (integers are -9223372036854775808 to "
        "9223372036854775807) (integer: instances)");
  in.file = json::parse(R"({"version": "1", "replicas": 9223372036854775807.0})");
  CHECK(CatchError([&] { ValidateParams(Specs(), in); }).message().find("is out of range") != std::string::npos);
  in.file = json::parse(R"({"version": "1", "replicas": -1e300})");
  CHECK(CatchError([&] { ValidateParams(Specs(), in); }).message().find("is out of range") != std::string::npos);
  in.file = json::parse(R"({"version": "1", "hosts": [18446744073709551615]})");
  CHECK(CatchError([&] { ValidateParams(Specs(), in); }).message().find("is out of range") != std::string::npos);
  // The largest integer still fits; a number param takes a huge one as a float.
  in.file = json::parse(R"({"version": "1", "replicas": 9223372036854775807, "ratio": 18446744073709551615})");
  json v = ValidateParams(Specs(), in);
  CHECK(v["replicas"].get<int64_t>() == INT64_MAX);
  CHECK(v["ratio"].is_number_float());
}

TEST_CASE("enum values are checked") {
  ParamInput in;
  in.cli = {{"version", "1"}, {"mode", "yolo"}};
  CHECK(CatchError([&] { ValidateParams(Specs(), in); }).message() ==
        "param 'mode': 'yolo' is not one of fast, safe (one of fast|safe)");
}

TEST_CASE("secret params are masked for the journal") {
  json v = {{"version", "1"}, {"token", "abc"}};
  CHECK(MaskParams(Specs(), v) == json({{"version", "1"}, {"token", "***"}}));
}

TEST_CASE("suggestions use edit distance") {
  CHECK(EditDistance("kitten", "sitting") == 3);
  CHECK(Suggest("deplyo", {"deploy", "rollback"}) == "deploy");
  CHECK(Suggest("xyz", {"deploy", "rollback"}).empty());
  // A case slip first, even when another name is as close by edit distance.
  CHECK(Suggest("N", {"b", "n"}) == "n");
  CHECK(Suggest("Deploy", {"deplo", "deploy"}) == "deploy");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::engine
