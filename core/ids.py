"""Identifiers that sort by creation time (so cursors can page newest first)."""

import secrets
import time


def new_id(prefix: str) -> str:
    """`prefix_` + 12 hex digits of milliseconds + 16 random hex digits."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def new_token() -> str:
    """A random lease token."""
    return secrets.token_hex(16)
