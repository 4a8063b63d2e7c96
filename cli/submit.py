"""`sluice submit`: check, upload (streamed, with a progress bar), make a job of the file,
and with --wait follow it to the end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.app import app, err, fail, program, say_error


def _upload(client: object, file: Path, images: list | None, limit: int | None) -> dict:
    """Stream the file's lines (or the images') to POST /v1/files under a progress bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
    from sluice_client.progress import start_display_thread

    from cli.upload import image_lines, native_lines

    total = sum(entry[2] for entry in images) if images is not None else file.stat().st_size
    bar = Progress(
        "[bold]uploading", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err
    )
    start_display_thread(bar.start)  # Ctrl-C stays on this thread (`with` starts no other)
    with bar:
        task = bar.add_task("upload", total=total)
        progress = lambda done: bar.update(task, completed=done)  # noqa: E731
        lines = (
            image_lines(images, on_progress=progress)
            if images is not None
            else native_lines(file, limit, progress)
        )
        filename = f"{file.name}.jsonl" if images is not None else file.name
        return client.upload_lines(lines, filename=filename)  # type: ignore[attr-defined]


@app.command()
def submit(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL(.gz): {custom_id, input} or {id, text} per line; or a directory of "
            "images (png, jpg, webp, bmp, gif), each an item whose custom_id is its path"
        ),
    ],
    model: Annotated[str, typer.Option(help="Model name (`sluice models` lists them)")],
    wait: Annotated[bool, typer.Option(help="Follow the job with a progress bar")] = False,
    params: Annotated[str, typer.Option(help="Task params as a JSON object")] = "{}",
    priority: Annotated[int, typer.Option(min=0, max=9)] = 0,
    limit: Annotated[int | None, typer.Option(help="Only the first N lines")] = None,
    on_invalid: Annotated[
        str, typer.Option(help="fail: an invalid line fails the job; skip: it fails alone")
    ] = "fail",
) -> None:
    """Check, upload and submit a file as one job; print its id (--wait follows it)."""
    from cli.client import ApiError, Client
    from cli.follow import follow, resumable
    from cli.preflight import Refused, check_first_lines, check_params, find_model, parse_params
    from cli.upload import image_files

    if on_invalid not in ("fail", "skip"):
        raise fail("--on-invalid takes fail or skip", code=2)
    images = None
    try:
        task_params = parse_params(params)
        if file.is_dir():
            images = image_files(file)[:limit] if limit else image_files(file)
            if not images:
                raise Refused(f"{file} holds no images (.png, .jpg, .jpeg, .webp, .bmp, .gif)")
        elif not file.is_file():
            raise Refused(f"{file}: no such file")
        client = Client()
        spec = find_model(client.models()["data"], model, program())
        check_params(spec, task_params)
        if images is None:
            check_first_lines(file, str(spec["task"]), skip_invalid=on_invalid == "skip")
    except Refused as exc:
        raise fail(exc.message, exc.hint, code=2) from None
    if spec.get("live_workers") == 0:
        err.print(
            f"[yellow]no worker serves {model} now: the job waits until one starts "
            f"(`{program()} worker --models {model}`)[/]"
        )
    uploaded = _upload(client, file, images, limit)
    err.print(f"uploaded {uploaded['id']}: {uploaded['lines']:,} lines")
    try:
        job = client.submit_file(
            model=model,
            input_file_id=uploaded["id"],
            params=task_params,
            priority=priority,
            on_invalid=on_invalid,
        )
    except ApiError:
        # The job was refused: its file would only sit there until it expires.
        try:
            client.delete_file(uploaded["id"])
        except ApiError as exc:
            say_error(f"(the uploaded file {uploaded['id']} could not be deleted: {exc})")
        raise
    with resumable(job["id"], err):
        print(job["id"], flush=True)
        if wait and follow(client, job["id"], err).status == "failed":
            raise typer.Exit(1)
