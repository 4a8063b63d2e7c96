"""The demo's default dataset: paragraphs of the Python standard library's own docstrings.

Every machine that runs sluice has them, so the demo needs no download and the repository
ships no dataset. The text is real English prose of skewed length, like user data.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import sys
import warnings
from collections.abc import Iterator

# Modules with side effects on import, or that open windows or print.
_SKIP = {
    "antigravity",
    "this",
    "idlelib",
    "turtledemo",
    "tkinter",
    "turtle",
    "test",
    "lib2to3",
    "ensurepip",
    "venv",
    "pydoc_data",
    "msilib",
    "winreg",
    "winsound",
}


def _docs(module_name: str) -> Iterator[str]:
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return
    for obj in [module, *(v for k, v in vars(module).items() if not k.startswith("_"))]:
        yield inspect.getdoc(obj) or ""
        if inspect.isclass(obj) and getattr(obj, "__module__", None) == module_name:
            for k, v in vars(obj).items():
                if not k.startswith("_"):
                    yield inspect.getdoc(v) or ""


def stdlib_paragraphs(
    limit: int | None = None, *, min_chars: int = 40, max_chars: int = 1500
) -> list[str]:
    """Distinct docstring paragraphs of the standard library, in a stable order."""
    seen: set[str] = set()
    out: list[str] = []
    names = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in _SKIP)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for name in names:
            for doc in _docs(name):
                for para in doc.split("\n\n"):
                    text = " ".join(para.split())
                    if (
                        min_chars <= len(text) <= max_chars
                        and text not in seen
                        and not text.startswith(">>>")
                    ):
                        seen.add(text)
                        out.append(text)
                        if limit is not None and len(out) >= limit:
                            return out
    return out
