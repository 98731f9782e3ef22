"""Evaluation: what the evaluating ingestor (`KERA_EVALUATE=true`) does with accepted readings
besides storing them.

- `alerts/`: the alert rules' engine and where transitions go (MQTT, the `alerts` measurement,
  webhooks).
- `rollups/`: hourly and daily energy, emissions, waste, space use and completeness, with the
  repair of late readings and the recompute (`kera-ingest rollups`).
- `shard`: a site's evaluation split over evaluators by space (`KERA_EVALUATION_SHARD=k/n`).
- `evaluator`: builds, feeds, runs periodically and stops the above for the service.

This module imports none of them: the dashboards and reports read rollups without loading the
evaluator, and the settings name a shard without loading the rollups.
"""
