"""Telegram adapter: python-telegram-bot updates in (translate), neutral output out (gateway)."""
