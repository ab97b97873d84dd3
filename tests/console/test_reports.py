"""Report pages: each draws its chart and table from the API's numbers (the chart's series and the table's
cells equal `GET /admin/reports/<report>` for the same range), for a role that may see it, and shows the
API's refusal (no chart) for a role that may not."""

from __future__ import annotations

from datetime import timedelta

import httpx

from kernel import clock
from reports import tasks
from tests.booking.factories import make_branch
from tests.factories import make_customer, make_staff, staff_headers
from tests.reports.factories import acquire, consume

PASSWORD = "charts come from the api 7"
LABELS = {"fen": "（分）", "bp": "（‱）", "points": "（积分）"}


async def _some_figures() -> None:
    branch = (await make_branch()).id
    now = clock.now()
    for days, amount in ((40, 120_000), (10, 80_000), (3, 30_000)):
        customer = await make_customer()
        await acquire(customer.id, "customer_referral", now - timedelta(days=days))
        await consume(customer.id, amount, now - timedelta(days=days), branch)
        await consume(customer.id, amount // 2, now - timedelta(days=days - 1), branch)
    clock.set_now(None)
    await tasks.fold({})


def _shown(value) -> str:
    """How the page prints a value: JavaScript writes 4.0 as 4."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


CHART = """async () => {
  const echarts = await import("echarts");
  const option = echarts.getInstanceByDom(document.querySelector("[data-test=report-chart]")).getOption();
  return { x: option.xAxis[0].data, series: option.series.map((s) => ({ name: s.name, data: s.data })) };
}"""


async def test_each_report_page_draws_the_apis_numbers_and_refuses_the_wrong_role(tab, console_base):
    await _some_figures()
    finance = await make_staff("finance", password=PASSWORD)
    campaign = await make_staff("campaign", password=PASSWORD)
    page = tab.page
    specs = await page_specs(tab)
    checked = 0
    for member in (campaign, finance):
        await tab.login(member.username, PASSWORD)
        for spec in specs:
            if spec["roles"][0] not in member.role_set:
                continue
            await tab.visit(f"/reports/{spec['slug']}")
            figures = page.locator("[data-test=report-figures]")
            await figures.wait_for()
            params = {"from": await figures.get_attribute("data-from"), "to": await figures.get_attribute("data-to")}
            async with httpx.AsyncClient(base_url=console_base, headers=staff_headers(member)) as http:
                api = (await http.get(f"/admin/reports/{spec['slug']}", params=params)).json()
            keys = [c["key"] for c in api["columns"]]
            if not api["rows"]:
                await page.locator("[data-test=report-empty]").wait_for()
                checked += 1
                continue
            await page.locator("[data-test=report-chart] canvas").wait_for()
            drawn = await page.evaluate(CHART)
            shown = [k for k in spec["series"] if k in keys]
            assert shown, spec["slug"]
            assert [s["data"] for s in drawn["series"]] == [[row[keys.index(k)] for row in api["rows"]] for k in shown]
            assert len(drawn["x"]) == len(api["rows"])
            # The table shows every cell the API sent, row by row.
            cells = await page.locator("[data-test=report-table] .el-table__body tr").evaluate_all(
                "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.innerText.trim()))")
            assert cells == [[_shown(v) for v in row] for row in api["rows"]], spec["slug"]
            checked += 1
        await tab.logout()
    assert checked == len(specs) == 11

    # A role that may not: the page shows the API's refusal and draws nothing.
    await tab.login(campaign.username, PASSWORD)
    for slug in ("top-customers", "points", "referral-roi"):
        await tab.visit(f"/reports/{slug}")
        await page.locator("[data-test=refusal]").wait_for()
        assert "无权访问" in await page.inner_text("[data-test=refusal]")
        assert await page.locator("[data-test=report-chart]").count() == 0


async def page_specs(tab) -> list[dict]:
    """The chart specs as the page module declares them (read in the browser, not copied here)."""
    await tab.page.goto(tab.base + "/console")
    return await tab.page.evaluate(
        "async () => (await import('/console/static/pages/reports.js')).REPORT_SCREENS"
        ".map(s => ({ slug: s.slug, roles: s.roles, series: s.series }))")
