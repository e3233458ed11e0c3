"""Fixtures shared by the tests of every service: gates on real Docker and Chromium, base images."""
