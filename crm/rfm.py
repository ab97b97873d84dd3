"""RFM scoring (nightly): recency, frequency and monetary value of consumption into the eight classes,
the day's history row per customer, and movements between classes.

Scoring walks customers in id chunks: one aggregate query over the chunk's consumptions, the classes in
Python, then bulk writes, all in one transaction per chunk (a crash redoes one chunk; a re-run of the
same day rewrites that day's rows to the same values).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from crm import partners
from crm.models import RfmClass, RfmHistory, RfmMovement, RfmRules, RfmScore
from kernel import clock, sql
from kernel.errors import ValidationFailed

_CLASSES = {
    (True, True, True): RfmClass.important_value,
    (True, False, True): RfmClass.important_development,
    (False, True, True): RfmClass.important_retain,
    (False, False, True): RfmClass.important_winback,
    (True, True, False): RfmClass.general_value,
    (True, False, False): RfmClass.general_development,
    (False, True, False): RfmClass.general_retain,
    (False, False, False): RfmClass.general_winback,
}


def classify(recent: bool, frequent: bool, valuable: bool) -> RfmClass:
    return _CLASSES[(recent, frequent, valuable)]


async def get_rules(conn: BaseDBAsyncClient) -> RfmRules:
    rules = await RfmRules.get_or_none(id=1, using_db=conn)
    if rules is None:
        await RfmRules.bulk_create([RfmRules(id=1, updated_at=clock.now())], ignore_conflicts=True, using_db=conn)
        rules = await RfmRules.get(id=1, using_db=conn)
    return rules


_RULE_BOUNDS = {
    "window_days": (1, 3650),
    "recency_days": (0, 3650),
    "frequency_min": (1, 100_000),
    "monetary_min_fen": (0, 10**13),
}


async def update_rules(conn: BaseDBAsyncClient, changes: dict[str, Any], *, staff_id: int) -> RfmRules:
    rules = await get_rules(conn)
    for name, value in changes.items():
        low, high = _RULE_BOUNDS[name]
        if not low <= value <= high:
            raise ValidationFailed(f"{name} must be between {low} and {high}.", field=name)
        setattr(rules, name, value)
    rules.updated_at = clock.now()
    rules.updated_by_staff_id = staff_id
    await rules.save(using_db=conn)
    return rules


@dataclass(frozen=True)
class Scoring:
    """The fixed inputs of one day's scoring: every chunk of the run uses the same ones."""

    as_of: date
    until: datetime
    window_start: datetime
    recency_days: int
    frequency_min: int
    monetary_min_fen: int

    def score(self, last_at: datetime, frequency: int, monetary_fen: int) -> tuple[int, RfmClass]:
        zone = clock.clinic_zone()
        recency = (self.as_of - last_at.astimezone(zone).date()).days
        return recency, classify(
            recency <= self.recency_days, frequency >= self.frequency_min, monetary_fen >= self.monetary_min_fen
        )


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=clock.clinic_zone())


async def scoring_for(conn: BaseDBAsyncClient, as_of: date | None = None) -> Scoring:
    """Score as of the end of `as_of` (default: the clinic's today, up to now)."""
    rules = await get_rules(conn)
    today = clock.local_today()
    as_of = as_of or today
    until = clock.now() if as_of >= today else _local_midnight(as_of + timedelta(days=1))
    return Scoring(
        as_of=as_of,
        until=until,
        window_start=_local_midnight(as_of - timedelta(days=rules.window_days - 1)),
        recency_days=rules.recency_days,
        frequency_min=rules.frequency_min,
        monetary_min_fen=rules.monetary_min_fen,
    )


async def customer_id_chunk(conn: BaseDBAsyncClient, after_id: int, size: int) -> list[int]:
    rows = await sql.fetch(
        conn, f"SELECT id FROM customer WHERE id > %s AND deleted_at IS NULL ORDER BY id LIMIT {int(size)}", [after_id]
    )
    return [int(r["id"]) for r in rows]


async def score_chunk(conn: BaseDBAsyncClient, scoring: Scoring, first_id: int, last_id: int) -> int:
    """Score customers with ids in [first_id, last_id]; returns how many got a class."""
    aggregates = await partners.consumption_aggregates(
        conn, first_id, last_id, window_start=scoring.window_start, until=scoring.until
    )
    scored: dict[int, tuple[datetime, int, int, int, RfmClass]] = {}
    for row in aggregates:
        last_at = sql.instant(row["last_at"])
        if last_at is None:  # every consumption refunded in full
            continue
        frequency, monetary = int(row["frequency"] or 0), int(row["monetary"] or 0)
        recency, rfm_class = scoring.score(last_at, frequency, monetary)
        scored[int(row["customer_id"])] = (last_at, recency, frequency, monetary, rfm_class)
    existing = {
        s.customer_id: s
        for s in await RfmScore.filter(customer_id__gte=first_id, customer_id__lte=last_id).using_db(conn)
    }
    # The class a movement starts from: yesterday's, also when today's scoring runs again.
    before = {
        cid: (s.previous_class if s.as_of == scoring.as_of else s.rfm_class) for cid, s in existing.items()
    }
    await RfmHistory.filter(
        as_of=scoring.as_of, customer_id__gte=first_id, customer_id__lte=last_id
    ).using_db(conn).delete()
    await RfmMovement.filter(
        as_of=scoring.as_of, customer_id__gte=first_id, customer_id__lte=last_id
    ).using_db(conn).delete()
    scores, history, movements = [], [], []
    for cid, (last_at, recency, frequency, monetary, rfm_class) in scored.items():
        previous = before.get(cid)
        scores.append(RfmScore(
            customer_id=cid, as_of=scoring.as_of, last_consumption_at=last_at, recency_days=recency,
            frequency=frequency, monetary_fen=monetary, rfm_class=rfm_class, previous_class=previous,
        ))
        history.append(RfmHistory(
            customer_id=cid, as_of=scoring.as_of, rfm_class=rfm_class, recency_days=recency,
            frequency=frequency, monetary_fen=monetary,
        ))
        if previous != rfm_class:
            movements.append(RfmMovement(customer_id=cid, as_of=scoring.as_of, from_class=previous, to_class=rfm_class))
    if scores:
        # Replace rather than upsert: Tortoise renders MySQL 8's `AS new ON DUPLICATE KEY`, which MariaDB refuses.
        ids = sorted(scored)
        for i in range(0, len(ids), 1000):
            await RfmScore.filter(customer_id__in=ids[i:i + 1000]).using_db(conn).delete()
        await RfmScore.bulk_create(scores, batch_size=1000, using_db=conn)
        await RfmHistory.bulk_create(history, batch_size=1000, using_db=conn)
    if movements:
        await RfmMovement.bulk_create(movements, batch_size=1000, using_db=conn)
    return len(scores)


async def customer_history(conn: BaseDBAsyncClient, customer_id: int, limit: int = 90) -> list[RfmHistory]:
    return await RfmHistory.filter(customer_id=customer_id).using_db(conn).order_by("-as_of").limit(limit)
