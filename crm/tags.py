"""Tags (标签): the staff-edited catalogue, manual tags, nightly rule tags and skin tags from skin analyses.

Rule tags (age band, spend band, interests from booked departments and from pre-triage forms) are recomputed
for every customer each night and never edited by hand; skin tags are the latest skin analysis's; manual tags
are staff's alone.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from crm import partners
from crm.errors import SkinImportRejected, TagCodeTaken, TagInUse, TagNotFound, TagNotManual
from crm.models import CustomerTag, RfmScore, SkinAnalysis, Tag, TagKind
from kernel import clock
from kernel.errors import ValidationFailed
from kernel.identity.models import Customer
from kernel.identity.service import get_customer

_CODE = re.compile(r"^[a-z0-9][a-z0-9_:\-.]{0,63}$")

# Rule-tag bands. Ages are whole years at the clinic's today; spend is the RFM window's net spend.
AGE_BANDS: list[tuple[str, int, int | None]] = [
    ("<18", 0, 17), ("18-24", 18, 24), ("25-34", 25, 34), ("35-44", 35, 44), ("45-54", 45, 54), ("55+", 55, None),
]
SPEND_BANDS: list[tuple[str, int, int | None]] = [
    ("0-1k", 0, 99_999), ("1k-5k", 100_000, 499_999), ("5k-20k", 500_000, 1_999_999), ("20k+", 2_000_000, None),
]


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def band_of(value: int, bands: list[tuple[str, int, int | None]]) -> str | None:
    for name, low, high in bands:
        if value >= low and (high is None or value <= high):
            return name
    return None


# --- catalogue -----------------------------------------------------------------------------------

async def create_tag(conn: BaseDBAsyncClient, *, code: str, name: str, category: str, kind: TagKind,
                     description: str = "") -> Tag:
    if not _CODE.match(code):
        raise ValidationFailed("A tag code is lower-case letters, digits and _ : - . (at most 64).", field="code")
    if kind == TagKind.rule:
        raise ValidationFailed("Rule tags are created by the nightly rules, not by staff.", field="kind")
    try:
        return await Tag.create(code=code, name=name, category=category, kind=kind, description=description,
                                created_at=clock.now(), using_db=conn)
    except IntegrityError as exc:
        raise TagCodeTaken(field="code") from exc


async def get_tag(conn: BaseDBAsyncClient, tag_id: int, *, live: bool = True) -> Tag:
    tag = await Tag.get_or_none(id=tag_id, using_db=conn)
    if tag is None or (live and tag.deleted_at is not None):
        raise TagNotFound()
    return tag


async def update_tag(conn: BaseDBAsyncClient, tag_id: int, changes: dict[str, Any]) -> Tag:
    tag = await get_tag(conn, tag_id)
    for name, value in changes.items():
        setattr(tag, name, value)
    if changes:
        await tag.save(using_db=conn, update_fields=list(changes))
    return tag


async def delete_tag(conn: BaseDBAsyncClient, tag_id: int) -> Tag:
    """Soft delete (its customers lose it); refused while a live segment's rule names it."""
    from crm.segments import segments_naming_tag

    tag = await get_tag(conn, tag_id)
    using = await segments_naming_tag(conn, tag_id)
    if using:
        raise TagInUse(segment_ids=using)
    tag.deleted_at = clock.now()
    await tag.save(using_db=conn, update_fields=["deleted_at"])
    await CustomerTag.filter(tag_id=tag_id).using_db(conn).delete()
    return tag


async def live_tag_ids(conn: BaseDBAsyncClient, ids: list[int]) -> set[int]:
    return set(await Tag.filter(id__in=ids, deleted_at=None).using_db(conn).values_list("id", flat=True))


# --- manual tags ---------------------------------------------------------------------------------

async def put_manual_tag(conn: BaseDBAsyncClient, customer_id: int, tag_id: int, *, staff_id: int) -> bool:
    """True when the tag was put on now (False: the customer already had it)."""
    await get_customer(conn, customer_id)
    tag = await get_tag(conn, tag_id)
    if tag.kind != TagKind.manual:
        raise TagNotManual(field="tag_id")
    if await CustomerTag.filter(customer_id=customer_id, tag_id=tag_id).using_db(conn).exists():
        return False
    await CustomerTag.bulk_create(
        [CustomerTag(customer_id=customer_id, tag_id=tag_id, source=TagKind.manual, added_by_staff_id=staff_id,
                     created_at=clock.now())],
        ignore_conflicts=True, using_db=conn,
    )
    return True


async def take_off_manual_tag(conn: BaseDBAsyncClient, customer_id: int, tag_id: int) -> bool:
    tag = await get_tag(conn, tag_id, live=False)
    if tag.kind != TagKind.manual:
        raise TagNotManual(field="tag_id")
    return bool(await CustomerTag.filter(customer_id=customer_id, tag_id=tag_id).using_db(conn).delete())


async def tags_of(conn: BaseDBAsyncClient, customer_id: int) -> list[tuple[Tag, CustomerTag]]:
    links = await CustomerTag.filter(customer_id=customer_id).using_db(conn).order_by("id")
    tags = {t.id: t for t in await Tag.filter(id__in=[l.tag_id for l in links], deleted_at=None).using_db(conn)}
    return [(tags[l.tag_id], l) for l in links if l.tag_id in tags]


# --- rule tags (nightly) -------------------------------------------------------------------------

async def _rule_tag_ids(conn: BaseDBAsyncClient, wanted: set[tuple[str, str, str]]) -> dict[str, int]:
    """code → id for rule tags, creating catalogue entries the first time a band or interest is seen."""
    codes = [code for code, _, _ in wanted]
    found = dict(await Tag.filter(code__in=codes).using_db(conn).values_list("code", "id"))
    missing = [Tag(code=code, name=name, category=category, kind=TagKind.rule, created_at=clock.now())
               for code, name, category in wanted if code not in found]
    if missing:
        await Tag.bulk_create(missing, ignore_conflicts=True, using_db=conn)
        found = dict(await Tag.filter(code__in=codes).using_db(conn).values_list("code", "id"))
    return found


async def apply_rule_tags_chunk(conn: BaseDBAsyncClient, first_id: int, last_id: int, today: date) -> int:
    """Recompute the rule tags of customers with ids in [first_id, last_id]; returns tags changed."""
    desired: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
    people = await Customer.filter(id__gte=first_id, id__lte=last_id, deleted_at=None).using_db(conn).values_list(
        "id", "birth_date")
    for cid, birth in people:
        if birth is not None:
            band = band_of(age_on(birth, today), AGE_BANDS)
            if band:
                desired[cid].add((f"age:{band}", f"年龄 {band}", "age"))
    for cid, monetary in await RfmScore.filter(
        customer_id__gte=first_id, customer_id__lte=last_id
    ).using_db(conn).values_list("customer_id", "monetary_fen"):
        band = band_of(max(0, monetary), SPEND_BANDS)
        if band:
            desired[cid].add((f"spend:{band}", f"消费 {band}", "spend"))
    interests = [*await partners.booked_departments(conn, first_id, last_id),
                 *await partners.triage_departments(conn, first_id, last_id)]
    for row in interests:
        code = str(row["code"]).lower()
        desired[int(row["customer_id"])].add((f"interest:{code}", f"兴趣 {code}", "interest"))
    live = {cid for cid, _ in people}
    ids = await _rule_tag_ids(conn, set().union(*desired.values()) if desired else set())
    want = {(cid, ids[code]) for cid, tags in desired.items() if cid in live for code, _, _ in tags if code in ids}
    have = set(await CustomerTag.filter(
        customer_id__gte=first_id, customer_id__lte=last_id, source=TagKind.rule
    ).using_db(conn).values_list("customer_id", "tag_id"))
    stale = have - want
    for tag_id in {t for _, t in stale}:
        await CustomerTag.filter(
            source=TagKind.rule, tag_id=tag_id, customer_id__in=[c for c, t in stale if t == tag_id]
        ).using_db(conn).delete()
    new = want - have
    if new:
        now = clock.now()
        await CustomerTag.bulk_create(
            [CustomerTag(customer_id=c, tag_id=t, source=TagKind.rule, created_at=now) for c, t in new],
            ignore_conflicts=True, batch_size=1000, using_db=conn,
        )
    return len(stale) + len(new)


# --- skin analyses ---------------------------------------------------------------------------------

async def _skin_tags_by_code(conn: BaseDBAsyncClient) -> dict[str, int]:
    return dict(await Tag.filter(kind=TagKind.skin, deleted_at=None).using_db(conn).values_list("code", "id"))


async def _refresh_skin_tags(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """The customer's skin tags become those of their latest analysis."""
    latest = await SkinAnalysis.filter(customer_id=customer_id).using_db(conn).order_by("-visit_date").first()
    await CustomerTag.filter(customer_id=customer_id, source=TagKind.skin).using_db(conn).delete()
    if latest and latest.tag_ids:
        now = clock.now()
        await CustomerTag.bulk_create(
            [CustomerTag(customer_id=customer_id, tag_id=t, source=TagKind.skin, created_at=now)
             for t in latest.tag_ids],
            ignore_conflicts=True, using_db=conn,
        )


async def record_skin_analysis(conn: BaseDBAsyncClient, customer_id: int, *, visit_date: date, tag_codes: list[str],
                               staff_id: int, source: str = "staff") -> SkinAnalysis:
    await get_customer(conn, customer_id)
    known = await _skin_tags_by_code(conn)
    unknown = [c for c in tag_codes if c not in known]
    if unknown:
        raise ValidationFailed("Unknown skin tag codes.", field="tags", unknown=unknown)
    if visit_date > clock.local_today():
        raise ValidationFailed("The visit date is in the future.", field="visit_date")
    analysis = await _upsert_analysis(conn, customer_id, visit_date, sorted({known[c] for c in tag_codes}),
                                      staff_id, source)
    await _refresh_skin_tags(conn, customer_id)
    return analysis


async def _upsert_analysis(conn, customer_id: int, visit_date: date, tag_ids: list[int], staff_id: int,
                           source: str) -> SkinAnalysis:
    existing = await SkinAnalysis.filter(customer_id=customer_id, visit_date=visit_date).using_db(conn).first()
    if existing:
        existing.tag_ids = tag_ids
        existing.source = source
        existing.recorded_by_staff_id = staff_id
        await existing.save(using_db=conn, update_fields=["tag_ids", "source", "recorded_by_staff_id"])
        return existing
    return await SkinAnalysis.create(customer_id=customer_id, visit_date=visit_date, tag_ids=tag_ids, source=source,
                                     recorded_by_staff_id=staff_id, created_at=clock.now(), using_db=conn)


@dataclass(frozen=True)
class SkinRow:
    line: int
    customer_id: int
    visit_date: date
    tag_ids: list[int]


MAX_IMPORT_ROWS = 20_000


def _is_id(ref: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²" and "①", which int() refuses.
    return ref.isascii() and ref.isdigit() and len(ref) < 19


async def import_skin_csv(conn: BaseDBAsyncClient, text: str, *, staff_id: int) -> int:
    """Import the analyser's CSV (`customer,visit_date,tags`): every row is checked before any is applied.

    `customer` is the customer's referral code or id, `visit_date` YYYY-MM-DD, `tags` skin tag codes
    separated by `;`. Any bad row refuses the whole file, listing each bad line (the header is line 1).
    The caller's transaction makes the apply all-or-nothing too. Returns the number of rows imported.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
        raw = list(reader)
    except StopIteration:
        raise SkinImportRejected("The file is empty.", field="file", errors=[])
    except csv.Error as exc:  # a field past the csv module's size limit, a NUL byte: not a CSV we can read
        raise SkinImportRejected(f"The file is not readable CSV ({exc}).", field="file", errors=[])
    if header[:3] != ["customer", "visit_date", "tags"]:
        raise SkinImportRejected(field="file", errors=[
            {"line": 1, "field": "header", "message": "the header must be customer,visit_date,tags"}])
    known = await _skin_tags_by_code(conn)
    if len(raw) > MAX_IMPORT_ROWS:
        raise SkinImportRejected(f"At most {MAX_IMPORT_ROWS} rows per file.", field="file", errors=[])
    refs = {r[0].strip() for r in raw if r}
    by_code = dict(await Customer.filter(referral_code__in=[r for r in refs if not _is_id(r)], deleted_at=None)
                   .using_db(conn).values_list("referral_code", "id"))
    numeric = [int(r) for r in refs if _is_id(r)]
    by_id = set(await Customer.filter(id__in=numeric, deleted_at=None).using_db(conn).values_list("id", flat=True))
    errors: list[dict[str, Any]] = []
    rows: list[SkinRow] = []
    seen: dict[tuple[int, date], int] = {}
    today = clock.local_today()
    for index, record in enumerate(raw, start=2):
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) < 3:
            errors.append({"line": index, "field": "row", "message": "expected 3 columns"})
            continue
        ref, day_text, tag_text = (cell.strip() for cell in record[:3])
        customer_id = by_code.get(ref) or (int(ref) if _is_id(ref) and int(ref) in by_id else None)
        if customer_id is None:
            errors.append({"line": index, "field": "customer", "message": f"unknown customer {ref!r}"})
            continue
        try:
            visit = date.fromisoformat(day_text)
        except ValueError:
            errors.append({"line": index, "field": "visit_date", "message": f"not a date: {day_text!r}"})
            continue
        if visit > today:
            errors.append({"line": index, "field": "visit_date", "message": "in the future"})
            continue
        codes = [c.strip() for c in re.split(r"[;|]", tag_text) if c.strip()]
        unknown = [c for c in codes if c not in known]
        if unknown:
            errors.append({"line": index, "field": "tags", "message": f"unknown skin tags {unknown}"})
            continue
        if (customer_id, visit) in seen:
            errors.append({"line": index, "field": "row",
                           "message": f"same customer and visit as line {seen[(customer_id, visit)]}"})
            continue
        seen[(customer_id, visit)] = index
        rows.append(SkinRow(index, customer_id, visit, sorted({known[c] for c in codes})))
    if errors:
        raise SkinImportRejected(field="file", errors=errors[:200], error_count=len(errors))
    for row in rows:
        await _upsert_analysis(conn, row.customer_id, row.visit_date, row.tag_ids, staff_id, "import")
    for customer_id in sorted({r.customer_id for r in rows}):
        await _refresh_skin_tags(conn, customer_id)
    return len(rows)

