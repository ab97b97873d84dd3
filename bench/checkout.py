"""The checkout path of `python -m bench` (key `checkout`): customers buy a catalogue product with every source
at once (member price from their tier, a 满减 coupon, points as cash, stored value, WeChat Pay for the rest)
through POST /app/orders; its same-run baseline sends the same statements through aiomysql in one
transaction (the statement list the server's checkout issues, read from Tortoise's query log at DEBUG),
with the same rows, the same conditional updates and the same retry of a deadlock victim.

    python -m bench --only checkout            # or make bench BENCH_ARGS="--only checkout"

After every round the stored-value and points accounts of its customers are checked against their ledgers
and every order's parts against its total (`check_books`); a broken figure stops the run.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from bench.load import Request
from bench.paths import POINTS_EACH, BenchPath, Prepared, _bearer, _now, fund, make_customers
from bench.stack import Stack

PRICE = 20_000  # list price of the product
MEMBER_PRICE = 18_000  # the tier's price
COUPON_OFF, COUPON_THRESHOLD = 2_000, 10_000
POINTS_USED = 1_000
POINTS_CASH = 1_000  # at the default checkout rule, 100 points = ¥1 (100 fen)
STORED_VALUE = 5_000
WECHAT = MEMBER_PRICE - COUPON_OFF - POINTS_CASH - STORED_VALUE

_SHOP: dict[str, tuple[int, int, int]] = {}
_RAW_FAILURES: list[str] = []
RETRIES: list[int] = []  # deadlock victims the raw baseline ran again


async def _shop(stack: Stack) -> tuple[int, int, int]:
    """A tier with a member price, the product and a coupon template: one set per stack (setup, not measured)."""
    if stack.base not in _SHOP:
        now = _now()
        tier = await stack.sql(
            "INSERT INTO points_member_tier (level, name, min_spend_fen, min_referrals, `match`, multiplier_pct,"
            " benefits, is_active, created_at, updated_at) VALUES (%s,%s,NULL,NULL,'any',100,'',1,%s,%s)",
            (900 + len(_SHOP), f"Bench gold {secrets.token_hex(3)}", now, now))
        product = await stack.sql(
            "INSERT INTO shop_product (kind, name, category, description, price_fen, items, topup_bonus_fen,"
            " is_active, created_at, updated_at) VALUES ('product','Bench serum','skincare','',%s,'[]',0,1,%s,%s)",
            (PRICE, now, now))
        await stack.sql("INSERT INTO shop_product_member_price (product_id, tier_id, price_fen) VALUES (%s,%s,%s)",
                        (product, tier, MEMBER_PRICE))
        template = await stack.sql(
            "INSERT INTO shop_coupon_template (name, kind, value_fen, threshold_fen, discount_bp, product_ids,"
            " categories, valid_days, per_customer_limit, claimable, is_active, created_at, updated_at)"
            " VALUES ('Bench 满减','cash_off',%s,%s,0,'[]','[]',30,1,0,1,%s,%s)",
            (COUPON_OFF, COUPON_THRESHOLD, now, now))
        _SHOP[stack.base] = (tier, product, template)
    return _SHOP[stack.base]


async def _buyers(stack: Stack, n: int, tier: int, template: int) -> tuple[list[int], dict[int, int]]:
    """n customers in the tier, each with POINTS_EACH points, STORED_VALUE of principal and one coupon."""
    customers = await make_customers(stack, n)
    await fund(stack, customers)
    now = _now()
    marks = ",".join(["%s"] * len(customers))
    await stack.sql(f"UPDATE points_account SET tier_id=%s WHERE customer_id IN ({marks})", (tier, *customers))
    await stack.sql("INSERT INTO shop_stored_value_account (customer_id, principal_fen, bonus_fen, updated_at)"
                    " VALUES (%s,%s,0,%s)", many=[(c, STORED_VALUE, now) for c in customers])
    tag = secrets.token_hex(4)
    await stack.sql("INSERT INTO shop_stored_value_entry (customer_id, kind, principal_delta, bonus_delta, ref,"
                    " order_id, created_at) VALUES (%s,'topup',%s,0,%s,NULL,%s)",
                    many=[(c, STORED_VALUE, f"bench:{tag}:{c}", now) for c in customers])
    await stack.sql("INSERT INTO shop_coupon (template_id, customer_id, source, source_ref, status, valid_from,"
                    " valid_until, created_at) VALUES (%s,%s,'staff',%s,'available',%s,%s,%s)",
                    many=[(template, c, f"bench-{tag}", now - timedelta(minutes=1), now + timedelta(days=30), now)
                          for c in customers])
    rows = await stack.sql(f"SELECT customer_id, id FROM shop_coupon WHERE source_ref=%s AND customer_id IN ({marks})",
                           (f"bench-{tag}", *customers), fetch=True)
    return customers, {c: i for c, i in rows}


# The columns Tortoise selects: the baseline reads the same rows, not fewer columns.
_ACCOUNT = ("`balance`,`lifetime_earned`,`tier_changed_at`,`updated_at`,`created_at`,`id`,`shortfall`,`pending`,"
            "`tier_id`,`customer_id`")
_LOT = "`points`,`remaining`,`id`,`expires_at`,`entry_id`,`customer_id`,`earned_at`"
_SV = "`updated_at`,`principal_fen`,`id`,`bonus_fen`,`customer_id`"
_LOCK_CUSTOMER = "SELECT `id` `id` FROM `customer` WHERE `id` IN (%s) ORDER BY `id` ASC FOR UPDATE"


async def raw_checkout(stack: Stack, customer: int, coupon: int, product: int, tier: int, template: int) -> int:
    """The 32 statements POST /app/orders issues for this purchase (the guard's customer check, then 31 in
    its transaction), in the same order, with the same columns, through the raw driver: the customer and
    points locks, the quote's reads, the order, its line and outbox row, the order's split, the coupon's
    conditional update, the points spent through the ledger (its locks again, ref check, entry, balance, lot,
    lot use), the stored value (lock, account, ref check, conditional update, entry), the lines read back.
    Raises when a conditional update changed nothing (the seeded rows always allow it)."""
    now = _now()
    out_trade_no = "RB" + secrets.token_hex(11).upper()
    async with stack.raw_transaction() as tx:
        await tx.execute("SELECT 1 FROM `customer` WHERE `id`=%s AND `deleted_at` IS NULL LIMIT %s", (customer, 1))
        await tx.fetchone()
        # partners.lock_points: the customer, the points account, the spendable lots
        await tx.execute(_LOCK_CUSTOMER, (customer,))
        await tx.execute("SELECT 1 FROM `points_account` WHERE `customer_id`=%s LIMIT %s", (customer, 1))
        await tx.execute(f"SELECT {_ACCOUNT} FROM `points_account` WHERE `customer_id`=%s LIMIT %s FOR UPDATE",
                         (customer, 2))
        await tx.execute(f"SELECT {_LOT} FROM `points_lot` WHERE `customer_id`=%s AND `remaining`>%s FOR UPDATE",
                         (customer, 0))
        await tx.fetchone()
        # the quote: product, tier, member prices, coupon and template, rule, stored value
        await tx.execute("SELECT `validity_days`,`name`,`description`,`topup_bonus_fen`,`updated_at`,`created_at`,"
                         "`id`,`category`,`price_fen`,`kind`,`is_active`,`items`,`branch_id` FROM `shop_product`"
                         " WHERE `id` IN (%s) AND `is_active`=%s", (product, True))
        await tx.execute("SELECT `name`,`level`,`min_spend_fen`,`min_referrals`,`match`,`multiplier_pct`,`benefits`,`is_active`,`created_at`,`updated_at`,`id` FROM `points_member_tier` WHERE `id`=%s LIMIT %s", (tier, 2))
        await tx.execute("SELECT `product_id`,`id`,`price_fen`,`tier_id` FROM `shop_product_member_price`"
                         " WHERE `product_id` IN (%s)", (product,))
        await tx.execute("SELECT `template_id`,`created_at`,`id`,`valid_from`,`valid_until`,`order_id`,`status`,"
                         "`source`,`customer_id`,`source_ref`,`used_at` FROM `shop_coupon` WHERE `id`=%s AND"
                         " `customer_id`=%s LIMIT %s", (coupon, customer, 2))
        await tx.execute("SELECT `value_fen`,`valid_days`,`name`,`updated_at`,`discount_bp`,`categories`,"
                         "`threshold_fen`,`id`,`created_at`,`valid_until`,`product_ids`,`claimable`,"
                         "`free_product_id`,`per_customer_limit`,`kind`,`is_active` FROM `shop_coupon_template`"
                         " WHERE `id`=%s LIMIT %s", (template, 2))
        await tx.execute("SELECT `points_per_yuan`,`id`,`updated_at`,`points_max_share_bp` FROM `shop_checkout_rule`"
                         " WHERE `id`=%s LIMIT %s", (1, 2))
        await tx.execute(f"SELECT {_SV} FROM `shop_stored_value_account` WHERE `customer_id`=%s LIMIT %s", (customer, 2))
        # the order, its line, its close-unpaid outbox row, then its split
        await tx.execute(
            "INSERT INTO `shop_order` (`out_trade_no`,`description`,`total_fen`,`status`,`transaction_id`,"
            "`prepay_id`,`expires_at`,`paid_fen`,`refund_reserved_fen`,`refunded_fen`,`close_reason`,`created_at`,"
            "`paid_at`,`paid_handled_at`,`fulfilled_at`,`closed_at`,`refunded_at`,`list_fen`,`member_discount_fen`,"
            "`coupon_id`,`coupon_fen`,`points_used`,`points_cash_fen`,`stored_value_fen`,`wechat_fen`,`customer_id`)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (out_trade_no, "Bench serum", MEMBER_PRICE, "pending_payment", None, None, now + timedelta(minutes=15),
             0, 0, 0, "", now, None, None, None, None, None, None, 0, None, 0, 0, 0, 0, None, customer))
        order = tx.lastrowid
        await tx.execute("INSERT INTO `shop_order_line` (`kind`,`ref_id`,`title`,`quantity`,`unit_price_fen`,"
                         "`amount_fen`,`released_at`,`order_id`) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                         ("goods", product, "Bench serum", 1, MEMBER_PRICE, MEMBER_PRICE, None, order))
        await tx.execute("INSERT INTO `outbox_message` (`job_name`,`args`,`run_at`,`created_at`,`delivered_at`,"
                         "`attempts`,`last_error`) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                         ("bench.raw_close_unpaid", json.dumps([order]), now + timedelta(days=3650), now, None, 0, ""))
        await tx.execute("UPDATE `shop_order` SET `list_fen`=%s,`member_discount_fen`=%s,`coupon_id`=%s,`coupon_fen`=%s,"
                         "`points_used`=%s,`points_cash_fen`=%s,`stored_value_fen`=%s,`wechat_fen`=%s WHERE `id`=%s",
                         (PRICE, PRICE - MEMBER_PRICE, coupon, COUPON_OFF, POINTS_USED, POINTS_CASH,
                          STORED_VALUE, WECHAT, order))
        taken = await tx.execute("UPDATE `shop_coupon` SET `status`=%s,`order_id`=%s,`used_at`=NULL WHERE `id`=%s AND"
                                 " `customer_id`=%s AND `status`=%s AND `valid_until`>%s",
                                 ("locked", order, coupon, customer, "available", now))
        # the points spent as cash, through the ledger
        await tx.execute(_LOCK_CUSTOMER, (customer,))
        await tx.execute("SELECT 1 FROM `points_account` WHERE `customer_id`=%s LIMIT %s", (customer, 1))
        await tx.execute(f"SELECT {_ACCOUNT} FROM `points_account` WHERE `customer_id`=%s LIMIT %s FOR UPDATE",
                         (customer, 2))
        account = await tx.fetchone()
        await tx.execute("SELECT `balance_after`,`id`,`expires_at`,`detail`,`original_ref`,`reason`,`ref`,`kind`,"
                         "`delta`,`customer_id`,`occurred_at` FROM `points_ledger_entry` WHERE `ref`=%s LIMIT %s",
                         (f"order_points:raw{order}", 2))
        await tx.execute(f"SELECT {_LOT} FROM `points_lot` WHERE `customer_id`=%s AND `remaining`>%s FOR UPDATE",
                         (customer, 0))
        lot = await tx.fetchone()
        await tx.execute("INSERT INTO `points_ledger_entry` (`delta`,`kind`,`ref`,`reason`,`balance_after`,`expires_at`,"
                         "`original_ref`,`detail`,`occurred_at`,`customer_id`) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                         (-POINTS_USED, "redemption", f"order_points:raw{order}", f"Points as cash, order {order}",
                          account[0] - POINTS_USED, None, None, "{}", now, customer))
        entry = tx.lastrowid
        debited = await tx.execute("UPDATE `points_account` SET `balance`=`balance`+%s,`updated_at`=%s WHERE `id`=%s"
                                   " AND `balance`>=%s", (-POINTS_USED, now, account[5], POINTS_USED))
        used = await tx.execute("UPDATE `points_lot` SET `remaining`=`remaining`-%s WHERE `id`=%s AND `remaining`>=%s",
                                (POINTS_USED, lot[2], POINTS_USED))
        await tx.execute("INSERT INTO `points_lot_use` (`points`,`restored`,`entry_id`,`lot_id`) VALUES (%s,%s,%s,%s)",
                         (POINTS_USED, 0, entry, lot[2]))
        # the stored value: the customer lock and account (every stored-value change takes them), the ref check,
        # the conditional update and the entry
        await tx.execute(_LOCK_CUSTOMER, (customer,))
        await tx.execute(f"SELECT {_SV} FROM `shop_stored_value_account` WHERE `customer_id`=%s LIMIT %s",
                         (customer, 2))
        await tx.execute("SELECT 1 FROM `shop_stored_value_entry` WHERE `ref`=%s LIMIT %s", (f"spend:raw{order}", 1))
        spent = await tx.execute(
            "UPDATE `shop_stored_value_account` SET `principal_fen`=`principal_fen`+%s,`bonus_fen`=`bonus_fen`+%s,"
            "`updated_at`=%s WHERE `customer_id`=%s AND `principal_fen`>=%s AND `bonus_fen`>=%s",
            (-STORED_VALUE, 0, now, customer, STORED_VALUE, 0))
        await tx.execute("INSERT INTO `shop_stored_value_entry` (`kind`,`principal_delta`,`bonus_delta`,`ref`,`order_id`,"
                         "`created_at`,`customer_id`) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                         ("spend", -STORED_VALUE, 0, f"spend:raw{order}", order, now, customer))
        # the lines read back for the response
        await tx.execute("SELECT `title`,`amount_fen`,`id`,`unit_price_fen`,`order_id`,`released_at`,`ref_id`,"
                         "`quantity`,`kind` FROM `shop_order_line` WHERE `order_id`=%s ORDER BY `id` ASC", (order,))
        if not (taken and debited and used and spent):
            raise RuntimeError(f"raw checkout of customer {customer}: a conditional update changed nothing")
    return 201


async def _with_retries(attempt, attempts: int = 4) -> int:
    """Run again when InnoDB picks the transaction as a deadlock victim, as the server's `run_in_transaction`
    does (both paths meet deadlocks here; the server's answers are 201 because it retries too)."""
    from kernel.db import is_retryable

    for i in range(attempts):
        try:
            return await attempt()
        except Exception as exc:
            if i == attempts - 1 or not is_retryable(exc):
                raise
            RETRIES.append(1)
    raise AssertionError("unreachable")


async def check_books(stack: Stack) -> None:
    """Every stored-value and points account equals its ledger and is not negative; every order's parts add up."""
    broken = await stack.sql(
        "SELECT COUNT(*) FROM shop_stored_value_account a WHERE principal_fen < 0 OR bonus_fen < 0 OR"
        " principal_fen + bonus_fen <> (SELECT COALESCE(SUM(principal_delta + bonus_delta), 0)"
        " FROM shop_stored_value_entry e WHERE e.customer_id = a.customer_id)", fetch=True)
    points = await stack.sql(
        "SELECT COUNT(*) FROM points_account a WHERE balance < 0 OR balance <> (SELECT COALESCE(SUM(delta), 0)"
        " FROM points_ledger_entry e WHERE e.customer_id = a.customer_id)", fetch=True)
    unbalanced = await stack.sql(
        "SELECT COUNT(*) FROM shop_order WHERE list_fen IS NOT NULL AND total_fen <>"
        " coupon_fen + points_cash_fen + stored_value_fen + wechat_fen", fetch=True)
    counts = (broken[0][0], points[0][0], unbalanced[0][0])
    if any(counts):
        raise SystemExit(f"books broken after a checkout round: stored value {counts[0]}, points {counts[1]},"
                         f" orders {counts[2]}")


async def prep_checkout(stack: Stack, n: int) -> Prepared:
    tier, product, template = await _shop(stack)
    await check_books(stack)  # the previous round's writes, now that they are all in
    if RETRIES:
        print(f"  (raw baseline: {len(RETRIES)} deadlock victims run again so far)", flush=True)
    http_ids, http_coupons = await _buyers(stack, n, tier, template)
    raw_ids, raw_coupons = await _buyers(stack, n, tier, template)
    requests = []
    for c in http_ids:
        body = json.dumps({"items": [{"product_id": product}], "coupon_id": http_coupons[c], "use_points": True,
                           "max_points": POINTS_USED, "use_stored_value": True, "expected_wechat_fen": WECHAT})
        requests.append(Request("POST", "/app/orders", body, {**_bearer(stack, c), "Content-Type": "application/json"}))

    async def raw(i: int) -> int:
        c = raw_ids[i]
        try:
            return await _with_retries(lambda: raw_checkout(stack, c, raw_coupons[c], product, tier, template))
        except Exception as exc:  # counted by run_raw under its type; the first message is shown once
            if not _RAW_FAILURES:
                print(f"raw checkout failed: {exc!r}"[:400], flush=True)
            _RAW_FAILURES.append(repr(exc))
            raise

    return Prepared(requests, raw)


assert POINTS_USED <= POINTS_EACH
CHECKOUT = BenchPath("checkout", "Checkout with every source", "POST /app/orders",
                     "the same 32 statements through the raw driver, one transaction", prep_checkout, write=True)
