"""FastAPI web frontend (port 8010): UI, config API, log stream, WebSocket relay."""
