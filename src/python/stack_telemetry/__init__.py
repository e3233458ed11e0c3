"""Tracing shared by the services: off by default, never able to stall an event loop."""
