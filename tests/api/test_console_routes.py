"""The console and /schema are served from our own pinned files under a same-origin CSP; any staff member reads the branch picker."""

from __future__ import annotations

import hashlib
import json
import re

from console import STATIC_DIR, VENDOR_DIR
from tests.booking.factories import make_branch
from tests.factories import customer_headers, make_customer, make_staff, staff_headers


async def test_console_page_has_a_same_origin_csp_and_only_our_own_assets(client):
    page = await client.get("/console")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    # Nothing but 'self', the import map's hash, and data:/blob: for inline icons and downloads.
    sources = set(re.findall(r"(?:^|\s)((?:https?:|\*)[^\s;]*)", csp))
    assert sources == set(), csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "connect-src 'self'" in csp and "default-src 'self'" in csp
    for url in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text) + re.findall(r"\"(/console/[^\"]+)\"", page.text):
        if url.startswith("data:"):
            continue
        assert url.startswith("/console/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert "content-security-policy" in asset.headers


async def test_schema_page_loads_swagger_ui_from_us(client):
    page = await client.get("/schema")
    assert page.status_code == 200
    assert "cdn" not in page.text and "http" not in page.text.replace("http-equiv", "")
    for url in re.findall(r"(?:src|href)='(/[^']+)'", page.text):
        assert (await client.get(url)).status_code == 200, url
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_vendor_files_match_the_manifest():
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    assert set(manifest) == {"vue", "element-plus", "echarts", "swagger-ui-dist"}
    for name, entry in manifest.items():
        for inner, digest in entry["files"].items():
            assert hashlib.sha256((VENDOR_DIR / name / inner).read_bytes()).hexdigest() == digest, (name, inner)


def test_console_code_names_no_other_origin():
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".js", ".html", ".css"}:
            assert not re.search(r"https?://", path.read_text(encoding="utf-8")), path


async def test_any_staff_member_reads_branches_for_the_picker_and_customers_do_not(client):
    branch = await make_branch(name="Console branch")
    for role in ("front_desk", "finance", "campaign"):
        response = await client.get("/admin/catalogue/branches", headers=staff_headers(await make_staff(role)))
        assert response.status_code == 200
        assert branch.id in [b["id"] for b in response.json()["items"]]
    departments = await client.get("/admin/catalogue/departments", headers=staff_headers(await make_staff("finance")))
    assert departments.status_code == 200
    refused = await client.get("/admin/catalogue/branches", headers=customer_headers(await make_customer()))
    assert refused.status_code == 403


async def test_odd_asset_paths_are_404_not_500(client):
    """A name longer than the file system allows (ENAMETOOLONG) or a file used as a folder (ENOTDIR) was a 500
    anyone could cause without a token."""
    for prefix in ("/console/static/", "/console/vendor/", "/schema/assets/"):
        for tail in ("a" * 3000, "b" * 200 + "/" + "c" * 300, "index.html/x", "manifest.json/x"):
            response = await client.get(prefix + tail)
            assert response.status_code == 404, (prefix, tail[:20], response.status_code, response.text[:200])
            assert response.json()["code"] == "not_found"


async def test_staff_login_tells_the_console_the_clinic_time_zone(client, monkeypatch):
    """The console shows every time in the zone the login answers (CLINIC_TIMEZONE), not the browser's own."""
    from kernel.settings import get_settings

    member = await make_staff("front_desk", password="front desk pass 1")
    credentials = {"username": member.username, "password": "front desk pass 1"}
    login = await client.post("/admin/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    assert login.json()["clinic_timezone"] == "Asia/Shanghai"  # the default

    # A clinic elsewhere: the answer follows the setting, read again from the environment.
    with monkeypatch.context() as env:
        env.setenv("CLINIC_TIMEZONE", "Asia/Urumqi")
        get_settings.cache_clear()
        try:
            login = await client.post("/admin/auth/login", json=credentials)
        finally:
            env.undo()
            get_settings.cache_clear()
    assert login.status_code == 200, login.text
    assert login.json()["clinic_timezone"] == "Asia/Urumqi"
