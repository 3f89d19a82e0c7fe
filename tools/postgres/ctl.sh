#!/usr/bin/env bash
# Stops or starts again a server made by tools/postgres/start.sh (tests that lose the
# database mid-stream): `tools/postgres/ctl.sh DIR PORT stop|start`.
set -euo pipefail
dir="$1"
port="$2"
action="$3"

# shellcheck source=tools/postgres/common.sh
. "$(dirname "$0")/common.sh"

case "$action" in
    stop) as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
    start) as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null ;;
    *) echo "usage: $0 DIR PORT stop|start" >&2; exit 2 ;;
esac
