"""GraphQL types that mirror the Jobs API's job JSON, field for field, plus the Relay connection.

The job types are never instantiated: resolvers hand graphql-core the upstream's decoded JSON
objects, and each field reads the key of the same name (`schema.read_json_key`). So the JSON
is not copied or converted, unknown keys are ignored, missing keys read as null, and a value of
the wrong type fails only its own field (scalar serialization, `is_type_of`), with an error at
its exact path, while the rest of the page arrives intact.

Nullability follows the upstream's record: the docs show null for almost every field at some
point, so only `Job.jobId` (the job's identity) is non-null; when it is missing the job's node
becomes null with an error and the other jobs still arrive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import strawberry
from graphql import GraphQLResolveInfo
from strawberry.schema_directive import Location

from gateway.node_ids import global_id
from gateway.scalars import JSON, DateTime


def projectable(resolver: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Mark a field resolver that is a pure function of its parent alone (`root`), so the
    projection may call it directly instead of giving the object back to graphql-core."""
    resolver.__dict__["projectable"] = True
    return resolver


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="semanticNonNull",
    description=(
        "The field is null only when an error is reported at its path (the GraphQL "
        "semantic-nullability proposal): clients that understand it may type it non-null."
    ),
)
class SemanticNonNull:
    # The proposal's `levels: [Int] = [0]` (0 is the field itself); only level 0 is used here.
    levels: list[int | None] | None = strawberry.directive_field(name="levels", default=(0,))


NULL_ONLY_ON_ERROR = SemanticNonNull()
"""Fields that call the upstream are nullable so one failure leaves the rest of the answer;
this marks each such field so generated client types can stay strict."""


class _JSONObjectType:
    """Mixin for types backed by a JSON object: anything else in that place is a bad value."""

    @classmethod
    def is_type_of(cls, obj: Any, _info: GraphQLResolveInfo[Any]) -> bool:
        return isinstance(obj, dict)


@strawberry.type(
    description="One step of a job as its user saw it: what was asked, who answered, when."
)
class Step(_JSONObjectType):
    values: list[JSON | None] | None = strawberry.field(
        description="The values entered at this step; their shape depends on `stepType`."
    )
    valueResourceIds: list[JSON | None] | None = strawberry.field(
        description="Ids of resources (photos, files) attached to the values."
    )
    uniqueStepId: strawberry.ID | None = strawberry.field(
        description="Id of this visit to the step; unique within the job."
    )
    previousUniqueStepId: str | None = strawberry.field(
        description="`uniqueStepId` of the step before; an empty string for the first step."
    )
    userId: strawberry.ID | None = strawberry.field(description="Id of the user on this step.")
    userName: str | None = strawberry.field(description="Login of the user on this step.")
    deviceId: str | None = strawberry.field(description="Device the step was done on.")
    stepId: strawberry.ID | None = strawberry.field(
        description="Id of the step in the workflow definition."
    )
    stepNumber: int | None = strawberry.field(description="Position of the step, from 1.")
    stepTitle: str | None = strawberry.field(description="Title of the step in the workflow.")
    stepDescription: str | None = strawberry.field(description="Description in the workflow.")
    stepType: str | None = strawberry.field(
        description=(
            "Kind of step, an open set: `Text`, `ConfirmStep`, `StartStep`, `DecisionStep`, "
            "`Numeric`, `Photo`, `Signature`, ... New kinds appear without notice."
        )
    )
    connectionType: str | None = strawberry.field(description="How the step connects onwards.")
    started: DateTime | None = strawberry.field(description="When the step was started.")
    completed: DateTime | None = strawberry.field(description="When it was completed, if it was.")
    updated: DateTime | None = strawberry.field(description="When it last changed.")
    cancelled: DateTime | None = strawberry.field(description="When it was cancelled, if it was.")
    timeEvents: JSON | None = strawberry.field(
        description="Map of ISO timestamps to event codes (integers) recorded during the step."
    )
    note: str | None = strawberry.field(description="Free-text note left on the step.")
    noteResourceFilenames: list[str | None] | None = strawberry.field(
        description="Files attached to the note."
    )
    coordinates: JSON | None = strawberry.field(
        description="Where the step was done (shape undocumented; probably latitude/longitude)."
    )
    parentStepId: str | None = strawberry.field(
        description="Workflow id of the enclosing group step."
    )
    parentUniqueStepId: str | None = strawberry.field(description="`uniqueStepId` of that group.")
    parentStepTitle: str | None = strawberry.field(description="Title of that group step.")
    parentStepDescription: str | None = strawberry.field(description="Its description.")
    metadata: JSON | None = strawberry.field(
        description='Free-form step metadata, e.g. `{"tags": ""}`.'
    )


@strawberry.type(
    description=("The envelope the Jobs API wraps every step in: a plain step, or a report step.")
)
class StepEnvelope(_JSONObjectType):
    singleStep: Step | None = strawberry.field(description="The step, when it is a plain step.")
    reportStep: JSON | None = strawberry.field(
        description="The step, when it is a report step (shape undocumented, passed through)."
    )


@strawberry.type(description="What a job is and where it stands: workflow, title, status, step.")
class JobMetadata(_JSONObjectType):
    clientJobId: strawberry.ID | None = strawberry.field(
        description="The job's id as the client that created it knows it (a UUID)."
    )
    workflowId: strawberry.ID | None = strawberry.field(description="Workflow the job runs.")
    workflowVersionId: strawberry.ID | None = strawberry.field(
        description="Exact version of that workflow."
    )
    jobTitle: str | None = strawberry.field(description="Human-readable title of the job.")
    metadata: JSON | None = strawberry.field(
        description=(
            "Free-form string-to-string map set by whoever created the job, e.g. "
            "`ScheduledJobId`, `ScheduledTaskId`; often `{}`."
        )
    )
    created: DateTime | None = strawberry.field(description="When the job was created.")
    updated: DateTime | None = strawberry.field(description="When the job's data last changed.")
    modified: DateTime | None = strawberry.field(description="When the job record last changed.")
    status: str | None = strawberry.field(
        description=(
            "Job status, an open set: `Active`, `Paused`, `Completed`, `Aborted`, "
            "`Abandoned`, ... New values appear without notice."
        )
    )
    userId: strawberry.ID | None = strawberry.field(description="Id of the job's user.")
    currentStep: StepEnvelope | None = strawberry.field(
        description="The step the job is on; null once the job has ended."
    )
    abandonReason: str | None = strawberry.field(
        description="Why the job was abandoned, if it was."
    )
    username: str | None = strawberry.field(description="Login of the job's user.")
    workflowName: str | None = strawberry.field(description="Name of the workflow.")


@projectable
def _job_global_id(root: strawberry.Parent[Any]) -> strawberry.ID:
    """A job's global id, from its JSON object's jobId (null, an error, when it has none)."""
    job_id = root.get("jobId") if isinstance(root, dict) else None
    return strawberry.ID(global_id("Job", str(job_id))) if job_id else cast(strawberry.ID, None)


async def _job_snapshots(root: strawberry.Parent[Any], info: strawberry.Info) -> JSON | None:
    """Earlier versions of the job (`GET /jobs/v1/snapshots/{clientJobId}`), through the
    request's DataLoader: the same job twice in one request costs one call."""
    metadata = root.get("metadata") if isinstance(root, dict) else None
    client_job_id = metadata.get("clientJobId") if isinstance(metadata, dict) else None
    if not isinstance(client_job_id, str) or not client_job_id:
        return None
    context = info.context
    loader = context.loader("job_snapshots", context.upstream.job_snapshots)
    return cast(JSON | None, await loader.load(client_job_id))


@strawberry.interface(
    description="An object with a global id, which `Query.node` refetches (Relay's Node)."
)
class Node:
    id: strawberry.ID = strawberry.field(
        description="Globally unique, opaque id; pass it to `node(id:)` or `nodes(ids:)`."
    )


@strawberry.type(description="A job: one run of a workflow by a user of a team.")
class Job(Node, _JSONObjectType):
    id: strawberry.ID = strawberry.field(
        resolver=_job_global_id,
        description="Globally unique, opaque id of the job; pass it to `node(id:)`.",
    )

    jobId: strawberry.ID = strawberry.field(description="The job's id (a 24-hex-digit ObjectId).")
    metadata: JobMetadata | None = strawberry.field(description="What the job is and its state.")
    completedSteps: list[StepEnvelope | None] | None = strawberry.field(
        description="Steps completed so far, in order; null when none."
    )
    cancelledSteps: list[StepEnvelope | None] | None = strawberry.field(
        description="Steps cancelled, in order; null when none."
    )
    team: str | None = strawberry.field(description="The team the job belongs to.")
    hierarchyStack: JSON | None = strawberry.field(
        description="Group-step nesting at the current step (shape undocumented, passed through)."
    )
    packetIds: JSON | None = strawberry.field(
        description="Ids of data packets of the job (shape undocumented, passed through)."
    )
    jobExclusion: list[JSON | None] | None = strawberry.field(
        description="Exclusion records (shape undocumented, passed through)."
    )
    excluded: bool | None = strawberry.field(description="Whether the job is excluded.")
    snapshots: JSON | None = strawberry.field(
        resolver=_job_snapshots,
        description=(
            "Earlier versions of the job (`GET /jobs/v1/snapshots/{clientJobId}`, Job_ReadAll; "
            "shape undocumented, passed through). One upstream call per job, made only when "
            "selected, cached like a page; null without a clientJobId or when not found."
        ),
    )


@strawberry.type(description="Where a page sits in the list, per the Relay cursor spec.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether any job follows this page (exact: the gateway fetches one extra row)."
    )
    has_previous_page: bool = strawberry.field(
        description="Whether any job precedes this page (true when it starts after the first job)."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge, if any.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge, if any.")


@strawberry.type(description="A job and its cursor.")
class JobEdge:
    cursor: str = strawberry.field(
        description="Opaque cursor of this job; pass it as `after` or `before`."
    )
    node: Job | None = strawberry.field(
        description="The job; null only when the upstream sent a job without a `jobId`."
    )


async def _total_count(root: strawberry.Parent[JobConnection]) -> int | None:
    return await root.counter()


@strawberry.type(description="One page of jobs, per the Relay Cursor Connections spec.")
class JobConnection:
    edges: list[JobEdge] = strawberry.field(description="The jobs of this page with cursors.")
    nodes: list[Job | None] = strawberry.field(
        description="The jobs of this page without cursors: a shortcut for `edges { node }`."
    )
    page_info: PageInfo = strawberry.field(description="Cursors and flags for paging on.")
    counter: strawberry.Private[Callable[[], Awaitable[int]]]
    total_count: int | None = strawberry.field(
        resolver=_total_count,
        directives=[NULL_ONLY_ON_ERROR],
        description=(
            "How many jobs the whole list has. The Jobs API has no count, so the gateway "
            "searches for the end of the list: one call for lists of up to 100 jobs, about "
            "2 log2(N/100) + 2 calls beyond (15 for 10,000), cached per token like pages. "
            "Computed only when selected; null, with an error at its path, when the count "
            "fails (the page itself still arrives)."
        ),
    )
