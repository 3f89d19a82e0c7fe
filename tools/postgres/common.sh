# Shared by tools/postgres/start.sh and ctl.sh (sourced): `bin`, the folder of PostgreSQL's
# programs (Debian's postgresql package, else the PATH's), and `as_owner`, which runs a
# program as the `postgres` user when run as root (PostgreSQL refuses root).
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
    bin="$(dirname "$(command -v pg_ctl)")"
fi
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
