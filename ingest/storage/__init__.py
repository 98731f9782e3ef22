"""Where accepted readings end up, and how nothing accepted is lost on the way.

- `ports`: the typed seams to the receive side (Connection, BatchSink, Transport, Publisher,
  DeadLetterSink).
- `batch`: what the receive side hands over (lines, ids to acknowledge and the connection that
  acknowledges them, dead letters); `batcher`: collects them per batch, in arrival order.
- `writer`: the one writer; InfluxDB or the spool, then the acknowledgement (`Batch.settle`).
- `transports`: the v1 and v2 write APIs; `query`: InfluxQL over `/query`; `influxql`: the one
  escaping rule for names and values put into InfluxQL.
- `spool`: the bounded on-disk queue while InfluxDB is away (`_segments`: its on-disk format).
- `lineproto`: line protocol encoding; `deadletter`: what was refused, and why.
- `files`: run-time files are created owner-only.

Modules are imported by their full path; this package imports nothing so that a tool needing
only `query` does not pay for the writer.
"""
