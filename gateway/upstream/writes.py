"""The Jobs API's write endpoints: one method each, sent once, then the caller's cache dropped.

Each write is one call of the caller's budget, through the breaker like a read, and is retried
only when no connection could be made (`Exchange.write`): never once it may have reached the
upstream. Bodies hold exactly what the caller gave. After a write that may have changed
something (a 2xx, or an answer that never came), every page and response kept for the caller
is dropped (`PageCache.invalidate`), so the caller's next read goes to the upstream.

The vendor documents no answers: a write's answer is the job when it is a JSON object with a
`jobId` (create and sync answer so), else None and the caller reads the job back.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import orjson

from gateway.cache import PageCache
from gateway.caller import Caller
from gateway.errors import (
    BadUserInputError,
    ForbiddenError,
    NotFoundError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.upstream.breaker import CircuitOpenError
from gateway.upstream.decoding import JobJSON
from gateway.upstream.exchange import Exchange, Write
from gateway.upstream.paths import path_segment
from gateway.upstream.statuses import ConnectFailedError

logger = logging.getLogger("gateway.upstream")

JOBS: Final = "/jobs/v1"
_MAY_HAVE_CHANGED: Final = (UpstreamTimeoutError, UpstreamUnavailableError)


class JobWrites:
    """Sends the caller's changes to the Jobs API (see the module doc)."""

    def __init__(self, exchange: Exchange, base_url: str, cache: PageCache) -> None:
        self._exchange = exchange
        self._base_url = base_url
        self._cache = cache

    async def create_job(self, caller: Caller, job: dict[str, Any]) -> JobJSON | None:
        """`POST /jobs/v1` (Workflow_Execute): a new job; answers it with its new `jobId`."""
        return await self._send(caller, "POST", JOBS, job, "create_job", "Workflow_Execute")

    async def sync_job(self, caller: Caller, job: dict[str, Any]) -> JobJSON | None:
        """`POST /jobs/v1/basicSync` (Workflow_Execute): create or update by clientJobId."""
        path = f"{JOBS}/basicSync"
        return await self._send(caller, "POST", path, job, "sync_job", "Workflow_Execute")

    async def update_job(
        self, caller: Caller, client_job_id: str, metadata: dict[str, Any]
    ) -> JobJSON | None:
        """`POST /jobs/v1/{clientJobId}` (Job_Modify) with `{"metadata": {...}}`."""
        path = self._job_path(client_job_id)
        body = {"metadata": metadata}
        return await self._send(caller, "POST", path, body, "update_job", "Job_Modify")

    async def add_job_metadata(
        self, caller: Caller, client_job_id: str, metadata: dict[str, Any]
    ) -> JobJSON | None:
        """`POST /jobs/v1/{clientJobId}/metadata` (Job_Modify): merged into metadata.metadata."""
        path = f"{self._job_path(client_job_id)}/metadata"
        return await self._send(caller, "POST", path, metadata, "add_job_metadata", "Job_Modify")

    async def abort_job(self, caller: Caller, client_job_id: str) -> JobJSON | None:
        """`POST /jobs/v1/{clientJobId}/abort` (Job_Read): only incomplete jobs."""
        path = f"{self._job_path(client_job_id)}/abort"
        return await self._send(caller, "POST", path, None, "abort_job", "Job_Read")

    async def assign_job(self, caller: Caller, client_job_id: str, user_id: str) -> JobJSON | None:
        """`POST /jobs/v1/{clientJobId}/assign/{userId}` (Job_Read)."""
        user = path_segment(user_id, "userId")
        path = f"{self._job_path(client_job_id)}/assign/{user}"
        return await self._send(caller, "POST", path, None, "assign_job", "Job_Read")

    async def exclude_job(
        self, caller: Caller, client_job_id: str, user_id: str, reason: str
    ) -> JobJSON | None:
        """`PUT /jobs/v1/{clientJobId}` (Job_ReadAll) with exactly `{"userId", "reason",
        "isExcluded": "true"}`: the vendor documents `isExcluded` as a string."""
        body = {"userId": user_id, "reason": reason, "isExcluded": "true"}
        path = self._job_path(client_job_id)
        return await self._send(caller, "PUT", path, body, "exclude_job", "Job_ReadAll")

    async def delete_job(self, caller: Caller, client_job_id: str) -> None:
        """`DELETE /jobs/v1/{clientJobId}` (Job_Modify)."""
        path = self._job_path(client_job_id)
        await self._send(caller, "DELETE", path, None, "delete_job", "Job_Modify")

    async def abort_jobs_for_user(self, caller: Caller, user_id: str | None) -> None:
        """`PUT /jobs/v1/abort/?userId=` (Job_Modify): the user's incomplete jobs, or with no
        `user_id` every incomplete job of the team (the caller must have asked for that)."""
        params = {"userId": user_id} if user_id is not None else {}
        await self._send(
            caller, "PUT", f"{JOBS}/abort/", None, "abort_jobs_for_user", "Job_Modify", params
        )

    def _job_path(self, client_job_id: str) -> str:
        return f"{JOBS}/{path_segment(client_job_id, 'clientJobId')}"

    async def _send(
        self,
        caller: Caller,
        method: str,
        path: str,
        body: object,
        endpoint: str,
        policy: str,
        params: dict[str, Any] | None = None,
    ) -> JobJSON | None:
        """Send one write; drop the caller's cached reads if it may have changed anything."""
        try:
            content = None if body is None else orjson.dumps(body)
        except orjson.JSONEncodeError:
            # Free-form JSON nested past orjson's 254 levels: refused before anything is sent.
            raise BadUserInputError("The input is nested too deeply to send") from None
        caller.ledger.wrote = True
        write = Write(method, content)
        url = self._base_url + path
        try:
            response = await self._exchange.write(caller, url, params or {}, endpoint, write)
        except (ConnectFailedError, CircuitOpenError):
            raise  # never sent: nothing changed
        except _MAY_HAVE_CHANGED:
            await self._forget(caller)  # the write may have happened before the answer failed
            raise
        except ForbiddenError as refused:
            message = f"The bearer token lacks the policy this change needs ({policy})"
            raise ForbiddenError(message, upstream_status=refused.upstream_status) from None
        except NotFoundError as missing:
            message = "The Jobs API knows no job with that clientJobId for this token"
            raise NotFoundError(message, upstream_status=missing.upstream_status) from None
        await self._forget(caller)
        return _job_in(response.body)

    async def _forget(self, caller: Caller) -> None:
        """Drop every page and response kept for the caller (read-your-writes)."""
        try:
            await self._cache.invalidate(caller.credential)
        except Exception:
            # The write itself went through; the cache's own gate reports the outage.
            logger.exception("Could not drop the caller's cached reads after a write")


def _job_in(body: bytes) -> JobJSON | None:
    """The job a write answered, when its answer is one (a JSON object with a `jobId`)."""
    try:
        decoded = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(decoded, dict) and isinstance(decoded.get("jobId"), str):
        return decoded
    return None
