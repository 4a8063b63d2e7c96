"""The webhook delivery log of a job or batch: every event and every attempt."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import STRICT_QUERY, CallerDep, SessionDep, TenantDep, found
from api.json_route import OrjsonRoute
from api.routes.jobs import readable_by
from api.schemas import ERROR_RESPONSES
from api.webhook_schemas import WebhookDeliveryList, delivery_list
from core.contracts.anthropic_requests import MESSAGES_ENDPOINT
from core.errors import shown
from core.store.jobs import get_job
from core.store.webhook_outbox import job_deliveries

router = APIRouter(
    tags=["webhooks"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)


@router.get(
    "/v1/jobs/{job_id}/webhook_deliveries",
    response_model=WebhookDeliveryList,
    summary="A job's webhook events and their attempts",
)
def job_webhook_deliveries(
    job_id: str, caller: CallerDep, session: SessionDep
) -> WebhookDeliveryList:
    """The job's end event (if a webhook was set), with each attempt's status or error;
    an admin key reads any tenant's."""
    job = found(
        get_job(session=session, tenant_id=readable_by(caller), job_id=job_id),
        f"no job {shown(job_id)}",
        param="job_id",
    )
    return delivery_list(job_deliveries(session=session, job_id=job.id))


@router.get(
    "/v1/batches/{batch_id}/webhook_deliveries",
    response_model=WebhookDeliveryList,
    summary="A batch's webhook events and their attempts",
)
def batch_webhook_deliveries(
    batch_id: str, tenant: TenantDep, session: SessionDep
) -> WebhookDeliveryList:
    """The batch's end event (if a webhook was set), with each attempt's status or error."""
    job = get_job(session=session, tenant_id=tenant.id, job_id=batch_id)
    is_batch = job is not None and job.endpoint not in (None, MESSAGES_ENDPOINT)
    batch = found(job if is_batch else None, f"no batch {shown(batch_id)}", param="batch_id")
    return delivery_list(job_deliveries(session=session, job_id=batch.id))
