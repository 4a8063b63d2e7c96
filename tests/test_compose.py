"""docker-compose.yml and the Dockerfile, checked by parsing (no Docker engine needed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url

import cli.main
from core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

REQUIRED_SERVICES = {"postgres", "redis", "migrate", "api", "worker"}
SECRET_WORDS = ("PASSWORD", "PEPPER", "SECRET", "TOKEN")
# `${VAR:?message}`: compose refuses to start when VAR is unset or empty.
REQUIRED_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}")
ANY_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?+])[^}]*)?\}")
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]*:(?P<password>.+)@[^@]+$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _sluice_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services running the sluice image (built here, or tagged sluice)."""
    return {
        name: svc
        for name, svc in services.items()
        if "build" in svc or str(svc.get("image", "")).split(":")[0].endswith("sluice")
    }


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def _depends(svc: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition} (the short list form means service_started)."""
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _substitute(value: str) -> str:
    """A value as compose would interpolate it, every variable set to a dummy."""
    return ANY_REF.sub(lambda m: f"dummy-{m.group(1).lower().replace('_', '-')}", value)


def _cli_commands() -> set[str]:
    return {
        c.name or c.callback.__name__.replace("_", "-")
        for c in cli.main.app.registered_commands
        if c.callback is not None
    }


def _secret_problems(where: str, env: dict[str, str]) -> Iterator[str]:
    for key, value in env.items():
        if any(word in key.upper() for word in SECRET_WORDS) and not REQUIRED_REF.fullmatch(value):
            yield f"{where}: {key} is not a ${{VAR:?...}} reference"
        url = URL_PASSWORD.match(value)
        if url and not REQUIRED_REF.fullmatch(url["password"]):
            yield f"{where}: {key} has a literal password in its URL"


def _gpu_problems(name: str, svc: dict[str, Any]) -> Iterator[str]:
    """`--gpu N` must name one of the GPUs the container gets, numbered from 0 inside it."""
    cmd = _command(svc)
    gpus = [cmd[i + 1] for i, part in enumerate(cmd[:-1]) if part == "--gpu"]
    gpus += [part.split("=", 1)[1] for part in cmd if part.startswith("--gpu=")]
    if len(gpus) != 1 or not gpus[0].isdigit():
        yield f"{name}: command needs exactly one `--gpu N`, got {cmd}"
        return
    devices = (
        svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices") or []
    )
    nvidia = [
        d for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])
    ]
    if len(nvidia) != 1 or len(nvidia[0].get("device_ids") or []) != 1:
        yield f"{name}: needs one nvidia reservation with exactly one device id: {devices}"
        return
    # The container runtime renumbers the reserved GPUs from 0, so the one GPU a worker
    # container gets is index 0 inside it, whatever its host index.
    if int(gpus[0]) >= len(nvidia[0]["device_ids"]):
        yield (
            f"{name}: --gpu {gpus[0]} but the container sees only "
            f"{len(nvidia[0]['device_ids'])} GPU(s) (host ids {nvidia[0]['device_ids']})"
        )
    if "CUDA_VISIBLE_DEVICES" in _env(svc) or "NVIDIA_VISIBLE_DEVICES" in _env(svc):
        yield f"{name}: GPU visibility is set by the reservation and --gpu, not the environment"


def _worker_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    sluice = _sluice_services(services)
    return {n: s for n, s in sluice.items() if _command(s)[:1] == ["worker"]}


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)
    assert set(_sluice_services(services)) >= {"migrate", "api", "worker"}


def test_redis_runs_with_appendonly(services: dict[str, dict[str, Any]]) -> None:
    cmd = _command(services["redis"])
    assert cmd[:1] == ["redis-server"], cmd
    assert "--appendonly" in cmd, cmd
    assert cmd[cmd.index("--appendonly") + 1] == "yes", cmd


def test_migrate_runs_first_and_once(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert _command(migrate) == ["migrate"]
    assert migrate.get("restart") == "no"  # a string: a bare `no` would parse as False
    assert _depends(migrate).get("postgres") == "service_healthy"
    sluice = _sluice_services(services)
    for name in ("api", *_worker_services(services)):
        deps = _depends(sluice[name])
        assert deps.get("migrate") == "service_completed_successfully", (name, deps)
        assert deps.get("redis") == "service_healthy", (name, deps)


def test_sluice_services_point_at_postgres_and_redis(services: dict[str, dict[str, Any]]) -> None:
    sluice = _sluice_services(services)
    assert len({svc.get("image") for svc in sluice.values()}) == 1, "one image for all"
    for name, svc in sluice.items():
        env = _env(svc)
        assert env.get("SLUICE_DATABASE_URL", "").startswith("postgresql+psycopg://"), name
        assert env.get("SLUICE_REDIS_URL", "").startswith("redis://"), name
        assert env.get("SLUICE_ENVIRONMENT") == "production", name


def test_commands_are_real_cli_commands(services: dict[str, dict[str, Any]]) -> None:
    names = _cli_commands()
    assert {"migrate", "api", "worker"} <= names, names
    click_group = typer.main.get_command(cli.main.app)
    for name, svc in _sluice_services(services).items():
        cmd = _command(svc)
        assert cmd, f"{name}: no command (the image's default is --help)"
        assert cmd[0] in names, f"{name}: {cmd[0]!r} is not one of {sorted(names)}"
        # The options must parse too (unknown options and bad values raise here).
        sub = click_group.commands[cmd[0]]
        with sub.make_context(cmd[0], cmd[1:]) as ctx:
            assert ctx.params is not None


def test_workers_use_the_gpu_they_reserve(services: dict[str, dict[str, Any]]) -> None:
    workers = _worker_services(services)
    assert "worker" in workers
    problems = [p for name, svc in workers.items() for p in _gpu_problems(name, svc)]
    assert not problems, problems
    host_ids = [
        d["device_ids"][0]
        for svc in workers.values()
        for d in svc["deploy"]["resources"]["reservations"]["devices"]
    ]
    assert len(host_ids) == len(set(host_ids)), f"two workers share a GPU: {host_ids}"


def test_worker_stops_gracefully(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in _worker_services(services).items():
        assert svc.get("stop_grace_period") == "60s", name


def test_gpu_check_catches_host_index_inside_container() -> None:
    def worker(gpu: str, ids: list[str]) -> dict[str, Any]:
        devices = [{"driver": "nvidia", "device_ids": ids, "capabilities": ["gpu"]}]
        return {
            "command": ["worker", "--gpu", gpu],
            "deploy": {"resources": {"reservations": {"devices": devices}}},
        }

    assert not list(_gpu_problems("ok", worker("0", ["1"])))
    assert list(_gpu_problems("host index", worker("1", ["1"])))
    assert list(_gpu_problems("two gpus", worker("0", ["0", "1"])))
    assert list(_gpu_problems("no gpu flag", {"command": ["worker"]}))


def test_no_literal_secrets(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    problems = [p for name, svc in services.items() for p in _secret_problems(name, _env(svc))]
    problems += _secret_problems(
        "x-sluice-env", {k: str(v) for k, v in compose["x-sluice-env"].items()}
    )
    assert not problems, problems
    assert REQUIRED_REF.search(_env(services["api"])["SLUICE_KEY_PEPPER"])


def test_secret_check_catches_literals() -> None:
    assert list(_secret_problems("s", {"POSTGRES_PASSWORD": "hunter2"}))
    assert list(_secret_problems("s", {"SLUICE_KEY_PEPPER": "${PEPPER:-changeme}"}))
    assert list(_secret_problems("s", {"SLUICE_DATABASE_URL": "postgresql://u:hunter2@db/x"}))
    assert not list(_secret_problems("s", {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set}"}))


def test_api_healthcheck_targets_readyz(services: dict[str, dict[str, Any]]) -> None:
    test = services["api"]["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", test
    joined = " ".join(test)
    assert "urllib" in joined and re.search(r"http://(127\.0\.0\.1|localhost):8000/readyz", joined)
    assert "8000:8000" in services["api"].get("ports", [])


def test_dockerfile_entrypoint_is_the_sluice_script() -> None:
    instructions = [
        line.split(None, 1)
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    entrypoints = [rest for word, *rest in instructions if word.upper() == "ENTRYPOINT"]
    assert len(entrypoints) == 1 and json.loads(entrypoints[0][0]) == ["sluice"], entrypoints
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "sluice" in scripts
    users = [rest[0].strip() for word, *rest in instructions if word.upper() == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    # Offline mode is the operator's choice (hub-id models need the network).
    assert not any("HF_HUB_OFFLINE" in " ".join(parts) for parts in instructions)


@pytest.fixture
def compose_env(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The shared sluice environment as the process would see it, secrets set to dummies."""
    for key in [k for k in os.environ if k.startswith("SLUICE_")]:
        monkeypatch.delenv(key)
    env = {k: _substitute(str(v)) for k, v in compose["x-sluice-env"].items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_settings_accept_the_compose_environment(compose_env: dict[str, str]) -> None:
    cfg = Settings(_env_file=None)
    assert cfg.environment == "production"
    assert cfg.database_url == compose_env["SLUICE_DATABASE_URL"]
    assert not cfg.is_sqlite
    url = make_url(cfg.database_url)
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "postgres", "sluice")
    url.get_dialect()  # the psycopg 3 driver the URL names is importable
    assert cfg.redis_url == "redis://redis:6379/0"


def test_settings_refuse_the_placeholder_pepper_in_production(
    compose_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_KEY_PEPPER", "changeme")
    with pytest.raises(ValidationError, match="SLUICE_KEY_PEPPER"):
        Settings(_env_file=None)
    monkeypatch.delenv("SLUICE_KEY_PEPPER")
    with pytest.raises(ValidationError, match="SLUICE_KEY_PEPPER"):
        Settings(_env_file=None)
