"""The Celery worker: runs chunks, dispatches, extends leases, sweeps."""
