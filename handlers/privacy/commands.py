"""Placeholder: being written this session."""

from __future__ import annotations

from handlers.core.router import Router

router = Router("privacy")
