"""MQTT transport: SenML parser, ingest driver, broker configuration."""
