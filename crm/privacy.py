"""The CRM room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from crm.models import (
    Acquisition,
    CustomerTag,
    MarketingProfile,
    MessageConsent,
    OutreachRecipient,
    RfmHistory,
    RfmMovement,
    RfmScore,
    SegmentMember,
    SkinAnalysis,
    Tag,
)


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    links = await CustomerTag.filter(customer_id=customer_id).using_db(conn).values_list("tag_id", flat=True)
    tag_names = await Tag.filter(id__in=list(links)).using_db(conn).values_list("name", flat=True)
    profile = await MarketingProfile.get_or_none(customer_id=customer_id, using_db=conn)
    score = await RfmScore.get_or_none(customer_id=customer_id, using_db=conn)
    source = await Acquisition.get_or_none(customer_id=customer_id, using_db=conn)
    return {
        "tags": sorted(tag_names),
        "skin_analyses": [
            {"visit_date": a.visit_date.isoformat(), "tag_ids": a.tag_ids}
            for a in await SkinAnalysis.filter(customer_id=customer_id).using_db(conn).order_by("visit_date")
        ],
        "rfm_class": score.rfm_class.value if score else None,
        "marketing_opt_out": bool(profile and profile.marketing_opt_out),
        "subscribe_consents": {
            c.template_id: c.credits for c in await MessageConsent.filter(customer_id=customer_id).using_db(conn)
        },
        "acquisition_source": source.kind.value if source else None,
        "outreach_received": await OutreachRecipient.filter(customer_id=customer_id, holdout=False).using_db(
            conn).count(),
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """What profiles the person goes: tags, skin results, scores, memberships, consents. Outreach rows stay
    (ids and outcomes only) so an outreach's figures still add up; the opt-out is kept, set, so nothing is
    ever sent to the id again."""
    for model in (CustomerTag, SkinAnalysis, RfmScore, RfmHistory, RfmMovement, SegmentMember, MessageConsent):
        await model.filter(customer_id=customer_id).using_db(conn).delete()
    await MarketingProfile.bulk_create([MarketingProfile(customer_id=customer_id)], ignore_conflicts=True,
                                       using_db=conn)
    await MarketingProfile.filter(customer_id=customer_id).using_db(conn).update(marketing_opt_out=True)
