#!/bin/bash
# Runs once, when the InfluxDB 2 container initialises: the v1 database/retention-policy
# mappings that the ingestor's v1 writes and Grafana's InfluxQL queries go through.
# - rp autogen (the default) -> the readings' bucket, which expires with KERA_INFLUX_RETENTION;
# - rp forever -> a bucket of its own without expiry, for the impact rollups (KERA_ROLLUPS_RP).
set -euo pipefail
db="${DOCKER_INFLUXDB_INIT_BUCKET}"
bucket_id=$(influx bucket list --name "${db}" --hide-headers | cut -f1)
influx v1 dbrp create --db "${db}" --rp autogen --bucket-id "${bucket_id}" --default
influx bucket create --name "${db}-rollups" --retention 0
rollups_id=$(influx bucket list --name "${db}-rollups" --hide-headers | cut -f1)
influx v1 dbrp create --db "${db}" --rp forever --bucket-id "${rollups_id}"
