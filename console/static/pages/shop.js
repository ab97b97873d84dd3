// Money-product screens: the catalogue and top-up plans (campaign), coupon templates (campaign), the prepaid
// liability of stored value (finance). Rules live in the /admin API; these pages only show and switch.
import { defineComponent, h, reactive, onMounted } from "vue";
import { ElDatePicker, ElDescriptions, ElDescriptionsItem, ElMessage, ElTag } from "element-plus";
import { api } from "../api.js";
import { yuan } from "../money.js";
import { button, listView, refusal, refusalText, title, today } from "../ui.js";

const KINDS = { service: "单次项目", course: "次卡", package: "套餐卡", product: "商品", topup: "储值方案" };
const COUPON_KINDS = { cash_off: "满减", percent_off: "折扣", free_service: "免费项目" };

function switchProduct(row, reload) {
  return button(row.is_active ? "下架" : "上架", async () => {
    try {
      await api.patch(`/admin/shop/products/${row.id}`, { is_active: !row.is_active });
      ElMessage.success("已更新");
      reload();
    } catch (error) {
      ElMessage.error(refusalText(error));
    }
  }, { "data-test": `product-switch-${row.id}` });
}

const onSale = (r) => h(ElTag, { size: "small", type: r.is_active ? "success" : "info" }, () => (r.is_active ? "在售" : "已下架"));

const Catalogue = listView({
  title: "商品目录",
  path: "/admin/shop/products",
  filters: [{ key: "kind", label: "类型", type: "select", width: "130px",
    options: Object.entries(KINDS).filter(([k]) => k !== "topup") }],
  empty: "目录为空",
  columns: [
    { label: "商品", minWidth: 200, render: (r) => h("div", [h("div", r.name), h("div", { class: "muted" },
      `${KINDS[r.kind]} · ${r.category || "—"}${r.items.length ? " · " + r.items.map((i) => `${i.title}×${i.sessions}`).join("，") : ""}`)]) },
    { label: "价格", width: 110, render: (r) => yuan(r.price_fen) },
    { label: "会员价", minWidth: 140, render: (r) => (r.member_prices.length
      ? r.member_prices.map((m) => `等级#${m.tier_id} ${yuan(m.price_fen)}`).join("，") : "—") },
    { label: "有效期", width: 90, render: (r) => (r.validity_days ? `${r.validity_days} 天` : "—") },
    { label: "状态", width: 90, render: onSale },
  ],
  actionsWidth: 100,
  actions: (r, reload) => [switchProduct(r, reload)],
});

const TopUpPlans = listView({
  title: "储值方案",
  path: "/admin/shop/products",
  defaults: () => ({ kind: "topup" }),
  empty: "还没有储值方案",
  columns: [
    { label: "方案", minWidth: 200, prop: "name" },
    { label: "充值（本金）", width: 130, render: (r) => yuan(r.price_fen) },
    { label: "赠送", width: 120, render: (r) => yuan(r.topup_bonus_fen) },
    { label: "到账", width: 130, render: (r) => yuan(r.price_fen + r.topup_bonus_fen) },
    { label: "状态", width: 90, render: onSale },
  ],
  actionsWidth: 100,
  actions: (r, reload) => [switchProduct(r, reload)],
});

const CouponTemplates = listView({
  title: "优惠券",
  path: "/admin/shop/coupon-templates",
  paged: false,
  empty: "还没有优惠券模板",
  columns: [
    { label: "优惠券", minWidth: 180, prop: "name" },
    { label: "类型", width: 90, render: (t) => COUPON_KINDS[t.kind] || t.kind },
    { label: "优惠", minWidth: 150, render: (t) => (t.kind === "cash_off" ? `满 ${yuan(t.threshold_fen)} 减 ${yuan(t.value_fen)}`
      : t.kind === "percent_off" ? `减 ${t.discount_bp / 100}%` : `免费：商品 #${t.free_product_id}`) },
    { label: "有效期", width: 100, render: (t) => `${t.valid_days} 天` },
    { label: "每人限领", width: 90, render: (t) => String(t.per_customer_limit) },
    { label: "可领取", width: 80, render: (t) => (t.claimable ? "是" : "否") },
  ],
});

const PrepaidLiability = defineComponent({
  setup() {
    const state = reactive({ date: today(), data: null, error: null });
    async function load() {
      try {
        state.data = await api.get("/admin/stored-value/liability", { date: state.date });
        state.error = null;
      } catch (error) {
        state.error = error;
      }
    }
    onMounted(load);
    return () => {
      const d = state.data;
      return h("div", [
        title("储值负债"),
        h("div", { class: "toolbar" }, [h(ElDatePicker, { modelValue: state.date, type: "date", valueFormat: "YYYY-MM-DD",
          clearable: false, "data-test": "liability-date",
          "onUpdate:modelValue": (v) => { state.date = v; load(); } })]),
        refusal(state.error),
        d ? h(ElDescriptions, { column: 2, border: true }, () => [
          h(ElDescriptionsItem, { label: "本金" }, () => h("span", { "data-test": "liability-principal" }, yuan(d.principal_fen))),
          h(ElDescriptionsItem, { label: "赠送金" }, () => h("span", { "data-test": "liability-bonus" }, yuan(d.bonus_fen))),
          h(ElDescriptionsItem, { label: "合计" }, () => h("span", { "data-test": "liability-total" }, yuan(d.total_fen))),
          h(ElDescriptionsItem, { label: "有余额的账户" }, () => String(d.accounts)),
          h(ElDescriptionsItem, { label: "截至" }, () => `${d.as_of} 日终（诊所当地时间）`),
        ]) : null,
      ]);
    };
  },
});

export const SHOP_CAMPAIGN = [
  { path: "/campaign/catalogue", title: "商品目录", roles: ["campaign"], component: Catalogue },
  { path: "/campaign/topup-plans", title: "储值方案", roles: ["campaign"], component: TopUpPlans },
  { path: "/campaign/coupons", title: "优惠券", roles: ["campaign"], component: CouponTemplates },
];
export const SHOP_FINANCE = [
  { path: "/finance/stored-value", title: "储值负债", roles: ["finance"], component: PrepaidLiability },
];
