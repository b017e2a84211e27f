"""/projects/{id}/webhooks: registrations, secret rotation, deliveries, redelivery, replay."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from rdev_api.domain.webhooks import DeliveryFilter
from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep
from rdev_api.entrypoints.http.ids import DeliveryId, ProjectId, WebhookId
from rdev_api.entrypoints.http.schemas import Envelope, ListEnvelope
from rdev_api.entrypoints.http.webhook_schemas import (
    DeliveryDetail,
    DeliveryOut,
    Replayed,
    RotateSecret,
    WebhookCreate,
    WebhookOut,
    WebhookPatch,
    WebhookWithSecret,
)
from rdev_api.service_layer import webhook_service as svc
from rdev_api.service_layer.webhook_ports import WebhookServices

router = APIRouter(tags=["webhooks"])
BASE = "/projects/{project_id}/webhooks"


def get_webhooks(request: Request) -> WebhookServices:
    webhooks: WebhookServices = request.app.state.webhooks
    return webhooks


WebhooksDep = Annotated[WebhookServices, Depends(get_webhooks)]


@router.post(BASE, status_code=201, response_model=Envelope[WebhookWithSecret])
async def create_webhook(
    project_id: ProjectId,
    body: WebhookCreate,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
) -> Envelope[WebhookWithSecret]:
    webhook = await svc.create(
        ws,
        services.uow(),
        principal,
        project_id,
        url=body.url,
        events=body.events,
        description=body.description,
    )
    return Envelope(data=WebhookWithSecret.with_secret(webhook))


@router.get(BASE, response_model=ListEnvelope[WebhookOut])
async def list_webhooks(
    project_id: ProjectId, principal: PrincipalDep, services: ServicesDep, ws: WebhooksDep
) -> ListEnvelope[WebhookOut]:
    webhooks = await svc.list_webhooks(ws, services.uow(), principal, project_id)
    return ListEnvelope(data=[WebhookOut.of(w) for w in webhooks])


@router.get(BASE + "/{webhook_id}", response_model=Envelope[WebhookOut])
async def get_webhook(
    project_id: ProjectId,
    webhook_id: WebhookId,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
) -> Envelope[WebhookOut]:
    webhook = await svc.get(ws, services.uow(), principal, project_id, webhook_id)
    return Envelope(data=WebhookOut.of(webhook))


@router.patch(BASE + "/{webhook_id}", response_model=Envelope[WebhookOut])
async def patch_webhook(
    project_id: ProjectId,
    webhook_id: WebhookId,
    body: WebhookPatch,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
) -> Envelope[WebhookOut]:
    changes = body.model_dump(exclude_unset=True)
    webhook = await svc.update(ws, services.uow(), principal, project_id, webhook_id, changes)
    return Envelope(data=WebhookOut.of(webhook))


@router.delete(BASE + "/{webhook_id}", status_code=204)
async def delete_webhook(
    project_id: ProjectId,
    webhook_id: WebhookId,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
) -> Response:
    await svc.delete(ws, services.uow(), principal, project_id, webhook_id)
    return Response(status_code=204)


@router.post(BASE + "/{webhook_id}/rotate-secret", response_model=Envelope[WebhookWithSecret])
async def rotate_secret(
    project_id: ProjectId,
    webhook_id: WebhookId,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
    body: RotateSecret | None = None,
) -> Envelope[WebhookWithSecret]:
    overlap = timedelta(seconds=(body or RotateSecret()).overlap_s)
    webhook = await svc.rotate_secret(
        ws, services.uow(), principal, project_id, webhook_id, overlap
    )
    return Envelope(data=WebhookWithSecret.with_secret(webhook))


@router.get(BASE + "/{webhook_id}/deliveries", response_model=ListEnvelope[DeliveryOut])
async def list_deliveries(
    project_id: ProjectId,
    webhook_id: WebhookId,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
    status: Annotated[str | None, Query(pattern="^(pending|succeeded|failed)$")] = None,
    event_type: str | None = None,
    event_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ListEnvelope[DeliveryOut]:
    where = DeliveryFilter(status, event_type, event_id, cursor, limit)
    page, next_cursor = await svc.list_deliveries(
        ws, services.uow(), principal, project_id, webhook_id, where
    )
    return ListEnvelope(data=[DeliveryOut.of(d) for d in page], next_cursor=next_cursor)


@router.get(
    BASE + "/{webhook_id}/deliveries/{delivery_id}", response_model=Envelope[DeliveryDetail]
)
async def get_delivery(
    project_id: ProjectId,
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
) -> Envelope[DeliveryDetail]:
    delivery, payload = await svc.get_delivery(
        ws, services.uow(), principal, project_id, webhook_id, delivery_id
    )
    return Envelope(data=DeliveryDetail.detail(delivery, payload))


@router.post(
    BASE + "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=Envelope[Replayed],
)
async def redeliver(
    project_id: ProjectId,
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
) -> Envelope[Replayed]:
    new_id = await svc.redeliver(ws, services.uow(), principal, project_id, webhook_id, delivery_id)
    return Envelope(data=Replayed(deliveries=[new_id]))


@router.post(BASE + "/{webhook_id}/replay", status_code=202, response_model=Envelope[Replayed])
async def replay(
    project_id: ProjectId,
    webhook_id: WebhookId,
    principal: PrincipalDep,
    services: ServicesDep,
    ws: WebhooksDep,
    since: Annotated[str, Query(description="stream sequence, or ISO 8601 time with zone")],
    limit: Annotated[int, Query(ge=1, le=svc.MAX_REPLAY)] = svc.MAX_REPLAY,
) -> Envelope[Replayed]:
    ids = await svc.replay(ws, services.uow(), principal, project_id, webhook_id, since, limit)
    return Envelope(data=Replayed(deliveries=ids))
