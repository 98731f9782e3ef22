"""Where accepted readings end up, and how nothing accepted is lost on the way.

- `batch`: what the pipeline hands over (lines, packet ids to acknowledge, dead letters).
- `writer`: the one writer; InfluxDB or the spool, then the acknowledgement.
- `transports`: the v1 and v2 write APIs; `query`: InfluxQL over `/query`.
- `spool`: the bounded on-disk queue while InfluxDB is away.
- `lineproto`: line protocol encoding; `deadletter`: what was refused, and why.
- `files`: run-time files are created owner-only.

Modules are imported by their full path; this package imports nothing so that a tool needing
only `query` does not pay for the writer.
"""
