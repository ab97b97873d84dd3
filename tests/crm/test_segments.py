"""Segments: the compiled SQL equals a brute-force filter over a generated population, for generated rules;
recomputing writes one entered/left event per change and nothing when nothing changed; a rule that names
a deleted tag is refused."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm import segments
from crm.errors import DeletedTagInRule, InvalidSegmentRule, TagInUse
from crm.models import (
    Acquisition,
    CustomerTag,
    RfmClass,
    RfmScore,
    SegmentEvent,
    SegmentEventKind,
    SegmentMember,
    SourceKind,
    TagKind,
)
from crm.tags import AGE_BANDS, age_on, delete_tag
from kernel import clock
from kernel.db import transaction
from booking.models import Booking, BookingStatus
from campaigns.groupbuy.models import CampaignEntry, EntryRole, EntryStatus
from campaigns.referrals.models import BindingStatus, ReferralBinding
from points_mall.models import MemberTier, PointsAccount
from tests.booking.factories import make_branch, make_department, make_slot
from tests.campaigns.referrals.factories import make_program
from tests.crm.factories import make_segment, make_tag, only
from tests.factories import make_customer

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=ZoneInfo("UTC"))
TODAY = NOW.astimezone(ZoneInfo("Asia/Shanghai")).date()


@dataclass
class Person:
    id: int
    tags: set[int] = field(default_factory=set)
    birth: date | None = None
    rfm: RfmClass | None = None
    monetary: int = 0
    last_visit: datetime | None = None
    balance: int | None = None
    tier: int | None = None
    source: SourceKind | None = None
    # (branch id, department id, status, starts_at) of each booking
    bookings: list[tuple[int, int, BookingStatus, datetime]] = field(default_factory=list)
    referrals: list[BindingStatus] = field(default_factory=list)  # the status of each friend they brought
    entries: list[tuple[int, EntryStatus]] = field(default_factory=list)  # (campaign id, status) of group buys


@dataclass
class Population:
    marker: int
    tags: list[int]
    people: list[Person]
    tiers: list[int]
    branches: list[int]
    departments: list[int]
    campaigns: list[int]


@pytest.fixture(scope="module")
async def population() -> Population:
    """40 customers with random tags, birth dates, RFM scores, balances, tiers, sources, bookings, friends brought
    and group-buy entries (fixed seed)."""
    clock.set_now(NOW)
    rng = random.Random(16)
    marker = await make_tag()
    tags = [(await make_tag()).id for _ in range(4)]
    tiers = [(await MemberTier.create(name=f"tier-{secrets.token_hex(4)}", level=10**9 + secrets.randbelow(10**9),
                                      created_at=NOW, updated_at=NOW)).id for _ in range(2)]
    branches = [await make_branch() for _ in range(2)]
    departments = [await make_department() for _ in range(2)]
    # A slot per branch and department ten days ago, and one an hour from now: past and upcoming visits.
    slots = [await make_slot(branch=b, department=d, starts_at=NOW + offset)
             for b in branches for d in departments for offset in (-timedelta(days=10), timedelta(hours=1))]
    program = await make_program(exclusive=False, is_active=False)
    # gb_entry names its campaign by id only; ids no other test uses keep the comparison to this population.
    campaigns = [10**15 + secrets.randbelow(10**12) for _ in range(2)]
    people = []
    for _ in range(40):
        birth = None if rng.random() < 0.2 else TODAY - timedelta(days=rng.randint(15 * 365, 70 * 365))
        customer = await make_customer(birth_date=birth)
        person = Person(customer.id, birth=birth)
        person.tags = {t for t in tags if rng.random() < 0.4}
        for t in [marker.id, *person.tags]:
            await CustomerTag.create(customer_id=customer.id, tag_id=t, source=TagKind.manual, created_at=NOW)
        if rng.random() < 0.7:
            person.rfm = rng.choice(list(RfmClass))
            person.monetary = rng.choice([0, 99_999, 100_000, 300_000, 1_000_000])
            # Around the edges of "within 30 days": the first and last instants of local days 29-31 ago.
            day = TODAY - timedelta(days=rng.choice([0, 29, 30, 31]))
            person.last_visit = datetime.combine(day, rng.choice([time(0), time(23, 59, 59)]),
                                                 tzinfo=ZoneInfo("Asia/Shanghai"))
            await RfmScore.create(customer_id=customer.id, as_of=TODAY, last_consumption_at=person.last_visit,
                                  recency_days=(TODAY - day).days,
                                  frequency=1, monetary_fen=person.monetary, rfm_class=person.rfm)
        if rng.random() < 0.6:
            person.balance = rng.choice([0, 50, 100, 1000])
            person.tier = rng.choice([None, *tiers])
            await PointsAccount.create(customer_id=customer.id, balance=person.balance, tier_id=person.tier,
                                       created_at=NOW, updated_at=NOW)
        for status in rng.choice([[], [], [BindingStatus.qualified], [BindingStatus.bound],
                                  [BindingStatus.qualified, BindingStatus.qualified, BindingStatus.bound]]):
            friend = await make_customer()
            person.referrals.append(status)
            await ReferralBinding.create(program_id=program.id, referee_id=friend.id, referrer_id=customer.id,
                                         code=customer.referral_code, status=status, bound_at=NOW,
                                         expires_at=NOW + timedelta(days=30), qualify_until=NOW + timedelta(days=30))
        for campaign in rng.sample(campaigns, rng.choice([0, 1, 2])):
            status = rng.choice(list(EntryStatus))
            person.entries.append((campaign, status))
            await CampaignEntry.create(campaign_id=campaign, sku_id=1, customer_id=customer.id,
                                       order_id=10**15 + secrets.randbelow(10**12), role=EntryRole.leader,
                                       unit_price_fen=100, status=status, created_at=NOW)
        for slot in rng.sample(slots, rng.choice([0, 0, 1, 2])):
            status = rng.choice(list(BookingStatus))
            person.bookings.append((slot.branch_id, slot.department_id, status, slot.starts_at))
            await Booking.create(customer_id=customer.id, slot_id=slot.id, branch_id=slot.branch_id,
                                 department_id=slot.department_id, starts_at=slot.starts_at, ends_at=slot.ends_at,
                                 local_date=slot.local_date, status=status, created_at=NOW)
        if rng.random() < 0.7:
            person.source = rng.choice(list(SourceKind))
            await Acquisition.create(customer_id=customer.id, kind=person.source, acquired_at=NOW)
        people.append(person)
    clock.set_now(None)
    return Population(marker.id, tags, people, tiers, [b.id for b in branches], [d.id for d in departments],
                      campaigns)


def matches(p: Person, cond: dict) -> bool:
    """The brute-force meaning of one condition (written from the rule's documentation, not the SQL)."""
    field_, op, value = cond["field"], cond["op"], cond["value"]
    if field_ == "tag":
        has = bool(p.tags & set(value))
        return has if op == "in" else not has
    if field_ == "rfm_class":
        return p.rfm is not None and p.rfm.value in value
    if field_ == "spend_fen":
        reached = p.rfm is not None and p.monetary >= value
        return reached if op == "gte" else not reached
    if field_ == "last_visit_days":
        # At most N local days old; a customer never scored has no last visit.
        if p.last_visit is None:
            recent = False
        else:
            recent = (TODAY - p.last_visit.astimezone(ZoneInfo("Asia/Shanghai")).date()).days <= value
        return recent if op == "within" else not recent
    if field_ == "points_balance":
        reached = p.balance is not None and p.balance >= value
        return reached if op == "gte" else not reached
    if field_ == "age_band":
        if p.birth is None:
            return False
        age = age_on(p.birth, TODAY)
        return any(low <= age and (high is None or age <= high) for name, low, high in AGE_BANDS if name in value)
    if field_ == "birthday_month":
        return p.birth is not None and p.birth.month in value
    if field_ == "acquisition":
        return p.source is not None and p.source.value in value
    if field_ == "tier":
        return p.tier is not None and p.tier in value
    if field_ == "branch":
        return any(b in value and status != BookingStatus.cancelled for b, _, status, _ in p.bookings)
    if field_ == "department":
        return any(d in value and status != BookingStatus.cancelled for _, d, status, _ in p.bookings)
    if field_ == "referral_count":
        return p.referrals.count(BindingStatus.qualified) >= value
    if field_ == "campaign":
        return any(c in value and status in (EntryStatus.paid, EntryStatus.fulfilled) for c, status in p.entries)
    if field_ == "upcoming_booking":
        upcoming = any(status == BookingStatus.booked and starts > NOW for _, _, status, starts in p.bookings)
        return upcoming == value
    raise AssertionError(field_)


def conditions(population: Population):
    tag_ids = population.tags
    return st.one_of(
        st.builds(lambda op, v: {"field": "tag", "op": op, "value": v}, st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(tag_ids), min_size=1, max_size=3, unique=True)),
        st.builds(lambda v: {"field": "rfm_class", "op": "in", "value": v},
                  st.lists(st.sampled_from([c.value for c in RfmClass]), min_size=1, max_size=4, unique=True)),
        st.builds(lambda op, v: {"field": "spend_fen", "op": op, "value": v}, st.sampled_from(["gte", "lt"]),
                  st.sampled_from([0, 99_999, 100_000, 100_001, 300_000, 2_000_000])),
        st.builds(lambda op, v: {"field": "last_visit_days", "op": op, "value": v},
                  st.sampled_from(["within", "not_within"]), st.sampled_from([0, 29, 30, 31])),
        st.builds(lambda op, v: {"field": "points_balance", "op": op, "value": v}, st.sampled_from(["gte", "lt"]),
                  st.sampled_from([0, 1, 50, 51, 1000])),
        st.builds(lambda v: {"field": "age_band", "op": "in", "value": v},
                  st.lists(st.sampled_from([b[0] for b in AGE_BANDS]), min_size=1, max_size=3, unique=True)),
        st.builds(lambda v: {"field": "birthday_month", "op": "in", "value": v},
                  st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True)),
        st.builds(lambda v: {"field": "acquisition", "op": "in", "value": v},
                  st.lists(st.sampled_from([s.value for s in SourceKind]), min_size=1, max_size=3, unique=True)),
        *[st.builds(lambda v, f=name: {"field": f, "op": "in", "value": v},
                    st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True))
          for name, ids in (("tier", population.tiers), ("branch", population.branches),
                            ("department", population.departments), ("campaign", population.campaigns))],
        st.builds(lambda v: {"field": "referral_count", "op": "gte", "value": v}, st.sampled_from([0, 1, 2, 3])),
        st.builds(lambda v: {"field": "upcoming_booking", "op": "eq", "value": v}, st.booleans()),
    )


@st.composite
def rules(draw, population):
    groups = draw(st.lists(st.lists(conditions(population), min_size=1, max_size=3), min_size=1, max_size=3))
    return {"groups": groups}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_members_equal_a_brute_force_filter(population: Population, data):
    rule = data.draw(rules(population))
    clock.set_now(NOW)
    scoped = {"groups": [only(population.marker), *rule["groups"]]}
    expected = sorted(p.id for p in population.people if all(any(matches(p, c) for c in g) for g in rule["groups"]))
    async with transaction() as conn:
        canonical = await segments.validate(conn, scoped)
        assert await segments.member_ids(conn, canonical) == expected
        assert await segments.count(conn, canonical) == len(expected)


async def _events(segment_id: int) -> list[tuple[int, SegmentEventKind]]:
    return [(e.customer_id, e.kind) for e in await SegmentEvent.filter(segment_id=segment_id).order_by("id")]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.integers(0, 39), st.booleans()), min_size=1, max_size=8))
async def test_entered_and_left_fire_once_per_change(population: Population, steps):
    """Toggle a tag on customers between recomputes: events are exactly the membership differences."""
    flag = await make_tag()
    segment = await make_segment({"groups": [only(population.marker), only(flag.id)]})
    members: set[int] = set()
    expected: list[tuple[int, SegmentEventKind]] = []
    for index, on in steps:
        person = population.people[index]
        if on:
            await CustomerTag.get_or_create(customer_id=person.id, tag_id=flag.id,
                                            defaults={"source": TagKind.manual, "created_at": clock.now()})
        else:
            await CustomerTag.filter(customer_id=person.id, tag_id=flag.id).delete()
        now_in = {p for p in {person.id} | members if await CustomerTag.exists(customer_id=p, tag_id=flag.id)}
        for p in sorted(now_in - members):
            expected.append((p, SegmentEventKind.entered))
        for p in sorted(members - now_in):
            expected.append((p, SegmentEventKind.left))
        members = now_in
        for _ in range(2):  # the second recompute finds nothing to change
            async with transaction() as conn:
                await segments.recompute(conn, segment.id)
        assert sorted(await _events(segment.id)) == sorted(expected)
        assert set(await SegmentMember.filter(segment_id=segment.id).values_list("customer_id", flat=True)) == members


async def test_a_rule_naming_a_deleted_tag_is_refused_and_a_named_tag_cannot_be_deleted():
    tag = await make_tag()
    gone = await make_tag()
    async with transaction() as conn:
        await delete_tag(conn, gone.id)
    with pytest.raises(DeletedTagInRule) as refused:
        await make_segment({"groups": [[{"field": "tag", "op": "in", "value": [tag.id, gone.id]}]]})
    assert refused.value.detail["tag_ids"] == [gone.id]
    segment = await make_segment({"groups": [only(tag.id)]})
    with pytest.raises(TagInUse):
        async with transaction() as conn:
            await delete_tag(conn, tag.id)
    async with transaction() as conn:
        await segments.delete_segment(conn, segment.id)
        await delete_tag(conn, tag.id)  # no live segment names it any more


@pytest.mark.parametrize("bad, field_path", [
    ({"groups": []}, "rules.groups"),
    ({"groups": [[{"field": "shoe_size", "op": "in", "value": [1]}]]}, "rules.groups[0][0].field"),
    ({"groups": [[{"field": "tag", "op": "gte", "value": [1]}]]}, "rules.groups[0][0].op"),
    ({"groups": [[{"field": "birthday_month", "op": "in", "value": [13]}]]}, "rules.groups[0][0].value"),
    ({"groups": [[{"field": "rfm_class", "op": "in", "value": ["vip"]}]]}, "rules.groups[0][0].value"),
])
def test_invalid_rules_name_the_offending_part(bad, field_path):
    with pytest.raises(InvalidSegmentRule) as refused:
        segments.normalise(bad)
    assert refused.value.detail["field"] == field_path
