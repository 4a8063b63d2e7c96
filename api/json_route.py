"""Request bodies parsed with orjson instead of the standard library's json module, and large
ones parsed and validated in a worker thread.

A 20,000-item job is a few MB of JSON; py-spy showed json.loads as the largest share of
the POST's serial time, and orjson parses it several times faster. A body orjson refuses
(NaN or Infinity literals, lone surrogate escapes, malformed JSON) is parsed again by
json.loads, so every such body gets exactly the answer it got before: the validation
that names the field with the lone surrogate, or FastAPI's json_invalid error.

A body over the app's `large_body_bytes` would hold the event loop for seconds (a 57 MiB
job stalled /healthz for 5.3 s): it is decoded and validated against the route's body
model in a worker thread, by the same FastAPI function that validates it otherwise, so its
answers are the same. FastAPI then sees the validated model, which it passes through
without validating again, and a two-byte stand-in for the raw bytes, which it would
otherwise hold until the response is sent."""

from __future__ import annotations

import asyncio
import email.message
import json
import types
import typing
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

# The validation errors of a body checked in a thread, until the route's dependency raises
# them (kept in the request's scope["state"]).
BODY_ERRORS = "sluice_body_errors"
# What FastAPI holds as the raw body once a large one is parsed (truthy, as a body is).
STAND_IN = b"{}"
# Items of a list field validated per call: pydantic holds the GIL for a whole call, and
# 100,000 job inputs in one took 0.25 to 0.44 s, during which the event loop stood still.
SLICE_ITEMS = 1024


def _loads(body: bytes | bytearray) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI decodes a body of this content type as JSON (its own test)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _list_fields(model: Any) -> dict[str, TypeAdapter[Any]]:
    """The fields of a body model that hold a list of models (optional or not), each with an
    adapter for a slice of that list."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return {}
    out: dict[str, TypeAdapter[Any]] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        options = (
            typing.get_args(annotation)
            if typing.get_origin(annotation) in (typing.Union, types.UnionType)
            else (annotation,)
        )
        for option in options:
            (item, *_) = typing.get_args(option) or (None,)
            if (
                typing.get_origin(option) is list
                and isinstance(item, type)
                and issubclass(item, BaseModel)
            ):
                out[info.alias or name] = TypeAdapter(list[item])  # type: ignore[valid-type]
    return out


def _validate_lists_in_slices(value: Any, fields: dict[str, TypeAdapter[Any]]) -> Any:
    """The decoded body with its lists of models validated a slice at a time (the model's
    own validation then passes the validated items through as they are, in milliseconds);
    the body unchanged where a slice fails, so that one validation of the whole names
    every error exactly as before."""
    if not isinstance(value, dict):
        return value
    lists = {k: v for k, v in value.items() if k in fields and isinstance(v, list)}
    try:
        done = {
            k: [
                x
                for start in range(0, len(v), SLICE_ITEMS)
                for x in fields[k].validate_python(v[start : start + SLICE_ITEMS])
            ]
            for k, v in lists.items()
        }
    except ValidationError:
        return value
    return {**value, **done}


class OrjsonRequest(Request):
    """A request whose json() is orjson.loads of its body (json.loads where that fails); a
    large JSON body is parsed and validated in a thread when it is read."""

    # The route's body validation (values, errors), for a large body; set per request.
    check_body: Callable[[Any], tuple[dict[str, Any], list[Any]]] | None = None

    async def body(self) -> bytes:
        if hasattr(self, "_body"):
            return self._body
        limit = self.app.state.settings.large_body_bytes
        declared = self.headers.get("content-length", "")
        if (
            self.check_body is None
            or not _is_json(self.headers.get("content-type"))
            or (declared.isascii() and declared.isdigit() and int(declared) <= limit)
        ):
            return await super().body()
        raw = bytearray()  # grows in place, where joining the parts would copy them all
        async for part in self.stream():
            raw += part
        if len(raw) <= limit:
            self._body = bytes(raw)
            return self._body
        self._json = await run_in_threadpool(self._decode_and_check, raw, self.check_body)
        self._body = STAND_IN
        return self._body

    def _decode_and_check(
        self, raw: bytearray, check: Callable[[Any], tuple[dict[str, Any], list[Any]]]
    ) -> Any:
        """The body's JSON, validated: the route's model, or (with its errors kept for
        raise_body_errors) the raw JSON. JSONDecodeError for malformed JSON, as json()."""
        value = _loads(raw)
        del raw[:]  # the bytes are not needed past here; free them before validating
        values, errors = check(value)
        if errors:
            self.scope.setdefault("state", {})[BODY_ERRORS] = errors
            return value
        return next(iter(values.values()))

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = _loads(await self.body())
        return self._json


async def raise_body_errors(request: Request) -> None:
    """Raise what a body validated in a thread failed on, where FastAPI would raise it:
    after the router's dependencies (a bad query parameter is still answered first)."""
    errors = request.scope.get("state", {}).get(BODY_ERRORS)
    if errors:
        raise RequestValidationError(errors)


class OrjsonRoute(APIRoute):
    """A route that hands its handler an OrjsonRequest."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[Any] = (),
        **kw: Any,
    ) -> None:
        super().__init__(
            path, endpoint, dependencies=[*dependencies, Depends(raise_body_errors)], **kw
        )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        # Only a route whose whole body is one model (every JSON route of sluice's) hands
        # FastAPI a validated model; another keeps FastAPI's own path.
        single = len(self.dependant.body_params) == 1 and not self._embed_body_fields
        check = self._body_check() if single else None

        async def route_handler(request: Request) -> Response:
            wrapped = OrjsonRequest(request.scope, request.receive)
            wrapped.check_body = check
            return await handler(wrapped)

        return route_handler

    def _body_check(self) -> Callable[[Any], tuple[dict[str, Any], list[Any]]]:
        """Validation of a decoded body as FastAPI does it for this route, callable from a
        worker thread (FastAPI's function is a coroutine that never awaits for JSON)."""
        fields, embed = self.dependant.body_params, self._embed_body_fields
        lists = _list_fields(fields[0].field_info.annotation)

        def validate(value: Any) -> tuple[dict[str, Any], list[Any]]:
            return asyncio.run(
                request_body_to_args(
                    body_fields=fields, received_body=value, embed_body_fields=embed
                )
            )

        def check(value: Any) -> tuple[dict[str, Any], list[Any]]:
            sliced = _validate_lists_in_slices(value, lists)
            values, errors = validate(sliced)
            # An error elsewhere in the body: validated again as received, so that every
            # error, and the input it quotes, is what it always was.
            return validate(value) if errors and sliced is not value else (values, errors)

        return check
