#!/bin/bash
# Runs once, when the InfluxDB 2 container initialises: the v1 database/retention-policy
# mapping that the ingestor's v1 writes and Grafana's InfluxQL queries go through.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp autogen \
    --bucket-id "${bucket_id}" --default
