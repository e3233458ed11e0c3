"""The orchestrator's telemetry: an OTLP/HTTP receiver for the services' spans, logs and metrics,
a bounded store of the current run, and the SQLite history of the last runs."""
