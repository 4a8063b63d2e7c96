"""The HTTP API (FastAPI). Never imports torch or worker/."""
