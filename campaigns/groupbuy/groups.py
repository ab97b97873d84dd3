"""Buying in a campaign: open and join bestie-card groups, category purchases, and settling groups.

Seats and stock are taken with conditional updates (`seats_taken < size`, `stock_left >= n`) placed
last in the transaction, after the inserts, so the hot SKU and group rows stay locked for as short a
time as possible. A group reaches one end state through a conditional update from `pending`/`open`;
whoever wins it fulfils or refunds every member in the same transaction.

This room owns entries, seats, stock and groups; the orders room owns the orders. The line kind's hooks
(bottom of this file) never move an order: they answer with a `LineOutcome` (orders delivered, orders to
refund) that the orders room follows, and `settle_group`, which this room's jobs call, hands its outcome
to `orders.follow` the same way.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from campaigns.groupbuy import partners
from campaigns.groupbuy import service as campaigns
from campaigns.groupbuy.errors import (
    AlreadyInGroup,
    AlreadyLeadingGroup,
    GroupFull,
    GroupNotFound,
    GroupNotJoinable,
    LimitReached,
    NewCustomersOnly,
    SkuNotFound,
    SoldOut,
    WrongCampaignKind,
)
from campaigns.groupbuy.models import (
    Campaign,
    CampaignEntry,
    CampaignKind,
    CampaignQuota,
    CampaignSku,
    EntryRole,
    EntryStatus,
    Group,
    GroupStatus,
)
from orders import service as orders
from orders.hooks import NOTHING, LineOutcome, RefundAsk, delivered
from orders.models import Order, OrderStatus
from kernel import clock
from kernel.batch import Batch, packed, select, unpacked
from kernel.identity.service import AccountErased, customer_is_active
from kernel.outbox import enqueue
from kernel.rows import RowInsert

log = structlog.get_logger(__name__)

LINE_KIND = "campaign_entry"
SETTLEABLE = (GroupStatus.pending, GroupStatus.open)


# --- taking and giving back --------------------------------------------------------------------

# The first purchase inserts the quota row, a later one adds only while the sum stays within the limit
# (0 rows changed otherwise). Two first purchases racing meet on the unique key.
_TAKE_QUOTA = (
    "INSERT INTO gb_quota (campaign_id, customer_id, units) VALUES (%s, %s, %s)"
    " ON DUPLICATE KEY UPDATE units = IF(units + VALUES(units) <= %s, units + VALUES(units), units)"
)


def _within_limit(campaign: Campaign, units: int) -> None:
    """More units in one purchase than a customer may hold at all: refused before anything is written."""
    if units > campaign.per_customer_limit:
        raise LimitReached(limit=campaign.per_customer_limit)


async def _take_quota(conn: BaseDBAsyncClient, campaign: Campaign, customer_id: int, units: int) -> None:
    _within_limit(campaign, units)
    if conn.capabilities.dialect == "mysql":
        changed, _ = await conn.execute_query(
            _TAKE_QUOTA, [campaign.id, customer_id, units, campaign.per_customer_limit])
        # 0 rows changed when the IF kept the old value. This counts on the driver reporting rows changed,
        # not rows found (CLIENT_FOUND_ROWS off: aiomysql's and Tortoise's default); the limit tests
        # (twelve taps for a limit of two) would fail if that changed.
        if not changed:
            raise LimitReached(limit=campaign.per_customer_limit)
        return
    if not await CampaignQuota.filter(campaign_id=campaign.id, customer_id=customer_id).using_db(conn).exists():
        # INSERT IGNORE: two first purchases of one customer racing create one row.
        await CampaignQuota.bulk_create(
            [CampaignQuota(campaign_id=campaign.id, customer_id=customer_id, units=0)], ignore_conflicts=True,
            using_db=conn,
        )
    taken = await CampaignQuota.filter(
        campaign_id=campaign.id, customer_id=customer_id, units__lte=campaign.per_customer_limit - units
    ).using_db(conn).update(units=F("units") + units)
    if not taken:
        raise LimitReached(limit=campaign.per_customer_limit)


async def _take_stock(conn: BaseDBAsyncClient, sku_id: int, units: int) -> None:
    if conn.capabilities.dialect == "mysql":  # the hot SKU's statement, without the ORM's query building
        taken, _ = await conn.execute_query(
            "UPDATE gb_sku SET stock_left = stock_left - %s WHERE id = %s AND stock_left >= %s", [units, sku_id, units])
    else:
        taken = await CampaignSku.filter(id=sku_id, stock_left__gte=units).using_db(conn).update(
            stock_left=F("stock_left") - units)
    if not taken:
        raise SoldOut(sku_id=sku_id)


async def _give_back(conn: BaseDBAsyncClient, entry: CampaignEntry, *, sold: bool, seat: bool = False) -> None:
    """Quota, the group's seat (`seat`: while the group can still settle; its paid count too when `sold`),
    then stock (and the paid-units count when `sold`) go back, once per entry.

    In the join's order (quota, group, SKU): a give-back and a join in the same group then queue on the first
    row they share instead of each holding a row the other wants (a deadlock, one of them run again)."""
    await CampaignQuota.filter(
        campaign_id=entry.campaign_id, customer_id=entry.customer_id, units__gte=entry.quantity
    ).using_db(conn).update(units=F("units") - entry.quantity)
    if seat and entry.group_id is not None:
        if sold:
            # A member who takes the money back before the group settles leaves it: the seat is free again
            # and the payment no longer counts towards completion.
            await Group.filter(
                id=entry.group_id, status__in=SETTLEABLE, seats_taken__gte=1, paid_count__gte=1
            ).using_db(conn).update(seats_taken=F("seats_taken") - 1, paid_count=F("paid_count") - 1)
        else:
            await Group.filter(id=entry.group_id, status__in=SETTLEABLE, seats_taken__gte=1).using_db(conn).update(
                seats_taken=F("seats_taken") - 1)
    await CampaignSku.filter(id=entry.sku_id).using_db(conn).update(stock_left=F("stock_left") + entry.quantity)
    if sold:
        await CampaignSku.filter(id=entry.sku_id, sold_units__gte=entry.quantity).using_db(conn).update(
            sold_units=F("sold_units") - entry.quantity)


async def _require_new_customer(conn: BaseDBAsyncClient, campaign: Campaign, customer_id: int) -> None:
    if not campaign.new_customers_only:
        return
    paid_before = await Order.filter(customer_id=customer_id, paid_at__isnull=False).using_db(conn).exists()
    if paid_before or await partners.customer_has_consumption(conn, customer_id):
        raise NewCustomersOnly(campaign_id=campaign.id)


def _description(campaign: Campaign, sku: CampaignSku) -> str:
    return f"{campaign.title} · {sku.title}"


def _entry_line(sku: CampaignSku, quantity: int, unit_price_fen: int) -> orders.LineSpec:
    return orders.LineSpec(kind=LINE_KIND, title=sku.title, quantity=quantity, unit_price_fen=unit_price_fen)


async def _entry_order(conn, *, campaign, sku, customer_id, quantity, unit_price_fen, pay_by):
    return await orders.create_order(
        conn, customer_id=customer_id, description=_description(campaign, sku), pay_by=pay_by,
        lines=[_entry_line(sku, quantity, unit_price_fen)],
    )


# --- customers ------------------------------------------------------------------------------------

async def open_group(conn: BaseDBAsyncClient, customer_id: int, campaign_id: int, sku_id: int):
    """A leader opens a bestie-card group: the group waits (`pending`) until the leader has paid."""
    campaign = await campaigns.get_campaign(conn, campaign_id)
    if campaign.kind != CampaignKind.bestie_card:
        raise WrongCampaignKind("Buy this campaign's items directly.", kind=campaign.kind.value)
    campaigns.require_running(campaign)
    sku = await campaigns.get_sku(conn, campaign_id, sku_id)
    now = clock.now()
    deadline = min(now + timedelta(minutes=campaign.time_limit_minutes), campaign.ends_at)
    order = await _entry_order(conn, campaign=campaign, sku=sku, customer_id=customer_id, quantity=1,
                               unit_price_fen=sku.group_price_fen, pay_by=deadline)
    try:
        # Its foreign key takes the campaign's row (shared) before the item's stock below: the order a staff edit
        # locks them in (service.locked_for_edit), so the two never deadlock; keep the stock after this insert.
        group = await Group.create(campaign_id=campaign.id, sku_id=sku.id, leader_id=customer_id,
                                   size=campaign.group_size, seats_taken=1, deadline=deadline, created_at=now,
                                   using_db=conn)
    except IntegrityError:
        raise AlreadyLeadingGroup(campaign_id=campaign_id) from None
    entry = await CampaignEntry.create(
        campaign_id=campaign.id, sku_id=sku.id, group_id=group.id, customer_id=customer_id, order_id=order.id,
        role=EntryRole.leader, quantity=1, unit_price_fen=sku.group_price_fen, created_at=now, using_db=conn,
    )
    await enqueue(conn, "campaigns.schedule_group_close", group.id)
    await _take_quota(conn, campaign, customer_id, 1)
    await _take_stock(conn, sku.id, 1)
    return group, order, entry


# The columns a join reads of each row: aiomysql parses every column's description of every result in
# Python, so the 50 columns of the three rows were a sixth of a join's server CPU. The models built from
# them are partial; `join_group` and what it calls read only these. They come back as one JSON column
# (kernel.batch.packed): 20 columns cost the client about 100 µs a join.
_JOIN_COLUMNS = {
    "g": ("id", "campaign_id", "sku_id", "leader_id", "status", "deadline", "size"),
    "c": ("id", "kind", "status", "starts_at", "ends_at", "title", "new_customers_only", "per_customer_limit"),
    "s": ("id", "campaign_id", "title", "group_price_fen"),
}
_JOIN_NAMES = [f"{alias}__{column}" for alias, columns in _JOIN_COLUMNS.items() for column in columns] + ["active"]


def _hydrate(model: type, alias: str, row: dict):
    # A partial model: Tortoise converts each value as it converts a column of that field (JSON text to a
    # datetime, an enum, a bool); ids, counts and titles arrive as they are.
    prefix = f"{alias}__"
    return model._init_from_db(**{k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)})


_GROUP_CAMPAIGN_SKU = packed(
    *(f"{alias}.{column}" for alias, columns in _JOIN_COLUMNS.items() for column in columns),
    "(SELECT 1 FROM customer u WHERE u.id = %s AND u.deleted_at IS NULL)",
) + (
    " FROM gb_group g JOIN gb_campaign c ON c.id = g.campaign_id"
    " LEFT JOIN gb_sku s ON s.id = g.sku_id AND s.campaign_id = g.campaign_id WHERE g.id = %s"
)


async def _group_campaign_sku(
    conn: BaseDBAsyncClient, group_id: int, customer_id: int
) -> tuple[Group, Campaign, CampaignSku | None]:
    """The group with its campaign and SKU: one statement on MySQL/MariaDB, three through the ORM elsewhere.
    Refuses an erased customer first (`AccountErased`): the join route's guard leaves that check here."""
    if conn.capabilities.dialect != "mysql":
        if not await customer_is_active(customer_id, conn):
            raise AccountErased()
        group = await Group.get_or_none(id=group_id).using_db(conn)
        if group is None:
            raise GroupNotFound(group_id=group_id)
        campaign = await campaigns.get_campaign(conn, group.campaign_id)  # type: ignore[attr-defined]
        sku = await CampaignSku.get_or_none(id=group.sku_id, campaign_id=campaign.id).using_db(conn)  # type: ignore[attr-defined]
        return group, campaign, sku
    rows = await select(conn, _GROUP_CAMPAIGN_SKU, [customer_id, group_id])
    if not rows:
        if not await customer_is_active(customer_id, conn):
            raise AccountErased()
        raise GroupNotFound(group_id=group_id)
    row = dict(zip(_JOIN_NAMES, unpacked(rows[0])))
    if row["active"] is None:
        raise AccountErased()
    sku = _hydrate(CampaignSku, "s", row) if row["s__id"] is not None else None
    return _hydrate(Group, "g", row), _hydrate(Campaign, "c", row), sku


_ENTRY_ROW = RowInsert(CampaignEntry)


def _member_entry(campaign: Campaign, sku: CampaignSku, group: Group, customer_id: int, order_id) -> dict:
    return dict(campaign_id=campaign.id, sku_id=sku.id, group_id=group.id, customer_id=customer_id,
                order_id=order_id, role=EntryRole.member, quantity=1, unit_price_fen=sku.group_price_fen,
                created_at=clock.now())


# The seat and one unit of the SKU's stock in one statement (MySQL/MariaDB): both rows change or neither.
# Rows are locked group first, then SKU, as the two statements did (gb_group drives the join: its
# primary key is the most selective condition).
_TAKE_SEAT_AND_STOCK = (
    "UPDATE gb_group g STRAIGHT_JOIN gb_sku s SET g.seats_taken = g.seats_taken + 1, s.stock_left = s.stock_left - 1"
    " WHERE g.id = %s AND g.status = %s AND g.seats_taken <= %s AND s.id = %s AND s.stock_left >= 1"
)
# Which of the two refused, read only when the statement changed nothing: a locking read, so it sees the
# latest committed seats and stock rather than this transaction's snapshot.
_SEAT_LEFT = "SELECT 1 FROM gb_group WHERE id = %s AND status = %s AND seats_taken <= %s FOR UPDATE"


def _seat(group: Group) -> list:
    return [group.id, GroupStatus.open.value, group.size - 1]


async def _refuse_seat_or_stock(conn: BaseDBAsyncClient, group: Group, sku_id: int) -> None:
    """After `_TAKE_SEAT_AND_STOCK` changed nothing: GroupFull when no seat is left, else SoldOut."""
    _, seat_left = await conn.execute_query(_SEAT_LEFT, _seat(group))
    if not seat_left:
        raise GroupFull(group_id=group.id)
    raise SoldOut(sku_id=sku_id)


async def _take_seat_and_stock(conn: BaseDBAsyncClient, group: Group, sku_id: int) -> None:
    """A seat of the group and one unit of stock (the embedded stack's two statements)."""
    if not await Group.filter(
        id=group.id, status=GroupStatus.open, seats_taken__lte=group.size - 1
    ).using_db(conn).update(seats_taken=F("seats_taken") + 1):
        raise GroupFull(group_id=group.id)
    await _take_stock(conn, sku_id, 1)


async def join_group(conn: BaseDBAsyncClient, customer_id: int, group_id: int):
    """A friend takes a seat: held while the order is unpaid, given back if it closes unpaid.

    On MySQL/MariaDB two round trips inside the transaction: the group with its campaign and SKU in one
    statement, then every write in one batch (`_join_in_one_round_trip`); the order is the orders room's
    (`orders.add_order`)."""
    group, campaign, sku = await _group_campaign_sku(conn, group_id, customer_id)
    if group.leader_id == customer_id:  # type: ignore[attr-defined]
        raise AlreadyInGroup(group_id=group_id)
    campaigns.require_running(campaign)
    if group.status != GroupStatus.open or clock.now() >= group.deadline:
        raise GroupNotJoinable(group_id=group_id, status=group.status.value)
    await _require_new_customer(conn, campaign, customer_id)
    if sku is None:
        raise SkuNotFound(sku_id=group.sku_id)  # type: ignore[attr-defined]
    if conn.capabilities.dialect == "mysql":
        return await _join_in_one_round_trip(conn, group, campaign, sku, customer_id)
    order = await _entry_order(conn, campaign=campaign, sku=sku, customer_id=customer_id, quantity=1,
                               unit_price_fen=sku.group_price_fen, pay_by=group.deadline)
    try:
        entry = await CampaignEntry.create(**_member_entry(campaign, sku, group, customer_id, order.id),
                                           using_db=conn)
    except IntegrityError:
        raise AlreadyInGroup(group_id=group_id) from None
    await _take_quota(conn, campaign, customer_id, 1)
    await _take_seat_and_stock(conn, group, sku.id)
    return group, order, entry


async def _join_in_one_round_trip(
    conn: BaseDBAsyncClient, group: Group, campaign: Campaign, sku: CampaignSku, customer_id: int
):
    """The join's writes as one batch: order, lines and close job, the entry, the quota, then seat and stock.

    Refusals come in the order the statements would have given them one by one: the entry's unique key
    (already in this group) stops the batch there; then a quota that did not move (limit reached); then a
    seat and stock that did not move (full, or sold out). The statements after a refused quota still ran,
    and the transaction's rollback undoes them with everything else.
    """
    _within_limit(campaign, 1)
    batch = Batch(conn)
    order_id, order = orders.add_order(
        batch, customer_id=customer_id, description=_description(campaign, sku), pay_by=group.deadline,
        lines=[_entry_line(sku, 1, sku.group_price_fen)])
    entry = _ENTRY_ROW.add(batch, **_member_entry(campaign, sku, group, customer_id, order_id))
    quota = batch.add(_TAKE_QUOTA, [campaign.id, customer_id, 1, campaign.per_customer_limit])
    seat_and_stock = batch.add(_TAKE_SEAT_AND_STOCK, [*_seat(group), sku.id])
    try:
        await batch.send()
    except IntegrityError:
        if batch.failed is entry.answer:
            raise AlreadyInGroup(group_id=group.id) from None
        raise
    if not quota.rowcount:  # see `_take_quota`: rows changed, not rows found
        raise LimitReached(limit=campaign.per_customer_limit)
    if seat_and_stock.rowcount != 2:
        await _refuse_seat_or_stock(conn, group, sku.id)
    return group, order.saved(), entry.saved()


async def purchase(conn: BaseDBAsyncClient, customer_id: int, campaign_id: int, sku_id: int, quantity: int):
    """A category group-buy purchase at the current (tier) price; stock held while unpaid."""
    campaign = await campaigns.get_campaign(conn, campaign_id)
    if campaign.kind != CampaignKind.category:
        raise WrongCampaignKind("Open or join a group for this campaign.", kind=campaign.kind.value)
    campaigns.require_running(campaign)
    await _require_new_customer(conn, campaign, customer_id)
    sku = await campaigns.get_sku(conn, campaign_id, sku_id)
    price = campaigns.current_price_fen(sku)
    order = await _entry_order(conn, campaign=campaign, sku=sku, customer_id=customer_id, quantity=quantity,
                               unit_price_fen=price, pay_by=campaign.ends_at)
    entry = await CampaignEntry.create(
        campaign_id=campaign.id, sku_id=sku.id, group_id=None, customer_id=customer_id, order_id=order.id,
        role=EntryRole.buyer, quantity=quantity, unit_price_fen=price, created_at=clock.now(), using_db=conn,
    )
    await _take_quota(conn, campaign, customer_id, quantity)
    await _take_stock(conn, sku.id, quantity)
    return order, entry


# --- fulfilment and settlement ------------------------------------------------------------------------

async def _fulfil(conn: BaseDBAsyncClient, campaign: Campaign, entry: CampaignEntry) -> bool:
    """The entry is fulfilled and its vouchers issued, once (conditional); its order is the orders room's to
    mark. True when this call fulfilled it."""
    won = await CampaignEntry.filter(id=entry.id, status=EntryStatus.paid).using_db(conn).update(
        status=EntryStatus.fulfilled)
    if not won:
        return False
    sku = await CampaignSku.get(id=entry.sku_id).using_db(conn)
    await partners.issue_group_vouchers(
        conn, customer_id=entry.customer_id, order_id=entry.order_id, title=_description(campaign, sku),
        quantity=entry.quantity, valid_until=campaigns.voucher_valid_until(campaign),
        branch_ids=campaign.branch_ids, service_id=sku.service_id,
    )
    return True


async def succeed_group(conn: BaseDBAsyncClient, group_id: int, *, virtual: bool = False) -> LineOutcome | None:
    """Every paid member is fulfilled, unpaid seats are closed; returns the members' orders, delivered (None
    when the group had already reached an end state)."""
    now = clock.now()
    won = await Group.filter(id=group_id, status=GroupStatus.open).using_db(conn).update(
        status=GroupStatus.succeeded, open_slot=None, settled_at=now, virtual=virtual)
    if not won:
        return None
    group = await Group.get(id=group_id).using_db(conn)
    campaign = await campaigns.get_campaign(conn, group.campaign_id)  # type: ignore[attr-defined]
    fulfilled = []
    for entry in await CampaignEntry.filter(group_id=group_id, status=EntryStatus.paid).using_db(conn).select_for_update():
        if await _fulfil(conn, campaign, entry):
            fulfilled.append(entry.order_id)
    if campaign.leader_bonus_points:
        await partners.earn_points(
            conn, customer_id=group.leader_id, points_earned=campaign.leader_bonus_points, kind="campaign",
            ref=f"group:{group_id}:leader_bonus", reason=f"闺蜜卡团长奖励 {campaign.title}"[:255],
        )
    await _close_unpaid_seats(conn, group_id)
    log.info("groupbuy.group_succeeded", group_id=group_id, virtual=virtual)
    return LineOutcome(delivered=tuple(fulfilled))


async def fail_group(conn: BaseDBAsyncClient, group_id: int) -> LineOutcome | None:
    """The group did not fill in time: unpaid seats are closed; returns the paid members' orders, to be refunded
    (the refund request takes each entry out, `entry_refund_requested`). None when already settled."""
    won = await Group.filter(id=group_id, status__in=SETTLEABLE).using_db(conn).update(
        status=GroupStatus.failed, open_slot=None, settled_at=clock.now())
    if not won:
        return None
    paid = await CampaignEntry.filter(group_id=group_id, status=EntryStatus.paid).using_db(conn).select_for_update()
    await _close_unpaid_seats(conn, group_id)
    log.info("groupbuy.group_failed", group_id=group_id)
    return LineOutcome(refunds=tuple(RefundAsk(entry.order_id, "group_failed") for entry in paid))


async def _close_unpaid_seats(conn: BaseDBAsyncClient, group_id: int) -> None:
    # Their windows end no later than the group's deadline; closing asks the gateway first.
    held = await CampaignEntry.filter(group_id=group_id, status=EntryStatus.held).using_db(conn).values_list(
        "order_id", flat=True)
    for order_id in held:
        await enqueue(conn, "orders.close_unpaid", order_id)


async def settle_group(conn: BaseDBAsyncClient, group_id: int, *, force: bool = False) -> str:
    """At the deadline (or the campaign's end): virtual completion or failure, exactly once; the orders room
    then fulfils or refunds the members' orders in the same transaction."""
    group = await Group.get_or_none(id=group_id).using_db(conn)
    if group is None or group.status not in SETTLEABLE:
        return "settled"
    if not force and clock.now() < group.deadline:
        return "not_due"
    campaign = await campaigns.get_campaign(conn, group.campaign_id)  # type: ignore[attr-defined]
    threshold = campaign.virtual_min_paid
    if group.status == GroupStatus.open and threshold is not None and group.paid_count >= threshold:
        result, outcome = "succeeded", await succeed_group(conn, group_id, virtual=True)
    else:
        result, outcome = "failed", await fail_group(conn, group_id)
    if outcome is None:
        return "settled"
    await orders.follow(conn, outcome)
    return result


# --- the line kind's hooks ---------------------------------------------------------------------------

async def _entry_of(conn: BaseDBAsyncClient, order_id: int) -> CampaignEntry | None:
    return await CampaignEntry.get_or_none(order_id=order_id).using_db(conn)


async def release_entry(conn: BaseDBAsyncClient, order: Order, line) -> LineOutcome:
    """The order closed unpaid: the seat and the stock go back, once."""
    entry = await _entry_of(conn, order.id)
    if entry is None:
        return NOTHING
    won = await CampaignEntry.filter(id=entry.id, status=EntryStatus.held).using_db(conn).update(
        status=EntryStatus.released, active_slot=None)
    if not won:
        return NOTHING
    await _give_back(conn, entry, sold=False, seat=True)
    if entry.group_id is not None and entry.role == EntryRole.leader:
        # The leader never paid (the group never opened), or was refunded in full before the paid-order job
        # delivered anything (the group opened at payment): either way the group fails, and a friend who
        # already paid is refunded.
        return await fail_group(conn, entry.group_id) or NOTHING
    return NOTHING


async def entry_payment_applied(conn: BaseDBAsyncClient, order: Order, line) -> None:
    """In the transaction that marks the leader's order paid: the group opens now, so a friend who taps
    "join" a moment after the payment finds it joinable (the paid-order job counts the payment later)."""
    entry = await _entry_of(conn, order.id)
    if entry is not None and entry.group_id is not None and entry.role == EntryRole.leader:
        await Group.filter(id=entry.group_id, status=GroupStatus.pending).using_db(conn).update(
            status=GroupStatus.open)


async def entry_paid(conn: BaseDBAsyncClient, order: Order, line) -> LineOutcome:
    """A category purchase is delivered at once; a bestie seat counts towards its group, and the last one to
    count delivers every member's order."""
    entry = await _entry_of(conn, order.id)
    if entry is None:
        return delivered(order)
    campaign = await campaigns.get_campaign(conn, entry.campaign_id)
    if entry.group_id is None:
        if not await _mark_entry_paid(conn, entry):
            return NOTHING
        await _fulfil(conn, campaign, await CampaignEntry.get(id=entry.id).using_db(conn))
        return delivered(order)
    if entry.status != EntryStatus.held:
        # Released (its order closed unpaid), refunding or counted already: its seat must not count again.
        return NOTHING
    group = await Group.get(id=entry.group_id).using_db(conn)
    # The group row is updated first: a settling worker holds the same row, so the two serialise.
    if entry.role == EntryRole.leader:
        # Normally opened already when the payment was applied; a payment applied before that hook existed
        # is opened here. Then the leader is counted like any member (a friend may have been counted first).
        await Group.filter(id=group.id, status=GroupStatus.pending).using_db(conn).update(status=GroupStatus.open)
    counted = await Group.filter(
        id=group.id, status=GroupStatus.open, paid_count__lte=group.size - 1
    ).using_db(conn).update(paid_count=F("paid_count") + 1)
    if not counted:
        # The group settled before this payment landed: the seat goes back and the money too.
        moved = await CampaignEntry.filter(id=entry.id, status=EntryStatus.held).using_db(conn).update(
            status=EntryStatus.refunding, active_slot=None, paid_at=clock.now())
        if moved:
            await _give_back(conn, entry, sold=False)
        return LineOutcome(refunds=(RefundAsk(order.id, "group_closed"),))
    if not await _mark_entry_paid(conn, entry):
        return NOTHING
    group = await Group.get(id=group.id).using_db(conn)
    if group.status == GroupStatus.open and group.paid_count >= group.size:
        return await succeed_group(conn, group.id) or NOTHING
    return NOTHING


async def _mark_entry_paid(conn: BaseDBAsyncClient, entry: CampaignEntry) -> bool:
    won = await CampaignEntry.filter(id=entry.id, status=EntryStatus.held).using_db(conn).update(
        status=EntryStatus.paid, paid_at=clock.now())
    if won:
        await CampaignSku.filter(id=entry.sku_id).using_db(conn).update(sold_units=F("sold_units") + entry.quantity)
    return bool(won)


async def entry_refund_requested(conn: BaseDBAsyncClient, order: Order, line, refund) -> None:
    """A full refund takes the entry out: vouchers cancelled, quota, seat and stock back. Partial ones change
    nothing."""
    if order.refund_reserved_fen < order.total_fen:
        return
    entry = await _entry_of(conn, order.id)
    if entry is None:
        return
    # Only a paid (counted) entry can win this update, so it always gives back a sold unit; the entry read
    # above may be a snapshot older than its payment (a group settling while the paid job commits).
    won = await CampaignEntry.filter(
        id=entry.id, status__in=(EntryStatus.paid, EntryStatus.fulfilled)
    ).using_db(conn).update(status=EntryStatus.refunding)
    if not won:
        return
    # A settled group keeps its end state; a succeeded member's unredeemed vouchers stop working.
    await partners.cancel_group_vouchers(conn, order_id=order.id, reason=f"refund {refund.out_refund_no}")
    await _give_back(conn, entry, sold=True, seat=True)


async def entry_refund_ended_unpaid(conn: BaseDBAsyncClient, order: Order, line, refund) -> LineOutcome:
    """A refund of the order ended without paying. An entry a full refund took out (`refunding`: seat, stock and
    vouchers given back) or whose hold went back before its payment counted (`released` while its order kept the
    money) cannot take them again: its group may have settled, its stock may be sold. Its money must still go
    back, so it asks (the orders room decides whether, and when, to ask the gateway again)."""
    entry = await _entry_of(conn, order.id)
    if entry is None or entry.status not in (EntryStatus.refunding, EntryStatus.released):
        return NOTHING
    return LineOutcome(refunds=(RefundAsk(order.id, "entry_given_back"),))


async def entry_refunded(conn: BaseDBAsyncClient, order: Order, line, refund) -> None:
    if order.status == OrderStatus.refunded:
        await CampaignEntry.filter(order_id=order.id, status=EntryStatus.refunding).using_db(conn).update(
            status=EntryStatus.refunded)
