"""Segments (人群): saved rules over customers, compiled to one SQL query; live counts and membership with
entered/left events.

A rule is `{"groups": [[condition, ...], ...]}`: the groups are combined with AND, the conditions inside a
group with OR. A condition is `{"field", "op", "value"}` (see FIELDS). Membership is recomputed nightly and
on demand; a recompute locks the segment row, diffs the new member set against the stored one and writes
one `entered` or `left` event per change, so running it twice changes nothing the second time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from crm import partners
from crm.errors import DeletedTagInRule, InvalidSegmentRule, SegmentNotFound
from crm.models import RfmClass, Segment, SegmentEvent, SegmentEventKind, SegmentMember, SourceKind
from crm.tags import AGE_BANDS, live_tag_ids
from kernel import clock, sql

# field → (allowed ops, value kind)
FIELDS: dict[str, tuple[set[str], str]] = {
    "tier": ({"in"}, "ids"),
    "tag": ({"in", "not_in"}, "ids"),
    "rfm_class": ({"in"}, "rfm"),
    "age_band": ({"in"}, "age"),
    "birthday_month": ({"in"}, "months"),
    "last_visit_days": ({"within", "not_within"}, "days"),
    "spend_fen": ({"gte", "lt"}, "amount"),
    "points_balance": ({"gte", "lt"}, "amount"),
    "referral_count": ({"gte"}, "amount"),
    "branch": ({"in"}, "ids"),
    "department": ({"in"}, "ids"),
    "campaign": ({"in"}, "ids"),
    "upcoming_booking": ({"eq"}, "bool"),
    "acquisition": ({"in"}, "source"),
}
MAX_GROUPS = 10
MAX_CONDITIONS = 10
MAX_LIST = 500


def _bad(path: str, message: str) -> InvalidSegmentRule:
    return InvalidSegmentRule(message, field=path)


def _check_value(path: str, kind: str, value: Any) -> Any:
    def int_list(low: int, high: int) -> list[int]:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise _bad(path, f"expected a non-empty list of at most {MAX_LIST} numbers")
        if not all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value):
            raise _bad(path, f"every number must be between {low} and {high}")
        return sorted(set(value))

    def str_list(allowed: set[str]) -> list[str]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v in allowed for v in value):
            raise _bad(path, f"expected a non-empty list of {sorted(allowed)}")
        return sorted(set(value))

    if kind == "ids":
        return int_list(1, 2**63 - 1)
    if kind == "months":
        return int_list(1, 12)
    if kind == "rfm":
        return str_list({c.value for c in RfmClass})
    if kind == "age":
        return str_list({name for name, _, _ in AGE_BANDS})
    if kind == "source":
        return str_list({s.value for s in SourceKind})
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(path, "expected true or false")
        return value
    if kind in {"days", "amount"}:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**13:
            raise _bad(path, "expected a whole number from 0")
        return value
    raise AssertionError(kind)


def normalise(rules: Any) -> dict[str, Any]:
    """Check a rule's shape and values; returns the canonical rule. Errors name `rules.groups[i][j].part`."""
    if not isinstance(rules, dict) or set(rules) != {"groups"} or not isinstance(rules["groups"], list):
        raise _bad("rules", 'a rule is {"groups": [[condition, ...], ...]}')
    groups = rules["groups"]
    if not groups or len(groups) > MAX_GROUPS:
        raise _bad("rules.groups", f"between 1 and {MAX_GROUPS} groups")
    out: list[list[dict[str, Any]]] = []
    for i, group in enumerate(groups):
        if not isinstance(group, list) or not group or len(group) > MAX_CONDITIONS:
            raise _bad(f"rules.groups[{i}]", f"a group is a list of 1 to {MAX_CONDITIONS} conditions")
        conditions = []
        for j, cond in enumerate(group):
            path = f"rules.groups[{i}][{j}]"
            if not isinstance(cond, dict) or set(cond) != {"field", "op", "value"}:
                raise _bad(path, "a condition is {field, op, value}")
            field = cond["field"]
            if field not in FIELDS:
                raise _bad(f"{path}.field", f"unknown field; one of {sorted(FIELDS)}")
            ops, kind = FIELDS[field]
            if cond["op"] not in ops:
                raise _bad(f"{path}.op", f"{field} takes {sorted(ops)}")
            conditions.append({"field": field, "op": cond["op"], "value": _check_value(f"{path}.value", kind, cond["value"])})
        out.append(conditions)
    return {"groups": out}


def tag_ids_in(rules: dict[str, Any]) -> set[int]:
    return {t for group in rules.get("groups", []) for c in group if c.get("field") == "tag" for t in c["value"]}


async def validate(conn: BaseDBAsyncClient, rules: Any) -> dict[str, Any]:
    """normalise() plus the database checks: a rule naming a deleted (or unknown) tag is refused."""
    canonical = normalise(rules)
    named = tag_ids_in(canonical)
    missing = sorted(named - await live_tag_ids(conn, sorted(named)))
    if missing:
        raise DeletedTagInRule(field="rules", tag_ids=missing)
    return canonical


def _age_range(band: str, today: date) -> tuple[date | None, date]:
    """Birth dates of people whose age today is within the band: (earliest or None, latest)."""
    _, low, high = next(b for b in AGE_BANDS if b[0] == band)

    def years_before(years: int) -> date:
        try:
            return today.replace(year=today.year - years)
        except ValueError:  # 29 February
            return today.replace(year=today.year - years, day=28)

    latest = years_before(low)
    earliest = None if high is None else years_before(high + 1) + timedelta(days=1)
    return earliest, latest


def _condition(conn: BaseDBAsyncClient, cond: dict[str, Any]) -> tuple[str, list[Any]]:
    field, op, value = cond["field"], cond["op"], cond["value"]
    now = clock.now()
    if field == "tag":
        clause = f"c.id IN (SELECT customer_id FROM crm_customer_tag WHERE tag_id IN {sql.in_list(value)})"
        return (clause if op == "in" else f"NOT {clause}"), list(value)
    # The nightly scores are read as columns of the one joined row `s` (see FROM_CUSTOMERS); a customer
    # never scored has no row, so every test on `s` is false for them and every negation true.
    if field == "rfm_class":
        return f"s.rfm_class IN {sql.in_list(value)}", list(value)
    if field == "spend_fen":
        return ("s.monetary_fen >= %s" if op == "gte" else "(s.customer_id IS NULL OR s.monetary_fen < %s)"), [value]
    if field == "age_band":
        parts, args = [], []
        for band in value:
            earliest, latest = _age_range(band, clock.local_today())
            if earliest is None:
                parts.append("c.birth_date <= %s")
                args.append(latest)
            else:
                parts.append("c.birth_date BETWEEN %s AND %s")
                args.extend([earliest, latest])
        return "(" + " OR ".join(parts) + ")", args
    if field == "birthday_month":
        return f"{sql.month_of(conn, 'c.birth_date')} IN {sql.in_list(value)}", list(value)
    if field == "last_visit_days":
        # As of the nightly scoring, like spend and the RFM class: a column of the joined score row instead
        # of a scan of every consumption (a live scan took seconds at 1M consumptions, docs/benchmarks.md).
        since = datetime.combine(clock.local_today() - timedelta(days=value), time(0), tzinfo=clock.clinic_zone())
        if op == "within":
            return "s.last_consumption_at >= %s", [since]
        return "(s.customer_id IS NULL OR s.last_consumption_at < %s)", [since]
    if field == "acquisition":
        return f"c.id IN (SELECT customer_id FROM crm_acquisition WHERE kind IN {sql.in_list(value)})", list(value)
    if field == "tier":
        return partners.tier_in(value)
    if field == "points_balance":
        return partners.points_balance(op, value)
    if field == "referral_count":
        return partners.qualified_referrals_at_least(value)
    if field == "branch":
        return partners.booked_at_branch(value)
    if field == "department":
        return partners.booked_department(value)
    if field == "campaign":
        return partners.joined_campaign(value)
    if field == "upcoming_booking":
        clause, args = partners.upcoming_booking(now)
        return (clause if value else f"NOT {clause}"), args
    raise AssertionError(field)


# What a compiled rule reads: the customer `c` and their nightly score row `s` (at most one, primary key
# lookup). Conditions on the scores are plain column tests on `s` rather than `IN (SELECT ...)` subqueries,
# which MariaDB materialised in full (50,000-row hash for a spend range) on every preview.
FROM_CUSTOMERS = "customer c LEFT JOIN crm_rfm_score s ON s.customer_id = c.id"


def compile_where(conn: BaseDBAsyncClient, rules: dict[str, Any]) -> tuple[str, list[Any]]:
    """The WHERE clause (on `FROM_CUSTOMERS`: alias `c` = customer, `s` = score) of a normalised rule."""
    clauses, args = ["c.deleted_at IS NULL"], []
    for group in rules["groups"]:
        parts = []
        for cond in group:
            clause, cond_args = _condition(conn, cond)
            parts.append(clause)
            args.extend(cond_args)
        clauses.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(clauses), args


async def count(conn: BaseDBAsyncClient, rules: dict[str, Any]) -> int:
    where, args = compile_where(conn, rules)
    rows = await sql.fetch(conn, f"SELECT COUNT(*) AS n FROM {FROM_CUSTOMERS} WHERE {where}", args)
    return int(rows[0]["n"])


async def member_ids(conn: BaseDBAsyncClient, rules: dict[str, Any]) -> list[int]:
    where, args = compile_where(conn, rules)
    rows = await sql.fetch(conn, f"SELECT c.id FROM {FROM_CUSTOMERS} WHERE {where} ORDER BY c.id", args)
    return [int(r["id"]) for r in rows]


# --- saved segments --------------------------------------------------------------------------------

async def create_segment(conn: BaseDBAsyncClient, *, name: str, description: str, rules: Any,
                         staff_id: int | None) -> Segment:
    canonical = await validate(conn, rules)
    now = clock.now()
    return await Segment.create(name=name, description=description, rules=canonical, created_by_staff_id=staff_id,
                                created_at=now, updated_at=now, using_db=conn)


async def get_segment(conn: BaseDBAsyncClient, segment_id: int, *, for_update: bool = False) -> Segment:
    query = Segment.filter(id=segment_id, deleted_at=None).using_db(conn)
    if for_update:
        query = query.select_for_update()
    segment = await query.first()
    if segment is None:
        raise SegmentNotFound()
    return segment


async def update_segment(conn: BaseDBAsyncClient, segment_id: int, changes: dict[str, Any]) -> Segment:
    segment = await get_segment(conn, segment_id, for_update=True)
    if "rules" in changes:
        changes["rules"] = await validate(conn, changes["rules"])
    for name, value in changes.items():
        setattr(segment, name, value)
    segment.updated_at = clock.now()
    await segment.save(using_db=conn, update_fields=[*changes, "updated_at"])
    return segment


async def delete_segment(conn: BaseDBAsyncClient, segment_id: int) -> None:
    segment = await get_segment(conn, segment_id, for_update=True)
    segment.deleted_at = clock.now()
    await segment.save(using_db=conn, update_fields=["deleted_at"])


async def segments_naming_tag(conn: BaseDBAsyncClient, tag_id: int) -> list[int]:
    live = await Segment.filter(deleted_at=None).using_db(conn).values_list("id", "rules")
    return [sid for sid, rules in live if tag_id in tag_ids_in(rules or {})]


async def recompute(conn: BaseDBAsyncClient, segment_id: int) -> tuple[int, int]:
    """Bring the stored membership up to date; returns (entered, left). One event per change."""
    segment = await get_segment(conn, segment_id, for_update=True)
    new = set(await member_ids(conn, segment.rules))
    old = set(await SegmentMember.filter(segment_id=segment_id).using_db(conn).values_list("customer_id", flat=True))
    entered, left = sorted(new - old), sorted(old - new)
    now = clock.now()
    if entered:
        await SegmentMember.bulk_create(
            [SegmentMember(segment_id=segment_id, customer_id=c, entered_at=now) for c in entered],
            batch_size=2000, using_db=conn,
        )
    for i in range(0, len(left), 2000):
        await SegmentMember.filter(segment_id=segment_id, customer_id__in=left[i:i + 2000]).using_db(conn).delete()
    events = [SegmentEvent(segment_id=segment_id, customer_id=c, kind=SegmentEventKind.entered, occurred_at=now)
              for c in entered]
    events += [SegmentEvent(segment_id=segment_id, customer_id=c, kind=SegmentEventKind.left, occurred_at=now)
               for c in left]
    if events:
        await SegmentEvent.bulk_create(events, batch_size=2000, using_db=conn)
    segment.member_count = len(new)
    segment.recomputed_at = now
    await segment.save(using_db=conn, update_fields=["member_count", "recomputed_at"])
    return len(entered), len(left)


async def live_segment_ids(conn: BaseDBAsyncClient) -> list[int]:
    return list(await Segment.filter(deleted_at=None).using_db(conn).order_by("id").values_list("id", flat=True))
