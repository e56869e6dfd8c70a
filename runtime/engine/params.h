// Typed playbook parameters: the declared specs, and validation of what the
// operator passed (-e key=value strings, a --params JSON file) before
// anything runs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hoist::engine {

using json = nlohmann::json;

enum class ParamType { kString, kNumber, kInteger, kBoolean, kEnum, kList };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  bool required = false;
  std::optional<json> default_value;
  std::string help{};
  std::vector<std::string> choices{};  // kEnum
  bool secret = false;               // masked in journal and output
};

const char* ParamTypeName(ParamType t);
/// "string" -> kString ...; throws Error{"playbook","invalid",...} otherwise
/// (the message does not name the param: the caller's context does).
ParamType ParseParamType(const std::string& name);

/// What the operator passed: -e values are strings, --params JSON is typed.
struct ParamInput {
  std::map<std::string, std::string> cli;   // -e key=value
  json file = json::object();               // --params file.json
};

/// Validates input against specs and returns the typed values (defaults
/// filled in). Collects every problem, then throws Error{"params","invalid",
/// msg} whose message lists each one with the param's type and help.
json ValidateParams(const std::vector<ParamSpec>& specs, const ParamInput& input);

/// The values with secret params replaced by "***" (for journal/output).
json MaskParams(const std::vector<ParamSpec>& specs, const json& values);

}  // namespace hoist::engine
