"""Files: streamed JSONL uploads, listing, metadata, streamed content, deletion."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import exists, select

from api.deps import STRICT_QUERY, SessionDep, TenantDep, found, page_of
from api.openapi_links import FILE_LINKS, linked
from api.schemas import ERROR_RESPONSES, FileDeleted, FileList, FileOut
from api.upload_quota import admit_upload
from api.upload_slots import UploadSlotDep
from api.uploads import LineSink, UploadLimits, receive_upload
from core import states
from core.blobs import FileStorage, PartWriter, storage_named
from core.db import read_session, write_session
from core.errors import Conflict, InvalidInput, NotFound, shown
from core.store.files import finish_file, forget_file, get_file, list_files, start_file
from core.store.quotas import check_upload_room
from core.tables import File, Job

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/files", tags=["files"], responses=ERROR_RESPONSES, dependencies=STRICT_QUERY
)
PURPOSES = ("batch", "jobs")
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 365 * 86400
DIGITS = re.compile(r"[0-9]{1,12}")


def file_out(row: File) -> FileOut:
    """A file row as the API shows it."""
    return FileOut(
        id=row.id,
        bytes=row.bytes,
        created_at=int(row.created_at),
        expires_at=int(row.expires_at),
        filename=row.filename,
        purpose=row.purpose,
        lines=row.lines,
        sha256=row.sha256,
    )


def _expiry(fields: dict[str, str], default: float) -> float:
    """Seconds until the file expires: OpenAI's expires_after[anchor]/[seconds], or default."""
    anchor = fields.get("expires_after[anchor]", "created_at")
    if anchor != "created_at":
        raise InvalidInput(
            "expires_after[anchor] must be created_at", param="expires_after[anchor]"
        )
    raw = fields.get("expires_after[seconds]")
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not DIGITS.fullmatch(raw) or not MIN_EXPIRY_SECONDS <= int(raw) <= MAX_EXPIRY_SECONDS:
        raise InvalidInput(
            f"expires_after[seconds] must be an integer from {MIN_EXPIRY_SECONDS} to "
            f"{MAX_EXPIRY_SECONDS}",
            param="expires_after[seconds]",
        )
    return float(raw)


def _storage(request: Request, name: str) -> FileStorage:
    cfg = request.app.state.settings
    return storage_named(name, database_url=cfg.database_url, files_dir=cfg.files_dir)


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(PURPOSES)},
                        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                        "expires_after[seconds]": {
                            "type": "integer",
                            "minimum": MIN_EXPIRY_SECONDS,
                            "maximum": MAX_EXPIRY_SECONDS,
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=FileOut,
    summary="Upload a JSONL file (multipart, streamed)",
    openapi_extra=UPLOAD_BODY,
    responses=linked(200, FILE_LINKS),
)
async def upload_file(request: Request, tenant: TenantDep, _slot: UploadSlotDep) -> FileOut:
    """Multipart form with a `file` part (JSONL, or gzipped JSONL, decompressed as it
    streams in and stored decompressed) and `purpose` (batch or jobs). Every line must be
    one JSON object; the first bad line is refused with its number and nothing is kept."""
    cfg = request.app.state.settings
    storage: FileStorage = request.app.state.storage
    db = cfg.database_url
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise InvalidInput(
            f"Content-Encoding {encoding} is not taken: send the request as it is, with a "
            "gzipped file as its `file` part (decompressed as it streams in)",
            code="unsupported_content_encoding",
            param="file",
        )

    def start() -> File:
        with write_session(db) as session:
            return start_file(
                session=session,
                tenant_id=tenant.id,
                filename="upload.jsonl",
                purpose="batch",
                storage=storage.name,
            )

    await admit_upload(request, tenant.id)  # 429 over a quota, the body unread
    row = await run_in_threadpool(start)
    writer = storage.writer(row.id)
    limits = UploadLimits(
        cfg.max_file_bytes,
        cfg.max_line_bytes,
        cfg.max_items_per_file_job,
        max_gzip_ratio=cfg.max_gzip_ratio,
    )
    sink = LineSink(writer, limits)
    try:
        fields, filename = await receive_upload(
            request.headers.get("content-type", ""), request.stream(), sink
        )
        purpose = fields.get("purpose", "batch")
        if purpose not in PURPOSES:
            raise InvalidInput(
                f"purpose must be one of {', '.join(PURPOSES)}",
                code="invalid_purpose",
                param="purpose",
            )
        expires = _expiry(fields, cfg.file_retention_days * 86400)

        def finish() -> File | None:
            with write_session(db) as session:
                done = finish_file(
                    session=session,
                    file_id=row.id,
                    purpose=purpose,
                    written=sink,
                    expires_after_seconds=expires,
                )
                if done is not None:
                    # stored decompressed: a.jsonl.gz is kept as a.jsonl
                    gz = sink.gzipped and filename.lower().endswith(".gz")
                    done.filename = (filename[:-3] if gz else filename)[:255]
                    # Counted now: over the quota, all of it is undone (and discarded).
                    check_upload_room(
                        session=session, tenant_id=tenant.id, cfg=cfg, size=done.bytes, counted=True
                    )
                return done

        done = await run_in_threadpool(finish)
    except BaseException:
        await run_in_threadpool(_discard, db, storage, row.id, writer)
        raise
    if done is None:
        raise NotFound("the upload was removed while it ran", param="file")
    return file_out(done)


def _discard(db: str, storage: FileStorage, file_id: str, writer: PartWriter) -> None:
    """Remove a failed upload: its bytes, then its row."""
    try:
        writer.abort()
        storage.delete(file_id)
        with write_session(db) as session:
            forget_file(session=session, file_id=file_id)
    except Exception as exc:  # the sweep removes stale uploads anyway
        log.warning("could not discard upload %s: %s", file_id, exc)


def _load(db: str, tenant_id: str, file_id: str) -> File:
    with read_session(db) as session:
        row = get_file(session=session, tenant_id=tenant_id, file_id=file_id)
    return found(row, f"no file {shown(file_id)}", param="file_id")


@router.get("", response_model=FileList, summary="List your files, newest first")
def list_my_files(
    tenant: TenantDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    after: Annotated[str | None, Query(max_length=64, description="Cursor: a file id")] = None,
    purpose: Annotated[
        Literal["batch", "jobs", "batch_output"] | None,
        Query(description="Only files of this purpose (batch_output: batches' output files)"),
    ] = None,
) -> FileList:
    """One page of the caller's files; pass last_id as `after` for the next."""
    rows = list_files(
        session=session, tenant_id=tenant.id, limit=limit + 1, after=after, purpose=purpose
    )
    page = page_of(rows, limit)
    return FileList(
        data=[file_out(r) for r in page.rows],
        first_id=page.rows[0].id if page.rows else None,
        last_id=page.rows[-1].id if page.rows else None,
        has_more=page.has_more,
    )


@router.get("/{file_id}", response_model=FileOut, summary="A file's metadata")
def get_my_file(file_id: str, tenant: TenantDep, session: SessionDep) -> FileOut:
    """Size, line count, purpose, digest and expiry of one of your files."""
    row = get_file(session=session, tenant_id=tenant.id, file_id=file_id)
    return file_out(found(row, f"no file {shown(file_id)}", param="file_id"))


@router.get(
    "/{file_id}/content",
    summary="Download a file's bytes (streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def file_content(file_id: str, tenant: TenantDep, request: Request) -> StreamingResponse:
    """The file exactly as uploaded."""
    row = _load(request.app.state.settings.database_url, tenant.id, file_id)
    return StreamingResponse(
        _storage(request, row.storage).read(row.id),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(row.bytes),
            "Content-Disposition": f'attachment; filename="{row.id}.jsonl"',
        },
    )


@router.delete("/{file_id}", response_model=FileDeleted, summary="Delete a file")
def delete_my_file(file_id: str, tenant: TenantDep, request: Request) -> FileDeleted:
    """Remove a file and its bytes; refused while a job is still reading it."""
    db = request.app.state.settings.database_url
    row = _load(db, tenant.id, file_id)
    with write_session(db) as session:
        busy = session.scalar(
            select(exists().where(Job.input_file_id == row.id, Job.status == states.VALIDATING))
        )
        if busy:
            raise Conflict(
                "a job is validating this file; delete it when that is done",
                code="file_in_use",
                param="file_id",
            )
        forget_file(session=session, file_id=row.id)
    _storage(request, row.storage).delete(row.id)
    return FileDeleted(id=row.id)
