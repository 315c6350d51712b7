"""Discord adapter: discord.py client, gateway and the pure translation to neutral events."""
