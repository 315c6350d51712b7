"""Giveaways: button entry, requirements, a timed provably fair draw, rerolls."""
