// The hoist executable: everything lives in hoist_core; this only hands
// over argv.
#include "cli/commands.h"

int main(int argc, char** argv) { return hoist::cli::Main(argc, argv); }
