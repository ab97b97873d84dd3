"""Fixtures of the campaigns tests: group buys are paid through the orders room's fake WeChat Pay."""

from tests.orders.conftest import fake_pay, live_gateway, no_deferred_leftovers, wechatpay  # noqa: F401
