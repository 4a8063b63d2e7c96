"""Model registry, runners and the batch planner. Only spec.py may be imported without torch."""
