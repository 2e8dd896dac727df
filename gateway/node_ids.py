"""Relay global ids: `Job` plus its 24-hex-digit jobId, as opaque URL-safe base64."""

from __future__ import annotations

import base64
import binascii
import re

from gateway.errors import BadUserInputError

_JOB_ID = re.compile(r"[0-9a-fA-F]{24}")


def global_id(type_name: str, local_id: str) -> str:
    """The global id of object `local_id` of `type_name`."""
    return base64.urlsafe_b64encode(f"{type_name}:{local_id}".encode()).rstrip(b"=").decode()


def job_id_from(value: str) -> str:
    """The jobId inside a Job's global id; `BadUserInputError` for anything else."""
    invalid = BadUserInputError(
        f"{value[:40]!r} is not a Job id: pass the `id` of a Job the gateway returned"
    )
    if not value or len(value) > 64 or not value.isascii():
        raise invalid
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    type_name, _, job_id = text.partition(":")
    if type_name != "Job" or _JOB_ID.fullmatch(job_id) is None or global_id("Job", job_id) != value:
        raise invalid
    return job_id
