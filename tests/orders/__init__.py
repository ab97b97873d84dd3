"""Tests of the orders room: orders, WeChat Pay, notifications, refunds, finance."""
