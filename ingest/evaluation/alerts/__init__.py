"""Alert rules on live readings (`engine`) and where their transitions go (`delivery`: MQTT,
the `alerts` measurement, webhooks). Only an evaluating ingestor (`KERA_EVALUATE=true`) runs
them.
"""
