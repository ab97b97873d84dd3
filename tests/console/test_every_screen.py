"""Every screen of the console opens for a member holding all roles: no script error, no CSP report, no
request off our origin (checked by the tab fixture), and each shows its title, not a refusal."""

from __future__ import annotations

import re
from pathlib import Path

from tests.factories import make_staff

PASSWORD = "every menu at once 42 ok"
PAGES = Path(__file__).resolve().parents[2] / "console" / "static" / "pages"


def screens() -> list[tuple[str, str]]:
    found = []
    for module in sorted(PAGES.glob("*.js")):
        found += re.findall(r'\{ path: "([^"]+)", title: "([^"]+)"', module.read_text(encoding="utf-8"))
    return found


async def test_every_screen_opens_without_errors_or_foreign_requests(tab):
    listed = screens()
    assert len(listed) >= 16, listed
    member = await make_staff("admin", "front_desk", "campaign", "finance", password=PASSWORD)
    await tab.login(member.username, PASSWORD)
    page = tab.page
    for path, title in listed:
        await tab.visit(path)
        await page.locator(".el-header", has_text=title).wait_for()
        assert await page.locator(f"[data-test='menu-{path}']").count() == 1, path
        await page.wait_for_load_state("networkidle")
        assert await page.locator("[data-test=refusal]").count() == 0, (path, await page.inner_text("main"))
