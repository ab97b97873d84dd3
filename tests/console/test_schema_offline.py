"""/schema renders the API docs from our own pinned Swagger UI, with no request leaving our origin."""

from __future__ import annotations


async def test_schema_page_renders_offline_from_our_own_assets(tab):
    response = await tab.page.goto(tab.base + "/schema")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    await tab.page.locator(".swagger-ui .info .title").wait_for()
    assert "Clinic mini-program API" in await tab.page.inner_text(".swagger-ui .info .title")
    await tab.page.locator('[data-path="/health/live"]').first.wait_for()  # operations are listed
