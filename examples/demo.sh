#!/usr/bin/env bash
# The main job end to end: servers up, sample readings into Kafka, `conductor start --workers 3` for
# an Elasticsearch and a Cassandra connector, documents in Elasticsearch and rows in Cassandra.
# Run through `make demo`; exits non-zero if either store does not end up with every reading.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
COUNT=${COUNT:-10000}
TIMEOUT=${TIMEOUT:-180}  # seconds to wait for the stores
stores() { "$BIN/python" examples/demo_stores.py "$@"; }

# Both connectors are stopped however the demo ends: SIGTERM (write, commit, leave the group), waited for.
pids=()   # the two `conductor start`
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
    echo "demo: OK in ${SECONDS}s; both connectors stopped"
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
stores schema examples/cassandra-schema.cql   # keyspace iot, table readings (no cqlsh needed)

# Every run starts clean, so the numbers it shows are its own: the temperatures_* indices are
# deleted, iot.readings is truncated, and both consumer groups are moved to the end of the topic.
# Without this a second run would resume from the committed offsets and read only its own
# readings, but Cassandra would hold both runs' rows (ts differs) while Elasticsearch would hold
# one run's documents (ids sensor_id-reading_id repeat, the second run overwrites the first).
# The topic keeps earlier runs' readings; the workers just start after them.
stores reset
"$BIN/conductor" produce-readings --topic temperatures.aggregated --partitions 6 --count "$COUNT"

# Two connectors on the same topic, each in its own consumer group (connect-<name>), so each store
# gets every reading. Each runs in its own process group (set -m), so a Ctrl-C reaches only the
# demo, whose trap stops them with a single SIGTERM (a second signal would cut their drain short).
"$BIN/conductor" validate --config examples/es-sink.properties
"$BIN/conductor" validate --config examples/cassandra-sink.properties
set -m
"$BIN/conductor" start --workers 3 --config examples/es-sink.properties &
pids+=($!)
"$BIN/conductor" start --workers 3 --config examples/cassandra-sink.properties &
pids+=($!)
set +m

# Wait until Elasticsearch holds COUNT documents and iot.readings COUNT rows (one per distinct
# (sensor_id, ts), the table's primary key; the readings are 1 s apart, so all distinct), print
# both stores, exit 1 if either is short after TIMEOUT seconds. Run in the background and waited
# for, so that a signal to the demo is handled at once.
"$BIN/python" examples/demo_stores.py check --count "$COUNT" --timeout "$TIMEOUT" &
checker=$!
status=0
wait "$checker" || status=$?
checker=
exit "$status"
