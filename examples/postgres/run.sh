#!/usr/bin/env bash
# The PostgreSQL flow end to end: expand migrations, data, a verified
# pg_dump backup, a restore drill, the contract migration, rolling it back,
# and a restore of the backup.
#   DATABASE_URL=postgres://app:PASSWORD@127.0.0.1:5432/app HOIST=/path/to/hoist ./run.sh
set -euo pipefail
cd "$(dirname "$0")"
HOIST=${HOIST:-hoist}
: "${DATABASE_URL:?set DATABASE_URL to an empty PostgreSQL database you may write to}"
rm -rf backups .hoist

"$HOIST" migrate -e action=plan                 # what up would run
"$HOIST" migrate -e action=up -e to=3           # expand only (0004 is the contract half)
"$HOIST" seed
"$HOIST" backup -e label=pre-contract           # pg_dump -Fc, checksummed, verified
"$HOIST" verify                                 # checksum, archive, restore drill into a scratch db, live fingerprint
"$HOIST" migrate -e action=up -e allow_contract=true   # 0004: drop customers.name
"$HOIST" migrate -e action=down                 # its stored down brings name back
"$HOIST" migrate                                # status
"$HOIST" restore -e label=pre-contract --yes  # the newest pre-contract backup, after a safety backup
