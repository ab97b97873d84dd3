"""MariaDB drops our connections: requests get a clear 503 (never a 500) and the pool recovers."""

from __future__ import annotations

import aiomysql

from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, TEST_DATABASE
from tests.factories import customer_headers, make_customer


async def kill_app_connections() -> int:
    """Kill every server-side connection using the test database, as a failover or a proxy restart would."""
    admin = await aiomysql.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True
    )
    killed = 0
    try:
        async with admin.cursor() as cur:
            await cur.execute("SELECT CONNECTION_ID()")
            (own_id,) = await cur.fetchone()
            await cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s", (TEST_DATABASE, own_id)
            )
            for (connection_id,) in await cur.fetchall():
                try:
                    await cur.execute(f"KILL CONNECTION {int(connection_id)}")
                    killed += 1
                except aiomysql.Error:
                    pass  # it went away by itself
    finally:
        admin.close()
    return killed


async def test_dropped_connections_give_503_then_recover(client):
    customer = await make_customer()
    headers = customer_headers(customer)
    assert (await client.get("/app/me", headers=headers)).status_code == 200

    assert await kill_app_connections() >= 1
    statuses = []
    for _ in range(6):
        response = await client.get("/app/me", headers=headers)
        statuses.append(response.status_code)
        assert response.status_code in {200, 503}, response.text
        if response.status_code == 503:
            assert response.json()["code"] == "database_unavailable"
            assert response.headers["retry-after"]
    # Whatever the dead connections cost, the pool hands out fresh ones and requests succeed again.
    assert statuses[-3:] == [200, 200, 200], statuses


async def test_a_value_the_column_cannot_hold_is_a_422_not_an_outage(app):
    """Schemas should cap numbers first; when one slips through, MySQL's refusal is not 'retry later'."""
    import pymysql
    from tortoise.exceptions import OperationalError

    from api.errors import operational_error_handler

    try:
        raise pymysql.err.DataError(1264, "Out of range value for column 'sort_order' at row 1")
    except pymysql.err.DataError as driver_error:
        wrapped = OperationalError(driver_error)
    response = operational_error_handler(None, wrapped)
    assert response.status_code == 422 and response.content["code"] == "value_out_of_range"

    lost = OperationalError(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))
    assert operational_error_handler(None, lost).status_code == 503
