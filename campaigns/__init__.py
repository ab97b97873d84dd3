"""Campaigns: group buys and bestie cards (闺蜜卡) in `groupbuy/`, referral programs, rewards and settlement in
`referrals/`; orders and payments are the `orders` room's."""
