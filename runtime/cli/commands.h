// The hoist command line: one table of subcommands drives parsing, --help
// and "did you mean". Argument parsing lives only here.
#pragma once

namespace hoist::cli {

/// Runs the CLI; returns the process exit code (docs/cli.md).
int Main(int argc, char** argv);

}  // namespace hoist::cli
