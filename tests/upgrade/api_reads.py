"""The API reads an upgrade must answer the same: which requests, and how they are taken.

Used twice: by the previous release's populate script (its answers are committed) and by the upgrade
test on the current code after migrating. It speaks HTTP only, plus the clock, which is frozen at the
instant of the recorded reads so answers that depend on "now" (expiring points, cancel windows) compare.
Logging in writes `last_login_at`; with the clock frozen it writes the same value both times.
"""

from __future__ import annotations

from datetime import datetime

import httpx

# Per customer: everything they see of their money, points, vouchers, visits and friends.
CUSTOMER_READS = [
    "/app/me", "/app/points", "/app/points/ledger", "/app/vouchers", "/app/mall/redemptions",
    "/app/bookings", "/app/orders", "/app/referrals",
]
# Staff views of the same records: finance, front desk, campaign.
STAFF_READS = [
    "/admin/settlements", "/admin/referrals/rewards", "/admin/referrals/bindings", "/admin/mall/redemptions",
    "/admin/points/liability", "/admin/consumptions", "/admin/orders", "/admin/campaigns",
]


async def plan_reads(http: httpx.AsyncClient, subjects: dict, staff_username: str, staff_password: str,
                     read_at: datetime) -> list[dict]:
    """Every request to record: per customer, per staff list, and per record found in those lists."""
    customers = subjects["customers"]
    plan = [{"who": name, "path": path} for name in sorted(customers) for path in CUSTOMER_READS]
    plan += [{"who": f"friend-{state}", "path": path} for state in FRIEND_STATES for path in CUSTOMER_READS[:3]]
    plan += [{"who": "staff", "path": path} for path in STAFF_READS]
    for customer_id in sorted(customers.values()):
        plan += [{"who": "staff", "path": f"/admin/points/customers/{customer_id}"},
                 {"who": "staff", "path": f"/admin/points/customers/{customer_id}/ledger"},
                 {"who": "staff", "path": f"/admin/customers/{customer_id}"}]
    answers = await take_reads(http, [{"who": "staff", "path": "/admin/settlements"},
                                      {"who": "staff", "path": "/admin/orders"}],
                               staff_username, staff_password, read_at)
    for batch in _items(answers[0]["body"]):
        plan.append({"who": "staff", "path": f"/admin/settlements/{batch['id']}"})
    for order in _items(answers[1]["body"]):
        plan.append({"who": "staff", "path": f"/admin/orders/{order['id']}"})
    for group_id in subjects["groups"].values():
        plan.append({"who": "alice", "path": f"/app/groups/{group_id}"})
    for campaign_id in subjects["campaigns"]:
        plan.append({"who": "staff", "path": f"/admin/campaigns/{campaign_id}"})
        plan.append({"who": "staff", "path": f"/admin/campaigns/{campaign_id}/stats"})
    return plan


def _items(body):
    return body if isinstance(body, list) else body["items"]


FRIEND_STATES = ["paid", "cancelled", "expired", "batched", "payable", "held", "pending", "invited"]


async def take_reads(http: httpx.AsyncClient, plan: list[dict], staff_username: str, staff_password: str,
                     read_at: datetime) -> list[dict]:
    from kernel import clock

    tokens: dict[str, str] = {}
    answers = []
    with clock.frozen_at(read_at):
        for request in plan:
            who = request["who"]
            if who not in tokens:
                if who == "staff":
                    r = await http.post("/admin/auth/login", json={"username": staff_username,
                                                                   "password": staff_password})
                else:
                    r = await http.post("/app/auth/login", json={"code": f"sandbox:{who}"})
                r.raise_for_status()
                tokens[who] = r.json()["access_token"]
            r = await http.get(request["path"], headers={"Authorization": f"Bearer {tokens[who]}"})
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
            answers.append({**request, "status": r.status_code, "body": body})
    return answers
