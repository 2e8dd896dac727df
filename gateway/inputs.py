"""Input types of the mutations: a job as the Jobs API takes it, field by field, and its JSON.

They mirror `gateway.types` (same names, same JSON keys, the same descriptions), every field
optional and unset by default: `as_json` keeps only the fields the caller gave, so a body never
carries a null the caller did not write (a null sent upstream would wipe that value).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry

from gateway.scalars import JSON, DateTime
from gateway.types import Job, JobMetadata, Step, StepEnvelope


def _as(type_: type, name: str) -> str | None:
    """The description of output field `name` of `type_`: inputs say what the outputs say."""
    definition = type_.__strawberry_definition__  # type: ignore[attr-defined]
    field = next(field for field in definition.fields if field.python_name == name)
    return field.description  # type: ignore[no-any-return]


def _field(type_: type, name: str) -> Any:
    return strawberry.field(default=strawberry.UNSET, description=_as(type_, name))


@strawberry.input(description="A step (`singleStep`), as the Jobs API stores it.")
class StepInput:
    values: list[JSON | None] | None = _field(Step, "values")
    valueResourceIds: list[JSON | None] | None = _field(Step, "valueResourceIds")
    uniqueStepId: strawberry.ID | None = _field(Step, "uniqueStepId")
    previousUniqueStepId: str | None = _field(Step, "previousUniqueStepId")
    userId: strawberry.ID | None = _field(Step, "userId")
    userName: str | None = _field(Step, "userName")
    deviceId: str | None = _field(Step, "deviceId")
    stepId: strawberry.ID | None = _field(Step, "stepId")
    stepNumber: int | None = _field(Step, "stepNumber")
    stepTitle: str | None = _field(Step, "stepTitle")
    stepDescription: str | None = _field(Step, "stepDescription")
    stepType: str | None = _field(Step, "stepType")
    connectionType: str | None = _field(Step, "connectionType")
    started: DateTime | None = _field(Step, "started")
    completed: DateTime | None = _field(Step, "completed")
    updated: DateTime | None = _field(Step, "updated")
    cancelled: DateTime | None = _field(Step, "cancelled")
    timeEvents: JSON | None = _field(Step, "timeEvents")
    note: str | None = _field(Step, "note")
    noteResourceFilenames: list[str | None] | None = _field(Step, "noteResourceFilenames")
    coordinates: JSON | None = _field(Step, "coordinates")
    parentStepId: str | None = _field(Step, "parentStepId")
    parentUniqueStepId: str | None = _field(Step, "parentUniqueStepId")
    parentStepTitle: str | None = _field(Step, "parentStepTitle")
    parentStepDescription: str | None = _field(Step, "parentStepDescription")
    metadata: JSON | None = _field(Step, "metadata")


@strawberry.input(description="A step and its report, as in `currentStep` and step lists.")
class StepEnvelopeInput:
    singleStep: StepInput | None = _field(StepEnvelope, "singleStep")
    reportStep: JSON | None = _field(StepEnvelope, "reportStep")


@strawberry.input(
    description="A job's metadata: what it is and its state. Only the fields set are sent."
)
class JobMetadataInput:
    clientJobId: strawberry.ID | None = _field(JobMetadata, "clientJobId")
    workflowId: strawberry.ID | None = _field(JobMetadata, "workflowId")
    workflowVersionId: strawberry.ID | None = _field(JobMetadata, "workflowVersionId")
    jobTitle: str | None = _field(JobMetadata, "jobTitle")
    metadata: JSON | None = _field(JobMetadata, "metadata")
    created: DateTime | None = _field(JobMetadata, "created")
    updated: DateTime | None = _field(JobMetadata, "updated")
    modified: DateTime | None = _field(JobMetadata, "modified")
    status: str | None = _field(JobMetadata, "status")
    userId: strawberry.ID | None = _field(JobMetadata, "userId")
    currentStep: StepEnvelopeInput | None = _field(JobMetadata, "currentStep")
    abandonReason: str | None = _field(JobMetadata, "abandonReason")
    username: str | None = _field(JobMetadata, "username")
    workflowName: str | None = _field(JobMetadata, "workflowName")


@strawberry.input(
    description="A job as the Jobs API's Create Job body takes it: every `Job` field but `jobId`."
)
class JobInput:
    metadata: JobMetadataInput = strawberry.field(
        description="What the job is; `metadata.clientJobId` identifies it to every later write."
    )
    completedSteps: list[StepEnvelopeInput | None] | None = _field(Job, "completedSteps")
    cancelledSteps: list[StepEnvelopeInput | None] | None = _field(Job, "cancelledSteps")
    team: str | None = _field(Job, "team")
    hierarchyStack: JSON | None = _field(Job, "hierarchyStack")
    packetIds: JSON | None = _field(Job, "packetIds")
    jobExclusion: list[JSON | None] | None = _field(Job, "jobExclusion")
    excluded: bool | None = _field(Job, "excluded")


def as_json(value: object) -> Any:
    """An input value as the JSON the Jobs API takes: input objects become objects of the
    fields that were set (null included when the caller wrote null), lists stay lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: as_json(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if getattr(value, field.name) is not strawberry.UNSET
        }
    if isinstance(value, list):
        return [as_json(item) for item in value]
    return value
