"""Takes the screenshots of docs/console.md: each role's main page, on a running server with the demo data.

    .venv/bin/python -m api serve            # with BOOTSTRAP_ADMIN_USERNAME/PASSWORD set, demo data loaded
    .venv/bin/python console/screenshots.py http://127.0.0.1:8000 <admin> <password>

It creates one member per role (password "<role> works at the clinic 7") if missing, books and triages a demo customer
for today, redeems points for a voucher, then saves PNGs to docs/console/. Development aid, not run by tests.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

OUT = Path(__file__).resolve().parent.parent / "docs" / "console"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ROLES = ("front_desk", "campaign", "finance")


async def prepare(base: str, admin: str, password: str) -> str | None:
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        token = (await http.post("/admin/auth/login", json={"username": admin, "password": password})).json()["access_token"]
        staff = {"Authorization": f"Bearer {token}"}
        for role in ROLES:
            await http.post("/admin/staff", headers=staff, json={
                "username": role, "password": f"{role} works at the clinic 7", "roles": [role],
                "display_name": {"front_desk": "前台 小林", "campaign": "运营 小周", "finance": "财务 王会计"}[role]})
        code = None
        for name in ("bella", "chloe", "david"):
            customer = (await http.post("/app/auth/login", json={"code": f"sandbox:{name}"})).json()
            me = {"Authorization": f"Bearer {customer['access_token']}"}
            branches = (await http.get("/app/booking/branches", headers=me)).json()["items"]
            departments = (await http.get("/app/booking/departments", headers=me)).json()["items"]
            for department in departments:
                slots = (await http.get("/app/booking/slots", headers=me, params={
                    "branch_id": branches[0]["id"], "department_id": department["id"]})).json().get("items", [])
                if not slots:
                    continue
                triage = None
                if department["has_questionnaire"]:
                    form = (await http.get(f"/app/triage/questionnaires/{department['id']}", headers=me)).json()
                    answers = {q["key"]: (name == "chloe") for q in form["questions"] if q["kind"] == "yes_no"}
                    made = await http.post("/app/triage", headers=me, json={
                        "department_id": department["id"], "answers": answers})
                    triage = made.json().get("id") if made.status_code < 300 else None
                slot = slots[min(len(slots) - 1, ("bella", "chloe", "david").index(name))]
                await http.post("/app/bookings", headers=me, json={"slot_id": slot["id"], "triage_id": triage})
                break
        alice = (await http.post("/app/auth/login", json={"code": "sandbox:alice"})).json()
        me = {"Authorization": f"Bearer {alice['access_token']}"}
        items = (await http.get("/app/mall/items", headers=me)).json()
        for item in items if isinstance(items, list) else items.get("items", []):
            made = await http.post("/app/mall/redemptions", json={"item_id": item["id"]},
                                   headers={**me, "Idempotency-Key": f"screenshots-{item['id']}"})
            if made.status_code < 300 and made.json().get("vouchers"):
                code = made.json()["vouchers"][0]["code"]
                break
        return code


async def shoot(base: str, voucher: str | None) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)

        async def as_role(user: str, password: str, pages, viewport=(1280, 800)):
            context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            page = await context.new_page()
            await page.goto(base + "/console")
            if user == "":
                await page.wait_for_timeout(800)
                await page.screenshot(path=str(OUT / "login.png"))
                await context.close()
                return
            await page.fill("input[name=username]", user)
            await page.fill("input[name=password]", password)
            await page.click("[data-test=login]")
            await page.wait_for_selector("[data-test=menu]")
            for name, screen, action in pages:
                await page.goto(f"{base}/console#{screen}")
                await page.wait_for_timeout(1200)
                if action:
                    await action(page)
                    await page.wait_for_timeout(800)
                await page.screenshot(path=str(OUT / f"{name}.png"))
            await context.close()

        async def lookup(page):
            if voucher:
                await page.fill("input[data-test=voucher-code]", voucher)
                await page.click("[data-test=voucher-lookup]")

        async def open_editor(page):
            await page.click("[data-test=campaign-new]")
            await page.fill("input[data-test=campaign-title]", "三八节闺蜜卡")
            await page.fill("input[data-test=sku-0-title]", "水光针双人体验")
            await page.fill("input[data-test=sku-0-original]", "199")
            await page.fill("input[data-test=sku-0-group]", "299")
            await page.click("[data-test=campaign-save]")

        async def open_groups(page):
            await page.keyboard.press("Escape")  # the editor of the previous picture
            await page.wait_for_timeout(500)
            await page.locator("[data-test^=groups-]").first.click()

        async def open_batch(page):
            await page.locator("[data-test^=batch-open-]").first.click()

        await as_role("", "", [])
        await as_role("front_desk", "front_desk works at the clinic 7", [
            ("front-desk-queue", "/frontdesk/queue", None), ("front-desk-voucher", "/frontdesk/vouchers", lookup),
            ("front-desk-refusal", "/finance/settlements", None)], viewport=(1024, 768))
        await as_role("campaign", "campaign works at the clinic 7", [
            ("campaign-list", "/campaign/campaigns", None), ("campaign-editor-error", "/campaign/campaigns", open_editor),
            ("campaign-groups", "/campaign/campaigns", open_groups)])
        await as_role("finance", "finance works at the clinic 7", [
            ("finance-rewards", "/finance/rewards", None), ("finance-batch", "/finance/settlements", open_batch),
            ("finance-liability", "/finance/liability", None)])
        await as_role(sys.argv[2], sys.argv[3], [("admin-staff", "/admin/staff", None), ("admin-audit", "/admin/audit", None)])
        page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        await page.goto(base + "/schema")
        await page.wait_for_selector(".swagger-ui .info")
        await page.screenshot(path=str(OUT / "schema.png"))
        await browser.close()


async def main() -> None:
    base, admin, password = sys.argv[1:4]
    voucher = await prepare(base, admin, password)
    await shoot(base, voucher)
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
