// Every screen with the roles whose menu shows it (the first role names the menu group).
import { FRONT_DESK } from "./pages/frontdesk.js";
import { CAMPAIGN } from "./pages/campaign.js";
import { FINANCE } from "./pages/finance.js";
import { ADMIN } from "./pages/admin.js";
import { CRM } from "./pages/crm.js";
import { REPORTS } from "./pages/reports.js";
import { SHOP_CAMPAIGN, SHOP_FINANCE, SHOP_FRONT_DESK } from "./pages/shop.js";

export const SCREENS = [...FRONT_DESK, ...SHOP_FRONT_DESK, ...CAMPAIGN, ...SHOP_CAMPAIGN, ...CRM, ...FINANCE, ...SHOP_FINANCE, ...ADMIN, ...REPORTS];
