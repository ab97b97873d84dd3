"""Read models of group buys: what customers see (live campaigns, the shareable group) and staff stats."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.functions import Count, Sum

from campaigns.groupbuy import service as campaigns
from campaigns.groupbuy.errors import CampaignNotFound, GroupNotFound
from campaigns.groupbuy.models import (
    Campaign,
    CampaignEntry,
    CampaignSku,
    CampaignStatus,
    EntryRole,
    EntryStatus,
    Group,
    GroupStatus,
)
from campaigns.groupbuy.schemas import (
    CampaignOut,
    CampaignPage,
    CampaignStats,
    GroupMember,
    GroupView,
    Member,
    PublicCampaign,
    PublicSku,
    StaffGroup,
    StaffGroupPage,
    campaign_out,
    sku_out,
    tiers_of,
)
from orders.models import Order, Refund
from kernel import clock
from kernel.cache import SharedAnswerCache
from kernel.identity.models import Customer

SEATED = (EntryStatus.held, EntryStatus.paid, EntryStatus.fulfilled)
SOLD = (EntryStatus.paid, EntryStatus.fulfilled)


async def admin_view(conn: BaseDBAsyncClient, campaign: Campaign, skus: list[CampaignSku] | None = None) -> CampaignOut:
    """A campaign for staff, with its edit version and what is locked now; `skus` when the caller holds them
    already (an edit answers the items it read and changed, without reading them again)."""
    if skus is None:
        skus = await campaigns.skus_of(conn, campaign.id)
    locked, locked_items = campaigns.locked_fields(campaign)
    return campaign_out(campaign, [sku_out(s, campaigns.current_price_fen(s)) for s in skus],
                        version=campaigns.edit_version(campaign, skus), locked_fields=locked,
                        locked_item_fields=locked_items)


async def campaign_page(conn: BaseDBAsyncClient, *, status: CampaignStatus | None, limit: int,
                        offset: int) -> CampaignPage:
    """Campaigns for staff, newest first."""
    query = Campaign.all().using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    total = await query.count()
    items = [await admin_view(conn, c) for c in await query.order_by("-id").offset(offset).limit(limit)]
    return CampaignPage(total=total, limit=limit, offset=offset, items=items)


# A campaign page is the same for every customer: kept for the stated time of kernel.cache (stock left
# and the tier price may lag that long; a join or purchase decides on the rows themselves).
_PAGES: SharedAnswerCache[PublicCampaign] = SharedAnswerCache("groupbuy.campaign_page")


async def public_campaign(conn: BaseDBAsyncClient, campaign_id: int) -> PublicCampaign:
    """A campaign as customers see it; a draft or a cancelled one does not exist for them (not cached)."""

    async def load() -> PublicCampaign:
        campaign = await campaigns.get_campaign(conn, campaign_id)
        if campaign.status in (CampaignStatus.draft, CampaignStatus.cancelled):
            raise CampaignNotFound(campaign_id=campaign_id)
        return await public_view(conn, campaign)

    return await _PAGES.get(campaign_id, load)


async def public_view(conn: BaseDBAsyncClient, campaign: Campaign) -> PublicCampaign:
    skus = await campaigns.skus_of(conn, campaign.id)
    return PublicCampaign(
        id=campaign.id, kind=campaign.kind, title=campaign.title, description=campaign.description,
        starts_at=campaign.starts_at, ends_at=campaign.ends_at, group_size=campaign.group_size,
        time_limit_minutes=campaign.time_limit_minutes, new_customers_only=campaign.new_customers_only,
        skus=[PublicSku(id=s.id, title=s.title, original_price_fen=s.original_price_fen,
                        group_price_fen=s.group_price_fen, current_price_fen=campaigns.current_price_fen(s),
                        stock_left=s.stock_left, tiers=tiers_of(s)) for s in skus],
    )


async def live_campaigns(conn: BaseDBAsyncClient) -> list[PublicCampaign]:
    """Running campaigns with stock left on at least one item, ending soonest first."""
    now = clock.now()
    running = await Campaign.filter(
        status__in=(CampaignStatus.scheduled, CampaignStatus.live), starts_at__lte=now, ends_at__gt=now,
        skus__stock_left__gt=0,
    ).using_db(conn).distinct().order_by("ends_at", "id")
    return [await public_view(conn, c) for c in running]


async def group_view(conn: BaseDBAsyncClient, group_id: int, viewer_id: int) -> GroupView:
    group = await Group.get_or_none(id=group_id).using_db(conn)
    if group is None:
        raise GroupNotFound(group_id=group_id)
    campaign = await campaigns.get_campaign(conn, group.campaign_id)  # type: ignore[attr-defined]
    sku = await campaigns.get_sku(conn, campaign.id, group.sku_id)
    entries = await CampaignEntry.filter(group_id=group_id, status__in=SEATED).using_db(conn).order_by("id")
    people = {c.id: c for c in await Customer.filter(id__in=[e.customer_id for e in entries]).using_db(conn)}
    if viewer_id not in people:
        # A friend opening the shared link: counted for the share conversion figure.
        await Group.filter(id=group_id).using_db(conn).update(share_views=F("share_views") + 1)
    members = [
        Member(nickname=people[e.customer_id].nickname if e.customer_id in people else "",
               avatar_url=people[e.customer_id].avatar_url if e.customer_id in people else "",
               is_leader=e.role == EntryRole.leader, paid=e.status != EntryStatus.held)
        for e in entries
    ]
    left = max(0, int((group.deadline - clock.now()).total_seconds())) if group.status in (
        GroupStatus.pending, GroupStatus.open) else 0
    return GroupView(
        id=group.id, campaign_id=campaign.id, campaign_title=campaign.title, sku_title=sku.title,
        group_price_fen=sku.group_price_fen, original_price_fen=sku.original_price_fen, status=group.status,
        size=group.size, seats_left=max(0, group.size - group.seats_taken) if group.status == GroupStatus.open else 0,
        paid_count=group.paid_count, deadline=group.deadline, seconds_left=left, members=members,
    )


async def stats(conn: BaseDBAsyncClient, campaign_id: int) -> CampaignStats:
    await campaigns.get_campaign(conn, campaign_id)
    by_status = dict(await Group.filter(campaign_id=campaign_id, paid_count__gte=1).using_db(conn).annotate(
        n=Count("id")).group_by("status").values_list("status", "n"))
    groups_total = sum(by_status.values())
    sold = await CampaignEntry.filter(campaign_id=campaign_id, status__in=SOLD).using_db(conn).annotate(
        units=Sum("quantity")).values("units")
    order_ids = await CampaignEntry.filter(campaign_id=campaign_id, paid_at__isnull=False).using_db(conn).values_list(
        "order_id", flat=True)
    money = await Order.filter(id__in=order_ids or [0]).using_db(conn).annotate(
        paid=Sum("paid_fen"), refunded=Sum("refunded_fen")).values("paid", "refunded")
    refunds = await Refund.filter(order_id__in=order_ids or [0]).using_db(conn).count()
    views = await Group.filter(campaign_id=campaign_id).using_db(conn).annotate(v=Sum("share_views")).values("v")
    joins = await CampaignEntry.filter(campaign_id=campaign_id, role=EntryRole.member).using_db(conn).count()
    virtual = await Group.filter(campaign_id=campaign_id, status=GroupStatus.succeeded, virtual=True).using_db(
        conn).count()
    seats = await Group.filter(campaign_id=campaign_id, paid_count__gte=1).using_db(conn).annotate(
        s=Sum("seats_taken")).values("s")
    share_views = int((views[0]["v"] if views else 0) or 0)
    return CampaignStats(
        campaign_id=campaign_id,
        groups_opened=groups_total,
        groups_open=int(by_status.get(GroupStatus.open, 0)),
        groups_succeeded=int(by_status.get(GroupStatus.succeeded, 0)),
        groups_failed=int(by_status.get(GroupStatus.failed, 0)),
        units_sold=int((sold[0]["units"] if sold else 0) or 0),
        gmv_fen=int((money[0]["paid"] if money else 0) or 0),
        refunds=refunds,
        refunded_fen=int((money[0]["refunded"] if money else 0) or 0),
        share_views=share_views,
        joins=joins,
        share_conversion_permille=joins * 1000 // share_views if share_views else 0,
        groups_virtual=virtual,
        seats_taken=int((seats[0]["s"] if seats else 0) or 0),
    )


async def staff_groups(conn: BaseDBAsyncClient, campaign_id: int, *, status: GroupStatus | None, limit: int,
                       offset: int) -> StaffGroupPage:
    """A campaign's groups, newest first, each with its seats (who, paid or not, which order)."""
    await campaigns.get_campaign(conn, campaign_id)
    query = Group.filter(campaign_id=campaign_id).using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    total = await query.count()
    page = await query.order_by("-id").offset(offset).limit(limit)
    entries = await CampaignEntry.filter(group_id__in=[g.id for g in page] or [0]).using_db(conn).order_by("id")
    people = {c.id: c for c in await Customer.filter(
        id__in=list({e.customer_id for e in entries}) or [0]).using_db(conn)}
    titles = {s.id: s.title for s in await campaigns.skus_of(conn, campaign_id)}
    items = []
    for group in page:
        members = [
            GroupMember(customer_id=e.customer_id, nickname=people[e.customer_id].nickname,
                        phone=people[e.customer_id].phone_masked, role=e.role, status=e.status,
                        order_id=e.order_id, paid_at=e.paid_at)
            for e in entries if e.group_id == group.id and e.customer_id in people
        ]
        items.append(StaffGroup(
            id=group.id, sku_id=group.sku_id, sku_title=titles.get(group.sku_id, ""), status=group.status,
            virtual=group.virtual, size=group.size, seats_taken=group.seats_taken, paid_count=group.paid_count,
            deadline=group.deadline, created_at=group.created_at, settled_at=group.settled_at, members=members,
        ))
    return StaffGroupPage(total=total, limit=limit, offset=offset, items=items)
