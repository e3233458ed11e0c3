"""The Moshi WebSocket protocol: message kinds, framing, close codes, chat parameters.

Imported by the backend server, the frontend's proxy, the tests and the benchmarks, so that all of
them agree on one definition.
"""
