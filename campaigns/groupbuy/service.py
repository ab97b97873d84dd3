"""Campaign rules for staff: create, validate (errors name the field), publish, change, cancel, end; prices.

Functions take the caller's connection and never commit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from campaigns.groupbuy.errors import (
    CampaignNotFound,
    CampaignNotLive,
    CampaignStateConflict,
    EditedMeanwhile,
    LiveCampaignChange,
    SkuNotFound,
)
from campaigns.groupbuy.models import Campaign, CampaignKind, CampaignSku, CampaignStatus
from campaigns.groupbuy.schemas import CampaignCreate, CampaignUpdate, SkuCreate, SkuUpdate, Tier
from kernel import clock
from kernel.errors import ValidationFailed
from kernel.outbox import enqueue

BESTIE_SIZES = range(2, 6)
MIN_TIME_LIMIT_MINUTES = 10
# What a live campaign may still change (everything else would change what buyers agreed to).
LIVE_CHANGEABLE = {"title", "description", "ends_at", "per_customer_limit", "branch_ids", "voucher_valid_days"}
# An item's prices are what buyers paid or were promised; a live item keeps them.
LIVE_FIXED_PRICES = ("original_price_fen", "group_price_fen", "tiers")
# What staff edit, read off the edit bodies themselves (CampaignUpdate without its items and version; SkuUpdate):
# what the edit version covers and a campaign's locks are named from, so a field added to a body is covered too.
CAMPAIGN_FIELDS = tuple(f for f in CampaignUpdate.__struct_fields__ if f not in ("skus", "version"))
ITEM_FIELDS = SkuUpdate.__struct_fields__
# An item's edited field where its column has another name.
_ITEM_COLUMNS = {"stock": "stock_total"}


def _stored_item(sku: CampaignSku) -> dict[str, Any]:
    """The item's edited fields as stored (field → value; no tiers is [])."""
    stored = {name: getattr(sku, _ITEM_COLUMNS.get(name, name)) for name in ITEM_FIELDS}
    stored["tiers"] = stored["tiers"] or []
    return stored


@dataclass
class EditedItem:
    """An item after an edit, and what the edit really changed (field → new value)."""

    sku: CampaignSku
    changed: dict[str, Any]


@dataclass
class EditedCampaign:
    """A campaign after an edit, and what the edit really changed: its own fields (field → new value) and, by
    item id, the items that changed. Staff clients send whole bodies, so this is what gets audited, not the body."""

    campaign: Campaign
    changed: dict[str, Any]
    items_changed: dict[int, dict[str, Any]] = dataclass_field(default_factory=dict)
    # Every item of the campaign as it stands after the edit (read once, under the edit's lock).
    skus: list[CampaignSku] = dataclass_field(default_factory=list)


def _same_instant(sent: datetime, stored: datetime) -> bool:
    # Aware datetimes compare as instants, whatever their offsets (+08:00 from one client, Z from another).
    # Campaign times are entered and shown to the second (the console's editor cannot say more), while a
    # campaign created through the API keeps the microseconds of the instant it was sent: the fraction a
    # client cannot send back is not a new time.
    return sent.replace(microsecond=0) == stored.replace(microsecond=0)


def campaign_changes(campaign: Campaign, data: CampaignUpdate) -> dict[str, Any]:
    """The fields of `data` whose value differs from the stored one (field → new value). A field sent with the
    value it already has is no change: staff clients send every field back, and on a live campaign an unchanged
    group size or start counted as a change would refuse the edit of a title."""
    changed: dict[str, Any] = {}
    for name, sent in msgspec.structs.asdict(data).items():
        # None: not sent; items are compared one by one in _edit_item; the version is no field of the campaign
        if sent is None or name in ("skus", "version"):
            continue
        if name == "virtual_min_paid" and sent == 0:
            sent = None  # 0 turns virtual completion off, stored as NULL
        stored = getattr(campaign, name)
        if name == "branch_ids":
            # Where the vouchers may be redeemed: a set. The same branches in another order are no change, and
            # a change is stored as vouchers keep it (sorted, once each); none listed ([]) is every branch, as
            # NULL is.
            same = set(sent) == set(stored or [])
            sent = sorted(set(sent))
        elif isinstance(sent, datetime) and stored is not None:
            same = _same_instant(sent, stored)
        else:
            same = sent == stored
        if not same:
            changed[name] = sent
    return changed


def stored_tiers(tiers: list[Tier]) -> list[dict[str, int]]:
    """Tiers as the item's JSON column keeps them (what `item_changes` compares a request's tiers with)."""
    return [{"min_units": t.min_units, "price_fen": t.price_fen} for t in tiers]


def item_changes(sku: CampaignSku, data: SkuUpdate) -> dict[str, Any]:
    """The fields of `data` whose value differs from the stored item (field → new value, tiers as stored)."""
    sent: dict[str, Any] = {name: getattr(data, name) for name in ITEM_FIELDS}
    if data.tiers is not None:
        sent["tiers"] = stored_tiers(data.tiers)
    stored = _stored_item(sku)
    return {name: value for name, value in sent.items() if value is not None and value != stored[name]}


def edit_version(campaign: Campaign, skus: list[CampaignSku]) -> str:
    """The version of what staff edit (版本): a digest of the campaign's editable fields and of each item's.

    A staff editor sends back the version it loaded (`CampaignUpdate.version`); a save from a copy whose
    version is no longer the stored one is refused (`edited_meanwhile`), so it cannot put back a value someone
    else changed meanwhile. It is computed from the values, not kept in a column, so every writer counts
    (either edit route, ending now, a future one) and nothing else does: customers joining or buying move an
    item's `stock_left` and `sold_units`, never its `stock_total`, so a busy campaign's version stays put.
    The status is left out too: the sweep starting a campaign is the clock, not an edit (the live rules still
    refuse what a running campaign locks)."""

    def stored(name: str) -> Any:
        value = getattr(campaign, name)
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).isoformat()
        if name == "branch_ids":
            return sorted(set(value or []))  # a set, as an edit compares it
        return value

    edited = {
        "campaign": [campaign.id, *(stored(name) for name in CAMPAIGN_FIELDS)],
        "skus": sorted([sku.id, *_stored_item(sku).values()] for sku in skus),
    }
    text = json.dumps(edited, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def locked_fields(campaign: Campaign) -> tuple[list[str], list[str]]:
    """What an edit of this campaign would be refused for changing now: its own fields, and every item's.
    The same rule `update_campaign` and `update_sku` apply, answered with the campaign so that the console's
    hint says what the API enforces and no rule lives only in the page."""
    if campaign.status in (CampaignStatus.ended, CampaignStatus.cancelled):
        return list(CAMPAIGN_FIELDS), list(ITEM_FIELDS)
    if campaign.status == CampaignStatus.live or is_running(campaign):
        return [f for f in CAMPAIGN_FIELDS if f not in LIVE_CHANGEABLE], list(LIVE_FIXED_PRICES)
    return [], []


def current_price_fen(sku: CampaignSku) -> int:
    """The price now: the group price, lowered by every tier whose threshold the paid units have reached."""
    price = sku.group_price_fen
    for tier in sku.tiers or []:
        if sku.sold_units >= tier["min_units"]:
            price = min(price, tier["price_fen"])
    return price


def final_price_fen(sku: CampaignSku) -> int:
    return current_price_fen(sku)


def _validate_tiers(tiers: list[Tier], group_price_fen: int, field: str) -> None:
    previous_units, previous_price = 0, group_price_fen
    for j, tier in enumerate(tiers):
        if tier.min_units <= previous_units:
            raise ValidationFailed("Tier thresholds must rise.", field=f"{field}[{j}].min_units")
        if tier.price_fen >= previous_price:
            raise ValidationFailed("Each tier must be cheaper than the one before.", field=f"{field}[{j}].price_fen")
        previous_units, previous_price = tier.min_units, tier.price_fen


def _validate_sku(sku: SkuCreate | SkuUpdate, kind: CampaignKind, field: str, *, original: int, group: int) -> None:
    if group > original:
        raise ValidationFailed("The group price cannot exceed the original price.", field=f"{field}.group_price_fen")
    tiers = sku.tiers or []
    if tiers and kind != CampaignKind.category:
        raise ValidationFailed("Tier prices are for category group buys.", field=f"{field}.tiers")
    _validate_tiers(tiers, group, f"{field}.tiers")


def _require_zone(**times: datetime | None) -> None:
    # A naive time cannot be compared with the clock, nor stored as an instant.
    for field, value in times.items():
        if value is not None and value.tzinfo is None:
            raise ValidationFailed("Times need a time zone offset.", field=field)


def _validate_rules(
    *, kind: CampaignKind, starts_at: datetime, ends_at: datetime, group_size: int, time_limit_minutes: int,
    virtual_min_paid: int | None, leader_bonus_points: int,
) -> None:
    _require_zone(starts_at=starts_at, ends_at=ends_at)
    if ends_at <= starts_at:
        raise ValidationFailed("The campaign must end after it starts.", field="ends_at")
    if kind == CampaignKind.bestie_card:
        if group_size not in BESTIE_SIZES:
            raise ValidationFailed("A bestie card group has 2 to 5 members.", field="group_size")
        if time_limit_minutes < MIN_TIME_LIMIT_MINUTES:
            raise ValidationFailed(f"Friends need at least {MIN_TIME_LIMIT_MINUTES} minutes to join.",
                                   field="time_limit_minutes")
        if virtual_min_paid is not None and not 1 <= virtual_min_paid < group_size:
            raise ValidationFailed("Virtual completion needs between 1 and group_size - 1 paid members.",
                                   field="virtual_min_paid")
    else:
        if group_size != 1:
            raise ValidationFailed("A category group buy has no groups (group_size 1).", field="group_size")
        if virtual_min_paid is not None:
            raise ValidationFailed("Virtual completion is for bestie cards.", field="virtual_min_paid")
        if leader_bonus_points:
            raise ValidationFailed("Leader points are for bestie cards.", field="leader_bonus_points")


async def create_campaign(conn: BaseDBAsyncClient, data: CampaignCreate, staff_id: int) -> Campaign:
    _validate_rules(kind=data.kind, starts_at=data.starts_at, ends_at=data.ends_at, group_size=data.group_size,
                    time_limit_minutes=data.time_limit_minutes, virtual_min_paid=data.virtual_min_paid,
                    leader_bonus_points=data.leader_bonus_points)
    if not data.skus:
        raise ValidationFailed("A campaign sells at least one item.", field="skus")
    for i, sku in enumerate(data.skus):
        _validate_sku(sku, data.kind, f"skus[{i}]", original=sku.original_price_fen, group=sku.group_price_fen)
    now = clock.now()
    campaign = await Campaign.create(
        kind=data.kind, title=data.title, description=data.description, starts_at=data.starts_at,
        ends_at=data.ends_at, group_size=data.group_size, time_limit_minutes=data.time_limit_minutes,
        per_customer_limit=data.per_customer_limit, new_customers_only=data.new_customers_only,
        virtual_min_paid=data.virtual_min_paid, leader_bonus_points=data.leader_bonus_points,
        voucher_valid_days=data.voucher_valid_days, created_by=staff_id,
        # A set, kept as vouchers keep it (sorted, once each), as an edit stores it.
        branch_ids=None if data.branch_ids is None else sorted(set(data.branch_ids)),
        created_at=now, updated_at=now, using_db=conn,
    )
    for i, sku in enumerate(data.skus):
        await CampaignSku.create(
            campaign_id=campaign.id, title=sku.title, service_id=sku.service_id,
            original_price_fen=sku.original_price_fen, group_price_fen=sku.group_price_fen, stock_total=sku.stock,
            stock_left=sku.stock, tiers=stored_tiers(sku.tiers),
            position=i, using_db=conn,
        )
    return campaign


async def get_campaign(conn: BaseDBAsyncClient, campaign_id: int) -> Campaign:
    campaign = await Campaign.get_or_none(id=campaign_id).using_db(conn)
    if campaign is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    return campaign


async def skus_of(conn: BaseDBAsyncClient, campaign_id: int) -> list[CampaignSku]:
    return await CampaignSku.filter(campaign_id=campaign_id).using_db(conn).order_by("position", "id")


async def get_sku(conn: BaseDBAsyncClient, campaign_id: int, sku_id: int) -> CampaignSku:
    sku = await CampaignSku.get_or_none(id=sku_id, campaign_id=campaign_id).using_db(conn)
    if sku is None:
        raise SkuNotFound(sku_id=sku_id)
    return sku


def is_running(campaign: Campaign) -> bool:
    """Open for customers: published and between its start and end (the cron also flips the status)."""
    now = clock.now()
    return campaign.status in (CampaignStatus.scheduled, CampaignStatus.live) and campaign.starts_at <= now < campaign.ends_at


def require_running(campaign: Campaign) -> None:
    if not is_running(campaign):
        raise CampaignNotLive(campaign_id=campaign.id, status=campaign.status.value)


async def locked_for_edit(conn: BaseDBAsyncClient, campaign_id: int) -> tuple[Campaign, list[CampaignSku]]:
    """The campaign and its items, read once and locked until the caller's transaction ends: a second staff
    save of this campaign waits here and then reads what the first one wrote (so it compares its version with
    that), and an item's stock is changed from the row it was judged on.

    The order is the campaign, then its items: opening a group takes the campaign's row too (the shared lock of
    its foreign key, when it inserts the group) before the item's stock, so the two never wait on each other in
    opposite orders; a join into an open group takes quota, group and item and never the campaign. While an edit
    holds them, buyers of any of the campaign's items wait for its transaction (milliseconds)."""
    campaign = await Campaign.filter(id=campaign_id).using_db(conn).select_for_update().first()
    if campaign is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    skus = await CampaignSku.filter(campaign_id=campaign_id).using_db(conn).select_for_update().order_by(
        "position", "id")
    return campaign, list(skus)


async def update_campaign(conn: BaseDBAsyncClient, campaign_id: int, data: CampaignUpdate) -> EditedCampaign:
    """Change the campaign, then each item in `data.skus`, in the caller's one transaction: staff save them
    together, so an item refused (errors name `skus[i].<field>`) leaves the campaign's own fields unsaved too.
    Only what differs from the stored campaign is a change: what a live campaign refuses, what is written and
    what the caller audits. With `data.version`, a campaign or item changed since that version was read is
    refused whole (`edited_meanwhile`); without it (older clients) the body is applied as it always was."""
    campaign, skus = await locked_for_edit(conn, campaign_id)
    if data.version is not None and data.version != edit_version(campaign, skus):
        raise EditedMeanwhile(field="version")
    # Before comparing: a naive time is no instant, so it cannot equal the stored one either.
    _require_zone(starts_at=data.starts_at, ends_at=data.ends_at)
    listed: set[int] = set()
    for i, item in enumerate(data.skus or []):
        # One entry per item: two would both be applied, and the audit would keep only the last one's changes.
        if item.id in listed:
            raise ValidationFailed("An item is listed twice.", field=f"skus[{i}].id")
        listed.add(item.id)
    changes = campaign_changes(campaign, data)
    if campaign.status in (CampaignStatus.ended, CampaignStatus.cancelled):
        raise CampaignStateConflict("An ended or cancelled campaign cannot change.", status=campaign.status.value)
    live = campaign.status == CampaignStatus.live or is_running(campaign)
    if live:
        refused = sorted(set(changes) - LIVE_CHANGEABLE)
        if refused:
            raise LiveCampaignChange(field=refused[0], refused=refused)
        if "ends_at" in changes and changes["ends_at"] <= clock.now():
            raise ValidationFailed("A live campaign's end must stay in the future (use end to stop it).",
                                   field="ends_at")
        if "per_customer_limit" in changes and changes["per_customer_limit"] < campaign.per_customer_limit:
            raise LiveCampaignChange(field="per_customer_limit", reason="a live limit can only grow")
    _validate_rules(
        kind=campaign.kind, starts_at=changes.get("starts_at", campaign.starts_at),
        ends_at=changes.get("ends_at", campaign.ends_at), group_size=changes.get("group_size", campaign.group_size),
        time_limit_minutes=changes.get("time_limit_minutes", campaign.time_limit_minutes),
        virtual_min_paid=changes.get("virtual_min_paid", campaign.virtual_min_paid),
        leader_bonus_points=changes.get("leader_bonus_points", campaign.leader_bonus_points),
    )
    if changes:
        written = {**changes, "updated_at": clock.now()}
        await Campaign.filter(id=campaign_id).using_db(conn).update(**written)
        for name, value in written.items():  # the locked row is what is stored now: no read again
            setattr(campaign, name, value)
    by_id = {sku.id: sku for sku in skus}
    items_changed: dict[int, dict[str, Any]] = {}
    for i, item in enumerate(data.skus or []):
        sku = by_id.get(item.id)
        if sku is None:
            raise SkuNotFound(sku_id=item.id)
        edited = await _edit_item(conn, campaign, sku, item, live=live, field=f"skus[{i}]")
        if edited.changed:
            items_changed[item.id] = edited.changed
    return EditedCampaign(campaign, changes, items_changed, skus)


async def update_sku(conn: BaseDBAsyncClient, campaign_id: int, sku_id: int, data: SkuUpdate) -> EditedItem:
    """Change one item through its own route (field names as sent: `stock`). The item's row is locked before
    it is judged, so a stock refused names what is taken now, not what an earlier read saw."""
    campaign = await get_campaign(conn, campaign_id)
    sku = await CampaignSku.filter(id=sku_id, campaign_id=campaign_id).using_db(conn).select_for_update().first()
    if sku is None:
        raise SkuNotFound(sku_id=sku_id)
    live = campaign.status == CampaignStatus.live or is_running(campaign)
    return await _edit_item(conn, campaign, sku, data, live=live, field=None)


async def _edit_item(
    conn: BaseDBAsyncClient, campaign: Campaign, sku: CampaignSku, data: SkuUpdate, *, live: bool, field: str | None
) -> EditedItem:
    """Change one item, read and locked by the caller; `sku` is updated in place to what is stored. `field` is
    where the item sits in the request (`skus[0]`) when it came with its campaign, and prefixes every field an
    error names. As for the campaign, a field sent with its stored value is no change (a live item's unchanged
    price is not refused)."""

    def named(name: str) -> str:
        return f"{field}.{name}" if field else name

    if campaign.status in (CampaignStatus.ended, CampaignStatus.cancelled):
        raise CampaignStateConflict("An ended or cancelled campaign cannot change.", status=campaign.status.value)
    changed = item_changes(sku, data)
    if live:
        for price in LIVE_FIXED_PRICES:
            if price in changed:
                raise LiveCampaignChange(field=named(price), reason="prices of a live campaign are fixed")
    original = data.original_price_fen or sku.original_price_fen
    group = data.group_price_fen or sku.group_price_fen
    _validate_sku(data, campaign.kind, field or "sku", original=original, group=group)
    if data.tiers is None and data.group_price_fen is not None:
        _validate_tiers([Tier(**t) for t in sku.tiers or []], group, f"{field or 'sku'}.tiers")
    # An unchanged stock is no stock change (the console sends every item's stock back, touched or not) and is
    # never below what is taken, so no statement runs. Run, the conditional update below would change no row,
    # and the driver counts rows changed, not rows matched (CLIENT_FOUND_ROWS off, which `groups._take_quota`
    # relies on): that 0 was read as a refusal.
    if "stock" in changed:
        # The row is locked (FOR UPDATE), so what is taken (total - left) is what buyers hold now; the refusal
        # names that figure, which is why the row is locked before it is read.
        taken = sku.stock_total - sku.stock_left
        if data.stock < taken:
            raise ValidationFailed("Stock cannot go below what is already sold or held.", field=named("stock"),
                                   taken=taken)
        # Still one conditional update, which keeps what is taken and never lets `left` go below zero, should
        # the row have moved after all (a database that ignores FOR UPDATE): then it is read again and the
        # refusal says what is taken now.
        delta = data.stock - sku.stock_total
        moved = await CampaignSku.filter(
            id=sku.id, stock_total=sku.stock_total, stock_left__gte=max(0, -delta)
        ).using_db(conn).update(stock_total=data.stock, stock_left=F("stock_left") + delta)
        if not moved:
            # A locking read: a plain one would answer from this transaction's snapshot, older than the row.
            now = await CampaignSku.filter(id=sku.id).using_db(conn).select_for_update().get()
            if data.stock >= now.stock_total - now.stock_left:  # not too low: the total moved meanwhile
                raise EditedMeanwhile(field=named("stock"))
            raise ValidationFailed("Stock cannot go below what is already sold or held.", field=named("stock"),
                                   taken=now.stock_total - now.stock_left)
        sku.stock_total, sku.stock_left = data.stock, sku.stock_left + delta
    columns = {k: v for k, v in changed.items() if k != "stock"}
    if columns:
        await CampaignSku.filter(id=sku.id).using_db(conn).update(**columns)
        for name, value in columns.items():
            setattr(sku, name, value)
    return EditedItem(sku, changed)


async def publish(conn: BaseDBAsyncClient, campaign_id: int) -> Campaign:
    campaign = await get_campaign(conn, campaign_id)
    if campaign.ends_at <= clock.now():
        raise ValidationFailed("The campaign would already be over.", field="ends_at")
    if not await CampaignSku.filter(campaign_id=campaign_id).using_db(conn).exists():
        raise ValidationFailed("A campaign sells at least one item.", field="skus")
    target = CampaignStatus.live if campaign.starts_at <= clock.now() else CampaignStatus.scheduled
    moved = await Campaign.filter(id=campaign_id, status=CampaignStatus.draft).using_db(conn).update(
        status=target, updated_at=clock.now())
    if not moved:
        raise CampaignStateConflict("Only a draft can be published.", status=campaign.status.value)
    return await get_campaign(conn, campaign_id)


async def cancel(conn: BaseDBAsyncClient, campaign_id: int) -> Campaign:
    campaign = await get_campaign(conn, campaign_id)
    moved = await Campaign.filter(
        id=campaign_id, status__in=(CampaignStatus.draft, CampaignStatus.scheduled), starts_at__gt=clock.now()
    ).using_db(conn).update(status=CampaignStatus.cancelled, updated_at=clock.now())
    if not moved and campaign.status != CampaignStatus.draft:
        raise CampaignStateConflict("Only a campaign that has not started can be cancelled; end a live one.",
                                    status=campaign.status.value)
    if not moved:
        await Campaign.filter(id=campaign_id, status=CampaignStatus.draft).using_db(conn).update(
            status=CampaignStatus.cancelled, updated_at=clock.now())
    return await get_campaign(conn, campaign_id)


async def end_now(conn: BaseDBAsyncClient, campaign_id: int) -> Campaign:
    """End a running campaign early: it stops selling now and the end job settles everything."""
    now = clock.now()
    moved = await Campaign.filter(
        id=campaign_id, status__in=(CampaignStatus.scheduled, CampaignStatus.live), starts_at__lte=now
    ).using_db(conn).update(ends_at=now, status=CampaignStatus.live, updated_at=now)
    if not moved:
        campaign = await get_campaign(conn, campaign_id)
        raise CampaignStateConflict("Only a running campaign can be ended.", status=campaign.status.value)
    await enqueue(conn, "campaigns.end_campaign", campaign_id)
    return await get_campaign(conn, campaign_id)


def voucher_valid_until(campaign: Campaign) -> datetime:
    return clock.now() + timedelta(days=campaign.voucher_valid_days)
