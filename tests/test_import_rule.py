"""The import rule of the house: api -> core, models -> core, worker -> core and models,
cli -> client, core and worker, core and client -> nothing of ours; no torch or transformers
in api/, core/ or client/. Every module's imports are read with `ast`, function-local ones
included. The `client/` folder is the sluice-client distribution: its package is imported
as `sluice_client`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each folder of ours, by the top-level name its modules are imported as.
IMPORT_NAMES = {
    "api": "api",
    "core": "core",
    "worker": "worker",
    "models": "models",
    "cli": "cli",
    "migrations": "migrations",
    "client": "sluice_client",
}
OURS = {name: folder for folder, name in IMPORT_NAMES.items()}
# A folder may import itself and these folders of ours.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "client": set(),
    "api": {"core"},
    "models": {"core"},
    "worker": {"core", "models"},
    "cli": {"client", "core", "worker"},
    "migrations": {"core"},
}
HEAVY = {"torch", "transformers", "torchvision", "sentence_transformers"}
TORCH_FREE = {"api", "core", "client"}


def imported_packages(source: str) -> set[tuple[str, int]]:
    """(top-level package, line) of every import in a module's source."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def violations(root: Path) -> list[str]:
    """Every import against the rule, as `path:line: package -> package`."""
    out: list[str] = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for name, line in sorted(imported_packages(path.read_text())):
                where = f"{path.relative_to(root)}:{line}"
                target = OURS.get(name)
                if target is not None and target != package and target not in allowed:
                    out.append(f"{where}: {package} -> {target}")
                if package in TORCH_FREE and name in HEAVY:
                    out.append(f"{where}: {package} -> {name} (must stay torch-free)")
    return out


def test_every_import_follows_the_rule() -> None:
    assert violations(ROOT) == []


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "core" / "bad.py").write_text("def f():\n    from models.encoder import x\n")
    (tmp_path / "api" / "heavy.py").write_text("import torch.nn\nfrom core import db\n")
    (tmp_path / "worker" / "ok.py").write_text("from models import a\nfrom core import b\n")
    (tmp_path / "client" / "sluice_client").mkdir()
    (tmp_path / "client" / "sluice_client" / "bad.py").write_text(
        "from sluice_client.errors import SluiceError\nfrom core.errors import NotFound\n"
    )
    (tmp_path / "cli" / "ok.py").write_text("from sluice_client import Client\n")
    (tmp_path / "api" / "bad.py").write_text("import sluice_client\n")
    assert sorted(violations(tmp_path)) == [
        "api/bad.py:1: api -> client",
        "api/heavy.py:1: api -> torch (must stay torch-free)",
        "client/sluice_client/bad.py:2: client -> core",
        "core/bad.py:2: core -> models",
    ]
