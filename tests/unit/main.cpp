// The test executables' main: the native modules are the app's to hand to
// the VM, as the CLI's Main does.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "app/modules.h"

int main(int argc, char** argv) {
  hoist::app::InstallNativeModules();
  doctest::Context context(argc, argv);
  return context.run();
}
