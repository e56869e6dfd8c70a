#include "engine/config_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/strings.h"
#include "engine/notify.h"
#include "engine/params.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;

enum : unsigned { kStr = 1, kInt = 2, kNum = 4, kBool = 8, kTable = 16, kList = 32, kMap = 64, kAny = 128 };

struct Spec;
using Fields = std::vector<std::pair<std::string, Spec>>;

struct Spec {
  unsigned types = 0;
  Fields fields;                      // kTable: its keys
  std::shared_ptr<const Spec> item;   // kList element / kMap value
  bool open = false;                  // kTable: other keys allowed (a playbook's own)
  std::vector<std::string> values;    // a string's allowed values
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::string example;                // shown with a type error
  bool percent = false;               // a string must be "P%", P a whole number in [pct_min, pct_max]
  int pct_min = 0;
  int pct_max = 100;
};

Spec Str(std::vector<std::string> values = {}) { return Spec{.types = kStr, .values = std::move(values)}; }
Spec Int(double min, double max = std::numeric_limits<double>::infinity()) {
  return Spec{.types = kInt, .min = min, .max = max};
}
Spec Num(double min) { return Spec{.types = kNum, .min = min}; }
Spec Bool() { return Spec{.types = kBool}; }
Spec Any() { return Spec{.types = kAny}; }
Spec Table(Fields f, std::string example = "") {
  return Spec{.types = kTable, .fields = std::move(f), .example = std::move(example)};
}
Spec ListOf(Spec s) { return Spec{.types = kList, .item = std::make_shared<const Spec>(std::move(s))}; }
Spec MapOf(Spec s, std::string example = "") {
  return Spec{.types = kMap, .item = std::make_shared<const Spec>(std::move(s)), .example = std::move(example)};
}
// "25%": a whole percentage from min to max (fleet.serial, fleet.max_fail).
Spec Percent(int min, int max = 100) { return Spec{.types = kStr, .percent = true, .pct_min = min, .pct_max = max}; }
Spec Or(Spec a, const Spec& b) {
  a.types |= b.types;
  if (b.percent) {
    a.percent = true;
    a.pct_min = b.pct_min;
    a.pct_max = b.pct_max;
  }
  for (const auto& f : b.fields) a.fields.push_back(f);
  if (!a.item) a.item = b.item;
  if (a.example.empty()) a.example = b.example;
  return a;
}

// expect_status: 200, "200-299", "2xx" or a list of those.
Spec Status() { return Or(Or(Int(100, 599), Str()), ListOf(Or(Int(100, 599), Str()))); }

const Spec& Schema() {
  static const Spec schema = [] {
    Spec verify = Or(Bool(), Table({{"url", Str()},
                                    {"method", Str()},
                                    {"headers", MapOf(Or(Str(), Num(-1e300)))},
                                    {"expect_header", Str()},
                                    {"expect_body", Or(Str(), Bool())},
                                    {"expect", Any()},
                                    {"expect_status", Status()},
                                    {"timeout", Num(0)},
                                    {"interval", Num(0)},
                                    {"consecutive", Int(1)},
                                    {"probe_timeout", Num(0)}}));
    Spec nginx = Table({{"conf", Str()},
                        {"upstream", Str()},
                        {"nginx", Or(Str(), ListOf(Str()))},
                        {"main_conf", Str()},
                        {"prefix", Str()},
                        {"args", ListOf(Str())},
                        {"pid_file", Str()},
                        {"error_log", Str()},
                        {"write", Str({"rename", "inplace"})},
                        {"backup", Or(Str(), Bool())},
                        {"maintenance_conf", Str()},
                        {"maintenance_page", Str()},
                        {"verify", verify},
                        {"reload_timeout", Num(0)},
                        {"template", Str()}},
                       "{ conf = \"/etc/nginx/conf.d/api-upstream.conf\", upstream = \"api\" }");
    Spec colour = Table({{"port", Int(1, 65535)}, {"host", Str()}}, "{ port = 5001 }");
    Spec app = Table({{"kind", Str({"process", "docker"})},
                      {"argv", ListOf(Str())},
                      {"env", MapOf(Or(Or(Str(), Num(-1e300)), Bool()))},
                      {"cwd", Str()},
                      {"colours", MapOf(colour, "{ blue = { port = 5001 }, green = { port = 5002 } }")},
                      {"run_dir", Str()},
                      {"start_timeout", Num(0)},
                      {"stop_grace", Num(0)},
                      {"name", Str()},
                      {"image", Str()},
                      {"socket", Str()},
                      {"network", Str()},
                      {"binds", ListOf(Str())},
                      {"healthcheck", Table({{"test", Or(Str(), ListOf(Str()))},
                                             {"interval", Num(0)},
                                             {"timeout", Num(0)},
                                             {"retries", Int(0)},
                                             {"start_period", Num(0)}})}},
                     "{ argv = { \"bin/api\", \"--port\", \"{port}\" }, colours = { ... } }");
    Spec health = Table({{"path", Str()},
                         {"url", Str()},
                         {"expect_status", Status()},
                         {"json", Any()},
                         {"body_contains", Str()},
                         {"sql", Str()},
                         {"timeout", Num(0)},
                         {"interval", Num(0)},
                         {"rollback_timeout", Num(0)}});
    Spec bake = Table({{"seconds", Num(0)},
                       {"url", Str()},
                       {"interval", Num(0)},
                       {"max_failures", Int(0)},
                       {"expect_status", Status()},
                       {"json", Any()}});
    Spec backups = Or(Str(), Table({{"dir", Str()},
                                    {"keep", Int(0)},
                                    {"keep_safety", Int(0)},
                                    {"compress", Or(Bool(), Int(-1, 22))},
                                    {"format", Str()},
                                    {"pg_bin", Str()}},
                                   "\"backups\" or { dir = \"backups\", keep = 10 }"));
    Spec host = Table({{"ssh", Or(Str(), Bool())},  // false: this machine
                       {"port", Int(1, 65535)},
                       {"ssh_config", Str()},
                       {"roles", ListOf(Str())},
                       {"max_channels", Int(1, 64)},
                       {"address", Str()}},
                      "{ ssh = \"deploy@web1.internal\", roles = { \"app\" } }");
    // The fleet deploy's batches and failure rule (hoist.fleet, docs/fleet.md).
    Spec serial_size = Or(Int(1), Percent(1));
    serial_size.example = "\"50%\"";
    Spec serial = Or(serial_size, ListOf(serial_size));
    serial.example = "{ 1, \"50%\", \"100%\" }";
    Spec max_fail = Or(Int(0), Percent(0));
    max_fail.example = "\"10%\"";
    Spec fleet = Table({{"serial", serial},
                        {"max_fail", max_fail},
                        {"on_fail", Str({"halt", "rollback_batch", "rollback_all"})}},
                       "{ serial = 1, max_fail = 0, on_fail = \"halt\" }");
    Spec env = Table({{"database", Str()},
                      {"fleet", fleet},
                      {"hosts", MapOf(host, "{ web1 = { ssh = \"deploy@web1.internal\", roles = { \"app\" } } }")},
                      {"migrations", Str()},
                      {"backups", backups},
                      {"app", app},
                      {"nginx", nginx},
                      {"health", health},
                      {"bake", bake},
                      {"docker_socket", Str()}},
                     "{ database = \"sqlite:data/app.db\" }");
    env.open = true;
    Spec target = Table({{"url", Str()},
                         {"format", Str(NotifyFormats())},
                         {"on", ListOf(Str())},
                         {"envs", ListOf(Str())},
                         {"playbooks", ListOf(Str())},
                         {"timeout", Num(0)},
                         {"retries", Int(0, 10)},
                         {"retry_delay", Num(0)},
                         {"headers", MapOf(Str())}},
                        "{ url = hoist.secret(\"SLACK_WEBHOOK_URL\"), format = \"slack\", on = { \"run.failed\" } }");
    return Table({{"state", Str()},
                  {"environments", MapOf(env, "{ prod = { database = \"sqlite:data/app.db\" } }")},
                  {"default_env", Str()},
                  {"lease", Table({{"ttl", Num(0)}}, "{ ttl = 60 }")},
                  {"project", Any()},
                  {"memory_limit_mb", Int(16, 1024 * 1024)},
                  {"notify", ListOf(target)}});
  }();
  return schema;
}

// "25%" (spaces around allowed, as hoist.fleet reads it) with P in [min, max].
bool IsPercent(const std::string& v, int min, int max) {
  size_t i = 0, n = v.size();
  while (i < n && v[i] == ' ') ++i;
  size_t digits = i;
  long p = 0;
  while (i < n && std::isdigit(static_cast<unsigned char>(v[i])) && i - digits < 4) p = p * 10 + (v[i++] - '0');
  if (i == digits) return false;
  while (i < n && v[i] == ' ') ++i;
  if (i == n || v[i] != '%') return false;
  ++i;
  while (i < n && v[i] == ' ') ++i;
  return i == n && p >= min && p <= max;
}

bool IsName(const std::string& k) {
  if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::string Join(const std::string& path, const std::string& key) {
  if (IsName(key)) return path.empty() ? key : path + "." + key;
  return path + "[" + json(key).dump() + "]";
}

std::string Got(const json& v) {
  if (v.is_string()) return "a string";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number with a fraction";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a table";
  return "nil";
}

std::string Expected(const Spec& s) {
  std::vector<std::string> parts;
  if (s.percent) parts.push_back(fmt::format("a percentage from {}% to {}% (\"25%\")", s.pct_min, s.pct_max));
  else if (s.types & kStr) parts.push_back(s.values.empty() ? "a string" : "one of \"" + fmt::format("{}", fmt::join(s.values, "\", \"")) + "\"");
  if (s.types & kNum) parts.push_back("a number");
  else if (s.types & kInt) parts.push_back("an integer");
  if (s.types & kBool) parts.push_back("true/false");
  if (s.types & kTable) parts.push_back("a table");
  if (s.types & kMap) parts.push_back("a table of named entries");
  if (s.types & kList) parts.push_back("a list");
  if (parts.size() == 1) return parts[0];
  std::string last = parts.back();
  parts.pop_back();
  return fmt::format("{} or {}", fmt::join(parts, ", "), last);
}

// "hoist.lua: a.b must be ..." / "hoist.lua: a.b: unknown key ...".
[[noreturn]] void Bad(const std::string& path, const std::string& what) {
  std::string sep = what.starts_with("must") ? " " : ": ";
  throw Error("config", "invalid", fmt::format("hoist.lua: {}{}{}", path, path.empty() ? "" : sep, what));
}

[[noreturn]] void WrongType(const std::string& path, const Spec& s, const json& v) {
  Bad(path, fmt::format("must be {} (got {}){}", Expected(s), Got(v),
                        s.example.empty() ? "" : ", e.g. " + path.substr(path.rfind('.') + 1) + " = " + s.example));
}

std::vector<std::string> Names(const Fields& fields) {
  std::vector<std::string> out;
  for (const auto& f : fields) out.push_back(f.first);
  return out;
}

void Check(const json& v, const Spec& s, const std::string& path) {
  if (v.is_null() || (s.types & kAny)) return;
  if (v.is_string()) {
    if (!(s.types & kStr)) WrongType(path, s, v);
    if (!s.values.empty() && std::find(s.values.begin(), s.values.end(), v.get<std::string>()) == s.values.end()) {
      // The value itself is not echoed: it may be a secret.
      Bad(path, fmt::format("must be one of \"{}\"", fmt::join(s.values, "\", \"")));
    }
    if (s.percent && !IsPercent(v.get<std::string>(), s.pct_min, s.pct_max)) {
      Bad(path, fmt::format("must be {}{}", Expected(s),
                            s.example.empty() ? "" : ", e.g. " + path.substr(path.rfind('.') + 1) + " = " + s.example));
    }
    return;
  }
  if (v.is_number()) {
    const bool integer = v.is_number_integer() || v.is_number_unsigned();
    if (!(s.types & kNum) && !(integer && (s.types & kInt))) WrongType(path, s, v);
    double d = v.get<double>();
    if (d < s.min || d > s.max) {
      std::string range = s.max == std::numeric_limits<double>::infinity()
                              ? fmt::format("at least {}", s.min)
                              : fmt::format("between {} and {}", s.min, s.max);
      Bad(path, fmt::format("must be {} {}", (s.types & kNum) ? "a number" : "an integer", range));
    }
    return;
  }
  if (v.is_boolean()) {
    if (!(s.types & kBool)) WrongType(path, s, v);
    return;
  }
  // Lua's {} is both an empty list and an empty table.
  if (v.is_object() && v.empty() && (s.types & (kList | kTable | kMap))) return;
  if (v.is_array()) {
    if (!(s.types & kList)) {
      if (s.types & kMap) Bad(path, fmt::format("must be a table keyed by name, not a list{}",
                                                s.example.empty() ? "" : ", e.g. " + s.example));
      WrongType(path, s, v);
    }
    for (size_t i = 0; i < v.size(); ++i) Check(v[i], *s.item, fmt::format("{}[{}]", path, i + 1));
    return;
  }
  if (!v.is_object()) WrongType(path, s, v);
  if (s.types & kMap) {
    for (const auto& [k, item] : v.items()) {
      if (!item.is_object() && !item.is_array() && (s.item->types & (kTable | kMap)) && !(s.item->types & ~(kTable | kMap))) {
        Bad(Join(path, k), fmt::format("must be a table (got {}){}", Got(item),
                                       s.item->example.empty() ? "" : ", e.g. " + s.item->example));
      }
      Check(item, *s.item, Join(path, k));
    }
    return;
  }
  if (!(s.types & kTable)) WrongType(path, s, v);
  const auto names = Names(s.fields);
  for (const auto& [k, item] : v.items()) {
    const Spec* field = nullptr;
    for (const auto& f : s.fields) {
      if (f.first == k) field = &f.second;
    }
    if (field) {
      Check(item, *field, Join(path, k));
      continue;
    }
    std::string hint = Suggest(k, names);
    // An environment keeps a playbook's own keys, unless one is a typo of hoist's.
    if (s.open && hint.empty()) continue;
    std::string where = s.open        ? "an environment"
                        : path.empty() ? "the top level"
                                       : path.substr(path.rfind('.') == std::string::npos ? 0 : path.rfind('.') + 1);
    Bad(Join(path, k), fmt::format("unknown key{}{}; {} takes: {}", hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                                   s.open ? " (a playbook's own keys may not be one typo away from hoist's)" : "",
                                   where, fmt::join(names, ", ")));
  }
}

}  // namespace

void CheckConfig(const json& config) {
  if (!config.is_object()) {
    if (config.is_array() && config.empty()) return;
    throw Error("config", "invalid", fmt::format("hoist.lua must return a table of settings (got {})", Got(config)));
  }
  if (config.contains("notify") && config["notify"].is_object() && !config["notify"].empty()) {
    Bad("notify", "must be a list of targets, e.g. notify = { { url = hoist.secret(\"SLACK_WEBHOOK_URL\"), "
                  "format = \"slack\", on = { \"run.failed\" } } }");
  }
  Check(config, Schema(), "");
  if (config.contains("notify")) CheckNotify(config["notify"]);
}

}  // namespace hoist::engine
