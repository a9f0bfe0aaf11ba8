#!/usr/bin/env bash
# The main job end to end: servers up, sample readings into Kafka, `conductor start --workers 3`,
# documents visible in Elasticsearch. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
COUNT=${COUNT:-10000}

compose/local up
eval "$(compose/local env)"
"$BIN/conductor" produce-readings --topic temperatures.aggregated --partitions 6 --count "$COUNT"

"$BIN/conductor" validate --config examples/es-sink.properties
"$BIN/conductor" --log-level WARNING start --workers 3 --config examples/es-sink.properties &
conductor_pid=$!
trap 'kill -TERM $conductor_pid 2>/dev/null || true; wait $conductor_pid 2>/dev/null || true' EXIT

count() {
  curl -s "$CONDUCTOR_ELASTICSEARCH_URL/temperatures_*/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p'
}
for _ in $(seq 1 120); do
  [ "$(count)" -ge "$COUNT" ] 2>/dev/null && break
  sleep 1
done
echo "Elasticsearch holds $(count) temperature readings:"
curl -s "$CONDUCTOR_ELASTICSEARCH_URL/_cat/indices/temperatures_*?v&h=index,docs.count"
curl -s "$CONDUCTOR_ELASTICSEARCH_URL/temperatures_*/_search?size=1&sort=timestamp:desc" | head -c 600; echo
[ "$(count)" -ge "$COUNT" ] || { echo "demo: expected $COUNT documents"; exit 1; }
