#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests (trust authentication, loopback only)
# and prints its URL; `tools/postgres/start.sh DIR PORT`; `tools/postgres/ctl.sh DIR PORT stop`
# stops it (and `start` starts it again).
# Uses Debian's postgresql package (apt-get install postgresql) or initdb on the PATH; as
# root it runs the server as the `postgres` user.
set -euo pipefail
dir="${1:-/tmp/costream-postgres}"
port="${2:-55432}"

# shellcheck source=tools/postgres/common.sh
. "$(dirname "$0")/common.sh"

if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
fi
rm -rf "$dir"
mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
"$(dirname "$0")/ctl.sh" "$dir" "$port" start
echo "postgres://postgres@127.0.0.1:$port/postgres"
