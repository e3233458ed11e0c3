#!/bin/sh
# Container entry point: the environment (set by the orchestrator or `docker run -e`) becomes
# explicit flags, so `ps` and the logs show what the server was started with.
set -eu
exec /app/venv/pex \
  --host "${MOSHI_HOST:-0.0.0.0}" \
  --port "${MOSHI_PORT:-8998}" \
  --engine "${MOSHI_ENGINE:-auto}" \
  "$@"
