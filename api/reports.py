"""Report routes (/admin/reports): each report's figures as JSON, the same figures as CSV or XLSX, the list
of reports a staff member may open, and the branch a front-desk account is held to.

Thin: parse, call reports.views (reads through `db.read`; an export and its audit row in one `db.run`), shape the
response. No ORM call here.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, Response
from litestar.di import Provide
from litestar.params import Parameter

from api.deps import Db
from api.handlers import get, put
from api.security import provide_staff, staff_only
from kernel.identity.service import audit
from kernel.identity.tokens import Principal
from reports import access, exports, views
from reports.schemas import Report, ReportSummary, StaffBranchOut, StaffBranchSet

DayFrom = Annotated[date, Parameter(query="from", description="First clinic day of the range (inclusive)")]
DayTo = Annotated[date, Parameter(query="to", description="Last clinic day of the range (inclusive)")]
BranchId = Annotated[int | None, Parameter(ge=1, description="Only this branch (front desk: always its own)")]
WithinDays = Annotated[int | None, Parameter(ge=1, le=730, description="Repurchase window in days")]
ExportFormat = Annotated[Literal["csv", "xlsx"], Parameter(query="format", description="csv or xlsx")]

_MEDIA = {
    "csv": "text/csv",  # Litestar adds "; charset=utf-8" to text/* types
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


async def _report(db: Db, spec: views.Spec, staff: Principal, query: views.Query) -> Report:
    # Summary rows only, no snapshot needed: plain reads without BEGIN/COMMIT.
    return await db.read(views.run, spec, staff, query)


async def _export(db: Db, spec: views.Spec, staff: Principal, query: views.Query, fmt: str) -> Response:
    async def work(conn) -> Report:
        report = await views.run(conn, spec, staff, query)
        # Exports leave the building (money figures for finance): who took which figures is recorded.
        await audit(conn, staff.id, "reports.export", "report", spec.slug,
                    {"format": fmt, "from": query.date_from.isoformat(), "to": query.date_to.isoformat(),
                     "branch_id": report.branch_id})
        return report

    report = await db.run(work)
    body: Any = exports.to_csv(report) if fmt == "csv" else exports.to_xlsx(report)
    filename = f"{spec.slug}_{query.date_from.isoformat()}_{query.date_to.isoformat()}.{fmt}"
    return Response(body, media_type=_MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _operation(slug: str) -> str:
    return "".join(part.title() for part in re.split(r"[-_]", slug))


def _handlers(spec: views.Spec) -> list[Any]:
    """The JSON and export routes of one report, guarded by the roles the report declares."""
    common = dict(guards=[staff_only(*spec.roles)], dependencies={"staff": Provide(provide_staff)},
                  tags=["staff: reports"])
    name = _operation(spec.slug)
    if spec.slug == "repurchase":
        @get(f"/admin/reports/{spec.slug}", summary=spec.title, operation_id=f"Report{name}", **common)
        async def show(db: Db, staff: Principal, day_from: DayFrom, day_to: DayTo, branch_id: BranchId = None,
                       within_days: WithinDays = None) -> Report:
            return await _report(db, spec, staff, views.Query(day_from, day_to, branch_id, within_days))

        @get(f"/admin/reports/{spec.slug}/export", summary=f"{spec.title} (CSV / XLSX)",
             operation_id=f"Report{name}Export", media_type="text/csv",
             opt={"media_types": ("text/csv", _MEDIA["xlsx"])}, **common)
        async def export(db: Db, staff: Principal, day_from: DayFrom, day_to: DayTo, fmt: ExportFormat = "csv",
                         branch_id: BranchId = None, within_days: WithinDays = None) -> Response:
            return await _export(db, spec, staff, views.Query(day_from, day_to, branch_id, within_days), fmt)
    else:
        @get(f"/admin/reports/{spec.slug}", summary=spec.title, operation_id=f"Report{name}", **common)
        async def show(db: Db, staff: Principal, day_from: DayFrom, day_to: DayTo, branch_id: BranchId = None) -> Report:
            return await _report(db, spec, staff, views.Query(day_from, day_to, branch_id))

        @get(f"/admin/reports/{spec.slug}/export", summary=f"{spec.title} (CSV / XLSX)",
             operation_id=f"Report{name}Export", media_type="text/csv",
             opt={"media_types": ("text/csv", _MEDIA["xlsx"])}, **common)
        async def export(db: Db, staff: Principal, day_from: DayFrom, day_to: DayTo, fmt: ExportFormat = "csv",
                         branch_id: BranchId = None) -> Response:
            return await _export(db, spec, staff, views.Query(day_from, day_to, branch_id), fmt)
    return [show, export]


class ReportCatalogueController(Controller):
    path = "/admin/reports"
    tags = ["staff: reports"]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="The reports this staff member may open", guards=[staff_only()])
    async def catalogue(self, staff: Principal) -> list[ReportSummary]:
        return [ReportSummary(report=s.slug, title=s.title, path=f"/admin/reports/{s.slug}",
                              roles=sorted({*s.roles, "admin"}), takes_branch=s.takes_branch)
                for s in views.REPORTS.values() if views.visible_to(s, staff.roles)]

    @put("/staff-branches/{staff_id:int}", summary="Hold a front-desk account to one branch's reports",
         guards=[staff_only("admin")], status_code=200)
    async def set_staff_branch(self, db: Db, staff_id: int, data: StaffBranchSet, staff: Principal) -> StaffBranchOut:
        async def work(conn) -> None:
            await access.set_staff_branch(conn, staff_id=staff_id, branch_id=data.branch_id)
            await audit(conn, staff.id, "reports.staff_branch", "staff_member", staff_id, {"branch_id": data.branch_id})

        await db.run(work)
        return StaffBranchOut(staff_id=staff_id, branch_id=data.branch_id)


ROUTES = [ReportCatalogueController, *[h for spec in views.REPORTS.values() for h in _handlers(spec)]]
