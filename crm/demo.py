"""Demo data of the CRM: a realistic tag catalogue (concerns, interests, sources, skin-analyser tags), the RFM
rules, two segments, a staff code and a partner channel, and Alice's skin analysis. Idempotent."""

from __future__ import annotations

from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from crm import rfm, segments, tags
from crm.models import AcquisitionChannel, ChannelKind, Tag, TagKind
from kernel import clock
from kernel.demo import sandbox_openid
from kernel.identity.models import Customer

# (code, name, category, kind). The skin tags follow what a skin analyser (VISIA-style) reports:
# a finding per zone and severity; real clinics keep 200+ of them, a sample is enough to try things.
_CATALOGUE: list[tuple[str, str, str, TagKind]] = [
    ("concern:acne", "痘痘 Acne", "concern", TagKind.manual),
    ("concern:pigmentation", "色斑 Pigmentation", "concern", TagKind.manual),
    ("concern:wrinkles", "皱纹 Wrinkles", "concern", TagKind.manual),
    ("concern:laxity", "松弛 Laxity", "concern", TagKind.manual),
    ("interest:whitening", "美白 Whitening", "interest", TagKind.manual),
    ("interest:anti_ageing", "抗衰 Anti-ageing", "interest", TagKind.manual),
    ("interest:body", "形体 Body contouring", "interest", TagKind.manual),
    ("vip:high_value", "高净值 High value", "vip", TagKind.manual),
    ("source:xiaohongshu", "小红书来源", "source", TagKind.manual),
    ("source:walk_in", "自然到店", "source", TagKind.manual),
]
_SKIN_FINDINGS = [
    ("spots", "斑点"), ("pores", "毛孔"), ("wrinkles", "皱纹"), ("texture", "纹理"), ("redness", "红区"),
    ("uv_spots", "紫外线色斑"), ("brown_spots", "棕色斑"), ("porphyrins", "卟啉"),
]
_ZONES = [("forehead", "额头"), ("cheek", "脸颊"), ("nose", "鼻部"), ("eye", "眼周")]
_SEVERITY = [("mild", "轻度"), ("moderate", "中度"), ("severe", "重度")]

SKIN_TAGS = [
    (f"skin:{f}:{z}:{s}", f"{zn}{fn}({sn})", "skin", TagKind.skin)
    for f, fn in _SKIN_FINDINGS for z, zn in _ZONES for s, sn in _SEVERITY
]


async def load(conn: BaseDBAsyncClient) -> None:
    if await Tag.filter(code="concern:acne").using_db(conn).exists():
        return
    now = clock.now()
    await Tag.bulk_create(
        [Tag(code=c, name=n, category=cat, kind=k, created_at=now) for c, n, cat, k in [*_CATALOGUE, *SKIN_TAGS]],
        ignore_conflicts=True, using_db=conn,
    )
    await rfm.get_rules(conn)
    anti_ageing = await Tag.get(code="interest:anti_ageing", using_db=conn)
    await segments.create_segment(
        conn, name="重要挽留 win-back", description="Valuable customers who stopped coming",
        rules={"groups": [[{"field": "rfm_class", "op": "in", "value": ["important_winback", "important_retain"]}]]},
        staff_id=None,
    )
    await segments.create_segment(
        conn, name="抗衰 35+ without an upcoming visit", description="",
        rules={"groups": [
            [{"field": "tag", "op": "in", "value": [anti_ageing.id]}],
            [{"field": "age_band", "op": "in", "value": ["35-44", "45-54", "55+"]}],
            [{"field": "upcoming_booking", "op": "eq", "value": False}],
        ]},
        staff_id=None,
    )
    await AcquisitionChannel.bulk_create([
        AcquisitionChannel(kind=ChannelKind.partner, code="P-GYM01", name="异业联盟: 瑜伽馆 Yoga studio", created_at=now),
        AcquisitionChannel(kind=ChannelKind.ad, code="AD-2026W", name="朋友圈广告 Winter ad", created_at=now),
    ], ignore_conflicts=True, using_db=conn)
    alice = await Customer.get_or_none(openid=sandbox_openid("alice"), using_db=conn)
    if alice is not None:
        await tags.put_manual_tag(conn, alice.id, anti_ageing.id, staff_id=None)  # type: ignore[arg-type]
        await tags.record_skin_analysis(
            conn, alice.id, visit_date=clock.local_today() - timedelta(days=3),
            tag_codes=["skin:spots:cheek:moderate", "skin:pores:nose:mild", "skin:wrinkles:eye:mild"],
            staff_id=None, source="staff",  # type: ignore[arg-type]
        )
