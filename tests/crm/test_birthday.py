"""Birthday gift: one voucher in the birthday month, once a year, by the clinic's calendar (also across the
year boundary, where UTC and Shanghai disagree on the year)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from crm import tasks
from crm.models import BirthdayGift
from crm.partners import BIRTHDAY_VOUCHER_SOURCE
from kernel import clock
from points_mall.models import Voucher
from tests.factories import make_customer

SH = ZoneInfo("Asia/Shanghai")


async def _gifts(customer_id: int) -> list[str]:
    return sorted(await Voucher.filter(customer_id=customer_id, source_type=BIRTHDAY_VOUCHER_SOURCE)
                  .values_list("source_id", flat=True))


async def test_once_a_year_across_the_year_boundary():
    december = await make_customer(birth_date=date(1990, 12, 31))
    january = await make_customer(birth_date=date(1992, 1, 1))
    no_birthday = await make_customer()
    # Run the daily job (twice a day) from 1 Dec 2026 to 31 Jan 2028, at 01:20 Shanghai = 17:20 UTC the day before.
    day = datetime(2026, 12, 1, 1, 20, tzinfo=SH)
    while day < datetime(2028, 2, 1, tzinfo=SH):
        clock.set_now(day)
        await tasks.birthday_gifts({})
        await tasks.birthday_gifts({})
        day += timedelta(days=1)
    assert await _gifts(december.id) == [f"{december.id}:2026", f"{december.id}:2027"]
    assert await _gifts(january.id) == [f"{january.id}:2027", f"{january.id}:2028"]
    assert await _gifts(no_birthday.id) == []
    assert await BirthdayGift.filter(customer_id__in=[december.id, january.id]).count() == 4


async def test_the_local_new_year_counts_not_utc():
    january = await make_customer(birth_date=date(1995, 1, 15))
    # 31 Dec 2026 16:30 UTC is already 1 Jan 2027 00:30 in Shanghai: January birthdays get 2027's gift now.
    clock.set_now(datetime(2026, 12, 31, 16, 30, tzinfo=ZoneInfo("UTC")))
    await tasks.birthday_gifts({})
    assert await _gifts(january.id) == [f"{january.id}:2027"]
    voucher = await Voucher.get(customer_id=january.id, source_type=BIRTHDAY_VOUCHER_SOURCE)
    assert voucher.valid_until > clock.now()
