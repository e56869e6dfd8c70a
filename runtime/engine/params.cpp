#include "engine/params.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"

namespace hoist::engine {
namespace {

std::string Describe(const ParamSpec& s) {
  std::string d = ParamTypeName(s.type);
  if (s.type == ParamType::kEnum) {
    d = "one of ";
    for (size_t i = 0; i < s.choices.size(); ++i) d += (i ? "|" : "") + s.choices[i];
  }
  if (!s.help.empty()) d += ": " + s.help;
  return d;
}

// Converts a -e string to the param's type; returns an error text or "".
std::string FromString(const ParamSpec& s, const std::string& raw, json* out) {
  switch (s.type) {
    case ParamType::kString:
      *out = raw;
      return "";
    case ParamType::kEnum:
      *out = raw;
      return "";
    case ParamType::kBoolean:
      if (raw == "true" || raw == "yes" || raw == "1" || raw == "on") {
        *out = true;
      } else if (raw == "false" || raw == "no" || raw == "0" || raw == "off") {
        *out = false;
      } else {
        return fmt::format("'{}' is not a boolean (use true or false)", raw);
      }
      return "";
    case ParamType::kInteger: {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(raw.c_str(), &end, 10);
      if (raw.empty() || *end != '\0' || errno == ERANGE) return fmt::format("'{}' is not an integer", raw);
      *out = static_cast<int64_t>(v);
      return "";
    }
    case ParamType::kNumber: {
      errno = 0;
      char* end = nullptr;
      double v = std::strtod(raw.c_str(), &end);
      if (raw.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
        return fmt::format("'{}' is not a number", raw);
      }
      *out = v;
      return "";
    }
    case ParamType::kList: {
      json arr = json::array();
      size_t start = 0;
      while (start <= raw.size()) {
        size_t comma = raw.find(',', start);
        if (comma == std::string::npos) comma = raw.size();
        std::string item = raw.substr(start, comma - start);
        if (!item.empty()) arr.push_back(item);
        start = comma + 1;
      }
      *out = arr;
      return "";
    }
  }
  return "unsupported type";
}

std::string OutOfRange(const std::string& shown) {
  return fmt::format("{} is out of range (integers are -9223372036854775808 to 9223372036854775807)", shown);
}

// Checks a typed JSON value (from --params or a default); "" when fine.
std::string CheckTyped(const ParamSpec& s, json* v) {
  switch (s.type) {
    case ParamType::kString:
      if (!v->is_string()) return fmt::format("expected a string, got {}", v->type_name());
      return "";
    case ParamType::kEnum:
      if (!v->is_string()) return fmt::format("expected a string, got {}", v->type_name());
      if (std::find(s.choices.begin(), s.choices.end(), v->get<std::string>()) == s.choices.end()) {
        return fmt::format("'{}' is not one of {}", v->get<std::string>(), fmt::join(s.choices, ", "));
      }
      return "";
    case ParamType::kBoolean:
      if (!v->is_boolean()) return fmt::format("expected a boolean, got {}", v->type_name());
      return "";
    case ParamType::kInteger:
      if (v->is_number_float()) {
        double d = v->get<double>();
        if (std::floor(d) != d) return fmt::format("{} is not an integer", d);
        // 2^63 itself (9223372036854775807.0 rounds to it) does not fit: casting it is undefined.
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return OutOfRange(v->dump());
        *v = static_cast<int64_t>(d);
      }
      if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return OutOfRange(v->dump());
      if (!v->is_number_integer()) return fmt::format("expected an integer, got {}", v->type_name());
      return "";
    case ParamType::kNumber:
      if (!v->is_number()) return fmt::format("expected a number, got {}", v->type_name());
      // Lua integers are 64-bit signed: a larger one is a float, not a wrapped negative.
      if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        *v = static_cast<double>(v->get<uint64_t>());
      }
      return "";
    case ParamType::kList:
      if (v->is_object() && v->empty()) *v = json::array();  // Lua's {} is both; a list here
      if (!v->is_array()) return fmt::format("expected a list, got {}", v->type_name());
      for (auto& item : *v) {
        if (!item.is_string() && !item.is_number()) return "list items must be strings or numbers";
        if (item.is_number_unsigned() && item.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
          return OutOfRange(item.dump());
        }
      }
      return "";
  }
  return "unsupported type";
}

}  // namespace

const char* ParamTypeName(ParamType t) {
  switch (t) {
    case ParamType::kString: return "string";
    case ParamType::kNumber: return "number";
    case ParamType::kInteger: return "integer";
    case ParamType::kBoolean: return "boolean";
    case ParamType::kEnum: return "enum";
    case ParamType::kList: return "list";
  }
  return "?";
}

ParamType ParseParamType(const std::string& name) {
  static const std::pair<const char*, ParamType> kTypes[] = {
      {"string", ParamType::kString}, {"number", ParamType::kNumber}, {"integer", ParamType::kInteger},
      {"boolean", ParamType::kBoolean}, {"enum", ParamType::kEnum},   {"list", ParamType::kList}};
  for (const auto& [n, t] : kTypes) {
    if (name == n) return t;
  }
  throw Error("playbook", "invalid",
              fmt::format("unknown type '{}' (expected string, number, integer, boolean, enum or list)", name));
}

json ValidateParams(const std::vector<ParamSpec>& specs, const ParamInput& input) {
  std::vector<std::string> problems;
  json values = json::object();
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);

  auto known = [&](const std::string& k) { return std::find(names.begin(), names.end(), k) != names.end(); };
  for (const auto& [k, _] : input.cli) {
    if (!known(k)) {
      std::string hint = Suggest(k, names);
      problems.push_back(fmt::format("param '{}' is not declared{}", k, hint.empty() ? "" : "; did you mean '" + hint + "'?"));
    }
  }
  if (!input.file.is_object()) {
    problems.push_back("--params file must hold a JSON object");
  } else {
    for (const auto& [k, _] : input.file.items()) {
      if (!known(k) && !input.cli.count(k)) {
        std::string hint = Suggest(k, names);
        problems.push_back(
            fmt::format("param '{}' in the --params file is not declared{}", k, hint.empty() ? "" : "; did you mean '" + hint + "'?"));
      }
    }
  }

  for (const auto& s : specs) {
    json v;
    bool have = false;
    std::string err;
    if (auto it = input.cli.find(s.name); it != input.cli.end()) {
      err = FromString(s, it->second, &v);
      have = err.empty();
      if (have) err = CheckTyped(s, &v);
    } else if (input.file.is_object() && input.file.contains(s.name)) {
      v = input.file.at(s.name);
      have = true;
      err = CheckTyped(s, &v);
    } else if (s.default_value) {
      v = *s.default_value;
      have = true;
      err = CheckTyped(s, &v);  // normalises too (an empty Lua table is a list)
    }
    if (!err.empty()) {
      problems.push_back(fmt::format("param '{}': {} ({})", s.name, err, Describe(s)));
      continue;
    }
    if (!have) {
      if (s.required) problems.push_back(fmt::format("missing required param '{}' ({})", s.name, Describe(s)));
      continue;
    }
    values[s.name] = v;
  }
  if (!problems.empty()) {
    std::string msg = problems.size() == 1 ? problems[0] : "invalid params:";
    if (problems.size() > 1) {
      for (const auto& p : problems) msg += "\n  - " + p;
    }
    throw Error("params", "invalid", msg);
  }
  return values;
}

json MaskParams(const std::vector<ParamSpec>& specs, const json& values) {
  json out = values;
  for (const auto& s : specs) {
    if (s.secret && out.contains(s.name)) out[s.name] = "***";
  }
  return out;
}

}  // namespace hoist::engine
