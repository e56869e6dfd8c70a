// `hoist init`: its flags and, on a terminal, its questions. The scaffold
// itself (what is written, and the checks of each answer) is app/init.
#pragma once

#include <map>
#include <string>

#include <CLI/CLI.hpp>

namespace hoist::cli {

/// The flags given, by app::InitField key.
using InitFlags = std::map<std::string, std::string>;

/// Adds one option per app::InitFields() entry to the init subcommand.
void AddInitOptions(CLI::App* init, InitFlags* flags);

/// Scaffolds the project in dir: flags first, then questions for the rest
/// when stdin is a terminal. Returns the exit code (2: a bad or missing
/// value, or a file already there; nothing written).
int RunInit(const std::string& dir, const InitFlags& flags);

}  // namespace hoist::cli
