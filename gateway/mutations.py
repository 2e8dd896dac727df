"""The `Mutation` root: one Relay-style mutation per write endpoint of the Jobs API.

Each takes one `input` (with an optional `clientMutationId`, echoed in its payload) and makes
its write through `UpstreamClient.writes`, which sends it once and drops the caller's cached
reads. `JobPayload.job` is the job after the write: the write's answer when that is a job,
else read back by `clientJobId` (one more call, around the cache: a request that wrote reads
nothing kept). The fields run one after another, in order (the GraphQL spec's rule for
mutations), each a call of the request's budget. Every payload is nullable and
`@semanticNonNull`, like the reads: one failed mutation leaves the others' payloads.
"""

from __future__ import annotations

from typing import Any

import strawberry

from gateway.errors import BadUserInputError
from gateway.inputs import JobInput, JobMetadataInput, as_json
from gateway.resolvers import GraphQLContext
from gateway.scalars import JSON
from gateway.types import NULL_ONLY_ON_ERROR, Job

_ECHO = "Echoed in the payload, for clients that match answers to their requests."


@strawberry.type(description="A job after a write.")
class JobPayload:
    job: Job | None = strawberry.field(
        description="The job as the Jobs API holds it after the write (the same `id` reads give)."
    )
    clientMutationId: str | None = strawberry.field(description=_ECHO)


@strawberry.type(description="What `deleteJob` deleted.")
class DeleteJobPayload:
    deletedClientJobId: strawberry.ID | None = strawberry.field(
        description="The `clientJobId` of the deleted job."
    )
    clientMutationId: str | None = strawberry.field(description=_ECHO)


@strawberry.type(description="The answer of `abortJobsForUser` (the Jobs API says no more).")
class AbortJobsPayload:
    clientMutationId: str | None = strawberry.field(description=_ECHO)


def _mutation_id() -> Any:
    return strawberry.field(default=None, description=_ECHO)


def _job_id() -> Any:
    return strawberry.field(description="The job's `clientJobId` (`metadata.clientJobId`).")


@strawberry.input(description="A job to create (`POST /jobs/v1`).")
class CreateJobInput:
    job: JobInput = strawberry.field(description="The job; `metadata.clientJobId` is required.")
    clientMutationId: str | None = _mutation_id()


@strawberry.input(description="A job to create or update by its clientJobId (basic sync).")
class SyncJobInput:
    job: JobInput = strawberry.field(
        description="The job; `metadata.clientJobId` names it. Status `Aborted` aborts it."
    )
    clientMutationId: str | None = _mutation_id()


@strawberry.input(description="New values for a job's metadata fields; only those set are sent.")
class UpdateJobInput:
    clientJobId: strawberry.ID = _job_id()
    metadata: JobMetadataInput = strawberry.field(description="The fields to change.")
    clientMutationId: str | None = _mutation_id()


@strawberry.input(description="Free-form entries merged into the job's `metadata.metadata`.")
class AddJobMetadataInput:
    clientJobId: strawberry.ID = _job_id()
    metadata: JSON = strawberry.field(description='A JSON object, e.g. `{"site": "North"}`.')
    clientMutationId: str | None = _mutation_id()


@strawberry.input(description="A job to abort (only incomplete jobs can be).")
class AbortJobInput:
    clientJobId: strawberry.ID = _job_id()
    clientMutationId: str | None = _mutation_id()


@strawberry.input(description="A job to give to another user (not an aborted or completed one).")
class AssignJobInput:
    clientJobId: strawberry.ID = _job_id()
    userId: strawberry.ID = strawberry.field(description="The user to assign it to.")
    clientMutationId: str | None = _mutation_id()


@strawberry.input(description="A job to exclude from reports.")
class ExcludeJobInput:
    clientJobId: strawberry.ID = _job_id()
    userId: strawberry.ID = strawberry.field(description="The user who excludes it.")
    reason: str = strawberry.field(description="Why it is excluded.")
    clientMutationId: str | None = _mutation_id()


@strawberry.input(description="A job to delete.")
class DeleteJobInput:
    clientJobId: strawberry.ID = _job_id()
    clientMutationId: str | None = _mutation_id()


@strawberry.input(
    description=(
        "Whose incomplete jobs to abort: exactly one of `userId` or `allUsers: true` (the Jobs "
        "API aborts the whole team's when no user is named, so that must be asked for)."
    )
)
class AbortJobsForUserInput:
    userId: strawberry.ID | None = strawberry.field(default=None, description="The user.")
    allUsers: bool | None = strawberry.field(
        default=None, description="`true`: every user of the team."
    )
    clientMutationId: str | None = _mutation_id()


async def _job_payload(
    info: GraphQLContext, answered: Any, client_job_id: str, mutation_id: str | None
) -> JobPayload:
    """The payload of a write: its answer when that is a job, else the job read back."""
    job = answered
    if job is None:
        job = await info.context.upstream.job_by_client_id(info.context.caller(), client_job_id)
    return JobPayload(job=job, clientMutationId=mutation_id)


def _new_job(job: JobInput) -> tuple[dict[str, Any], str]:
    """The body of a job to create or sync, and its clientJobId (required, before any call)."""
    body = as_json(job)
    client_job_id = body.get("metadata", {}).get("clientJobId")
    if not isinstance(client_job_id, str) or not client_job_id.strip():
        raise BadUserInputError(
            "`job.metadata.clientJobId` is required: every later write names the job by it"
        )
    return body, client_job_id


async def _create_job(info: GraphQLContext, input: CreateJobInput) -> JobPayload | None:
    body, client_job_id = _new_job(input.job)
    caller = info.context.caller()
    answered = await info.context.upstream.writes.create_job(caller, body)
    return await _job_payload(info, answered, client_job_id, input.clientMutationId)


async def _sync_job(info: GraphQLContext, input: SyncJobInput) -> JobPayload | None:
    body, client_job_id = _new_job(input.job)
    caller = info.context.caller()
    answered = await info.context.upstream.writes.sync_job(caller, body)
    return await _job_payload(info, answered, client_job_id, input.clientMutationId)


async def _update_job(info: GraphQLContext, input: UpdateJobInput) -> JobPayload | None:
    metadata = as_json(input.metadata)
    if not metadata:
        raise BadUserInputError("`metadata` must set at least one field")
    caller = info.context.caller()
    writes = info.context.upstream.writes
    answered = await writes.update_job(caller, str(input.clientJobId), metadata)
    return await _job_payload(info, answered, str(input.clientJobId), input.clientMutationId)


async def _add_job_metadata(info: GraphQLContext, input: AddJobMetadataInput) -> JobPayload | None:
    if not isinstance(input.metadata, dict):
        raise BadUserInputError("`metadata` must be a JSON object")
    caller = info.context.caller()
    writes = info.context.upstream.writes
    answered = await writes.add_job_metadata(caller, str(input.clientJobId), input.metadata)
    return await _job_payload(info, answered, str(input.clientJobId), input.clientMutationId)


async def _abort_job(info: GraphQLContext, input: AbortJobInput) -> JobPayload | None:
    caller = info.context.caller()
    answered = await info.context.upstream.writes.abort_job(caller, str(input.clientJobId))
    return await _job_payload(info, answered, str(input.clientJobId), input.clientMutationId)


async def _assign_job(info: GraphQLContext, input: AssignJobInput) -> JobPayload | None:
    caller = info.context.caller()
    writes = info.context.upstream.writes
    client_job_id = str(input.clientJobId)
    answered = await writes.assign_job(caller, client_job_id, str(input.userId))
    return await _job_payload(info, answered, client_job_id, input.clientMutationId)


async def _exclude_job(info: GraphQLContext, input: ExcludeJobInput) -> JobPayload | None:
    caller = info.context.caller()
    writes = info.context.upstream.writes
    client_job_id = str(input.clientJobId)
    answered = await writes.exclude_job(caller, client_job_id, str(input.userId), input.reason)
    return await _job_payload(info, answered, client_job_id, input.clientMutationId)


async def _delete_job(info: GraphQLContext, input: DeleteJobInput) -> DeleteJobPayload | None:
    caller = info.context.caller()
    await info.context.upstream.writes.delete_job(caller, str(input.clientJobId))
    return DeleteJobPayload(
        deletedClientJobId=input.clientJobId, clientMutationId=input.clientMutationId
    )


async def _abort_jobs_for_user(
    info: GraphQLContext, input: AbortJobsForUserInput
) -> AbortJobsPayload | None:
    named, everyone = input.userId is not None, input.allUsers is not None
    if named == everyone or (everyone and input.allUsers is not True):
        raise BadUserInputError(
            "Give exactly one of `userId` or `allUsers: true`: without a user the Jobs API "
            "aborts every incomplete job of the team"
        )
    user_id = str(input.userId) if named else None
    await info.context.upstream.writes.abort_jobs_for_user(info.context.caller(), user_id)
    return AbortJobsPayload(clientMutationId=input.clientMutationId)


@strawberry.type(description="Change jobs. Each mutation is one upstream write, sent once.")
class Mutation:
    create_job: JobPayload | None = strawberry.mutation(
        resolver=_create_job,
        description="Create a job: `POST /jobs/v1` (Workflow_Execute).",
        directives=[NULL_ONLY_ON_ERROR],
    )
    sync_job: JobPayload | None = strawberry.mutation(
        resolver=_sync_job,
        description="Create or update a job by its clientJobId: `POST /jobs/v1/basicSync`.",
        directives=[NULL_ONLY_ON_ERROR],
    )
    update_job: JobPayload | None = strawberry.mutation(
        resolver=_update_job,
        description="Change a job's metadata fields: `POST /jobs/v1/{clientJobId}` (Job_Modify).",
        directives=[NULL_ONLY_ON_ERROR],
    )
    add_job_metadata: JobPayload | None = strawberry.mutation(
        resolver=_add_job_metadata,
        description="Merge entries into `metadata.metadata`: `POST .../{clientJobId}/metadata`.",
        directives=[NULL_ONLY_ON_ERROR],
    )
    abort_job: JobPayload | None = strawberry.mutation(
        resolver=_abort_job,
        description="Abort an incomplete job: `POST /jobs/v1/{clientJobId}/abort`.",
        directives=[NULL_ONLY_ON_ERROR],
    )
    assign_job: JobPayload | None = strawberry.mutation(
        resolver=_assign_job,
        description="Give a job to a user: `POST /jobs/v1/{clientJobId}/assign/{userId}`.",
        directives=[NULL_ONLY_ON_ERROR],
    )
    exclude_job: JobPayload | None = strawberry.mutation(
        resolver=_exclude_job,
        description="Exclude a job from reports: `PUT /jobs/v1/{clientJobId}` (Job_ReadAll).",
        directives=[NULL_ONLY_ON_ERROR],
    )
    delete_job: DeleteJobPayload | None = strawberry.mutation(
        resolver=_delete_job,
        description="Delete a job: `DELETE /jobs/v1/{clientJobId}` (Job_Modify).",
        directives=[NULL_ONLY_ON_ERROR],
    )
    abort_jobs_for_user: AbortJobsPayload | None = strawberry.mutation(
        resolver=_abort_jobs_for_user,
        description="Abort a user's incomplete jobs, or all the team's: `PUT /jobs/v1/abort/`.",
        directives=[NULL_ONLY_ON_ERROR],
    )
