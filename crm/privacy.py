"""The CRM room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.privacy import plain

from crm.models import (
    Acquisition,
    BirthdayGift,
    ConsultationFollowUp,
    SegmentEvent,
    StaffReward,
    CustomerTag,
    MarketingProfile,
    MessageConsent,
    OutreachRecipient,
    RfmHistory,
    RfmMovement,
    RfmScore,
    SegmentMember,
    SkinAnalysis,
)


# Every CRM table with a customer column, and the key of the export that lists its rows (one entry each).
TABLES = [
    (CustomerTag, "customer_id", "tags"),
    (SkinAnalysis, "customer_id", "skin_analyses"),
    (RfmScore, "customer_id", "rfm_score"),
    (RfmHistory, "customer_id", "rfm_history"),
    (RfmMovement, "customer_id", "rfm_movements"),
    (SegmentMember, "customer_id", "segments"),
    (SegmentEvent, "customer_id", "segment_events"),
    (MarketingProfile, "customer_id", "marketing"),
    (MessageConsent, "customer_id", "subscribe_consents"),
    (OutreachRecipient, "customer_id", "outreach_received"),
    (BirthdayGift, "customer_id", "birthday_gifts"),
    (ConsultationFollowUp, "customer_id", "consultation_follow_ups"),
    (Acquisition, "customer_id", "acquisition_source"),
    (StaffReward, "customer_id", "staff_rewards_on_my_purchases"),
]

_HIDDEN = {"id", "customer_id"}


def _row(obj: Any) -> dict[str, Any]:
    return {name: plain(getattr(obj, name)) for name in obj._meta.db_fields if name not in _HIDDEN}


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model, column, key in TABLES:
        rows = await model.filter(**{column: customer_id}).using_db(conn).order_by(model._meta.pk_attr)
        out[key] = [_row(r) for r in rows]
    # One row at most: shown as an object (or null), as the export shows single rows elsewhere.
    for key in ("rfm_score", "marketing", "acquisition_source"):
        out[key] = out[key][0] if out[key] else None
    return out


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """What profiles the person goes: tags, skin results, scores, memberships, consents. Outreach rows stay
    (ids and outcomes only) so an outreach's figures still add up; the opt-out is kept, set, so nothing is
    ever sent to the id again."""
    for model in (CustomerTag, SkinAnalysis, RfmScore, RfmHistory, RfmMovement, SegmentMember, MessageConsent):
        await model.filter(customer_id=customer_id).using_db(conn).delete()
    await MarketingProfile.bulk_create([MarketingProfile(customer_id=customer_id)], ignore_conflicts=True,
                                       using_db=conn)
    await MarketingProfile.filter(customer_id=customer_id).using_db(conn).update(marketing_opt_out=True)
