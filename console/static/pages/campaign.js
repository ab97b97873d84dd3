// Campaign staff screens: group-buy campaigns (figures, editor, lifecycle), mall items, points rules and tiers, referral programs.
import { defineComponent, h, reactive, shallowRef, onMounted } from "vue";
import {
  ElButton, ElCard, ElCheckbox, ElDatePicker, ElDescriptions, ElDescriptionsItem, ElDialog, ElForm, ElFormItem,
  ElAlert, ElInput, ElInputNumber, ElMessage, ElMessageBox, ElOption, ElSelect, ElTable, ElTableColumn, ElTag,
} from "element-plus";
import { api } from "../api.js";
import { fenToYuanText, yuan, yuanToFen } from "../money.js";
import {
  CLINIC_DATETIME_PICKER, button, clinicInstant, clinicWallClock, listView, refusal, refusalText, statusTag, time, title,
} from "../ui.js";

const KIND_NAMES = { bestie_card: "闺蜜卡拼团", category: "品类团购" };

async function act(promise, done, reload) {
  try {
    await promise;
    ElMessage.success(done);
    reload();
  } catch (error) {
    ElMessage.error(refusalText(error));
  }
}

// The figures of one campaign, fetched per row from its stats endpoint.
const Figures = defineComponent({
  props: { id: Number },
  setup(props) {
    const stats = shallowRef(null);
    onMounted(async () => { stats.value = await api.get(`/admin/campaigns/${props.id}/stats`).catch(() => null); });
    return () => {
      const s = stats.value;
      if (!s) return h("span", { class: "muted" }, "—");
      return h("div", { class: "muted" }, [
        h("div", `开团 ${s.groups_opened} · 成团 ${s.groups_succeeded}（虚拟 ${s.groups_virtual}）· 失败 ${s.groups_failed} · 进行中 ${s.groups_open}`),
        h("div", `占座 ${s.seats_taken} · 售出 ${s.units_sold} 份 · 实收 ${yuan(s.gmv_fen)} · 退款 ${yuan(s.refunded_fen)}`),
      ]);
    };
  },
});

// A new campaign's default start (now) and end (in a week), on the clinic's wall clock like every editor's time.
function wallClockIn(days) {
  const d = new Date(Date.now() + days * 86400000);
  d.setSeconds(0, 0);
  return clinicWallClock(d);
}

// The names staff know for what the API's locked_fields and locked_item_fields list (CampaignOut).
const FIELD_NAMES = {
  title: "活动名称", description: "说明", starts_at: "开始时间", ends_at: "结束时间", group_size: "成团人数",
  time_limit_minutes: "成团时限", per_customer_limit: "每人限购", new_customers_only: "仅限新客",
  virtual_min_paid: "虚拟成团", leader_bonus_points: "团长奖励积分", voucher_valid_days: "券有效天数", branch_ids: "适用院区",
};
const BESTIE_ONLY = ["group_size", "time_limit_minutes", "virtual_min_paid", "leader_bonus_points"];
const ITEM_FIELD_NAMES = { title: "名称", original_price_fen: "原价", group_price_fen: "团购价", stock: "库存", tiers: "阶梯价" };

// The hint over a campaign whose fields the API locks now: which ones, by the names the form shows, and what
// the fields still open must keep (the rules update_campaign enforces; ending now is the list's 结束).
function lockedHint(campaign) {
  // Only what the form shows: a category group buy has no group rules (成团人数, 时限, 虚拟成团, 团长积分).
  const own = campaign.locked_fields.filter((f) => campaign.kind === "bestie_card" || !BESTIE_ONLY.includes(f));
  // A bestie card's items have no tiers (the form shows none), and their group price is the 拼团价.
  const items = campaign.locked_item_fields.filter((f) => f !== "tiers" || campaign.kind === "category");
  if (!own.length && !items.length) return null;
  const itemName = (f) => (f === "group_price_fen" ? (campaign.kind === "bestie_card" ? "拼团价" : "团购价") : ITEM_FIELD_NAMES[f] || f);
  const named = [...own.map((f) => FIELD_NAMES[f] || f), ...items.map((f) => `项目${itemName(f)}`)];
  const open = campaign.locked_fields.includes("ends_at") ? "" : "结束时间可提前或延后但须晚于现在，每人限购只能放宽，库存不能低于已售出和占用的数量。";
  return `活动进行中，以下内容不可修改：${named.join("、")}。${open}`;
}

function emptySku() {
  return { id: null, title: "", original: "", group: "", stock: 10, tiers: [] };
}

// The editor: every amount typed in yuan, sent in fen; the API's detail.field lands under the field it names.
function campaignEditor(onSaved) {
  const state = reactive({ open: false, id: null, status: null, errors: {}, error: null, busy: false, form: null,
    version: null, hint: null, locked: new Set(), lockedItems: new Set(), stale: false });
  // An existing campaign is read again when its editor opens (the list may be minutes old): the form, the
  // version the save sends back and the locks are then those of the campaign as stored now.
  async function open(campaign) {
    if (!campaign) { reset(null); return; }
    try {
      reset(await api.get(`/admin/campaigns/${campaign.id}`));
    } catch (error) {
      ElMessage.error(refusalText(error));
    }
  }
  function reset(campaign) {
    const c = campaign || {};
    state.form = {
      kind: c.kind || "bestie_card", title: c.title || "", description: c.description || "",
      starts_at: c.starts_at ? clinicWallClock(c.starts_at) : wallClockIn(0),
      ends_at: c.ends_at ? clinicWallClock(c.ends_at) : wallClockIn(7),
      // ?? not ||: a category campaign's time limit is 0, and 1440 sent back for it is a change a live campaign refuses.
      group_size: c.group_size || 2, time_limit_minutes: c.time_limit_minutes ?? 1440,
      per_customer_limit: c.per_customer_limit || 1, new_customers_only: !!c.new_customers_only,
      // Off is null in the API's answer (0 is stored as NULL); || shows a 0 as off too: the empty field, 不启用.
      virtual_min_paid: c.virtual_min_paid || null, leader_bonus_points: c.leader_bonus_points || 0,
      voucher_valid_days: c.voucher_valid_days || 90,
      skus: (c.skus || [emptySku()]).map((s) => (s.id === null ? s : {
        id: s.id, title: s.title, original: fenToYuanText(s.original_price_fen), group: fenToYuanText(s.group_price_fen),
        stock: s.stock_total, tiers: s.tiers.map((t) => ({ min_units: t.min_units, price: fenToYuanText(t.price_fen) })),
      })),
    };
    Object.assign(state, { id: c.id || null, status: c.status || null, errors: {}, error: null, open: true, stale: false,
      version: c.version || null, hint: campaign ? lockedHint(campaign) : null,
      locked: new Set(c.locked_fields || []), lockedItems: new Set(c.locked_item_fields || []) });
  }
  function money(errors, field, text) {
    const fen = yuanToFen(text);
    if (fen === null) errors[field] = "请输入金额（元，最多两位小数）";
    return fen;
  }
  // A cleared 虚拟成团 means off. PATCH reads null as "not sent" (the stored value stays) and takes 0 as off;
  // POST takes null as off and refuses 0 (CampaignUpdate, CampaignCreate in campaigns/groupbuy/schemas.py).
  function virtualMinPaid(value) {
    if (value !== null && value !== undefined) return value;
    return state.id === null ? null : 0;
  }
  function campaignBody(errors) {
    const f = state.form;
    const body = {
      title: f.title, description: f.description,
      starts_at: clinicInstant(f.starts_at), ends_at: clinicInstant(f.ends_at),
      group_size: f.kind === "bestie_card" ? f.group_size : 1, time_limit_minutes: f.time_limit_minutes,
      per_customer_limit: f.per_customer_limit, new_customers_only: f.new_customers_only,
      virtual_min_paid: f.kind === "bestie_card" ? virtualMinPaid(f.virtual_min_paid) : null,
      leader_bonus_points: f.kind === "bestie_card" ? f.leader_bonus_points : 0, voucher_valid_days: f.voucher_valid_days,
    };
    const skus = f.skus.map((s, i) => ({
      title: s.title, original_price_fen: money(errors, `skus[${i}].original_price_fen`, s.original),
      group_price_fen: money(errors, `skus[${i}].group_price_fen`, s.group), stock: s.stock,
      tiers: s.tiers.map((t, j) => ({ min_units: t.min_units, price_fen: money(errors, `skus[${i}].tiers[${j}].price_fen`, t.price) })),
    }));
    return { body, skus };
  }
  // Asked in the middle of the screen (the save button is at the foot of a long form, the note at its head);
  // declined, the note in the dialog keeps its own reload button.
  async function offerReload() {
    const id = state.id;
    try {
      await ElMessageBox.confirm(
        "在您打开编辑后，其他人修改了这个活动或其项目。为免覆盖对方的修改，您这次的内容没有保存。是否重新加载最新内容？（您刚才的修改需要重新填写）",
        "活动已被他人修改", { confirmButtonText: "重新加载", cancelButtonText: "暂不", type: "warning" });
    } catch (_) {
      return;
    }
    if (state.open && state.id === id) await open({ id });
  }
  async function save() {
    const errors = {};
    const { body, skus } = campaignBody(errors);
    state.errors = errors;
    state.error = null;
    if (Object.keys(errors).length) return;
    state.busy = true;
    try {
      if (state.id === null) {
        await api.post("/admin/campaigns", { ...body, kind: state.form.kind, skus });
      } else {
        // The campaign and its items in one request, so one transaction: an item the API refuses leaves the
        // campaign's own fields unsaved too (they were saved by a request of their own before the items').
        // With the version it was loaded at: a campaign someone else changed meanwhile is refused whole
        // (edited_meanwhile) instead of having their values put back by this form.
        await api.patch(`/admin/campaigns/${state.id}`, { ...body, skus: skus.map((s, i) => ({ id: state.form.skus[i].id, ...s })),
          version: state.version });
      }
      state.open = false;
      ElMessage.success("已保存");
      onSaved();
    } catch (error) {
      if (error.code === "edited_meanwhile") {
        state.errors = {};
        state.error = null;
        state.stale = true;
        offerReload();
        return;
      }
      // The API names the field as the body does (skus[i].stock), which is the form item's data-field.
      const field = error.detail && error.detail.field;
      state.errors = field ? { [field]: error.message } : {};
      state.error = field ? null : error;
    } finally {
      state.busy = false;
    }
  }
  const bind = (obj, key, extra = {}) => ({ modelValue: obj[key], "onUpdate:modelValue": (v) => { obj[key] = v; }, ...extra });
  const item = (label, field, control) => h(ElFormItem, { label, error: state.errors[field], "data-field": field }, () => control);
  function skuCard(s, i) {
    const f = state.form;
    return h("div", { class: "sku", "data-test": `sku-${i}` }, [
      h(ElForm, { inline: true, labelPosition: "top" }, () => [
        item("项目名称", `skus[${i}].title`, h(ElInput, bind(s, "title", { style: { width: "180px" }, "data-test": `sku-${i}-title` }))),
        item("原价（元）", `skus[${i}].original_price_fen`, h(ElInput, bind(s, "original", { style: { width: "110px" }, "data-test": `sku-${i}-original`, disabled: state.lockedItems.has("original_price_fen") }))),
        item(f.kind === "bestie_card" ? "拼团价（元）" : "团购价（元）", `skus[${i}].group_price_fen`, h(ElInput, bind(s, "group", { style: { width: "110px" }, "data-test": `sku-${i}-group`, disabled: state.lockedItems.has("group_price_fen") }))),
        item("库存", `skus[${i}].stock`, h(ElInputNumber, bind(s, "stock", { min: 0, controls: false, style: { width: "90px" }, "data-test": `sku-${i}-stock` }))),
        f.skus.length > 1 && s.id === null ? h(ElFormItem, { label: " " }, () => button("删除", () => f.skus.splice(i, 1), { type: "danger", link: true })) : null,
      ]),
      f.kind === "category" ? h("div", [
        ...s.tiers.map((t, j) => h(ElForm, { inline: true }, () => [
          item(`阶梯 ${j + 1}：满`, `skus[${i}].tiers[${j}].min_units`, h(ElInputNumber, bind(t, "min_units", { min: 1, controls: false, style: { width: "80px" }, disabled: state.lockedItems.has("tiers") }))),
          item("份，单价（元）", `skus[${i}].tiers[${j}].price_fen`, h(ElInput, bind(t, "price", { style: { width: "110px" }, "data-test": `sku-${i}-tier-${j}-price`, disabled: state.lockedItems.has("tiers") }))),
          state.lockedItems.has("tiers") ? null : button("删除阶梯", () => s.tiers.splice(j, 1), { link: true }),
        ])),
        state.lockedItems.has("tiers") ? null : item("", `skus[${i}].tiers`, button("添加阶梯价", () => s.tiers.push({ min_units: (s.tiers.length + 1) * 10, price: "" }), { link: true, type: "primary" })),
      ]) : null,
    ]);
  }
  const Dialog = defineComponent({
    setup() {
      return () => {
        if (!state.open) return null;
        const f = state.form;
        const locked = (name, extra = {}) => ({ ...extra, disabled: state.locked.has(name) });
        return h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; }, width: "860px",
          title: state.id ? `编辑活动 #${state.id}` : "新建活动", top: "4vh" }, {
          default: () => [
            refusal(state.error),
            state.stale ? h(ElAlert, { type: "warning", showIcon: true, closable: false, class: "refusal", "data-test": "campaign-stale",
              title: "保存未成功：在您打开后，其他人修改了这个活动或其项目。为免覆盖对方的修改，本次内容没有保存。" }, {
              default: () => h("div", [
                h("span", "重新加载将显示最新内容（您刚才的修改需要重新填写）。"),
                button("重新加载", () => open({ id: state.id }), { type: "primary", link: true, "data-test": "campaign-reload" }),
              ]),
            }) : null,
            // The API answers which fields it locks now (a running campaign's; a scheduled one not started yet
            // locks nothing): the hint names them, and their inputs are disabled.
            state.hint ? h("p", { class: "muted", "data-test": "campaign-locked-hint" }, state.hint) : null,
            h(ElForm, { labelWidth: "150px", "data-test": "campaign-form" }, () => [
              item("类型", "kind", h(ElSelect, bind(f, "kind", { disabled: state.id !== null, style: { width: "200px" }, "data-test": "campaign-kind" }),
                () => Object.entries(KIND_NAMES).map(([value, label]) => h(ElOption, { value, label })))),
              item("活动名称", "title", h(ElInput, bind(f, "title", { "data-test": "campaign-title" }))),
              item("说明", "description", h(ElInput, bind(f, "description", { type: "textarea", rows: 2 }))),
              item("开始", "starts_at", h(ElDatePicker, bind(f, "starts_at", locked("starts_at", CLINIC_DATETIME_PICKER)))),
              item("结束", "ends_at", h(ElDatePicker, bind(f, "ends_at", CLINIC_DATETIME_PICKER))),
              f.kind === "bestie_card" ? [
                item("成团人数", "group_size", h(ElInputNumber, bind(f, "group_size", locked("group_size", { min: 2, max: 5 })))),
                item("成团时限（分钟）", "time_limit_minutes", h(ElInputNumber, bind(f, "time_limit_minutes", locked("time_limit_minutes", { min: 1 })))),
                item("虚拟成团（已付人数）", "virtual_min_paid", h(ElInputNumber, bind(f, "virtual_min_paid", locked("virtual_min_paid", { min: 1, placeholder: "不启用" })))),
                item("团长奖励积分", "leader_bonus_points", h(ElInputNumber, bind(f, "leader_bonus_points", locked("leader_bonus_points", { min: 0 })))),
              ] : null,
              item("每人限购", "per_customer_limit", h(ElInputNumber, bind(f, "per_customer_limit", { min: 1 }))),
              item("券有效天数", "voucher_valid_days", h(ElInputNumber, bind(f, "voucher_valid_days", { min: 1 }))),
              item("", "new_customers_only", h(ElCheckbox, bind(f, "new_customers_only", locked("new_customers_only")), () => "仅限新客")),
              item("项目", "skus", h("div", { style: { width: "100%" } }, [
                ...f.skus.map(skuCard),
                state.id === null ? button("添加项目", () => f.skus.push(emptySku()), { type: "primary", link: true }) : null,
              ])),
            ]),
          ],
          footer: () => [
            h(ElButton, { onClick: () => { state.open = false; } }, () => "取消"),
            h(ElButton, { type: "primary", loading: state.busy, onClick: save, "data-test": "campaign-save" }, () => "保存"),
          ],
        });
      };
    },
  });
  return { open, Dialog };
}

const GROUP_STATUS = { pending: "待团长支付", open: "拼团中", succeeded: "已成团", failed: "未成团" };
const ENTRY_STATUS = { held: "待支付", paid: "已支付", fulfilled: "已发券", released: "已释放", refunding: "退款中", refunded: "已退款" };

// A campaign's groups and who sits in them (paged on the server).
function groupsDialog() {
  const state = reactive({ campaign: null });
  const Dialog = defineComponent({
    setup() {
      return () => {
        const c = state.campaign;
        if (!c) return null;
        const Groups = listView({
          path: `/admin/campaigns/${c.id}/groups`,
          size: 10,
          filters: [{ key: "status", label: "状态", type: "select", width: "130px", options: Object.entries(GROUP_STATUS) }],
          empty: "还没有人开团",
          columns: [
            { label: "团", prop: "id", width: 60 },
            { label: "项目", prop: "sku_title", minWidth: 120 },
            { label: "状态", width: 110, render: (g) => h(ElTag, { size: "small", type: g.status === "succeeded" ? "success" : g.status === "failed" ? "info" : undefined },
              () => `${GROUP_STATUS[g.status] || g.status}${g.virtual ? "（虚拟）" : ""}`) },
            { label: "座位", width: 90, render: (g) => `${g.paid_count}/${g.seats_taken}/${g.size}` },
            { label: "团员", minWidth: 260, render: (g) => h("div", g.members.map((m) => h("div", { class: "muted" },
              `${m.role === "leader" ? "团长" : "团员"} ${m.nickname}（#${m.customer_id}）${m.phone || ""} · ${ENTRY_STATUS[m.status] || m.status} · 订单 #${m.order_id}`))) },
            { label: "截止", width: 140, render: (g) => time(g.deadline) },
          ],
        });
        return h(ElDialog, { modelValue: true, "onUpdate:modelValue": () => { state.campaign = null; }, width: "900px",
          title: `${c.title} · 团与团员（已付/占座/成团人数）` }, () => h(Groups, { key: c.id }));
      };
    },
  });
  return { show: (campaign) => { state.campaign = campaign; }, Dialog };
}

const Campaigns = defineComponent({
  setup() {
    const list = shallowRef(null);
    const groupList = groupsDialog();
    const editor = campaignEditor(() => list.value && list.value.reload());
    const List = listView({
      title: "拼团活动",
      path: "/admin/campaigns",
      filters: [{ key: "status", label: "状态", type: "select", width: "120px",
        options: [["draft", "草稿"], ["scheduled", "待开始"], ["live", "进行中"], ["ended", "已结束"], ["cancelled", "已取消"]] }],
      toolbar: () => h(ElButton, { type: "primary", onClick: () => editor.open(null), "data-test": "campaign-new" }, () => "新建活动"),
      empty: "还没有活动，点“新建活动”开始",
      columns: [
        { label: "活动", minWidth: 180, render: (r) => h("div", [h("div", r.title), h("div", { class: "muted" }, `${KIND_NAMES[r.kind]} · ${r.skus.map((s) => `${s.title} ${yuan(s.group_price_fen)}`).join("，")}`)]) },
        { label: "状态", width: 90, render: (r) => statusTag(r.status) },
        { label: "时间", minWidth: 150, render: (r) => h("div", { class: "muted" }, [h("div", time(r.starts_at)), h("div", time(r.ends_at))]) },
        { label: "人数/库存", width: 110, render: (r) => `${r.kind === "bestie_card" ? `${r.group_size} 人团` : "团购"} · 剩 ${r.skus.reduce((n, s) => n + s.stock_left, 0)}` },
        { label: "数据", minWidth: 240, render: (r) => h(Figures, { id: r.id, key: r.id }) },
      ],
      actionsWidth: 200,
      actions: (r, reload) => [
        ["draft", "scheduled", "live"].includes(r.status) ? button("编辑", () => editor.open(r), { "data-test": `campaign-edit-${r.id}` }) : null,
        r.kind === "bestie_card" && r.status !== "draft" ? button("团", () => groupList.show(r), { "data-test": `groups-${r.id}` }) : null,
        r.status === "draft" ? button("发布", () => act(api.post(`/admin/campaigns/${r.id}/publish`), "已发布", reload), { type: "primary", "data-test": `publish-${r.id}` }) : null,
        r.status === "live" ? button("结束", async () => {
          try { await ElMessageBox.confirm("结束后未成团的订单会退款。确定结束？", "结束活动", { type: "warning" }); } catch (_) { return; }
          act(api.post(`/admin/campaigns/${r.id}/end`), "已结束", reload);
        }, { type: "warning" }) : null,
        ["draft", "scheduled"].includes(r.status) ? button("取消", () => act(api.post(`/admin/campaigns/${r.id}/cancel`), "已取消", reload), { type: "danger" }) : null,
      ],
    });
    return () => h("div", [h(List, { ref: list }), h(editor.Dialog), h(groupList.Dialog)]);
  },
});

const MallItems = listView({
  title: "积分商城",
  path: "/admin/mall/items",
  paged: false,
  defaults: () => ({ include_archived: "" }),
  filters: [{ key: "include_archived", label: "含已归档", type: "select", width: "120px", options: [["true", "含已归档"], ["false", "不含"]] }],
  empty: "还没有商品",
  columns: [
    { label: "商品", minWidth: 160, render: (r) => h("div", [h("div", r.title), h("div", { class: "muted" }, r.kind)]) },
    { label: "积分", prop: "points_price", width: 80 },
    { label: "库存（可用/总）", width: 130, render: (r) => `${r.stock_available} / ${r.stock_total}` },
    { label: "限兑", width: 120, render: (r) => `每人 ${r.limit_per_customer ?? "不限"} · 每月 ${r.limit_per_month ?? "不限"}` },
    { label: "等级门槛", width: 90, render: (r) => (r.min_tier_level === null ? "无" : `≥ ${r.min_tier_level}`) },
    { label: "上架时段", minWidth: 150, render: (r) => h("div", { class: "muted" }, [h("div", time(r.available_from)), h("div", time(r.available_until))]) },
    { label: "院区", width: 90, render: (r) => (r.branch_ids.length ? r.branch_ids.join(",") : "全部") },
    { label: "状态", width: 80, render: (r) => (r.archived ? "已归档" : r.on_shelf ? h(ElTag, { type: "success", size: "small" }, () => "上架") : "下架") },
  ],
  actionsWidth: 100,
  actions: (r, reload) => [r.archived ? null : button(r.on_shelf ? "下架" : "上架",
    () => act(api.patch(`/admin/mall/items/${r.id}`, { on_shelf: !r.on_shelf }), "已更新", reload))],
});

const PointsRules = defineComponent({
  setup() {
    const state = reactive({ rules: null, error: null });
    onMounted(async () => {
      try { state.rules = await api.get("/admin/points/rules"); } catch (error) { state.error = error; }
    });
    const Tiers = listView({
      title: "会员等级",
      path: "/admin/points/tiers",
      paged: false,
      empty: "还没有会员等级",
      columns: [
        { label: "等级", prop: "level", width: 70 }, { label: "名称", prop: "name" },
        { label: "消费门槛", render: (r) => (r.min_spend_fen === null ? "—" : yuan(r.min_spend_fen)) },
        { label: "推荐人数", render: (r) => (r.min_referrals === null ? "—" : String(r.min_referrals)) },
        { label: "条件", render: (r) => (r.match === "all" ? "全部满足" : "满足其一") },
        { label: "积分倍率", render: (r) => `${r.multiplier_pct}%` },
        { label: "启用", render: (r) => (r.is_active ? "是" : "否") },
      ],
    });
    return () => {
      const r = state.rules;
      return h("div", [
        title("签到与积分规则"),
        refusal(state.error),
        r ? h(ElDescriptions, { column: 3, border: true }, () => [
          h(ElDescriptionsItem, { label: "签到基础积分" }, () => String(r.checkin_base_points)),
          h(ElDescriptionsItem, { label: "签到周期（天）" }, () => String(r.checkin_cycle_days)),
          h(ElDescriptionsItem, { label: "连签奖励" }, () => Object.entries(r.checkin_bonus).map(([d, p]) => `第${d}天+${p}`).join("，") || "—"),
          h(ElDescriptionsItem, { label: "补签" }, () => (r.makeup_enabled ? `${r.makeup_cost_points} 积分/次，每月 ${r.makeup_per_month} 次` : "关闭")),
          h(ElDescriptionsItem, { label: "消费积分" }, () => `每 ${yuan(r.earn_unit_fen)} 得 ${r.earn_points_per_unit} 分`),
          h(ElDescriptionsItem, { label: "待生效天数" }, () => String(r.pending_days)),
          h(ElDescriptionsItem, { label: "积分有效期（月）" }, () => String(r.expiry_months)),
          // No template, no reminder: WeChat refuses an id the clinic did not register (points_mall/tasks.py).
          h(ElDescriptionsItem, { label: "到期提醒" }, () => (r.expiry_reminder_days <= 0 ? "关闭"
            : r.expiry_reminder_template_id ? `到期前 ${r.expiry_reminder_days} 天，模板 ${r.expiry_reminder_template_id}`
              : h("span", { class: "warn", "data-test": "expiry-reminder-off" }, "未设置订阅消息模板，不发送"))),
          h(ElDescriptionsItem, { label: "等级统计窗口（月）" }, () => String(r.tier_window_months)),
          h(ElDescriptionsItem, { label: "更新于" }, () => time(r.updated_at)),
        ]) : null,
        h("div", { style: { height: "16px" } }),
        h(Tiers),
      ]);
    };
  },
});

const REWARD_TYPES = { fixed_fen: "固定金额", percent: "消费比例", points: "积分" };
const Programs = listView({
  title: "推荐计划",
  path: "/admin/referral-programs",
  empty: "还没有推荐计划",
  columns: [
    { label: "名称", prop: "name", minWidth: 140 },
    { label: "状态", width: 80, render: (r) => (r.is_active ? h(ElTag, { type: "success", size: "small" }, () => "启用") : "停用") },
    { label: "推荐人奖励", minWidth: 130, render: (r) => `${REWARD_TYPES[r.referrer_reward_type]} ${r.referrer_reward_type === "fixed_fen" ? yuan(r.referrer_reward_value) : r.referrer_reward_type === "percent" ? `${r.referrer_reward_value}%` : r.referrer_reward_value}` },
    { label: "最低消费", render: (r) => yuan(r.min_amount_fen) },
    { label: "冻结天数", prop: "hold_days", width: 90 },
    { label: "月上限", render: (r) => `${r.monthly_cap_count ?? "—"} 次 / ${r.monthly_cap_fen === null ? "—" : yuan(r.monthly_cap_fen)}` },
    { label: "时间", minWidth: 150, render: (r) => h("div", { class: "muted" }, [h("div", time(r.starts_at)), h("div", time(r.ends_at))]) },
  ],
  actionsWidth: 100,
  actions: (r, reload) => [button(r.is_active ? "停用" : "启用",
    () => act(api.patch(`/admin/referral-programs/${r.id}`, { is_active: !r.is_active }), "已更新", reload))],
});

export const CAMPAIGN = [
  { path: "/campaign/campaigns", title: "拼团活动", roles: ["campaign"], component: Campaigns },
  { path: "/campaign/mall", title: "积分商城", roles: ["campaign"], component: MallItems },
  { path: "/campaign/points", title: "签到与会员等级", roles: ["campaign"], component: PointsRules },
  { path: "/campaign/referral-programs", title: "推荐计划", roles: ["campaign"], component: Programs },
];
