"""Scheduled posts: when they run (schedules, quiet hours) and how they are managed."""
