"""What runs a model: runners per task, loading, device and dtype choice, the batch
planner and the micro-batch executor. Contracts shared with the API live in core/contracts."""
