"""Silence endpoints (Alertmanager's /silences): create, list, expire."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from alerts.api.answers import SilenceAnswer, SilenceList, answers
from alerts.api.auth import CurrentKey, CurrentService
from alerts.durations import Duration
from alerts.ingest.protocol import MAX_TIMESTAMP, Timestamp
from alerts.model import ApiKey
from alerts.silence.matchers import Matcher, MatcherError
from alerts.silence.silences import Silence, new_silence

router = APIRouter(prefix="/api/v1", strict_content_type=False)


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    matchers: Annotated[list[str], Field(min_length=1, max_length=50)]
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    duration: Duration | None = None
    created_by: Annotated[str, Field(min_length=1, max_length=200)]
    comment: Annotated[str, Field(min_length=1, max_length=10_000)]


def parse_matcher_texts(texts: list[str]) -> list[Matcher]:
    matchers = []
    for index, text in enumerate(texts):
        try:
            matchers.append(Matcher.parse(text))
        except MatcherError as exc:
            raise HTTPException(422, [{"loc": ["body", "matchers", index], "msg": str(exc),
                                       "type": "value_error"}]) from None
    return matchers


def check_scope(key: ApiKey, matchers: list[Matcher]) -> None:
    """Project keys may only silence their own project's alerts (an equality matcher on it)."""
    if key.admin:
        return
    if not any(m.name == "project" and m.op == "=" and m.value == key.project for m in matchers):
        raise HTTPException(403, f"a project key may only create silences with the matcher project={key.project}")


def visible_to(key: ApiKey, silence: Silence) -> bool:
    """Admins see every silence; a project key those with a matcher on its project."""
    return key.admin or any(m.name == "project" and m.value == key.project for m in silence.matchers)


def create_silence(body: SilenceBody, matchers: list[Matcher], now: float) -> Silence:
    starts_at = body.starts_at if body.starts_at is not None else now
    if body.ends_at is not None:
        ends_at = body.ends_at
    elif body.duration is not None:
        ends_at = starts_at + body.duration
        if not ends_at <= MAX_TIMESTAMP:  # also NaN (an infinite duration from an infinite start)
            raise HTTPException(422, [{"loc": ["body", "duration"], "type": "value_error",
                                       "msg": "the silence would end after 9999-12-31T23:59:59Z"}])
    else:
        raise HTTPException(422, [{"loc": ["body", "ends_at"], "msg": "give ends_at or duration",
                                   "type": "missing"}])
    try:
        return new_silence(matchers, starts_at=starts_at, ends_at=ends_at, created_by=body.created_by,
                           comment=body.comment, now=now)
    except ValueError as exc:
        raise HTTPException(422, [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]) from None


def silence_json(silence: Silence, now: float) -> dict[str, Any]:
    return {**silence.to_json(), "state": silence.state(now)}


@router.post("/silences", response_model=SilenceAnswer, responses=answers(401, 403, 413, 422))
async def add_silence(body: SilenceBody, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    matchers = parse_matcher_texts(body.matchers)
    check_scope(key, matchers)
    now = time.time()
    silence = create_silence(body, matchers, now)
    await service.store.save_silence(silence.to_json())
    await service.silences.refresh()
    return silence_json(silence, now)


@router.get("/silences", response_model=SilenceList, responses=answers(401, 422))
async def list_silences(key: CurrentKey, service: CurrentService,
                        state: Literal["pending", "active", "expired"] | None = None) -> dict[str, Any]:
    now = time.time()
    silences = [Silence.from_json(row) for row in await service.store.list_silences()]
    silences = [s for s in silences if visible_to(key, s)]
    return {"silences": [silence_json(s, now) for s in silences if state is None or s.state(now) == state]}


@router.delete("/silences/{silence_id}", response_model=SilenceAnswer,
                responses=answers(401, 403, 404, 422))
async def expire_silence(silence_id: str, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    now = time.time()
    found = [Silence.from_json(row) for row in await service.store.list_silences() if row["id"] == silence_id]
    if not found:
        raise HTTPException(404, f"unknown silence {silence_id}")
    check_scope(key, found[0].matchers)
    silence = found[0]
    silence.ends_at = min(silence.ends_at, now)
    silence.starts_at = min(silence.starts_at, silence.ends_at)
    silence.updated_at = now
    await service.store.save_silence(silence.to_json())
    await service.silences.refresh()
    return silence_json(silence, now)


