"""Relay global ids: `Job` plus its 24-hex-digit jobId, as opaque URL-safe base64."""

from __future__ import annotations

import re

from gateway.errors import BadUserInputError
from gateway.opaque import decode_opaque, encode_opaque

_JOB_ID = re.compile(r"[0-9a-fA-F]{24}")


def global_id(type_name: str, local_id: str) -> str:
    """The global id of object `local_id` of `type_name`."""
    return encode_opaque(f"{type_name}:{local_id}")


def job_id_from(value: str) -> str:
    """The jobId inside a Job's global id; `BadUserInputError` for anything else."""
    invalid = BadUserInputError(
        f"{value[:40]!r} is not a Job id: pass the `id` of a Job the gateway returned"
    )
    text = decode_opaque(value, max_length=64)
    if text is None:
        raise invalid
    type_name, _, job_id = text.partition(":")
    if type_name != "Job" or _JOB_ID.fullmatch(job_id) is None:
        raise invalid
    return job_id
