"""Deterministic, realistic job JSON for the sample upstream: the same team and index, the same job.

The jobs vary the way the real API's do: statuses (Paused, Active, Completed, Aborted, Abandoned),
step types, completed and cancelled steps or null, free-form metadata or `{}`, nulls, and
timestamps with 0, 1, 2, 3 or 7 fractional digits.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(2020, 11, 4, 9, 0, 0, tzinfo=UTC)
_STATUSES = ("Completed", "Completed", "Active", "Paused", "Paused", "Aborted", "Abandoned")
_STEP_TYPES = ("Text", "ConfirmStep", "Numeric", "Photo", "Signature", "DecisionStep", "Barcode")
_WORKFLOWS = (
    "Site Inspection",
    "Pump Maintenance",
    "Vehicle Check",
    "Safety Audit",
    "Meter Reading",
)
_STEP_TITLES = {
    "Text": "Enter Text",
    "ConfirmStep": "Confirm Isolation",
    "Numeric": "Record Pressure",
    "Photo": "Photograph Asset",
    "Signature": "Sign Off",
    "DecisionStep": "Fault Found?",
    "Barcode": "Scan Asset Tag",
}
_FRACTION_DIGITS = (0, 1, 2, 3, 3, 3, 7)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _object_id(rng: random.Random, when: datetime) -> str:
    return f"{int(when.timestamp()):08x}{rng.getrandbits(64):016x}"


def timestamp(when: datetime, digits: int) -> str:
    """`when` in the API's style: UTC with `Z` and `digits` fractional digits (0 to 7)."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        # Seven digits are .NET ticks: microseconds plus one more digit.
        fraction = f"{when.microsecond:06d}{when.microsecond % 10}"
        text += "." + fraction[:digits]
    return text + "Z"


def workflow_ids(team: str) -> list[tuple[str, str]]:
    """(workflowId, workflowName) of each sample workflow of `team`."""
    rng = random.Random(f"workflows:{team}")
    return [(_uuid(rng), name) for name in _WORKFLOWS]


def _step(
    rng: random.Random, number: int, started: datetime, user: tuple[str, str], done: bool
) -> dict[str, Any]:
    step_type = rng.choice(_STEP_TYPES)
    digits = rng.choice(_FRACTION_DIGITS)
    updated = started + timedelta(seconds=rng.randint(2, 600), microseconds=rng.randint(0, 999_999))
    values: list[Any] = []
    resource_ids: list[Any] = []
    if done:
        if step_type == "Text":
            values = [rng.choice(("All clear", "Minor wear on seal", "Replaced filter"))]
        elif step_type == "Numeric":
            values = [round(rng.uniform(0.5, 12.0), 2)]
        elif step_type in ("Photo", "Signature"):
            resource_ids = [_uuid(rng)]
        elif step_type == "DecisionStep":
            values = [rng.choice(("Yes", "No"))]
        elif step_type == "Barcode":
            values = [f"ASSET-{rng.randint(1000, 9999)}"]
    return {
        "values": values,
        "valueResourceIds": resource_ids,
        "uniqueStepId": _uuid(rng),
        "previousUniqueStepId": "",
        "userId": user[0],
        "userName": user[1],
        "deviceId": rng.choice((None, f"device-{rng.randint(100, 999)}")),
        "stepId": _uuid(rng),
        "stepNumber": number,
        "stepTitle": _STEP_TITLES[step_type],
        "stepDescription": "",
        "stepType": step_type,
        "connectionType": None,
        "started": timestamp(started, digits),
        "completed": timestamp(updated, digits) if done else None,
        "updated": timestamp(updated, digits),
        "cancelled": None,
        "timeEvents": {timestamp(updated, 3): 0} if rng.random() < 0.7 else None,
        "note": rng.choice((None, None, None, "Checked twice")),
        "noteResourceFilenames": None,
        "coordinates": rng.choice(
            (
                None,
                {
                    "latitude": round(rng.uniform(50, 58), 5),
                    "longitude": round(rng.uniform(-5, 1), 5),
                },
            )
        ),
        "parentStepId": None,
        "parentUniqueStepId": None,
        "parentStepTitle": None,
        "parentStepDescription": None,
        "metadata": {"tags": ""},
    }


def sample_job(team: str, index: int, users: list[tuple[str, str]]) -> dict[str, Any]:
    """Job number `index` of `team`, run by one of `users` ((userId, userName) pairs)."""
    rng = random.Random(f"job:{team}:{index}")
    created = _EPOCH + timedelta(
        hours=3 * index, seconds=rng.randint(0, 7200), microseconds=rng.randint(0, 999_999)
    )
    digits = rng.choice(_FRACTION_DIGITS)
    workflow_id, workflow_name = rng.choice(workflow_ids(team))
    user = rng.choice(users)
    status = rng.choice(_STATUSES)
    step_count = rng.randint(1, 5)
    completed_count = step_count if status == "Completed" else rng.randint(0, step_count - 1)
    clock = created + timedelta(seconds=1)
    steps = []
    for number in range(1, step_count + 1):
        steps.append(_step(rng, number, clock, user, done=number <= completed_count))
        clock += timedelta(minutes=rng.randint(1, 30))
    for previous, step in itertools.pairwise(steps):
        step["previousUniqueStepId"] = previous["uniqueStepId"]
    completed = [{"singleStep": step, "reportStep": None} for step in steps[:completed_count]]
    ended = status in ("Completed", "Aborted")
    current = None if ended else {"singleStep": steps[completed_count], "reportStep": None}
    cancelled = None
    if status == "Aborted":
        aborted = dict(steps[completed_count])
        aborted["cancelled"] = timestamp(clock, digits)
        cancelled = [{"singleStep": aborted, "reportStep": None}]
    scheduled = rng.random() < 0.4
    return {
        "jobId": _object_id(rng, created),
        "metadata": {
            "clientJobId": _uuid(rng),
            "workflowId": workflow_id,
            "workflowVersionId": _uuid(rng),
            "jobTitle": f"{workflow_name} #{index + 1}",
            "metadata": (
                {"ScheduledJobId": _object_id(rng, created), "ScheduledTaskId": _uuid(rng)}
                if scheduled
                else {}
            ),
            "created": timestamp(created, digits),
            "updated": timestamp(clock, digits),
            "modified": timestamp(clock + timedelta(seconds=1), 0),
            "status": status,
            "userId": user[0],
            "currentStep": current,
            "abandonReason": "Device lost connection" if status == "Abandoned" else None,
            "username": user[1],
            "workflowName": workflow_name,
        },
        "completedSteps": completed or None,
        "cancelledSteps": cancelled,
        "team": team,
        "hierarchyStack": None,
        "packetIds": None,
        "jobExclusion": [],
        "excluded": rng.random() < 0.05,
    }


def sample_users(team: str) -> list[tuple[str, str]]:
    """(userId, userName) of the five sample users of `team`."""
    rng = random.Random(f"users:{team}")
    return [(f"{rng.getrandbits(96):024x}", f"user{n}.{team}@example.com") for n in range(1, 6)]


def sample_team_jobs(team: str, count: int) -> list[dict[str, Any]]:
    """The first `count` jobs of `team`, oldest first, as the list endpoint orders them."""
    users = sample_users(team)
    return [sample_job(team, index, users) for index in range(count)]
