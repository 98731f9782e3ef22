"""What the ingestor says about itself: the one table of counters (`counters`), `/healthz` and
`/metrics` (`health`), and the `pipeline` measurement written to InfluxDB
(`pipeline_measurement`). All three read the same `counters.COUNTERS`.
"""
