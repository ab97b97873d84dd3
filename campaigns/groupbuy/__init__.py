"""Group buys: campaigns (category group buys 品类团购 and bestie cards 闺蜜卡), SKUs, groups, entries, settlement."""
