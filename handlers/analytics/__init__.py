"""Community analytics: the metrics API, `/summary` and the scheduled daily summary.

- `metrics`: every figure of one community over one local day or week, from the rollups.
- `summary`: the summary message (template, chart, unanswered AMA questions, hooks).
- `charts`: the summary chart (14 days of messages and active members, hour of day).
- `schedule`: when a community's daily summary is due (its local time, DST-correct).
- `delivery`: the timers, the exactly-once firing, the sweep for missed ones.
- `commands`: `/summary [date]` and `/summary weekly`.
"""
