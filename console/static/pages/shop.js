// Money-product screens: the catalogue and top-up plans (campaign), coupon templates (campaign), package-card
// redemption (front desk), the prepaid liability of stored value (finance), with their create and edit forms.
// Rules live in the /admin API: the forms send what staff typed (yuan as fen) and show the API's refusal under
// the field it names.
import { defineComponent, h, reactive, onMounted, shallowRef } from "vue";
import {
  ElButton, ElCheckbox, ElDatePicker, ElDescriptions, ElDescriptionsItem, ElDialog, ElForm, ElFormItem, ElInput,
  ElInputNumber, ElMessage, ElOption, ElSelect, ElTag,
} from "element-plus";
import { api } from "../api.js";
import { fenToYuanText, yuan, yuanToFen } from "../money.js";
import {
  CLINIC_DATETIME_PICKER, button, clinicInstant, clinicToday, clinicWallClock, listView, refusal, refusalText, time, title,
} from "../ui.js";
import { desk, loadCatalogue } from "./frontdesk.js";

const KINDS = { service: "单次项目", course: "次卡", package: "套餐卡", product: "商品", topup: "储值方案" };
const CARD_KINDS = ["service", "course", "package"];
const COUPON_KINDS = { cash_off: "满减", percent_off: "折扣", free_service: "免费项目" };

// On / off (sale, or use) with the row's own PATCH; the list reloads to show what the API now holds.
function switchActive(row, path, [on, off], test, reload) {
  return button(row.is_active ? off : on, async () => {
    try {
      await api.patch(path, { is_active: !row.is_active });
      ElMessage.success("已更新");
      reload();
    } catch (error) {
      ElMessage.error(refusalText(error));
    }
  }, { "data-test": test });
}

const switchProduct = (row, reload) => switchActive(row, `/admin/shop/products/${row.id}`, ["上架", "下架"],
  `product-switch-${row.id}`, reload);

const onSale = (r) => h(ElTag, { size: "small", type: r.is_active ? "success" : "info" }, () => (r.is_active ? "在售" : "已下架"));

const bind = (obj, key, extra = {}) => ({ modelValue: obj[key], "onUpdate:modelValue": (v) => { obj[key] = v; }, ...extra });

// A form item that shows the error of the field it names (the API's detail.field, or the form's own check).
function fieldItem(state, label, field, control) {
  return h(ElFormItem, { label, error: state.errors[field], "data-field": field }, () => control);
}

// Yuan typed, fen sent; a malformed amount is named under its field before anything is sent.
function money(errors, field, text, { optional = false } = {}) {
  if (optional && String(text ?? "").trim() === "") return null;
  const fen = yuanToFen(text);
  if (fen === null) errors[field] = "请输入金额（元，最多两位小数）";
  return fen;
}

// Send a form: on success close it and reload the list; a refusal naming a field lands under that field
// (`mapField` turns the API's name into the form's), any other refusal above the form.
async function submit(state, send, onSaved, mapField = (field) => field) {
  state.busy = true;
  try {
    await send();
    state.open = false;
    ElMessage.success("已保存");
    onSaved();
  } catch (error) {
    const field = mapField(error.detail && error.detail.field);
    state.errors = field ? { [field]: error.message } : {};
    state.error = field ? null : error;
  } finally {
    state.busy = false;
  }
}

// Tiers and branches the product form offers (read once per form opening; the API checks them again).
async function references() {
  const [tiers, branches] = await Promise.all([
    api.get("/admin/points/tiers").catch(() => []),
    api.get("/admin/catalogue/branches").then((b) => b.items).catch(() => []),
  ]);
  return { tiers: Array.isArray(tiers) ? tiers : tiers.items || [], branches };
}

// The product editor, for the catalogue and (topup: true) for top-up plans. Kind, branch and sessions are fixed
// once created (cards already sold hold them); price, texts, validity, bonus and member prices can change.
function productEditor({ topup, onSaved }) {
  const state = reactive({ open: false, id: null, errors: {}, error: null, busy: false, form: null, tiers: [],
    branches: [], tierOfSent: [] });
  async function open(product) {
    const p = product || {};
    const given = Object.fromEntries((p.member_prices || []).map((m) => [m.tier_id, fenToYuanText(m.price_fen)]));
    const refs = await references();
    Object.assign(state, refs);
    state.form = {
      kind: p.kind || (topup ? "topup" : "course"), name: p.name || "", category: p.category || "",
      description: p.description || "", price: fenToYuanText(p.price_fen), branch_id: p.branch_id ?? null,
      items: (p.items || [{ title: "", sessions: 3 }]).map((i) => ({ ...i })), validity_days: p.validity_days ?? 365,
      bonus: fenToYuanText(p.topup_bonus_fen ?? 0), is_active: p.is_active ?? true,
      member: Object.fromEntries(refs.tiers.map((t) => [t.id, given[t.id] || ""])),
    };
    Object.assign(state, { id: p.id || null, errors: {}, error: null, open: true });
  }
  function body(errors) {
    const f = state.form;
    const cards = CARD_KINDS.includes(f.kind);
    const sent = state.tiers.filter((t) => String(f.member[t.id] || "").trim() !== "");
    state.tierOfSent = sent.map((t) => t.id);
    const fields = {
      name: f.name, category: f.category, description: f.description,
      price_fen: money(errors, "price_fen", f.price),
      validity_days: cards ? f.validity_days : null,
      topup_bonus_fen: f.kind === "topup" ? money(errors, "topup_bonus_fen", f.bonus) : 0,
      member_prices: f.kind === "topup" ? [] : sent.map((t) => ({ tier_id: t.id,
        price_fen: money(errors, `member_prices[tier:${t.id}]`, f.member[t.id]) })),
      is_active: f.is_active,
    };
    if (state.id !== null) {
      if (f.kind === "topup") delete fields.member_prices;
      if (!cards) delete fields.validity_days;
      return fields;
    }
    return { ...fields, kind: f.kind, branch_id: cards ? f.branch_id : null,
      items: cards ? f.items.map((i) => ({ title: i.title, sessions: f.kind === "service" ? 1 : i.sessions })) : [] };
  }
  // "member_prices[1].price_fen" names the second tier sent; the form shows it under that tier's row.
  function formField(field) {
    const m = field && field.match(/^member_prices\[(\d+)\]/);
    return m && state.tierOfSent[Number(m[1])] !== undefined ? `member_prices[tier:${state.tierOfSent[Number(m[1])]}]` : field;
  }
  async function save() {
    const errors = {};
    const sent = body(errors);
    state.errors = errors;
    state.error = null;
    if (Object.keys(errors).length) return;
    await submit(state, () => (state.id === null ? api.post("/admin/shop/products", sent)
      : api.patch(`/admin/shop/products/${state.id}`, sent)), onSaved, formField);
  }
  const item = (label, field, control) => fieldItem(state, label, field, control);
  const Dialog = defineComponent({
    setup() {
      return () => {
        if (!state.open) return null;
        const f = state.form;
        const creating = state.id === null;
        const cards = CARD_KINDS.includes(f.kind);
        const noun = topup ? "储值方案" : "商品";
        return h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; }, width: "760px",
          title: creating ? `新建${noun}` : `编辑${noun} #${state.id}`, top: "4vh" }, {
          default: () => [
            refusal(state.error),
            !creating && cards ? h("p", { class: "muted" }, "类型、院区和所含项目在创建后不可修改（已售出的卡按购买时的内容核销）。") : null,
            h(ElForm, { labelWidth: "130px", "data-test": "product-form" }, () => [
              topup ? null : item("类型", "kind", h(ElSelect, bind(f, "kind", { disabled: !creating, style: { width: "200px" },
                "data-test": "product-kind" }), () => Object.entries(KINDS).filter(([k]) => k !== "topup" || !creating)
                .map(([value, label]) => h(ElOption, { value, label })))),
              item(topup ? "方案名称" : "名称", "name", h(ElInput, bind(f, "name", { "data-test": "product-name" }))),
              topup ? null : item("分类", "category", h(ElInput, bind(f, "category", { style: { width: "200px" },
                placeholder: "如 skin、injection", "data-test": "product-category" }))),
              item(topup ? "充值金额（元，本金）" : "价格（元）", "price_fen", h(ElInput, bind(f, "price", { style: { width: "160px" },
                "data-test": "product-price" }))),
              f.kind === "topup" ? item("赠送（元）", "topup_bonus_fen", h(ElInput, bind(f, "bonus", { style: { width: "160px" },
                "data-test": "product-bonus" }))) : null,
              cards ? item("所含项目", "items", h("div", { style: { width: "100%" } }, [
                ...f.items.map((it, i) => h("div", { class: "toolbar", "data-test": `product-item-${i}` }, [
                  item("", `items[${i}].title`, h(ElInput, bind(it, "title", { disabled: !creating, placeholder: "项目名称",
                    style: { width: "220px" }, "data-test": `product-item-${i}-title` }))),
                  f.kind === "service" ? h("span", { class: "muted" }, "1 次") : item("", `items[${i}].sessions`,
                    h(ElInputNumber, bind(it, "sessions", { disabled: !creating, min: 1, max: 100, style: { width: "120px" },
                      "data-test": `product-item-${i}-sessions` }))),
                  f.kind === "package" && creating && f.items.length > 1 ? button("删除", () => f.items.splice(i, 1), { link: true, type: "danger" }) : null,
                ])),
                f.kind === "package" && creating ? button("添加项目", () => f.items.push({ title: "", sessions: 1 }), { link: true, type: "primary" }) : null,
              ])) : null,
              cards ? item("有效期（天）", "validity_days", h(ElInputNumber, bind(f, "validity_days", { min: 1, max: 3650 }))) : null,
              cards ? item("核销院区", "branch_id", h(ElSelect, bind(f, "branch_id", { disabled: !creating, clearable: true,
                placeholder: "全部院区", style: { width: "200px" } }), () => state.branches.map((b) => h(ElOption, { value: b.id, label: b.name })))) : null,
              f.kind === "topup" ? null : item("会员价（元）", "member_prices", h("div", { style: { width: "100%" } }, state.tiers.length
                ? state.tiers.map((t) => item(`${t.name}${t.is_active ? "" : "（已停用）"}`, `member_prices[tier:${t.id}]`,
                  h(ElInput, { modelValue: f.member[t.id], "onUpdate:modelValue": (v) => { f.member[t.id] = v; },
                    placeholder: "不设（按原价）", style: { width: "160px" }, "data-test": `member-price-${t.level}` })))
                : h("span", { class: "muted" }, "还没有会员等级"))),
              item("说明", "description", h(ElInput, bind(f, "description", { type: "textarea", rows: 2 }))),
              item("", "is_active", h(ElCheckbox, bind(f, "is_active", { "data-test": "product-active" }), () => "在售")),
            ]),
          ],
          footer: () => [
            h(ElButton, { onClick: () => { state.open = false; } }, () => "取消"),
            h(ElButton, { type: "primary", loading: state.busy, onClick: save, "data-test": "product-save" }, () => "保存"),
          ],
        });
      };
    },
  });
  return { open, Dialog };
}

// A list screen with its editor: the "new" button in the toolbar, "edit" beside each row's switch.
// Points as cash at checkout (step 4): the rate and the largest share of an order, one rule for the clinic.
const CheckoutRule = defineComponent({
  setup() {
    const state = reactive({ rule: null, errors: {}, error: null, busy: false, saved: false });
    onMounted(async () => {
      try {
        const rule = await api.get("/admin/shop/checkout-rule");
        state.rule = { points_per_yuan: rule.points_per_yuan, share: rule.points_max_share_bp / 100 };
      } catch (error) { state.error = error; }
    });
    async function save() {
      state.busy = true;
      try {
        await api.put("/admin/shop/checkout-rule", { points_per_yuan: state.rule.points_per_yuan,
          points_max_share_bp: Math.round(Number(state.rule.share) * 100) });
        state.errors = {};
        state.error = null;
        ElMessage.success("已保存");
      } catch (error) {
        const field = error.detail && error.detail.field;
        state.errors = field ? { [field]: error.message } : {};
        state.error = field ? null : error;
      } finally {
        state.busy = false;
      }
    }
    return () => h("div", { class: "checkout-rule", "data-test": "checkout-rule" }, [
      h("h3", "积分抵现规则"),
      refusal(state.error),
      state.rule ? h(ElForm, { inline: true }, () => [
        fieldItem(state, "多少积分抵 1 元", "points_per_yuan", h(ElInputNumber, bind(state.rule, "points_per_yuan",
          { min: 1, max: 100000, "data-test": "rule-rate" }))),
        fieldItem(state, "最多抵订单的（%）", "points_max_share_bp", h(ElInputNumber, bind(state.rule, "share",
          { min: 0, max: 100, precision: 2, "data-test": "rule-share" }))),
        h(ElFormItem, null, () => h(ElButton, { type: "primary", loading: state.busy, onClick: save, "data-test": "rule-save" }, () => "保存")),
      ]) : null,
    ]);
  },
});

function withEditor(options, editorOptions, newLabel, below = null) {
  return defineComponent({
    setup() {
      const list = shallowRef(null);
      const editor = productEditor({ ...editorOptions, onSaved: () => list.value && list.value.reload() });
      onMounted(loadTierNames);
      const List = listView({
        ...options,
        toolbar: () => h(ElButton, { type: "primary", onClick: () => editor.open(null), "data-test": "product-new" }, () => newLabel),
        actionsWidth: 150,
        actions: (r, reload) => [button("编辑", () => editor.open(r), { "data-test": `product-edit-${r.id}` }), switchProduct(r, reload)],
      });
      return () => h("div", [h(List, { ref: list }), below ? h(below) : null, h(editor.Dialog)]);
    },
  });
}

const tierNames = shallowRef({});
async function loadTierNames() {
  try {
    const tiers = await api.get("/admin/points/tiers");
    tierNames.value = Object.fromEntries((Array.isArray(tiers) ? tiers : tiers.items || []).map((t) => [t.id, t.name]));
  } catch (_) { /* ids are shown instead */ }
}

const Catalogue = withEditor({
  title: "商品目录",
  path: "/admin/shop/products",
  filters: [{ key: "kind", label: "类型", type: "select", width: "130px",
    options: Object.entries(KINDS).filter(([k]) => k !== "topup") }],
  empty: "目录为空，点“新建商品”开始",
  columns: [
    { label: "商品", minWidth: 200, render: (r) => h("div", [h("div", r.name), h("div", { class: "muted" },
      `${KINDS[r.kind]} · ${r.category || "—"}${r.items.length ? " · " + r.items.map((i) => `${i.title}×${i.sessions}`).join("，") : ""}`)]) },
    { label: "价格", width: 110, render: (r) => yuan(r.price_fen) },
    { label: "会员价", minWidth: 140, render: (r) => (r.member_prices.length
      ? r.member_prices.map((m) => `${tierNames.value[m.tier_id] || `等级#${m.tier_id}`} ${yuan(m.price_fen)}`).join("，") : "—") },
    { label: "有效期", width: 90, render: (r) => (r.validity_days ? `${r.validity_days} 天` : "—") },
    { label: "状态", width: 90, render: onSale },
  ],
}, { topup: false }, "新建商品", CheckoutRule);

const TopUpPlans = withEditor({
  title: "储值方案",
  path: "/admin/shop/products",
  defaults: () => ({ kind: "topup" }),
  empty: "还没有储值方案，点“新建储值方案”开始",
  columns: [
    { label: "方案", minWidth: 180, prop: "name" },
    { label: "充值（本金）", width: 120, render: (r) => yuan(r.price_fen) },
    { label: "赠送", width: 110, render: (r) => yuan(r.topup_bonus_fen) },
    { label: "到账", width: 120, render: (r) => yuan(r.price_fen + r.topup_bonus_fen) },
    { label: "状态", width: 90, render: onSale },
  ],
}, { topup: true }, "新建储值方案");

// The coupon template form: the kind decides which amount fields it asks for.
function couponEditor(onSaved) {
  const state = reactive({ open: false, id: null, errors: {}, error: null, busy: false, form: null, products: [] });
  async function open(template) {
    const t = template || {};
    state.form = { name: t.name || "", kind: t.kind || "cash_off", value: fenToYuanText(t.value_fen),
      threshold: fenToYuanText(t.threshold_fen), percent: t.discount_bp ? t.discount_bp / 100 : 10,
      free_product_id: t.free_product_id ?? null, product_ids: t.product_ids || [],
      categories: (t.categories || []).join(", "), valid_days: t.valid_days || 30,
      valid_until: clinicWallClock(t.valid_until), per_customer_limit: t.per_customer_limit || 1,
      claimable: !!t.claimable };
    Object.assign(state, { id: t.id || null, errors: {}, error: null, open: true });
    try {
      state.products = (await api.get("/admin/shop/products", { limit: 200 })).items.filter((p) => p.kind !== "topup");
    } catch (_) { state.products = []; }
  }
  async function save() {
    const f = state.form;
    const errors = {};
    const sent = {
      name: f.name, kind: f.kind,
      value_fen: f.kind === "cash_off" ? money(errors, "value_fen", f.value) : 0,
      threshold_fen: f.kind === "cash_off" ? money(errors, "threshold_fen", f.threshold || "0") : 0,
      // Percent typed (e.g. 15 = 15% off, 8.5 allowed), basis points sent: 1% = 100 bp.
      discount_bp: f.kind === "percent_off" ? Math.round(Number(f.percent) * 100) : 0,
      free_product_id: f.kind === "free_service" ? f.free_product_id : null,
      product_ids: f.product_ids, categories: f.categories.split(/[,，\s]+/).filter(Boolean),
      valid_days: f.valid_days, valid_until: clinicInstant(f.valid_until),
      per_customer_limit: f.per_customer_limit, claimable: f.claimable,
    };
    state.errors = errors;
    state.error = null;
    if (Object.keys(errors).length) return;
    if (state.id === null) {
      await submit(state, () => api.post("/admin/shop/coupon-templates", sent), onSaved);
      return;
    }
    // Issued coupons are priced by the kind, amounts and scope: only the rest can change.
    const changes = { name: sent.name, valid_days: sent.valid_days, per_customer_limit: sent.per_customer_limit,
      claimable: sent.claimable, ...(sent.valid_until ? { valid_until: sent.valid_until } : {}) };
    await submit(state, () => api.patch(`/admin/shop/coupon-templates/${state.id}`, changes), onSaved);
  }
  const item = (label, field, control) => fieldItem(state, label, field, control);
  const Dialog = defineComponent({
    setup() {
      return () => {
        if (!state.open) return null;
        const f = state.form;
        const fixed = state.id !== null;
        const productOptions = () => state.products.map((p) => h(ElOption, { value: p.id, label: `${p.name}（${yuan(p.price_fen)}）` }));
        return h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; }, width: "720px",
          title: state.id ? `编辑优惠券 #${state.id}` : "新建优惠券", top: "4vh" }, {
          default: () => [
            refusal(state.error),
            state.id ? h("p", { class: "muted" }, "类型、金额和适用范围在创建后不可修改（已发出的券按它们计算）；有效天数的修改只影响之后发放的券。") : null,
            h(ElForm, { labelWidth: "130px", "data-test": "coupon-form" }, () => [
              item("名称", "name", h(ElInput, bind(f, "name", { "data-test": "coupon-name" }))),
              item("类型", "kind", h(ElSelect, bind(f, "kind", { disabled: fixed, style: { width: "200px" }, "data-test": "coupon-kind" }),
                () => Object.entries(COUPON_KINDS).map(([value, label]) => h(ElOption, { value, label })))),
              f.kind === "cash_off" ? [
                item("满（元）", "threshold_fen", h(ElInput, bind(f, "threshold", { disabled: fixed, style: { width: "160px" }, placeholder: "0 表示无门槛", "data-test": "coupon-threshold" }))),
                item("减（元）", "value_fen", h(ElInput, bind(f, "value", { disabled: fixed, style: { width: "160px" }, "data-test": "coupon-value" }))),
              ] : null,
              f.kind === "percent_off" ? item("减（%）", "discount_bp", h(ElInputNumber, bind(f, "percent", { disabled: fixed, min: 0.01, max: 99.99,
                precision: 2, step: 1, "data-test": "coupon-percent" }))) : null,
              f.kind === "free_service" ? item("免费项目", "free_product_id", h(ElSelect, bind(f, "free_product_id", { disabled: fixed, filterable: true,
                style: { width: "320px" }, "data-test": "coupon-free-product" }), productOptions)) : null,
              item("适用商品", "product_ids", h(ElSelect, bind(f, "product_ids", { disabled: fixed, multiple: true, filterable: true, clearable: true,
                placeholder: "不限（储值方案除外）", style: { width: "420px" } }), productOptions)),
              item("适用分类", "categories", h(ElInput, bind(f, "categories", { disabled: fixed, placeholder: "不限；多个用逗号分隔", style: { width: "320px" } }))),
              item("领取后有效（天）", "valid_days", h(ElInputNumber, bind(f, "valid_days", { min: 1, max: 3650 }))),
              item("最晚到期", "valid_until", h(ElDatePicker, bind(f, "valid_until", { ...CLINIC_DATETIME_PICKER, placeholder: "不限" }))),
              item("每人限领", "per_customer_limit", h(ElInputNumber, bind(f, "per_customer_limit", { min: 1, max: 1000, "data-test": "coupon-limit" }))),
              item("", "claimable", h(ElCheckbox, bind(f, "claimable"), () => "顾客可在小程序领取")),
            ]),
          ],
          footer: () => [
            h(ElButton, { onClick: () => { state.open = false; } }, () => "取消"),
            h(ElButton, { type: "primary", loading: state.busy, onClick: save, "data-test": "coupon-save" }, () => "保存"),
          ],
        });
      };
    },
  });
  return { open, Dialog };
}

function newKey() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "issue-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Issuing a template to customers by id. The Idempotency-Key is made when the dialog opens and kept for
// its retries, so "send" pressed twice (or retried after a timeout) gives nobody a second coupon.
function issueDialog() {
  const state = reactive({ template: null, ids: "", key: "", errors: {}, error: null, busy: false, result: null });
  async function send() {
    const parts = state.ids.split(/[,，\s]+/).filter(Boolean);
    const ids = parts.map(Number);
    state.errors = {};
    state.error = null;
    if (!ids.length || ids.some((n) => !Number.isInteger(n) || n < 1)) {
      state.errors = { customer_ids: "请输入顾客编号（数字），多个用逗号或空格分隔" };
      return;
    }
    state.busy = true;
    try {
      state.result = await api.post(`/admin/shop/coupon-templates/${state.template.id}/issue`, { customer_ids: ids },
        { "Idempotency-Key": state.key });
    } catch (error) {
      const field = error.detail && error.detail.field;
      state.errors = field ? { [field.replace(/\[\d+\]$/, "")]: error.message } : {};
      state.error = field ? null : error;
    } finally {
      state.busy = false;
    }
  }
  const Dialog = defineComponent({
    setup() {
      return () => {
        const t = state.template;
        if (!t) return null;
        const r = state.result;
        return h(ElDialog, { modelValue: true, "onUpdate:modelValue": () => { state.template = null; }, width: "560px",
          title: `发放优惠券：${t.name}` }, {
          default: () => [
            refusal(state.error),
            h(ElForm, { labelPosition: "top", "data-test": "issue-form" }, () => [
              fieldItem(state, "顾客编号", "customer_ids", h(ElInput, bind(state, "ids", { type: "textarea", rows: 3,
                placeholder: "如 1024, 1025 1030", "data-test": "issue-ids" }))),
            ]),
            r ? h("p", { "data-test": "issue-result" }, `已发放 ${r.issued} 张；已持有 ${r.already_held} 人` +
              (r.refused.length ? `；未发放（超过限领或无此顾客）：${r.refused.join("，")}` : "")) : null,
          ],
          footer: () => [
            h(ElButton, { onClick: () => { state.template = null; }, "data-test": "issue-dialog-close" }, () => "关闭"),
            h(ElButton, { type: "primary", loading: state.busy, onClick: send, "data-test": "issue-send" }, () => "发放"),
          ],
        });
      };
    },
  });
  return {
    show: (template) => Object.assign(state, { template, ids: "", key: newKey(), errors: {}, error: null, result: null }),
    Dialog,
  };
}

const CouponTemplates = defineComponent({
  setup() {
    const list = shallowRef(null);
    const editor = couponEditor(() => list.value && list.value.reload());
    const issue = issueDialog();
    // A free-service coupon names its product: staff read the name, not the id.
    const productNames = reactive({});
    onMounted(async () => {
      const products = (await api.get("/admin/shop/products", { limit: 200 }).catch(() => ({ items: [] }))).items;
      for (const p of products) productNames[p.id] = p.name;
    });
    const List = listView({
      title: "优惠券",
      path: "/admin/shop/coupon-templates",
      paged: false,
      empty: "还没有优惠券模板，点“新建优惠券”开始",
      toolbar: () => h(ElButton, { type: "primary", onClick: () => editor.open(null), "data-test": "coupon-new" }, () => "新建优惠券"),
      columns: [
        { label: "优惠券", minWidth: 180, prop: "name" },
        { label: "类型", width: 90, render: (t) => COUPON_KINDS[t.kind] || t.kind },
        { label: "优惠", minWidth: 150, render: (t) => (t.kind === "cash_off" ? `满 ${yuan(t.threshold_fen)} 减 ${yuan(t.value_fen)}`
          : t.kind === "percent_off" ? `减 ${t.discount_bp / 100}%` : `免费：${productNames[t.free_product_id] || `商品 #${t.free_product_id}`}`) },
        { label: "有效期", width: 150, render: (t) => `${t.valid_days} 天${t.valid_until ? `，最晚 ${time(t.valid_until)}` : ""}` },
        { label: "每人限领", width: 90, render: (t) => String(t.per_customer_limit) },
        { label: "可领取", width: 80, render: (t) => (t.claimable ? "是" : "否") },
        { label: "状态", width: 80, render: (t) => h(ElTag, { size: "small", type: t.is_active ? "success" : "info" }, () => (t.is_active ? "启用" : "已停用")) },
      ],
      actionsWidth: 230,
      actions: (t, reload) => [
        t.is_active ? button("发放", () => issue.show(t), { type: "primary", "data-test": `coupon-issue-${t.id}` }) : null,
        button("编辑", () => editor.open(t), { "data-test": `coupon-edit-${t.id}` }),
        switchActive(t, `/admin/shop/coupon-templates/${t.id}`, ["启用", "停用"], `coupon-switch-${t.id}`, reload),
      ],
    });
    return () => h("div", [h(List, { ref: list }), h(editor.Dialog), h(issue.Dialog)]);
  },
});

const PrepaidLiability = defineComponent({
  setup() {
    // The liability at the end of a clinic day (the API's `date`): by default the clinic's today, not the PC's.
    const state = reactive({ date: clinicToday(), data: null, error: null });
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

// The front desk redeems one session of a package or course card (核销) at the desk's branch: the API takes
// the next unused session (of the service named, when the card holds several) with one conditional update.
const CardDesk = defineComponent({
  setup() {
    const state = reactive({ code: "", title: "", result: null, error: null, busy: false });
    onMounted(() => loadCatalogue().catch((error) => { state.error = error; }));
    async function redeem() {
      if (!state.code.trim()) return;
      state.busy = true;
      try {
        state.result = await api.post("/admin/package-cards/redeem", { code: state.code.trim(), branch_id: desk.branchId,
          ...(state.title.trim() ? { title: state.title.trim() } : {}) });
        state.error = null;
        ElMessage.success("核销成功");
      } catch (error) {
        state.result = null;
        state.error = error;
      } finally {
        state.busy = false;
      }
    }
    const branchName = (id) => (desk.branches.find((b) => b.id === id) || {}).name || `#${id}`;
    return () => {
      const r = state.result;
      return h("div", [
        title("次卡核销"),
        h("div", { class: "toolbar" }, [
          h(ElInput, { ...bind(state, "code"), placeholder: "卡号", style: { width: "220px" }, clearable: true,
            "data-test": "card-code", onKeyup: (e) => { if (e.key === "Enter") redeem(); } }),
          h(ElInput, { ...bind(state, "title"), placeholder: "项目（套餐卡可选）", style: { width: "180px" }, clearable: true,
            "data-test": "card-title" }),
          h(ElSelect, { modelValue: desk.branchId, style: { width: "160px" }, "data-test": "card-branch",
            "onUpdate:modelValue": (v) => { desk.branchId = v; sessionStorage.setItem("desk.branch", v); } },
          () => desk.branches.map((b) => h(ElOption, { value: b.id, label: b.name }))),
          h(ElButton, { type: "primary", loading: state.busy, onClick: redeem, "data-test": "card-redeem" },
            () => `在 ${branchName(desk.branchId)} 核销一次`),
        ]),
        refusal(state.error),
        r ? h(ElDescriptions, { column: 2, border: true, "data-test": "card-result" }, () => [
          h(ElDescriptionsItem, { label: "项目" }, () => r.title),
          h(ElDescriptionsItem, { label: "第几次" }, () => String(r.seq)),
          h(ElDescriptionsItem, { label: "剩余次数" }, () => h("span", { "data-test": "card-left" }, String(r.sessions_left))),
          h(ElDescriptionsItem, { label: "卡" }, () => `#${r.card_id}`),
        ]) : null,
      ]);
    };
  },
});

export const SHOP_FRONT_DESK = [
  { path: "/frontdesk/package-cards", title: "次卡核销", roles: ["front_desk"], component: CardDesk },
];
export const SHOP_CAMPAIGN = [
  { path: "/campaign/catalogue", title: "商品目录", roles: ["campaign"], component: Catalogue },
  { path: "/campaign/topup-plans", title: "储值方案", roles: ["campaign"], component: TopUpPlans },
  { path: "/campaign/coupons", title: "优惠券", roles: ["campaign"], component: CouponTemplates },
];
export const SHOP_FINANCE = [
  { path: "/finance/stored-value", title: "储值负债", roles: ["finance"], component: PrepaidLiability },
];
