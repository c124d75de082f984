#!/bin/bash
# InfluxDB 2.7: what dcops's InfluxStore needs beyond the image's own `setup` (org, the raw bucket
# "dcops/raw" and the admin token, from DOCKER_INFLUXDB_INIT_*). Run once by the influxdb image
# from /docker-entrypoint-initdb.d after setup, with the `influx` CLI already authenticated.
#
# On InfluxDB 1.x the store creates all of this itself (settings.store.manage_schema: true); on
# 2.x it is provisioned here and dcops runs with manage_schema: false:
#   - DBRP mappings, so InfluxQL (`/query?db=dcops`, retention policies raw, rollup_1m, rollup_15m)
#     reaches the buckets "dcops/raw", "dcops/rollup_1m", "dcops/rollup_15m";
#   - rollup buckets (90 days of 1-minute, 2 years of 15-minute mean/min/max) and the tasks that
#     fill them, the 2.x equivalent of the store's continuous queries (same field names:
#     mean_<field>, min_<field>, max_<field>; time = start of the window; the last 10 windows are
#     recomputed on every run, like the continuous queries' RESAMPLE FOR).
set -euo pipefail

org="${DOCKER_INFLUXDB_INIT_ORG}"
db="dcops"

influx v1 dbrp create --org "$org" --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" --db "$db" --rp raw --default

rollup() {  # rollup NAME RETENTION EVERY LOOKBACK (10 windows)
  local rp="$1" retention="$2" every="$3" lookback="$4"
  local id
  id=$(influx bucket create --org "$org" --name "$db/$rp" --retention "$retention" --hide-headers | awk '{print $1}')
  influx v1 dbrp create --org "$org" --bucket-id "$id" --db "$db" --rp "$rp"
  influx task create --org "$org" --file /dev/stdin <<EOF
import "types"

option task = {name: "dcops_${rp}", every: ${every}, offset: 30s}

data = from(bucket: "${db}/raw")
    |> range(start: -${lookback})
    |> filter(fn: (r) => r._measurement != "events")
    |> filter(fn: (r) => types.isType(v: r._value, type: "float") or types.isType(v: r._value, type: "int"))

roll = (tables=<-, fn, prefix) => tables
    |> aggregateWindow(every: ${every}, fn: fn, timeSrc: "_start", createEmpty: false)
    |> map(fn: (r) => ({r with _field: prefix + "_" + r._field}))

union(tables: [data |> roll(fn: mean, prefix: "mean"), data |> roll(fn: min, prefix: "min"), data |> roll(fn: max, prefix: "max")])
    |> to(bucket: "${db}/${rp}")
EOF
}

rollup rollup_1m 90d 1m 10m
rollup rollup_15m 104w 15m 150m
echo "dcops: DBRP mappings, rollup buckets and tasks created in org $org"
