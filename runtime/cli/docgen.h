// The man page and the shell completions, generated from the same CLI11 app
// that parses argv and prints --help, so none of them can drift from it.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace hoist::cli {

/// hoist(1) in roff (man(7) macros), from the app's options, subcommands,
/// positionals and footer. Hidden subcommands (group "") are left out.
std::string ManPage(const CLI::App& app, const std::string& version);

/// A bash completion script (complete -F _hoist hoist): commands, options,
/// and at completion time the project's playbooks (`hoist list --json`) and
/// a playbook's params and enum values (`hoist describe --json`).
std::string BashCompletion(const CLI::App& app);

/// The zsh equivalent (#compdef hoist), with each command's description.
std::string ZshCompletion(const CLI::App& app);

}  // namespace hoist::cli
