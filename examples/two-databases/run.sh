#!/usr/bin/env bash
# The whole example, from a clean slate: seed the drifted colours, compare
# them, consolidate onto the shared database, check the result.
# HOIST=/path/to/hoist ./run.sh   (default: hoist on PATH)
set -euo pipefail
cd "$(dirname "$0")"
HOIST=${HOIST:-hoist}
rm -rf data backups .hoist

"$HOIST" seed
# Same schema and migrations: compare exits 0 (the data differ, which
# consolidate reports as drift).
"$HOIST" compare -e a=blue -e b=green
"$HOIST" consolidate --env shared -e from=blue --yes
# The shared database's first backup, then a drill of it and a check of
# the live file against the fingerprint that backup recorded.
"$HOIST" backup --env shared -e label=consolidated
"$HOIST" verify --env shared
"$HOIST" compare -e a=blue -e b=shared
ls -l data backups
