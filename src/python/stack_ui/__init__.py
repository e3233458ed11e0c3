"""What the stack's web pages share: the theme stylesheet, served by the frontend and by the
orchestrator's dashboard at theme/theme.css."""

from __future__ import annotations

from pathlib import Path

THEME_DIR = Path(__file__).resolve().parent / "static"
