#!/usr/bin/env bash
# Three `navaro` nodes as one cluster on this machine, on one Postgres and one Redis
# (README "Run a cluster", docs/cluster.md). Node i serves HTTP on 127.0.0.1:808i and
# takes forwarded requests on 127.0.0.1:709i. Ctrl-C stops all three (SIGTERM: each
# flushes, snapshots and releases its establishments).
#
#   NAVARO_PG_ADMIN   admin URL used to create the database
#                     (default postgres://postgres@127.0.0.1:5432/postgres)
#   NAVARO_DB_NAME    the cluster's database (default navaro_cluster)
#   REDIS_URL         default redis://127.0.0.1:6379
set -euo pipefail
cd "$(dirname "$0")/.."
admin=${NAVARO_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
name=${NAVARO_DB_NAME:-navaro_cluster}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
database="${admin%/*}/$name"

if ! psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    psql "$admin" -qc "CREATE DATABASE $name"
fi
cargo build --release -p navaro-gateway
# The first node migrates the database; the others wait for it.
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for i in 1 2 3; do
    NAVARO_DATABASE_URL="$database" \
    NAVARO_HTTP__LISTEN="127.0.0.1:808$i" \
    NAVARO_CLUSTER__ENABLED=true \
    NAVARO_CLUSTER__NODE_ID="node-$i" \
    NAVARO_CLUSTER__INTERNAL_LISTEN="127.0.0.1:709$i" \
    NAVARO_CLUSTER__REDIS_URL="$redis" \
        target/release/navaro serve &
    pids+=("$!")
    [ "$i" = 1 ] && sleep 2
done
echo "cluster up: http://127.0.0.1:8081 http://127.0.0.1:8082 http://127.0.0.1:8083"
wait
