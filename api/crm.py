"""CRM routes: customer search and card (360), tags and skin analyses, RFM, segments, outreach, acquisition
channels (/admin), and the customer's marketing consent and opt-out (/app).

Thin: parse, call crm's services and views inside one transaction, shape the response. No ORM call here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

from litestar import Controller, Request
from litestar.di import Provide
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from tortoise.backends.base.client import BaseDBAsyncClient

from api.deps import Db, Limit, Offset
from api.handlers import delete, get, patch, post, put
from api.security import customer_guard, provide_customer_id, provide_staff, staff_only
from crm import service, views
from crm.models import CouponOccasion, RfmClass, StaffRewardStatus, TagKind
from crm.schemas import (
    Acquired,
    ChannelCreate,
    ChannelOut,
    ChannelPage,
    ChannelUpdate,
    CountPreview,
    CustomerCardOut,
    CustomerPage,
    CustomerRow,
    CustomerTagOut,
    CustomerTagPut,
    GroupResultOut,
    ImportResult,
    MarketingPreference,
    MarketingStateOut,
    MemberPage,
    MovementOut,
    MovementPage,
    CouponRuleOut,
    CouponRuleUpdate,
    OutreachCreate,
    OutreachOut,
    OutreachPage,
    OutreachResultsOut,
    OutreachSchedule,
    RecomputeResult,
    RfmDistribution,
    RfmOut,
    RfmRulesOut,
    RfmRulesUpdate,
    SegmentCreate,
    SegmentEventOut,
    SegmentEvents,
    SegmentOut,
    SegmentPage,
    SegmentRule,
    SegmentUpdate,
    SkinAnalysisCreate,
    SkinAnalysisOut,
    StaffRewardOut,
    StaffRewardPage,
    SubscribeResult,
    TagCreate,
    TagOut,
    TagPage,
    TagUpdate,
)
from crm.segments import recompute as recompute_segment
from kernel.errors import ValidationFailed
from kernel.identity.service import audit
from kernel.identity.tokens import Principal

# The analyser's export runs to a few MB, past the app-wide MAX_REQUEST_BODY_BYTES (1 MB by default), so the
# import route carries this limit of its own (in Litestar, a route's limit overrides the app's).
MAX_IMPORT_BYTES = 5_000_000
T = TypeVar("T")


def _iso(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


async def _audited(
    db: Db, staff: Principal, write: Callable[[BaseDBAsyncClient], Awaitable[T]], action: str,
    target_type: str, *, target_id: Any = None,
    detail: dict[str, Any] | Callable[[T], dict[str, Any]] | None = None,
) -> T:
    """A staff write and its audit row in the request's one transaction; returns what the write returned.

    The target is `target_id`, or the id of what the write returned (a created row); `detail` may be
    computed from what the write returned (e.g. whether a tag was really added).
    """
    async def work(conn: BaseDBAsyncClient) -> T:
        result = await write(conn)
        await audit(conn, staff.id, action, target_type, result.id if target_id is None else target_id,
                    detail(result) if callable(detail) else (detail or {}))
        return result

    return await db.run(work)


class CustomerController(Controller):
    """Search and the card; `GET /admin/customers/{id}` (bookings with triage answers) is booking's."""

    path = "/admin/customers"
    tags = ["staff: customers"]
    guards = [staff_only("campaign", "front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Search customers by name, referral code or the phone's last four digits, with filters")
    async def search(
        self, db: Db, limit: Limit, offset: Offset, q: str | None = None, tier_id: int | None = None,
        tag_id: int | None = None, rfm_class: RfmClass | None = None, branch_id: int | None = None,
        last_visit_within_days: int | None = None, spend_gte_fen: int | None = None,
        birthday_month: int | None = None,
    ) -> CustomerPage:
        if q is not None and len(q) > 64:
            raise ValidationFailed("At most 64 characters.", field="q")
        filters = views.CustomerFilters(
            q=q, tier_id=tier_id, tag_id=tag_id, rfm_class=rfm_class.value if rfm_class else None,
            branch_id=branch_id, last_visit_within_days=last_visit_within_days, spend_gte_fen=spend_gte_fen,
            birthday_month=birthday_month,
        )

        total, rows = await db.run(views.search_customers, filters, limit=limit, offset=offset)
        return CustomerPage(total=total, limit=limit, offset=offset, items=[
            CustomerRow(id=r["id"], nickname=r["nickname"], phone=r["phone_masked"], referral_code=r["referral_code"],
                        birth_date=r["birth_date"], rfm_class=r["rfm_class"], created_at=r["created_at"])
            for r in rows
        ])

    @get("/{customer_id:int}/card", summary="One customer's card: profile, tags, RFM, visits, money, outreach")
    async def card(self, db: Db, customer_id: int, staff: Principal) -> CustomerCardOut:
        card = await _audited(db, staff, lambda conn: views.customer_card(conn, customer_id),
                              "crm.customer_card_viewed", "customer", target_id=customer_id)
        return _card_out(card)

    @post("/{customer_id:int}/tags", status_code=HTTP_200_OK, summary="Put a manual tag on a customer (audited)")
    async def put_tag(self, db: Db, customer_id: int, data: CustomerTagPut, staff: Principal) -> dict[str, bool]:
        added = await _audited(
            db, staff, lambda conn: service.put_manual_tag(conn, customer_id, data.tag_id, staff_id=staff.id),
            "crm.tag_put", "customer", target_id=customer_id,
            detail=lambda added: {"tag_id": data.tag_id, "added": added},
        )
        return {"added": added}

    @delete("/{customer_id:int}/tags/{tag_id:int}", status_code=HTTP_200_OK, summary="Take a manual tag off (audited)")
    async def take_off_tag(self, db: Db, customer_id: int, tag_id: int, staff: Principal) -> dict[str, bool]:
        removed = await _audited(
            db, staff, lambda conn: service.take_off_manual_tag(conn, customer_id, tag_id),
            "crm.tag_taken_off", "customer", target_id=customer_id,
            detail=lambda removed: {"tag_id": tag_id, "removed": removed},
        )
        return {"removed": removed}

    @post("/{customer_id:int}/skin-analyses", summary="Record a skin analysis (its tags become the skin tags)")
    async def skin_analysis(self, db: Db, customer_id: int, data: SkinAnalysisCreate, staff: Principal) -> SkinAnalysisOut:
        a = await _audited(
            db, staff,
            lambda conn: service.record_skin_analysis(conn, customer_id, visit_date=data.visit_date,
                                                      tag_codes=list(data.tags), staff_id=staff.id),
            "crm.skin_analysis", "customer", target_id=customer_id,
            detail={"visit_date": data.visit_date.isoformat(), "tags": len(data.tags)},
        )
        return SkinAnalysisOut(a.id, a.customer_id, a.visit_date, a.tag_ids)


def _card_out(card: views.CustomerCard) -> CustomerCardOut:
    c, record = card.customer, card.record
    source = card.acquisition
    return CustomerCardOut(
        id=c.id, nickname=c.nickname, gender=c.gender.value, birth_date=c.birth_date, phone=c.phone_masked,
        referral_code=c.referral_code, created_at=c.created_at, last_login_at=c.last_login_at,
        acquisition=Acquired(source.kind.value, source.code, source.channel_id, source.referrer_customer_id,
                             source.acquired_at) if source else None,
        marketing_opt_out=card.opt_out,
        subscriptions={x.template_id: x.credits for x in card.consents},
        tags=[CustomerTagOut(TagOut.of(t), link.source, link.created_at) for t, link in card.tags],
        rfm=RfmOut.of(card.rfm) if card.rfm else None,
        rfm_history=[RfmOut.of(h) for h in card.rfm_history],
        points=card.points,
        bookings=[{"id": b.id, "status": b.status.value, "branch_id": b.branch_id, "department_id": b.department_id,
                   "service_id": b.service_id, "starts_at": b.starts_at, "triage_id": b.triage_id}
                  for b in record.bookings[:50]],
        triage=[{"id": t.submission.id, "department_id": t.submission.department_id, "booking_id": t.booking_id,
                 "needs_doctor_review": t.submission.needs_review, "created_at": t.submission.created_at}
                for t in record.triage],
        orders=card.orders,
        vouchers=card.vouchers,
        referrals=card.referrals,
        surveys=[{"id": s.id, "booking_id": s.booking_id, "score": s.score, "created_at": s.created_at}
                 for s in record.surveys],
        follow_ups=[{"id": f.id, "booking_id": f.booking_id, "kind": f.kind, "due_date": f.due_date,
                     "status": f.status.value} for f in record.follow_ups],
        outreach_received=[{"outreach_id": r.outreach_id, "name": name, "holdout": r.holdout,
                            "voucher": r.voucher_outcome, "message": r.message_outcome, "skip_reason": r.skip_reason,
                            # What the outreach's coupon did (crm/outreach.py): without it, a coupon-only
                            # outreach's row read as if the customer had been given nothing.
                            "coupon_outcome": r.coupon_outcome, "handled_at": r.handled_at}
                           for r, name in card.outreach],
    )


class TagController(Controller):
    path = "/admin/crm/tags"
    tags = ["staff: crm"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="The tag catalogue")
    async def list_tags(self, db: Db, limit: Limit, offset: Offset, category: str | None = None,
                        kind: TagKind | None = None) -> TagPage:
        total, rows = await db.run(views.tags, category=category, kind=kind, limit=limit, offset=offset)
        return TagPage(total=total, limit=limit, offset=offset, items=[TagOut.of(t) for t in rows])

    @post("/", summary="Add a tag (manual or skin) to the catalogue")
    async def create(self, db: Db, data: TagCreate, staff: Principal) -> TagOut:
        tag = await _audited(
            db, staff,
            lambda conn: service.create_tag(conn, code=data.code, name=data.name, category=data.category,
                                            kind=data.kind, description=data.description),
            "crm.tag_create", "crm_tag", detail=lambda tag: {"code": tag.code},
        )
        return TagOut.of(tag)

    @patch("/{tag_id:int}", summary="Rename or recategorise a tag")
    async def update(self, db: Db, tag_id: int, data: TagUpdate, staff: Principal) -> TagOut:
        tag = await _audited(db, staff, lambda conn: service.update_tag(conn, tag_id, data.changes()),
                             "crm.tag_update", "crm_tag", target_id=tag_id, detail=data.changes())
        return TagOut.of(tag)

    @delete("/{tag_id:int}", status_code=HTTP_204_NO_CONTENT, summary="Delete a tag (refused while a segment names it)")
    async def remove(self, db: Db, tag_id: int, staff: Principal) -> None:
        await _audited(db, staff, lambda conn: service.delete_tag(conn, tag_id), "crm.tag_delete", "crm_tag",
                       target_id=tag_id)


class SkinImportController(Controller):
    path = "/admin/crm/skin-analyses"
    tags = ["staff: crm"]
    guards = [staff_only("campaign", "front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @post("/import", status_code=HTTP_200_OK, request_max_body_size=MAX_IMPORT_BYTES,
          summary="Import the skin analyser's CSV (customer,visit_date,tags): all rows or none")
    async def import_csv(self, db: Db, request: Request, staff: Principal) -> ImportResult:
        try:
            # Litestar stops reading at the route's limit (at once when Content-Length announces more), so a
            # larger file is never held in memory; the refusal is the import's own, naming the file.
            body = await request.body()
        except RequestEntityTooLarge as exc:
            message = f"The file is too large (at most {MAX_IMPORT_BYTES} bytes)."
            raise ValidationFailed(message, field="file") from exc
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("The file must be UTF-8 text.", field="file") from exc

        rows = await _audited(db, staff, lambda conn: service.import_skin_csv(conn, text, staff_id=staff.id),
                              "crm.skin_import", "crm_skin_analysis", target_id="import",
                              detail=lambda rows: {"rows": rows})
        return ImportResult(rows)


class RfmController(Controller):
    path = "/admin/crm/rfm"
    tags = ["staff: crm"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/rules", summary="RFM thresholds")
    async def rules(self, db: Db) -> RfmRulesOut:
        return RfmRulesOut.of(await db.run(service.get_rfm_rules))

    @patch("/rules", summary="Change RFM thresholds (used from the next scoring)")
    async def update_rules(self, db: Db, data: RfmRulesUpdate, staff: Principal) -> RfmRulesOut:
        rules = await _audited(
            db, staff, lambda conn: service.update_rfm_rules(conn, data.changes(), staff_id=staff.id),
            "crm.rfm_rules_update", "crm_rfm_rules", target_id=1, detail=data.changes(),
        )
        return RfmRulesOut.of(rules)

    @get("/movements", summary="Customers who changed class (e.g. 重要价值 → 重要挽留)")
    async def movements(self, db: Db, limit: Limit, offset: Offset, as_of: date | None = None,
                        from_class: RfmClass | None = None, to_class: RfmClass | None = None) -> MovementPage:
        total, rows = await db.run(views.movements, as_of=as_of, from_class=from_class, to_class=to_class,
                                   limit=limit, offset=offset)
        return MovementPage(total=total, limit=limit, offset=offset, items=[MovementOut.of(m) for m in rows])

    @get("/distribution", summary="How many customers are in each class")
    async def distribution(self, db: Db) -> RfmDistribution:
        return RfmDistribution(await db.run(views.rfm_distribution))


class SegmentController(Controller):
    path = "/admin/crm/segments"
    tags = ["staff: crm"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Segments")
    async def list_segments(self, db: Db, limit: Limit, offset: Offset) -> SegmentPage:
        total, rows = await db.run(views.segment_list, limit=limit, offset=offset)
        return SegmentPage(total=total, limit=limit, offset=offset, items=[SegmentOut.of(s) for s in rows])

    @post("/preview", status_code=HTTP_200_OK, summary="Live count of a rule while it is edited")
    async def preview(self, db: Db, data: SegmentRule) -> CountPreview:
        started = time.perf_counter()

        async def work(conn: BaseDBAsyncClient) -> int:
            return await service.count_members(conn, await service.validate_rule(conn, data.as_dict()))

        n = await db.run(work)
        return CountPreview(count=n, elapsed_ms=int((time.perf_counter() - started) * 1000))

    @post("/", summary="Save a segment")
    async def create(self, db: Db, data: SegmentCreate, staff: Principal) -> SegmentOut:
        segment = await _audited(
            db, staff, lambda conn: service.create_segment(conn, name=data.name, description=data.description,
                                                           rules=data.rules.as_dict(), staff_id=staff.id),
            "crm.segment_create", "crm_segment", detail=lambda segment: {"rules": segment.rules},
        )
        return SegmentOut.of(segment)

    @get("/{segment_id:int}", summary="One segment")
    async def get_one(self, db: Db, segment_id: int) -> SegmentOut:
        return SegmentOut.of(await db.run(service.get_segment, segment_id))

    @patch("/{segment_id:int}", summary="Change a segment")
    async def update(self, db: Db, segment_id: int, data: SegmentUpdate, staff: Principal) -> SegmentOut:
        changes = data.changes()
        if "rules" in changes:
            changes["rules"] = changes["rules"].as_dict()

        segment = await _audited(db, staff, lambda conn: service.update_segment(conn, segment_id, changes),
                                 "crm.segment_update", "crm_segment", target_id=segment_id, detail=changes)
        return SegmentOut.of(segment)

    @delete("/{segment_id:int}", status_code=HTTP_204_NO_CONTENT, summary="Delete a segment")
    async def remove(self, db: Db, segment_id: int, staff: Principal) -> None:
        await _audited(db, staff, lambda conn: service.delete_segment(conn, segment_id), "crm.segment_delete",
                       "crm_segment", target_id=segment_id)

    @post("/{segment_id:int}/recompute", status_code=HTTP_200_OK, summary="Recompute membership now")
    async def recompute(self, db: Db, segment_id: int, staff: Principal) -> RecomputeResult:
        async def work(conn: BaseDBAsyncClient):
            entered, left = await recompute_segment(conn, segment_id)
            segment = await service.get_segment(conn, segment_id)
            return entered, left, segment

        entered, left, segment = await db.run(work)
        return RecomputeResult(entered, left, segment.member_count)

    @get("/{segment_id:int}/members", summary="Current members (customer ids)")
    async def members(self, db: Db, segment_id: int, limit: Limit, offset: Offset) -> MemberPage:
        total, ids = await db.run(views.segment_members, segment_id, limit=limit, offset=offset)
        return MemberPage(total=total, limit=limit, offset=offset, customer_ids=ids)

    @get("/{segment_id:int}/events", summary="Entered/left events after an id (a feed)")
    async def events(self, db: Db, segment_id: int, limit: Limit, after_id: int = 0) -> SegmentEvents:
        rows = await db.run(views.segment_events, segment_id, after_id=after_id, limit=limit)
        return SegmentEvents([SegmentEventOut.of(e) for e in rows], rows[-1].id if rows else after_id)


class OutreachController(Controller):
    path = "/admin/crm/outreach"
    tags = ["staff: crm"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Outreach, newest first")
    async def list_outreach(self, db: Db, limit: Limit, offset: Offset) -> OutreachPage:
        total, rows = await db.run(views.outreach_list, limit=limit, offset=offset)
        return OutreachPage(total=total, limit=limit, offset=offset, items=[OutreachOut.of(o) for o in rows])

    @post("/", summary="Draft an outreach to a segment")
    async def create(self, db: Db, data: OutreachCreate, staff: Principal) -> OutreachOut:
        values = {n: getattr(data, n) for n in data.__struct_fields__}

        outreach = await _audited(
            db, staff, lambda conn: service.create_outreach(conn, values, staff_id=staff.id),
            "crm.outreach_create", "crm_outreach", detail=_iso(values),
        )
        return OutreachOut.of(outreach)

    @get("/{outreach_id:int}", summary="One outreach with its results and lift against the holdout")
    async def results(self, db: Db, outreach_id: int) -> OutreachResultsOut:
        r = await db.run(views.outreach_results, outreach_id)

        def group(g: views.GroupResult) -> GroupResultOut:
            return GroupResultOut(g.customers, g.booked, g.redeemed, g.paid, g.rate_bp(g.booked),
                                  g.rate_bp(g.redeemed), g.rate_bp(g.paid))

        treated, held = group(r.recipients), group(r.holdout)
        return OutreachResultsOut(
            outreach=OutreachOut.of(r.outreach), counts=r.counts, recipients=treated, holdout=held,
            lift_bp={
                "booked": treated.booked_rate_bp - held.booked_rate_bp,
                "redeemed": treated.redeemed_rate_bp - held.redeemed_rate_bp,
                "paid": treated.paid_rate_bp - held.paid_rate_bp,
            },
            window_start=r.window_start, window_end=r.window_end,
        )

    @post("/{outreach_id:int}/schedule", status_code=HTTP_200_OK, summary="Run now or at a time")
    async def schedule(self, db: Db, outreach_id: int, data: OutreachSchedule, staff: Principal) -> OutreachOut:
        outreach = await _audited(
            db, staff, lambda conn: service.schedule_outreach(conn, outreach_id, at=data.at),
            "crm.outreach_schedule", "crm_outreach", target_id=outreach_id,
            detail={"at": data.at.isoformat() if data.at else None},
        )
        return OutreachOut.of(outreach)

    @post("/{outreach_id:int}/cancel", status_code=HTTP_200_OK, summary="Cancel a draft or scheduled outreach")
    async def cancel(self, db: Db, outreach_id: int, staff: Principal) -> OutreachOut:
        outreach = await _audited(db, staff, lambda conn: service.cancel_outreach(conn, outreach_id),
                                  "crm.outreach_cancel", "crm_outreach", target_id=outreach_id)
        return OutreachOut.of(outreach)


class CouponRuleController(Controller):
    """The coupon the CRM gives on an occasion: the birthday gift (with or instead of its voucher) and the
    coupon after a visit the front desk completes."""

    path = "/admin/crm/coupon-rules"
    tags = ["staff: crm"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="The coupon of each occasion (birthday, after a visit)")
    async def list_rules(self, db: Db) -> list[CouponRuleOut]:
        return [CouponRuleOut.of(r) for r in await db.run(service.coupon_rules)]

    @put("/{occasion:str}", summary="Name the coupon template of an occasion (null: no coupon)")
    async def set_rule(self, db: Db, occasion: CouponOccasion, data: CouponRuleUpdate,
                       staff: Principal) -> CouponRuleOut:
        rule = await _audited(
            db, staff, lambda conn: service.set_coupon_rule(
                conn, occasion, coupon_template_id=data.coupon_template_id, with_voucher=data.with_voucher,
                staff_id=staff.id),
            "crm.coupon_rule_set", "crm_coupon_rule", target_id=occasion.value,
            detail={"coupon_template_id": data.coupon_template_id, "with_voucher": data.with_voucher},
        )
        return CouponRuleOut.of(rule)


class ChannelController(Controller):
    path = "/admin/crm/channels"
    tags = ["staff: crm"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Acquisition channels: staff codes, partner QR scenes, ad scenes")
    async def list_channels(self, db: Db, limit: Limit, offset: Offset) -> ChannelPage:
        total, rows = await db.run(views.channels, limit=limit, offset=offset)
        return ChannelPage(total=total, limit=limit, offset=offset, items=[ChannelOut.of(c) for c in rows])

    @post("/", summary="Add a channel")
    async def create(self, db: Db, data: ChannelCreate, staff: Principal) -> ChannelOut:
        values = {n: getattr(data, n) for n in data.__struct_fields__}

        channel = await _audited(db, staff, lambda conn: service.create_channel(conn, values),
                                 "crm.channel_create", "crm_acquisition_channel", detail=_iso(values))
        return ChannelOut.of(channel)

    @patch("/{channel_id:int}", summary="Rename, switch off, or link the staff member's own account")
    async def update(self, db: Db, channel_id: int, data: ChannelUpdate, staff: Principal) -> ChannelOut:
        channel = await _audited(
            db, staff, lambda conn: service.update_channel(conn, channel_id, data.changes()),
            "crm.channel_update", "crm_acquisition_channel", target_id=channel_id, detail=data.changes(),
        )
        return ChannelOut.of(channel)


class StaffRewardController(Controller):
    path = "/admin/crm/staff-rewards"
    tags = ["staff: crm"]
    guards = [staff_only("campaign", "finance")]

    @get("/", summary="Staff referral rewards (settled in the finance batches once their hold ends; `expired`: "
                      "met by the job past its horizon, never paid automatically)")
    async def list_rewards(self, db: Db, limit: Limit, offset: Offset, staff_id: int | None = None,
                           status: StaffRewardStatus | None = None) -> StaffRewardPage:
        total, rows = await db.run(views.staff_rewards, staff_id=staff_id, status=status, limit=limit, offset=offset)
        return StaffRewardPage(total=total, limit=limit, offset=offset, items=[StaffRewardOut.of(r) for r in rows])


class MyMarketingController(Controller):
    path = "/app/crm"
    tags = ["customer: marketing consent"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/marketing", summary="My marketing opt-out and the subscriptions I accepted")
    async def state(self, db: Db, customer_id: int) -> MarketingStateOut:
        return await db.run(_marketing_state_out, customer_id)

    @put("/marketing", summary="Opt out of (or back into) marketing (PIPL)")
    async def set_preference(self, db: Db, customer_id: int, data: MarketingPreference) -> MarketingStateOut:
        async def work(conn: BaseDBAsyncClient) -> MarketingStateOut:
            await service.set_opt_out(conn, customer_id, data.opt_out)
            return await _marketing_state_out(conn, customer_id)

        return await db.run(work)

    @post("/subscriptions", status_code=HTTP_200_OK,
          summary="Report wx.requestSubscribeMessage: the templates I accepted (one message each)")
    async def subscriptions(self, db: Db, customer_id: int, data: SubscribeResult) -> MarketingStateOut:
        async def work(conn: BaseDBAsyncClient) -> MarketingStateOut:
            await service.record_acceptances(conn, customer_id, list(data.accepted))
            return await _marketing_state_out(conn, customer_id)

        return await db.run(work)


async def _marketing_state_out(conn: BaseDBAsyncClient, customer_id: int) -> MarketingStateOut:
    """What the customer's marketing routes answer: the opt-out and the credits per template."""
    profile, consents = await service.marketing_state(conn, customer_id)
    return MarketingStateOut(profile.marketing_opt_out, {c.template_id: c.credits for c in consents})


async def record_acquisition(conn, customer, created: bool, referral_code: str | None, scene: str | None = None) -> None:
    """Login hook: a new customer's source, inside the login transaction."""
    await service.record_at_first_login(conn, customer, created, referral_code, scene)


ROUTES = [
    CustomerController,
    TagController,
    SkinImportController,
    RfmController,
    SegmentController,
    OutreachController,
    CouponRuleController,
    ChannelController,
    StaffRewardController,
    MyMarketingController,
]
LOGIN_HOOKS = [record_acquisition]
