// `hoist init`: a first hoist.lua, playbooks/ and a first migration for an
// existing project, from answers that are each checked on their own (a flag
// or a question on a terminal), written all or nothing, never over a file.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace hoist::app {

/// One thing init needs to know: its flag, the question a terminal is
/// asked, the default (empty: required) and an example for messages.
struct InitField {
  const char* key;       ///< "db"; the flag is "--" + key
  const char* question;  ///< asked on a terminal
  const char* fallback;  ///< default answer; "" when the flag is required
  const char* example;   ///< a valid value, shown when it is missing
  bool required;         ///< no default: a flag or an answer must give it
};

/// Every field in the order a terminal asks them.
const std::vector<InitField>& InitFields();

/// The answers, by InitField::key; an absent optional one takes its default.
struct InitAnswers {
  std::vector<std::pair<std::string, std::string>> values;
  std::optional<std::string> Get(const std::string& key) const;
  void Set(const std::string& key, const std::string& value);
};

/// "" when value is acceptable for the field, else the one-line reason,
/// e.g. "--ports: 'abc' is not a port (a whole number from 1 to 65535)".
/// Never echoes a password.
std::string CheckInitValue(const std::string& key, const std::string& value);

/// A file init writes, relative to the project dir ("" content + dir = a directory).
struct InitFile {
  std::string path;
  std::string content;
  bool dir = false;
};

/// The files for these answers (every required one present and valid;
/// Error{"init","invalid"} otherwise). The hoist.lua is commented for a
/// newcomer and passes the same config check as a hand-written one.
/// first_migration: also migrations/0001_app_settings.sql.
std::vector<InitFile> RenderInit(const InitAnswers& answers, bool first_migration = true);

/// What to do next, as printed at the end of `hoist init` (docs/runbook.md,
/// "First deploy"). include_exists: whether the nginx include is there yet.
std::string InitNextSteps(const InitAnswers& answers, bool include_exists);

/// Writes RenderInit(answers) into dir (which must exist). Refuses with
/// Error{"init","exists"} naming every path already there, having written
/// nothing; a write that fails removes what it had created. Returns the
/// next steps.
std::string InitProject(const std::string& dir, const InitAnswers& answers);

}  // namespace hoist::app
