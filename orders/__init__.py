"""Orders and payments: the catalogue, quote and checkout (member price, coupon, points, stored value, WeChat
Pay), coupons, stored-value and package cards, WeChat Pay (JSAPI) and the sandbox gateway, refunds."""
