#!/usr/bin/env bash
# The seed's whole pipeline end to end: servers up, raw readings into `temperatures`, the aggregator
# (one result per home and minute into `temperatures.aggregated`, exactly once), and an
# Elasticsearch and a Cassandra connector persisting the results, each `conductor start --workers 3`.
# Run through `make demo`; exits non-zero unless both stores hold exactly the windows the readings make.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
COUNT=${COUNT:-10000}
TIMEOUT=${TIMEOUT:-180}  # seconds to wait for the stores
# The same readings every run, so the check knows the windows: 10 homes of 4 sensors (home-0000N),
# one reading a second in turn (each sensor every 40 s), from a fixed event time on.
SENSORS=40
START_MS=1767225600000  # 2026-01-01T00:00:00Z
PIPELINE=examples/pipeline
stores() { "$BIN/python" examples/demo_stores.py "$@"; }
if [ "$COUNT" -gt 86400 ]; then
  echo "demo: COUNT at most 86400: a day of readings, the aggregator's grace period" >&2
  exit 2
fi

# Every conductor is stopped however the demo ends: SIGTERM (write, commit, leave the group), waited for.
pids=()   # the three `conductor start`
checker=  # the wait for the stores
# shellcheck disable=SC2317  # run by the EXIT trap
stop_conductors() {
  local status=$? pid code
  [ -z "$checker" ] || kill -TERM "$checker" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    wait "$pid" && code=0 || code=$?
    if [ "$code" -ne 0 ]; then
      echo "demo: conductor (pid $pid) exited with status $code" >&2
      [ "$status" -ne 0 ] || status=1
    fi
  done
  if [ "$status" -eq 0 ]; then
    echo "demo: OK in ${SECONDS}s; the aggregator and both connectors stopped"
  else
    echo "demo: FAILED (exit $status) after ${SECONDS}s; read the messages above" >&2
  fi
  exit "$status"
}
trap stop_conductors EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

compose/local up
eval "$(compose/local env)"
stores schema examples/cassandra-schema.cql   # keyspace iot, tables readings and temperatures_by_home (no cqlsh needed)

# Every run starts clean, so the numbers it shows are its own and the same each time. The
# aggregator's changelog and repartition topics are deleted: the stream time they keep would make
# every reading of this run late. temperatures.aggregated is deleted and made again, so it holds
# this run's results only; the three consumer groups go to the end of their topics; the
# temperatures_by_home_* indices are deleted and the table truncated. `temperatures` keeps earlier
# runs' readings; the aggregator starts after them.
stores reset
"$BIN/conductor" produce-readings --topic temperatures --partitions 6 --count "$COUNT" --sensors "$SENSORS" \
  --start-ms "$START_MS"

# The aggregator and two persisting connectors on its output, each in its own consumer group
# (connect-<name>), so each store gets every result. Each runs in its own process group (set -m),
# so a Ctrl-C reaches only the demo, whose trap stops them with a single SIGTERM (a second signal
# would cut their drain short).
for config in aggregator es-aggregates cassandra-aggregates; do
  "$BIN/conductor" validate --config "$PIPELINE/$config.properties"
done
set -m
for config in aggregator es-aggregates cassandra-aggregates; do
  "$BIN/conductor" start --workers 3 --config "$PIPELINE/$config.properties" &
  pids+=($!)
done
set +m

# Wait until Elasticsearch and Cassandra hold as many windows as the readings make, then compare
# every window of the topic and both stores with the truth computed from the same readings, print
# some, exit 1 on any difference or if either store is short after TIMEOUT seconds. Run in the
# background and waited for, so that a signal to the demo is handled at once.
stores check --count "$COUNT" --sensors "$SENSORS" --start-ms "$START_MS" --timeout "$TIMEOUT" &
checker=$!
status=0
wait "$checker" || status=$?
checker=
# Each job as its REST API sees it (Kafka Connect's /status), as a table; every task RUNNING.
if [ "$status" -eq 0 ]; then
  for port in 8083 8084 8085; do
    "$BIN/conductor" status --url "http://127.0.0.1:$port" || status=1
    curl -fsS "http://127.0.0.1:$port/metrics" >/dev/null || { echo "demo: no metrics on port $port"; status=1; }
  done
  echo "demo: each job's page was at http://127.0.0.1:8083/ui, :8084/ui and :8085/ui"
fi
exit "$status"
