"""Orders and payments: order lines, WeChat Pay (JSAPI) and the sandbox gateway, notifications, refunds."""
