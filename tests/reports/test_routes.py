"""/admin/reports over HTTP: who may open which report, money shown to finance and admin only, front desk
held to its branch, CSV and XLSX carrying the JSON's figures, and bad input refused with the field named."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from kernel.identity.models import AuditLogEntry
from tests.booking.factories import make_branch
from tests.factories import make_customer, make_staff, staff_headers
from tests.reports.factories import consume, fold, local

RANGE = {"from": "2035-01-01", "to": "2035-01-31"}


async def _world():
    branch, other = await make_branch(), await make_branch()
    for amount, b in ((100_000, branch), (50_000, branch), (70_000, other)):
        customer = await make_customer()
        await consume(customer.id, amount, local(2035, 1, 5), b.id)
    await fold(local(2035, 2, 1))
    return branch, other


async def test_roles_money_and_branches(client):
    branch, other = await _world()
    finance, campaign = await make_staff("finance"), await make_staff("campaign")
    desk = await make_staff("front_desk")
    admin = await make_staff("admin")

    # Finance sees the money report; campaign staff and the front desk are refused it.
    ok = await client.get("/admin/reports/top-customers", params={**RANGE, "branch_id": branch.id},
                          headers=staff_headers(finance))
    assert ok.status_code == 200, ok.text
    assert ok.json()["rows"] == [["2035-01", 2, 150_000, 1, 100_000, 6667]]
    for who in (campaign, desk):
        refused = await client.get("/admin/reports/top-customers", params=RANGE, headers=staff_headers(who))
        assert refused.status_code == 403 and refused.json()["code"] == "role_required"

    # The group-buy funnel: campaign staff see the counts, not the money columns; finance sees both.
    as_campaign = (await client.get("/admin/reports/group-buys", params=RANGE, headers=staff_headers(campaign))).json()
    as_finance = (await client.get("/admin/reports/group-buys", params=RANGE, headers=staff_headers(finance))).json()
    assert not [c for c in as_campaign["columns"] if c["unit"] == "fen"]
    assert {"paid_fen", "refunded_fen", "net_fen"} <= {c["key"] for c in as_finance["columns"]}

    # Front desk: refused until an admin assigns a branch, then held to it.
    r = await client.get("/admin/reports/consultations", params=RANGE, headers=staff_headers(desk))
    assert r.status_code == 409 and r.json()["code"] == "staff_branch_not_assigned"
    r = await client.put(f"/admin/reports/staff-branches/{desk.id}", json={"branch_id": branch.id},
                         headers=staff_headers(desk))
    assert r.status_code == 403
    r = await client.put(f"/admin/reports/staff-branches/{desk.id}", json={"branch_id": branch.id},
                         headers=staff_headers(admin))
    assert r.status_code == 200, r.text
    assert await AuditLogEntry.filter(action="reports.staff_branch", target_id=str(desk.id)).exists()
    r = await client.get("/admin/reports/consultations", params=RANGE, headers=staff_headers(desk))
    assert r.status_code == 200 and r.json()["branch_id"] == branch.id
    assert "converted_fen" not in {c["key"] for c in r.json()["columns"]}
    r = await client.get("/admin/reports/consultations", params={**RANGE, "branch_id": other.id},
                         headers=staff_headers(desk))
    assert r.status_code == 403 and r.json()["code"] == "branch_forbidden"

    # The catalogue lists what each may open.
    listed = (await client.get("/admin/reports", headers=staff_headers(desk))).json()
    assert {r["report"] for r in listed} == {"consultations", "surveys"}


async def test_exports_carry_the_same_figures(client):
    branch, _ = await _world()
    finance = await make_staff("finance")
    params = {**RANGE, "branch_id": branch.id}
    shown = (await client.get("/admin/reports/top-customers", params=params, headers=staff_headers(finance))).json()

    exported = await client.get("/admin/reports/top-customers/export", params={**params, "format": "csv"},
                                headers=staff_headers(finance))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    body = [line for line in lines[3:] if not line[0].startswith("#")]
    assert body == [["" if v is None else str(v) for v in row] for row in shown["rows"]]

    exported = await client.get("/admin/reports/top-customers/export", params={**params, "format": "xlsx"},
                                headers=staff_headers(finance))
    assert exported.status_code == 200
    sheet = load_workbook(io.BytesIO(exported.content)).active
    cells = [list(row) for row in sheet.iter_rows(min_row=4, values_only=True)]
    assert cells == [[v for v in row] for row in shown["rows"]]
    assert await AuditLogEntry.filter(action="reports.export", target_id="top-customers", staff_id=finance.id).count() == 2


async def test_bad_input_is_refused_with_the_field(client):
    admin = await make_staff("admin")
    h = staff_headers(admin)
    r = await client.get("/admin/reports/repurchase", params={"from": "2035-02-01", "to": "2035-01-01"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "invalid_date_range" and r.json()["detail"]["field"] == "from"
    r = await client.get("/admin/reports/repurchase", params={"from": "2030-01-01", "to": "2035-01-01"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "invalid_date_range"
    r = await client.get("/admin/reports/points", params={**RANGE, "branch_id": 1}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "branch_not_applicable"
    assert r.json()["detail"]["field"] == "branch_id"
    r = await client.get("/admin/reports/repurchase", params={"from": "yesterday", "to": "2035-01-01"}, headers=h)
    assert r.status_code == 400 and r.json()["detail"]["field"] == "from"
    r = await client.get("/admin/reports/repurchase", params=RANGE | {"within_days": 0}, headers=h)
    assert r.status_code == 400 and r.json()["detail"]["field"] == "within_days"
    r = await client.get("/admin/reports/mall/export", params=RANGE | {"format": "pdf"}, headers=h)
    assert r.status_code == 400 and r.json()["detail"]["field"] == "format"
    r = await client.put("/admin/reports/staff-branches/999999999", json={"branch_id": 1}, headers=h)
    assert r.status_code == 404 and r.json()["code"] == "staff_not_found"
