"""Moshi-protocol speech-to-speech server (aiohttp, port 8998)."""
