"""Pruning: structured (importance, plan, apply), unstructured masks and schedules, and the methods built on them."""
