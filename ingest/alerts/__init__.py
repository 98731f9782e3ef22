"""Alert rules on live readings (`engine`) and where their transitions go (`delivery`: MQTT,
the `alerts` measurement, webhooks). Only the evaluating ingestor (`KERA_ALERTS=true`) runs them.
"""
