#include "cli/init.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "app/init.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/secrets.h"
#include "core/strings.h"

namespace hoist::cli {
namespace {

void Err(const std::string& msg) { fmt::print(stderr, "hoist: {}\n", Mask(msg)); }

// One question until the answer passes its check; false at end of input.
bool Ask(const app::InitField& f, std::string* answer) {
  for (;;) {
    std::string fallback = f.fallback;
    fmt::print(stderr, "{}{}: ", f.question,
               !fallback.empty() ? " [" + fallback + "]" : f.required ? std::string(" (e.g. ") + f.example + ")" : "");
    std::fflush(stderr);
    std::string line;
    if (!std::getline(std::cin, line)) {
      fmt::print(stderr, "\n");
      return false;
    }
    line = Trim(line);
    if (line.empty() && !f.required) return true;  // the default
    std::string why = app::CheckInitValue(f.key, line);
    if (why.empty()) {
      *answer = line;
      return true;
    }
    fmt::print(stderr, "  {}\n", Mask(why));
  }
}

}  // namespace

void AddInitOptions(CLI::App* init, InitFlags* flags) {
  for (const auto& f : app::InitFields()) {
    std::string help = f.question;
    std::string fallback = f.fallback;
    help += f.required ? std::string(" (required, e.g. ") + f.example + ")"
            : fallback.empty() ? std::string(" (optional, e.g. ") + f.example + ")"
                               : " (default " + fallback + ")";
    // Taken as text and checked by app::CheckInitValue: one precise message each.
    init->add_option_function<std::string>(
        std::string("--") + f.key, [flags, key = std::string(f.key)](const std::string& v) { (*flags)[key] = v; },
        help);
  }
}

int RunInit(const std::string& project_dir, const InitFlags& flags) {
  // Messages and next steps name the directory as it is, not ".".
  std::error_code ec;
  std::string dir = std::filesystem::absolute(project_dir, ec).lexically_normal().string();
  if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    Err(fmt::format("init: {} is not a directory: init writes into an existing project directory", dir));
    return kExitUsage;
  }
  app::InitAnswers answers;
  for (const auto& [k, v] : flags) {
    if (std::string why = app::CheckInitValue(k, v); !why.empty()) {
      Err("init: " + why);
      return kExitUsage;
    }
    answers.Set(k, v);
  }
  std::vector<std::string> missing, examples;
  for (const auto& f : app::InitFields()) {
    if (f.required && !answers.Get(f.key)) {
      missing.push_back(std::string("--") + f.key);
      examples.push_back(std::string("--") + f.key + " " + f.example);
    }
  }
  const bool tty = isatty(STDIN_FILENO) != 0;
  if (tty) {
    bool asked = false;
    for (const auto& f : app::InitFields()) {
      if (answers.Get(f.key)) continue;
      if (!asked) fmt::print(stderr, "hoist init: a few questions (Enter takes the [default]):\n");
      asked = true;
      std::string answer;
      if (!Ask(f, &answer)) {
        Err(fmt::format("init: no answer for --{} (end of input): nothing was written", f.key));
        return kExitUsage;
      }
      if (!answer.empty()) answers.Set(f.key, answer);
    }
  } else if (!missing.empty()) {
    Err(fmt::format("init: {} {} missing and stdin is not a terminal to ask on: nothing was written; give {}",
                    Join(missing, ", "), missing.size() == 1 ? "is" : "are", Join(examples, " ")));
    return kExitUsage;
  }
  try {
    fmt::print("{}", Mask(app::InitProject(dir, answers)));
  } catch (const Error& e) {
    Err("init: " + e.message());
    return kExitUsage;
  }
  return kExitOk;
}

}  // namespace hoist::cli
