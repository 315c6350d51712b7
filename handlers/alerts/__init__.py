"""Alerts for managers (舆论监控 / 危机预警): watched words and spikes of negative messages on
the message path (`watch`, `state`, `sentiment`), drops and surges of activity on a timer
(`anomaly`), `/watch` (`commands`), delivery to the managers' chat (`notify`), the timers
(`lifecycle`), and the daily summary's lines (`summary.summary_lines`, re-exported here for
`handlers.analytics`)."""

from handlers.alerts.summary import summary_lines

__all__ = ["summary_lines"]
