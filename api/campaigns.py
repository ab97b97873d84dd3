"""Group-buy routes: campaigns for staff (/admin/campaigns), campaigns, purchases and groups for customers (/app)."""

from __future__ import annotations

import msgspec
from litestar import Controller
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK

from tortoise.backends.base.client import BaseDBAsyncClient

from api.branches import require_branches
from api.deps import Db, Limit, Offset
from api.handlers import get, patch, post
from api.security import ERASURE_CHECKED_BY_WORK, customer_guard, provide_customer_id, provide_staff, staff_only
from campaigns.groupbuy import groups, service, views
from campaigns.groupbuy import hooks as _line_kinds  # noqa: F401  (registers the group-buy line kind)
from campaigns.groupbuy.models import CampaignStatus, GroupStatus
from campaigns.groupbuy.schemas import (
    CampaignCreate,
    CampaignOut,
    CampaignPage,
    CampaignStats,
    CampaignUpdate,
    GroupOpen,
    GroupView,
    PublicCampaign,
    PurchaseCreate,
    Seat,
    SkuOut,
    SkuUpdate,
    StaffGroupPage,
    sku_out,
)
from kernel.identity.service import audit
from kernel.identity.tokens import Principal


def _audited(changed: dict) -> dict:
    """What an edit changed, as the audit row stores it: the service's field → new value (None included: it
    can be the new value, e.g. virtual completion turned off), times as ISO text."""
    return {k: (v.isoformat() if hasattr(v, "isoformat") else msgspec.to_builtins(v)) for k, v in changed.items()}


class AdminCampaignController(Controller):
    path = "/admin/campaigns"
    tags = ["staff: campaigns"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @post("/", summary="Create a campaign (draft) with its items")
    async def create(self, db: Db, data: CampaignCreate, staff: Principal) -> CampaignOut:
        async def work(conn: BaseDBAsyncClient):
            await require_branches(conn, data.branch_ids, field="branch_ids")
            campaign = await service.create_campaign(conn, data, staff.id)
            await audit(conn, staff.id, "campaign.create", "campaign", campaign.id,
                        {"kind": data.kind.value, "title": data.title})
            return await views.admin_view(conn, campaign)

        return await db.run(work)

    @get("/", summary="Campaigns, newest first")
    async def list_campaigns(self, db: Db, limit: Limit, offset: Offset, status: CampaignStatus | None = None) -> CampaignPage:
        return await db.run(views.campaign_page, status=status, limit=limit, offset=offset)

    @get("/{campaign_id:int}", summary="One campaign")
    async def detail(self, db: Db, campaign_id: int) -> CampaignOut:
        async def work(conn: BaseDBAsyncClient):
            return await views.admin_view(conn, await service.get_campaign(conn, campaign_id))

        return await db.run(work)

    @patch("/{campaign_id:int}", summary="Change a campaign and its items (skus) together (limited once live)",
           description="Send back the `version` the campaign was read with: a save from a copy that someone changed "
                       "since (another staff member's edit of the campaign or an item; customers taking stock do not "
                       "count) is refused with 409 `edited_meanwhile` and changes nothing. Without `version` the "
                       "body is applied as it stands (last save wins), as before.")
    async def update(self, db: Db, campaign_id: int, data: CampaignUpdate, staff: Principal) -> CampaignOut:
        async def work(conn: BaseDBAsyncClient):
            await require_branches(conn, data.branch_ids, field="branch_ids")
            edited = await service.update_campaign(conn, campaign_id, data)
            # The audit records what changed, not the body: the console sends every field and item back, and
            # a row listing them all would not say what staff did. A save that changed nothing leaves no row.
            if edited.changed:
                await audit(conn, staff.id, "campaign.update", "campaign", campaign_id, _audited(edited.changed))
            # Each item under the action its own route writes, so an item's history reads the same either way.
            for sku_id, changed in edited.items_changed.items():
                await audit(conn, staff.id, "campaign.update_sku", "campaign_sku", sku_id, _audited(changed))
            return await views.admin_view(conn, edited.campaign, edited.skus)

        return await db.run(work)

    @patch("/{campaign_id:int}/skus/{sku_id:int}", summary="Change an item: stock (never below sold), prices before live")
    async def update_sku(self, db: Db, campaign_id: int, sku_id: int, data: SkuUpdate, staff: Principal) -> SkuOut:
        async def work(conn: BaseDBAsyncClient):
            edited = await service.update_sku(conn, campaign_id, sku_id, data)
            if edited.changed:
                await audit(conn, staff.id, "campaign.update_sku", "campaign_sku", sku_id, _audited(edited.changed))
            return sku_out(edited.sku, service.current_price_fen(edited.sku))

        return await db.run(work)

    @post("/{campaign_id:int}/publish", status_code=HTTP_200_OK, summary="draft → scheduled (or live when started)")
    async def publish(self, db: Db, campaign_id: int, staff: Principal) -> CampaignOut:
        async def work(conn: BaseDBAsyncClient):
            campaign = await service.publish(conn, campaign_id)
            await audit(conn, staff.id, "campaign.publish", "campaign", campaign_id, {"status": campaign.status.value})
            return await views.admin_view(conn, campaign)

        return await db.run(work)

    @post("/{campaign_id:int}/cancel", status_code=HTTP_200_OK, summary="Cancel a campaign that has not started")
    async def cancel(self, db: Db, campaign_id: int, staff: Principal) -> CampaignOut:
        async def work(conn: BaseDBAsyncClient):
            campaign = await service.cancel(conn, campaign_id)
            await audit(conn, staff.id, "campaign.cancel", "campaign", campaign_id, {})
            return await views.admin_view(conn, campaign)

        return await db.run(work)

    @post("/{campaign_id:int}/end", status_code=HTTP_200_OK,
          summary="End a running campaign now: groups settle, tier differences are refunded")
    async def end(self, db: Db, campaign_id: int, staff: Principal) -> CampaignOut:
        async def work(conn: BaseDBAsyncClient):
            campaign = await service.end_now(conn, campaign_id)
            await audit(conn, staff.id, "campaign.end", "campaign", campaign_id, {})
            return await views.admin_view(conn, campaign)

        return await db.run(work)

    @get("/{campaign_id:int}/stats", summary="Groups opened/succeeded/failed, units, GMV, refunds, share conversion")
    async def stats(self, db: Db, campaign_id: int) -> CampaignStats:
        return await db.run(views.stats, campaign_id)

    @get("/{campaign_id:int}/groups", summary="A campaign's groups, newest first, with their members")
    async def groups(self, db: Db, campaign_id: int, limit: Limit, offset: Offset,
                     status: GroupStatus | None = None) -> StaffGroupPage:
        return await db.run(views.staff_groups, campaign_id, status=status, limit=limit, offset=offset)


class CustomerCampaignController(Controller):
    path = "/app/campaigns"
    tags = ["customer: group buys"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/", summary="Running campaigns with stock left")
    async def list_live(self, db: Db) -> list[PublicCampaign]:
        return await db.run(views.live_campaigns)

    @get("/{campaign_id:int}", summary="One campaign")
    async def detail(self, db: Db, campaign_id: int) -> PublicCampaign:
        # Served from the shared cache nearly always; a miss reads the campaign and its SKUs, which need no
        # common snapshot (stock shown may lag anyway): no transaction, no pooled connection on a hit.
        return await db.read(views.public_campaign, campaign_id)

    @post("/{campaign_id:int}/purchases", summary="Buy in a category group buy (pay the returned order)")
    async def purchase(self, db: Db, customer_id: int, campaign_id: int, data: PurchaseCreate) -> Seat:
        order, entry = await db.run(
            lambda conn: groups.purchase(conn, customer_id, campaign_id, data.sku_id, data.quantity))
        return Seat(entry_id=entry.id, order_id=order.id, total_fen=order.total_fen, pay_by=order.expires_at)


class GroupController(Controller):
    path = "/app/groups"
    tags = ["customer: group buys"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @post("/", summary="Open a bestie-card group (creates the leader's order)")
    async def open_group(self, db: Db, customer_id: int, data: GroupOpen) -> Seat:
        group, order, entry = await db.run(
            lambda conn: groups.open_group(conn, customer_id, data.campaign_id, data.sku_id))
        return Seat(entry_id=entry.id, order_id=order.id, total_fen=order.total_fen, pay_by=order.expires_at,
                    group_id=group.id)

    @post("/{group_id:int}/join", summary="Join a friend's group: takes a seat and creates the order",
          opt={ERASURE_CHECKED_BY_WORK: True})  # groups.join_group's first statement checks it
    async def join(self, db: Db, customer_id: int, group_id: int) -> Seat:
        group, order, entry = await db.run(groups.join_group, customer_id, group_id)
        return Seat(entry_id=entry.id, order_id=order.id, total_fen=order.total_fen, pay_by=order.expires_at,
                    group_id=group.id)

    @get("/{group_id:int}", summary="The shareable view of a group")
    async def view(self, db: Db, customer_id: int, group_id: int) -> GroupView:
        return await db.run(views.group_view, group_id, customer_id)


ROUTES = [AdminCampaignController, CustomerCampaignController, GroupController]
