"""Response bodies of the model status (what the dashboard's Models page shows)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WorkerStatusOut(BaseModel):
    """A live worker serving the model, as its last heartbeat described it."""

    name: str = Field(description="host:pid:gpuN or host:pid:cpu")
    host: str | None
    device: str | None = Field(description="Where it runs the model: cpu, cuda:0, ...")
    dtype: str | None = Field(description="float32, bfloat16, float16")
    items_per_second: float | None = Field(description="Over the last minute, on this worker")
    last_heartbeat: float = Field(description="Unix time of its last heartbeat")


class ModelStatusOut(BaseModel):
    """One registered model's load."""

    model: str
    task: str
    queue_depth: int = Field(description="Chunks waiting to start (pending or queued)")
    pending_items: int = Field(description="Items in chunks not finished yet")
    workers: list[WorkerStatusOut]


class ModelStatusList(BaseModel):
    """Every registered model's load."""

    object: str = "list"
    data: list[ModelStatusOut]
