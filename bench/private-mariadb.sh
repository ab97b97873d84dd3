#!/bin/sh
# A MariaDB server of the benchmarks' own (port 3307, data under /tmp/clinic-bench-mariadb), so that the
# database CPU per request counts only the benchmark's statements and a shared server's connection limit
# or other clients' load do not enter the figures. Same durability settings as a default install
# (innodb_flush_log_at_trx_commit=1, REPEATABLE READ). BENCH_MARIADB_DIR and BENCH_MARIADB_PORT give a
# second one beside another engineer's. Then:
#   BENCH_MYSQL_PORT=3307 BENCH_MARIADB_PIDFILE=/tmp/clinic-bench-mariadb/mysqld.pid make bench
set -e
DIR=${BENCH_MARIADB_DIR:-/tmp/clinic-bench-mariadb}
PORT=${BENCH_MARIADB_PORT:-3307}
mkdir -p "$DIR"
cat > "$DIR/my.cnf" <<CNF
[mariadbd]
datadir=$DIR/data
port=$PORT
socket=$DIR/mysqld.sock
pid-file=$DIR/mysqld.pid
bind-address=127.0.0.1
user=$(id -un)
max_connections=300
log-error=$DIR/error.log
CNF
if [ ! -d "$DIR/data/mysql" ]; then
  mariadb-install-db --defaults-file="$DIR/my.cnf" --auth-root-authentication-method=normal >"$DIR/install.log"
fi
mariadbd --defaults-file="$DIR/my.cnf" >/dev/null 2>&1 &
for _ in 1 2 3 4 5 6 7 8 9 10; do
  [ -S "$DIR/mysqld.sock" ] && break
  sleep 1
done
if [ ! -f "$DIR/mysqld.pid" ]; then
  # Another engineer's server on the port would otherwise be taken for ours (and seeded into).
  echo "MariaDB did not start on port $PORT (taken?): see $DIR/error.log" >&2
  exit 1
fi
echo "MariaDB on 127.0.0.1:$PORT, pid $(cat "$DIR/mysqld.pid")"
