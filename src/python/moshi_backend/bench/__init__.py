"""Benchmarks of the backend; scripts run by hand, not part of the server."""
