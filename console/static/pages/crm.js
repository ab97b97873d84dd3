// CRM screens: customer search and card, the tag catalogue, the skin analyser's CSV import, segments with a
// live count, and outreach with its lift against the holdout (api/crm.py, docs/crm.md).
import { defineComponent, h, reactive, onBeforeUnmount, onMounted } from "vue";
import {
  ElButton, ElCard, ElCheckbox, ElDescriptions, ElDescriptionsItem, ElDialog, ElEmpty, ElForm, ElFormItem,
  ElInput, ElInputNumber, ElMessage, ElOption, ElSelect, ElTable, ElTableColumn, ElTabPane, ElTabs, ElTag,
} from "element-plus";
import { api } from "../api.js";
import { yuan, yuanToFen } from "../money.js";
import { button, fieldErrors, listView, refusal, refusalText, statusTag, time, title } from "../ui.js";
import { desk, loadCatalogue } from "./frontdesk.js";

export const RFM_NAMES = {
  important_value: "重要价值", important_development: "重要发展", important_retain: "重要保持",
  important_winback: "重要挽留", general_value: "一般价值", general_development: "一般发展",
  general_retain: "一般保持", general_winback: "一般挽留",
};
const AGE_BANDS = ["<18", "18-24", "25-34", "35-44", "45-54", "55+"];
const SOURCE_NAMES = { customer_referral: "老客推荐", staff: "员工推荐", partner: "异业合作", ad: "广告投放", organic: "自然到访" };
const TAG_KINDS = { manual: "手动", rule: "规则", skin: "皮肤检测" };
const CATEGORY_NAMES = { concern: "诉求", interest: "兴趣", source: "来源", skin: "皮肤", age: "年龄", spend: "消费" };
const OUTREACH_STATUS = { draft: ["草稿", "info"], scheduled: ["待执行", "warning"], running: ["执行中", "warning"],
  done: ["已完成", "success"], cancelled: ["已取消", "info"] };
const MONTHS = Array.from({ length: 12 }, (_, i) => [i + 1, `${i + 1} 月`]);
// What an outreach did for its recipients (the results' counts, api/crm.py; a recipient's voucher, coupon and
// message outcome, crm/outreach.py) and why it skipped one (a recipient's skip_reason). The card's 券, 优惠券, 消息
// and 跳过原因 columns and the results' counts share these words; a key not listed (a WeChat refusal such as
// wechat_43101, an outcome added later) is shown as it is, so staff can still look it up.
const OUTREACH_OUTCOMES = { issued: "已发放", no_stock: "库存不足", limit_reached: "已达领取上限",
  template_off: "模板已停用", claimed: "发送中", sent: "已发送", failed: "发送失败", skipped: "已跳过" };
const OUTREACH_COUNTS = { vouchers_issued: "已发券", coupons_issued: "已发优惠券", messages_sent: "已发消息",
  messages_failed: OUTREACH_OUTCOMES.failed };
const SKIP_REASONS = { erased: "顾客已注销", opted_out: "已退订营销消息", upcoming_booking: "已有待到店预约",
  template_off: "消息模板已停用", over_cap: "超过营销频次上限", no_consent: "未订阅该消息" };
const outreachOutcome = (outcome) => (outcome ? OUTREACH_OUTCOMES[outcome] || outcome : "—");
const skipReason = (reason) => (reason ? SKIP_REASONS[reason] || reason : "—");
function countLabel(key) {
  if (key.startsWith("skipped_")) return `跳过：${skipReason(key.slice("skipped_".length))}`;
  // A coupon not given says why (coupons_no_stock, coupons_limit_reached, coupons_template_off).
  if (!OUTREACH_COUNTS[key] && key.startsWith("coupons_")) return `优惠券：${outreachOutcome(key.slice("coupons_".length))}`;
  return OUTREACH_COUNTS[key] || key;
}

// Pickers other screens own: tiers (campaign, finance), tags (campaign). A role that may not read them gets
// empty pickers, not a broken page; the API still refuses what the role may not do.
const pickers = reactive({ tiers: [], tags: [] });
let pickerLoad = null;
function loadPickers() {
  pickerLoad = pickerLoad || Promise.all([
    api.get("/admin/points/tiers").then((t) => { pickers.tiers = t; }).catch(() => {}),
    api.get("/admin/crm/tags", { limit: 200 }).then((t) => { pickers.tags = t.items; }).catch(() => {}),
    loadCatalogue().catch(() => {}),
  ]).finally(() => { pickerLoad = null; });
  return pickerLoad;
}
const tagName = (id) => (pickers.tags.find((t) => t.id === id) || {}).name || `#${id}`;
const branchName = (id) => (desk.branches.find((b) => b.id === id) || {}).name || `#${id}`;
const departmentName = (id) => (desk.departments.find((d) => d.id === id) || {}).name || `#${id}`;

async function act(promise, done, reload) {
  try {
    await promise;
    ElMessage.success(done);
    reload();
  } catch (error) {
    ElMessage.error(refusalText(error));
  }
}

function rfmTag(cls) {
  if (!cls) return h("span", { class: "muted" }, "—");
  return h(ElTag, { size: "small", type: cls.startsWith("important") ? "success" : "info" }, () => RFM_NAMES[cls] || cls);
}

function input(model, key, extra = {}) {
  return h(ElInput, { modelValue: model[key], "onUpdate:modelValue": (v) => { model[key] = v; }, ...extra });
}

function picker(model, key, options, extra = {}) {
  return h(ElSelect, { modelValue: model[key], "onUpdate:modelValue": (v) => { model[key] = v; }, ...extra },
    () => options.map(([value, label]) => h(ElOption, { value, label })));
}

const table = (rows, cols, empty, test) => h(ElTable, { data: rows, border: true, size: "small", "data-test": test }, {
  default: () => cols.map(([label, render]) => h(ElTableColumn, { label }, { default: ({ row }) => render(row) })),
  empty: () => h(ElEmpty, { description: empty, imageSize: 60 }),
});

// ---------------------------------------------------------------- customer search and card

const CustomerSearch = listView({
  title: "客户搜索",
  path: "/admin/customers",
  defaults: () => ({ q: "", tier_id: "", tag_id: "", rfm_class: "", branch_id: "", last_visit_within_days: "",
    spend_gte: "", birthday_month: "" }),
  // Spend is typed in yuan and sent in fen; text that is not an amount is left out (and said so above the list).
  params: (v) => {
    const { spend_gte: spend, ...rest } = v;
    return { ...rest, spend_gte_fen: spend ? yuanToFen(spend) : null };
  },
  filters: [
    { key: "q", label: "姓名 / 手机后四位 / 推荐码", width: "220px" },
    { key: "rfm_class", label: "RFM 分类", type: "select", width: "120px", options: Object.entries(RFM_NAMES) },
    { key: "tier_id", label: "会员等级", type: "select", width: "110px", get options() { return pickers.tiers.map((t) => [t.id, t.name]); } },
    { key: "tag_id", label: "标签", type: "select", width: "130px", get options() { return pickers.tags.map((t) => [t.id, t.name]); } },
    { key: "branch_id", label: "到访院区", type: "select", width: "130px", get options() { return desk.branches.map((b) => [b.id, b.name]); } },
    { key: "last_visit_within_days", label: "最近到店（天内）", type: "select", width: "140px",
      options: [[7, "7 天内"], [30, "30 天内"], [90, "90 天内"], [180, "180 天内"], [365, "一年内"]] },
    { key: "spend_gte", label: "消费满（元）", width: "120px" },
    { key: "birthday_month", label: "生日月份", type: "select", width: "110px", options: MONTHS },
  ],
  toolbar: (_, v) => (v.spend_gte && yuanToFen(v.spend_gte) === null
    ? h("span", { class: "field-error" }, "消费金额请输入元（最多两位小数），此条件暂未使用") : null),
  empty: "没有符合条件的客户",
  columns: [
    { label: "客户", minWidth: 120, render: (r) => `${r.nickname}（#${r.id}）` },
    { label: "手机", width: 130, render: (r) => r.phone || "—" },
    { label: "推荐码", prop: "referral_code", width: 110 },
    { label: "生日", width: 110, render: (r) => r.birth_date || "—" },
    { label: "RFM", width: 100, render: (r) => rfmTag(r.rfm_class) },
  ],
  actionsWidth: 90,
  actions: (r) => [button("查看", () => { card.id = r.id; }, { type: "primary", "data-test": `card-open-${r.id}` })],
});

// The card on screen (a module-level state so the list's row button can open it without prop plumbing).
const card = reactive({ id: null });

const CustomerCard = defineComponent({
  props: { id: Number },
  setup(props) {
    const state = reactive({ c: null, error: null, tagId: null, tagError: null, busy: false });
    async function load() {
      try {
        state.c = await api.get(`/admin/customers/${props.id}/card`);
        state.error = null;
      } catch (error) {
        Object.assign(state, { c: null, error });
      }
    }
    async function putOn() {
      if (!state.tagId) return;
      state.busy = true;
      try {
        await api.post(`/admin/customers/${props.id}/tags`, { tag_id: state.tagId });
        ElMessage.success("已打标签");
        Object.assign(state, { tagId: null, tagError: null });
        await load();
      } catch (error) {
        state.tagError = error;
      } finally {
        state.busy = false;
      }
    }
    async function takeOff(tagId) {
      try {
        await api.del(`/admin/customers/${props.id}/tags/${tagId}`);
        ElMessage.success("已移除标签");
        state.tagError = null;
        await load();
      } catch (error) {
        state.tagError = error;
      }
    }
    onMounted(load);
    return () => {
      const c = state.c;
      const back = button("返回列表", () => { card.id = null; }, { "data-test": "card-back" });
      if (!c) return h("div", [h("div", { class: "toolbar" }, back), refusal(state.error)]);
      const source = c.acquisition;
      const manual = pickers.tags.filter((t) => t.kind === "manual" && !c.tags.some((x) => x.tag.id === t.id));
      return h("div", { "data-test": "customer-card" }, [
        h("div", { class: "toolbar" }, [back, h("strong", `${c.nickname}（#${c.id}） ${c.phone || ""}`)]),
        h(ElDescriptions, { column: 3, border: true, size: "small" }, () => [
          h(ElDescriptionsItem, { label: "性别" }, () => ({ female: "女", male: "男" }[c.gender] || "未知")),
          h(ElDescriptionsItem, { label: "生日" }, () => c.birth_date || "—"),
          h(ElDescriptionsItem, { label: "推荐码" }, () => c.referral_code),
          h(ElDescriptionsItem, { label: "注册" }, () => time(c.created_at)),
          h(ElDescriptionsItem, { label: "最近登录" }, () => time(c.last_login_at)),
          h(ElDescriptionsItem, { label: "来源" }, () => (source ? `${SOURCE_NAMES[source.kind] || source.kind} ${source.code || ""}` : "—")),
          h(ElDescriptionsItem, { label: "RFM" }, () => (c.rfm
            ? h("span", [rfmTag(c.rfm.rfm_class), ` 近 ${c.rfm.recency_days} 天 · ${c.rfm.frequency} 次 · ${yuan(c.rfm.monetary_fen)}`])
            : "—")),
          h(ElDescriptionsItem, { label: "积分" }, () => `可用 ${c.points.balance} · 待生效 ${c.points.pending}`),
          h(ElDescriptionsItem, { label: "会员等级" }, () => c.points.tier_name || "—"),
          h(ElDescriptionsItem, { label: "推荐" }, () => `邀请 ${c.referrals.invited} · 有效 ${c.referrals.qualified}`),
          h(ElDescriptionsItem, { label: "营销消息" }, () => (c.marketing_opt_out ? h(ElTag, { type: "danger", size: "small" }, () => "已退订") : "接收")),
          h(ElDescriptionsItem, { label: "订阅消息" }, () => Object.keys(c.subscriptions).length
            ? Object.entries(c.subscriptions).map(([k, n]) => `${k}×${n}`).join("、") : "—"),
        ]),
        h(ElCard, { header: "标签", style: { margin: "12px 0" }, "data-test": "card-tags" }, () => [
          h("div", { class: "toolbar" }, c.tags.length ? c.tags.map((t) => h(ElTag, {
            closable: t.source === "manual", type: { manual: undefined, rule: "info", skin: "warning" }[t.source],
            onClose: () => takeOff(t.tag.id), "data-test": `tag-${t.tag.code}` }, () => t.tag.name)) : [h("span", { class: "muted" }, "还没有标签")]),
          h("div", { class: "toolbar" }, [
            h(ElSelect, { modelValue: state.tagId, "onUpdate:modelValue": (v) => { state.tagId = v; }, filterable: true,
              placeholder: "选择手动标签", style: { width: "220px" }, "data-test": "tag-pick" },
            () => manual.map((t) => h(ElOption, { value: t.id, label: `${t.name}（${CATEGORY_NAMES[t.category] || t.category}）` }))),
            h(ElButton, { type: "primary", size: "small", loading: state.busy, onClick: putOn, "data-test": "tag-put" }, () => "打标签"),
            h("span", { class: "muted" }, "规则标签与皮肤标签由系统维护，不能手动移除"),
          ]),
          refusal(state.tagError),
        ]),
        h(ElTabs, null, () => [
          h(ElTabPane, { label: `RFM 历史（${c.rfm_history.length}）` }, () => table(c.rfm_history, [["日期", (r) => r.as_of],
            ["分类", (r) => rfmTag(r.rfm_class)], ["距上次（天）", (r) => String(r.recency_days)], ["次数", (r) => String(r.frequency)],
            ["消费", (r) => yuan(r.monetary_fen)]], "还没有评分")),
          h(ElTabPane, { label: `预约（${c.bookings.length}）` }, () => table(c.bookings, [["时间", (r) => time(r.starts_at)],
            ["院区", (r) => branchName(r.branch_id)], ["科室", (r) => departmentName(r.department_id)], ["状态", (r) => statusTag(r.status)],
            ["预检", (r) => (r.triage_id ? "已填写" : "—")]], "没有预约")),
          h(ElTabPane, { label: `订单（${c.orders.length}）` }, () => table(c.orders, [["单号", (r) => `#${r.id}`], ["内容", (r) => r.description],
            ["金额", (r) => yuan(r.total_fen)], ["状态", (r) => statusTag(r.status)], ["下单", (r) => time(r.created_at)]], "没有订单")),
          h(ElTabPane, { label: `券（${c.vouchers.length}）` }, () => table(c.vouchers, [["券", (r) => r.title], ["状态", (r) => statusTag(r.status)],
            ["发放", (r) => time(r.issued_at)], ["有效期至", (r) => time(r.valid_until)]], "没有券")),
          h(ElTabPane, { label: `回访（${c.follow_ups.length}）` }, () => table(c.follow_ups, [["应回访", (r) => r.due_date],
            ["类型", (r) => (r.kind === "consultation" ? "咨询回访" : "术后回访")], ["状态", (r) => statusTag(r.status)]], "没有回访")),
          h(ElTabPane, { label: `触达（${c.outreach_received.length}）` }, () => table(c.outreach_received, [["活动", (r) => r.name],
            ["对照组", (r) => (r.holdout ? "是（未发送）" : "否")], ["券", (r) => outreachOutcome(r.voucher)],
            ["优惠券", (r) => outreachOutcome(r.coupon_outcome)], ["消息", (r) => outreachOutcome(r.message)],
            ["跳过原因", (r) => skipReason(r.skip_reason)], ["时间", (r) => time(r.handled_at)]], "没有收到触达")),
          h(ElTabPane, { label: `问卷（${c.triage.length}）` }, () => table(c.triage, [["时间", (r) => time(r.created_at)],
            ["科室", (r) => departmentName(r.department_id)], ["需复核", (r) => (r.needs_doctor_review ? "是" : "否")]], "没有问卷")),
          h(ElTabPane, { label: `满意度（${c.surveys.length}）` }, () => table(c.surveys, [["时间", (r) => time(r.created_at)],
            ["评分", (r) => String(r.score)]], "没有评价")),
        ]),
      ]);
    };
  },
});

const Customers = defineComponent({
  setup() {
    card.id = null;
    const state = reactive({ ready: false });
    loadPickers().then(() => { state.ready = true; });
    // The list stays mounted under the card, so its filters and page survive a look at one customer.
    return () => (state.ready ? h("div", [
      h("div", { style: { display: card.id ? "none" : "block" } }, h(CustomerSearch)),
      card.id ? h(CustomerCard, { id: card.id, key: card.id }) : null,
    ]) : null);
  },
});

// ---------------------------------------------------------------- tags and the skin import

function tagEditor(onSaved) {
  const state = reactive({ open: false, id: null, form: {}, errors: {}, error: null, busy: false });
  function open(tag) {
    const t = tag || {};
    state.form = { code: t.code || "", name: t.name || "", category: t.category || "concern", kind: t.kind || "manual",
      description: t.description || "" };
    Object.assign(state, { open: true, id: t.id || null, errors: {}, error: null });
  }
  async function save() {
    state.busy = true;
    const f = state.form;
    try {
      if (state.id) await api.patch(`/admin/crm/tags/${state.id}`, { name: f.name, category: f.category, description: f.description });
      else await api.post("/admin/crm/tags", f);
      state.open = false;
      ElMessage.success("已保存");
      onSaved();
    } catch (error) {
      Object.assign(state, { errors: fieldErrors(error), error: error.detail && error.detail.field ? null : error });
    } finally {
      state.busy = false;
    }
  }
  const dialog = () => h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; },
    title: state.id ? "编辑标签" : "新建标签", width: "480px" }, {
    default: () => h(ElForm, { labelWidth: "80px" }, () => [
      h(ElFormItem, { label: "代码", error: state.errors.code }, () => input(state.form, "code", { disabled: !!state.id, "data-test": "tag-code" })),
      h(ElFormItem, { label: "名称", error: state.errors.name }, () => input(state.form, "name", { "data-test": "tag-name" })),
      h(ElFormItem, { label: "分类", error: state.errors.category }, () => h(ElSelect, { modelValue: state.form.category,
        "onUpdate:modelValue": (v) => { state.form.category = v; }, filterable: true, allowCreate: true, style: { width: "100%" } },
      () => Object.entries(CATEGORY_NAMES).map(([value, label]) => h(ElOption, { value, label: `${label}（${value}）` })))),
      h(ElFormItem, { label: "类型", error: state.errors.kind }, () => picker(state.form, "kind",
        [["manual", "手动"], ["skin", "皮肤检测"]], { disabled: !!state.id })),
      h(ElFormItem, { label: "说明", error: state.errors.description }, () => input(state.form, "description", { type: "textarea" })),
      refusal(state.error),
    ]),
    footer: () => [button("取消", () => { state.open = false; }),
      button("保存", save, { type: "primary", loading: state.busy, "data-test": "tag-save" })],
  });
  return { open, dialog };
}

const TagCatalogue = defineComponent({
  setup() {
    let list = null;
    const editor = tagEditor(() => { pickerLoad = null; pickers.tags = []; loadPickers(); list && list.reload(); });
    const Tags = listView({
      title: "标签库",
      path: "/admin/crm/tags",
      defaults: () => ({ category: "", kind: "" }),
      filters: [
        { key: "category", label: "分类", type: "select", width: "130px", options: Object.entries(CATEGORY_NAMES) },
        { key: "kind", label: "类型", type: "select", width: "120px", options: Object.entries(TAG_KINDS) },
      ],
      toolbar: () => button("新建标签", () => editor.open(null), { type: "primary", "data-test": "tag-new" }),
      empty: "标签库是空的",
      columns: [
        { label: "名称", prop: "name", minWidth: 120 },
        { label: "代码", prop: "code", minWidth: 140 },
        { label: "分类", width: 100, render: (r) => CATEGORY_NAMES[r.category] || r.category },
        { label: "类型", width: 90, render: (r) => TAG_KINDS[r.kind] || r.kind },
        { label: "说明", prop: "description", minWidth: 140 },
      ],
      actionsWidth: 90,
      actions: (r) => [r.kind === "rule" ? null : button("编辑", () => editor.open(r))],
    });
    return () => h("div", [h(Tags, { ref: (c) => { list = c; } }), editor.dialog()]);
  },
});

const SkinImport = defineComponent({
  setup() {
    const state = reactive({ name: "", text: "", error: null, done: null, busy: false });
    function pick(event) {
      const file = event.target.files[0];
      if (!file) return;
      state.name = file.name;
      file.text().then((text) => { Object.assign(state, { text, error: null, done: null }); });
    }
    async function send() {
      state.busy = true;
      try {
        const result = await api.postText("/admin/crm/skin-analyses/import", state.text, "text/csv");
        Object.assign(state, { done: result.rows_imported, error: null });
      } catch (error) {
        Object.assign(state, { error, done: null });
      } finally {
        state.busy = false;
      }
    }
    return () => {
      const errors = state.error && state.error.detail && state.error.detail.errors;
      return h("div", [
        title("皮肤检测导入"),
        h(ElCard, null, () => [
          h("p", { class: "muted" }, "皮肤检测仪导出的 CSV（UTF-8）：表头 customer,visit_date,tags；customer 为推荐码或顾客编号，"
            + "visit_date 为 YYYY-MM-DD，tags 为皮肤标签代码，用 ; 分隔。任一行有误则整个文件不导入；同一文件重复导入不会重复记录。"),
          h("div", { class: "toolbar" }, [
            h("input", { type: "file", accept: ".csv,text/csv", onChange: pick, "data-test": "skin-file" }),
            h(ElButton, { type: "primary", disabled: !state.text, loading: state.busy, onClick: send, "data-test": "skin-import" }, () => "导入"),
            state.name ? h("span", { class: "muted" }, state.name) : null,
          ]),
          state.done !== null ? h("p", { "data-test": "skin-done" }, `已导入 ${state.done} 行`) : null,
          errors ? null : refusal(state.error),
          errors ? h("div", [
            h("p", { class: "refusal" }, `文件未导入：${errors.length} 行有误，请修正后重新导入。`),
            table(errors, [["行号", (r) => String(r.line)], ["字段", (r) => r.field], ["问题", (r) => r.message]], "", "skin-errors"),
          ]) : null,
        ]),
      ]);
    };
  },
});

// ---------------------------------------------------------------- segments

// Each field: its operators (with words), and how its value is typed.
const FIELDS = {
  rfm_class: { label: "RFM 分类", ops: { in: "属于" }, value: "multi", options: () => Object.entries(RFM_NAMES) },
  tag: { label: "标签", ops: { in: "有任一", not_in: "都没有" }, value: "multi", options: () => pickers.tags.map((t) => [t.id, t.name]) },
  tier: { label: "会员等级", ops: { in: "属于" }, value: "multi", options: () => pickers.tiers.map((t) => [t.id, t.name]) },
  age_band: { label: "年龄段", ops: { in: "属于" }, value: "multi", options: () => AGE_BANDS.map((b) => [b, b]) },
  birthday_month: { label: "生日月份", ops: { in: "属于" }, value: "multi", options: () => MONTHS },
  last_visit_days: { label: "最近到店", ops: { within: "天数以内", not_within: "超过天数" }, value: "number" },
  spend_fen: { label: "窗口内消费（元）", ops: { gte: "≥", lt: "<" }, value: "yuan" },
  points_balance: { label: "积分余额", ops: { gte: "≥", lt: "<" }, value: "number" },
  referral_count: { label: "有效推荐人数", ops: { gte: "≥" }, value: "number" },
  branch: { label: "到访院区", ops: { in: "属于" }, value: "multi", options: () => desk.branches.map((b) => [b.id, b.name]) },
  department: { label: "就诊科室", ops: { in: "属于" }, value: "multi", options: () => desk.departments.map((d) => [d.id, d.name]) },
  upcoming_booking: { label: "有待到店预约", ops: { eq: "是否" }, value: "bool" },
  acquisition: { label: "来源", ops: { in: "属于" }, value: "multi", options: () => Object.entries(SOURCE_NAMES) },
};

function newCondition() {
  return { field: "rfm_class", op: "in", value: [], text: "" };
}

// Conditions as typed → the API's rule; a yuan field the staff has not finished typing is left as null,
// so the API names it (rules.groups[i][j].value) like any other bad value.
function ruleBody(groups) {
  return { groups: groups.map((g) => g.map((c) => {
    const kind = FIELDS[c.field].value;
    let value = c.value;
    if (kind === "yuan") value = yuanToFen(c.text);
    if (kind === "number") value = c.text === "" || !/^\d+$/.test(String(c.text)) ? null : Number(c.text);
    if (kind === "bool") value = !!c.value;
    return { field: c.field, op: c.op, value };
  })) };
}

function ruleFromApi(rules) {
  return (rules.groups || []).map((g) => g.map((c) => {
    const kind = (FIELDS[c.field] || {}).value;
    return { field: c.field, op: c.op, value: c.value,
      text: kind === "yuan" ? String(c.value / 100) : kind === "number" ? String(c.value) : "" };
  }));
}

function conditionEditor(c, path, testId, errors, onChange) {
  const spec = FIELDS[c.field];
  const set = (key, v) => { c[key] = v; onChange(); };
  let value;
  if (spec.value === "multi") {
    value = h(ElSelect, { modelValue: c.value, multiple: true, filterable: true, collapseTags: true, placeholder: "选择",
      "onUpdate:modelValue": (v) => set("value", v), style: { width: "260px" }, "data-test": `${testId}-value` },
    () => spec.options().map(([v, label]) => h(ElOption, { value: v, label })));
  } else if (spec.value === "bool") {
    value = h(ElCheckbox, { modelValue: !!c.value, "onUpdate:modelValue": (v) => set("value", v) }, () => "有");
  } else {
    value = h(ElInput, { modelValue: c.text, "onUpdate:modelValue": (v) => set("text", v), style: { width: "160px" },
      placeholder: spec.value === "yuan" ? "金额（元）" : "数字", "data-test": `${testId}-value` });
  }
  const error = errors[`rules.${path}.value`] || errors[`rules.${path}.op`] || errors[`rules.${path}.field`];
  return h("div", { class: "toolbar", style: { marginBottom: "4px" } }, [
    h(ElSelect, { modelValue: c.field, style: { width: "150px" }, "data-test": `${testId}-field`, "onUpdate:modelValue": (v) => {
      Object.assign(c, { field: v, op: Object.keys(FIELDS[v].ops)[0], value: FIELDS[v].value === "multi" ? [] : false, text: "" });
      onChange();
    } }, () => Object.entries(FIELDS).map(([v, f]) => h(ElOption, { value: v, label: f.label }))),
    h(ElSelect, { modelValue: c.op, style: { width: "110px" }, "data-test": `${testId}-op`, "onUpdate:modelValue": (v) => set("op", v) },
      () => Object.entries(spec.ops).map(([v, label]) => h(ElOption, { value: v, label }))),
    value,
    error ? h("span", { class: "field-error" }, error) : null,
  ]);
}

function segmentEditor(onSaved) {
  const state = reactive({ open: false, id: null, name: "", description: "", groups: [], errors: {}, error: null,
    busy: false, count: null, counting: false, countError: null, elapsed: null });
  let timer = null;
  let asked = 0;
  // The live count: 400 ms after the last change, one preview; an older answer arriving late is dropped.
  function changed() {
    clearTimeout(timer);
    timer = setTimeout(preview, 400);
  }
  async function preview() {
    const ticket = ++asked;
    state.counting = true;
    try {
      const result = await api.post("/admin/crm/segments/preview", ruleBody(state.groups));
      if (ticket !== asked) return;
      Object.assign(state, { count: result.count, elapsed: result.elapsed_ms, countError: null, errors: {} });
    } catch (error) {
      if (ticket !== asked) return;
      Object.assign(state, { count: null, countError: error.detail && error.detail.field ? null : error, errors: fieldErrors(error) });
    } finally {
      if (ticket === asked) state.counting = false;
    }
  }
  function open(segment) {
    const s = segment || {};
    Object.assign(state, { open: true, id: s.id || null, name: s.name || "", description: s.description || "",
      groups: s.rules ? ruleFromApi(s.rules) : [[newCondition()]], errors: {}, error: null, count: null, countError: null });
    changed();
  }
  async function save() {
    state.busy = true;
    const body = { name: state.name, description: state.description, rules: ruleBody(state.groups) };
    try {
      if (state.id) await api.patch(`/admin/crm/segments/${state.id}`, body);
      else await api.post("/admin/crm/segments", body);
      state.open = false;
      ElMessage.success("已保存");
      onSaved();
    } catch (error) {
      Object.assign(state, { errors: fieldErrors(error), error: error.detail && error.detail.field ? null : error });
    } finally {
      state.busy = false;
    }
  }
  const dialog = () => h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; clearTimeout(timer); },
    title: state.id ? "编辑分组" : "新建分组", width: "860px", top: "4vh" }, {
    default: () => h("div", { "data-test": "segment-editor" }, [
      h(ElForm, { labelWidth: "70px" }, () => [
        h(ElFormItem, { label: "名称", error: state.errors.name }, () => input(state, "name", { "data-test": "segment-name" })),
        h(ElFormItem, { label: "说明", error: state.errors.description }, () => input(state, "description")),
      ]),
      h("p", { class: "muted" }, "条件组之间为“并且”，同一组内的条件为“或者”。"),
      ...state.groups.map((group, i) => h(ElCard, { class: "sku", shadow: "never", "data-test": `group-${i}` }, {
        header: () => h("div", { class: "toolbar", style: { marginBottom: 0 } }, [
          h("strong", i === 0 ? `条件组 ${i + 1}` : `并且 · 条件组 ${i + 1}`),
          button("删除此组", () => { state.groups.splice(i, 1); changed(); }, { disabled: state.groups.length === 1, type: "danger", link: true }),
        ]),
        default: () => [
          ...group.map((c, j) => h("div", { style: { display: "flex", gap: "8px" } }, [
            h("span", { class: "muted", style: { width: "28px", paddingTop: "6px" } }, j === 0 ? "" : "或者"),
            conditionEditor(c, `groups[${i}][${j}]`, `cond-${i}-${j}`, state.errors, changed),
            button("×", () => { group.splice(j, 1); if (!group.length) state.groups.splice(i, 1); if (!state.groups.length) state.groups.push([newCondition()]); changed(); }, { link: true }),
          ])),
          button("＋ 或者", () => { group.push(newCondition()); changed(); }, { link: true, type: "primary", "data-test": `group-${i}-or` }),
        ],
      })),
      h("div", { class: "toolbar" }, [
        button("＋ 并且（新条件组）", () => { state.groups.push([newCondition()]); changed(); }, { "data-test": "segment-and" }),
        h("span", { class: "live-count", "data-test": "live-count" }, state.counting && state.count === null ? "计算中…"
          : state.count === null ? "—" : `当前符合条件：${state.count} 人`),
        state.elapsed !== null && state.count !== null ? h("span", { class: "muted" }, `（${state.elapsed} ms）`) : null,
      ]),
      state.errors.rules || state.errors["rules.groups"] ? h("p", { class: "field-error" }, state.errors.rules || state.errors["rules.groups"]) : null,
      refusal(state.countError),
      refusal(state.error),
    ]),
    footer: () => [button("取消", () => { state.open = false; clearTimeout(timer); }),
      button("保存", save, { type: "primary", loading: state.busy, "data-test": "segment-save" })],
  });
  return { open, dialog, stop: () => clearTimeout(timer) };
}

function describeRule(rules) {
  return (rules.groups || []).map((g) => g.map((c) => {
    const f = FIELDS[c.field] || { label: c.field, ops: {}, value: "" };
    const values = Array.isArray(c.value) ? c.value.map((v) => {
      const hit = f.options ? f.options().find(([k]) => k === v) : null;
      return hit ? hit[1] : v;
    }).join("、") : f.value === "yuan" ? yuan(c.value) : c.value === true ? "是" : c.value === false ? "否" : c.value;
    return `${f.label}${f.ops[c.op] || c.op}${values}`;
  }).join(" 或 ")).map((text) => `（${text}）`).join(" 且 ");
}

const Segments = defineComponent({
  setup() {
    let list = null;
    const editor = segmentEditor(() => list && list.reload());
    onBeforeUnmount(editor.stop);
    const state = reactive({ ready: false });
    loadPickers().then(() => { state.ready = true; });
    const List = listView({
      title: "人群分组",
      path: "/admin/crm/segments",
      toolbar: () => button("新建分组", () => editor.open(null), { type: "primary", "data-test": "segment-new" }),
      empty: "还没有分组",
      columns: [
        { label: "名称", prop: "name", minWidth: 120 },
        { label: "条件", minWidth: 260, render: (r) => h("span", { class: "muted" }, describeRule(r.rules)) },
        { label: "人数", width: 80, render: (r) => String(r.member_count) },
        { label: "更新于", width: 140, render: (r) => time(r.recomputed_at) },
      ],
      actionsWidth: 170,
      actions: (r, reload) => [
        button("编辑", () => editor.open(r)),
        button("重新计算", () => act(api.post(`/admin/crm/segments/${r.id}/recompute`), "已重新计算", reload), { type: "primary" }),
      ],
    });
    return () => (state.ready ? h("div", [h(List, { ref: (c) => { list = c; } }), editor.dialog()]) : null);
  },
});

// ---------------------------------------------------------------- outreach

const pct = (bp) => `${(bp / 100).toFixed(2)}%`;

// Coupon templates staff can name (switched-off ones are refused by the API): [id, label] pairs.
async function couponTemplateOptions() {
  const templates = await api.get("/admin/shop/coupon-templates").catch(() => []);
  return templates.filter((t) => t.is_active).map((t) => [t.id, `${t.name}（#${t.id}）`]);
}

function outreachEditor(onSaved) {
  const state = reactive({ open: false, form: {}, errors: {}, error: null, busy: false, segments: [], coupons: [] });
  async function open() {
    state.form = { name: "", segment_id: null, voucher_title: "", voucher_valid_days: 30, voucher_stock: null,
      coupon_template_id: null, template_id: "", message_page: "", holdout_pct: 10, skip_upcoming_booking: true,
      lift_days: 14 };
    Object.assign(state, { open: true, errors: {}, error: null });
    [state.segments, state.coupons] = await Promise.all([
      api.get("/admin/crm/segments", { limit: 200 }).then((p) => p.items).catch(() => []),
      couponTemplateOptions(),
    ]);
  }
  async function save() {
    const f = state.form;
    state.busy = true;
    try {
      await api.post("/admin/crm/outreach", { name: f.name, segment_id: f.segment_id, voucher_title: f.voucher_title,
        voucher_valid_days: f.voucher_valid_days, voucher_stock: f.voucher_stock,
        coupon_template_id: f.coupon_template_id || null, template_id: f.template_id,
        message_page: f.message_page, holdout_bp: Math.round((f.holdout_pct || 0) * 100),
        skip_upcoming_booking: f.skip_upcoming_booking, lift_days: f.lift_days });
      state.open = false;
      ElMessage.success("已创建草稿");
      onSaved();
    } catch (error) {
      const errors = fieldErrors(error);
      if (errors.holdout_bp) errors.holdout_pct = errors.holdout_bp;
      Object.assign(state, { errors, error: error.detail && error.detail.field ? null : error });
    } finally {
      state.busy = false;
    }
  }
  const number = (key, extra = {}) => h(ElInputNumber, { modelValue: state.form[key], controls: false,
    "onUpdate:modelValue": (v) => { state.form[key] = v; }, ...extra });
  const dialog = () => h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; },
    title: "新建触达", width: "560px" }, {
    default: () => h(ElForm, { labelWidth: "120px" }, () => [
      h(ElFormItem, { label: "名称", error: state.errors.name }, () => input(state.form, "name")),
      h(ElFormItem, { label: "人群分组", error: state.errors.segment_id }, () => picker(state.form, "segment_id",
        state.segments.map((s) => [s.id, `${s.name}（${s.member_count} 人）`]), { style: { width: "100%" } })),
      h(ElFormItem, { label: "发券：券名", error: state.errors.voucher_title }, () => input(state.form, "voucher_title", { placeholder: "不发券请留空" })),
      h(ElFormItem, { label: "有效天数", error: state.errors.voucher_valid_days }, () => number("voucher_valid_days", { min: 1, max: 365 })),
      h(ElFormItem, { label: "赠优惠券", error: state.errors.coupon_template_id }, () => picker(state.form, "coupon_template_id",
        state.coupons, { clearable: true, placeholder: "不赠优惠券请留空", style: { width: "100%" }, "data-test": "outreach-coupon" })),
      h(ElFormItem, { label: "礼品库存", error: state.errors.voucher_stock }, () => number("voucher_stock", { min: 0, placeholder: "不限（券与优惠券共用）" })),
      h(ElFormItem, { label: "订阅消息模板", error: state.errors.template_id }, () => input(state.form, "template_id", { placeholder: "不发消息请留空" })),
      h(ElFormItem, { label: "消息跳转页面", error: state.errors.message_page }, () => input(state.form, "message_page")),
      h(ElFormItem, { label: "对照组（%）", error: state.errors.holdout_pct }, () => number("holdout_pct", { min: 0, max: 50, precision: 2 })),
      h(ElFormItem, { label: "效果统计天数", error: state.errors.lift_days }, () => number("lift_days", { min: 1, max: 90 })),
      h(ElFormItem, { label: "" }, () => h(ElCheckbox, { modelValue: state.form.skip_upcoming_booking,
        "onUpdate:modelValue": (v) => { state.form.skip_upcoming_booking = v; } }, () => "跳过已有待到店预约的顾客")),
      refusal(state.error),
    ]),
    footer: () => [button("取消", () => { state.open = false; }), button("保存草稿", save, { type: "primary", loading: state.busy })],
  });
  return { open, dialog };
}

function resultsView() {
  const state = reactive({ open: false, r: null, error: null });
  async function open(id) {
    Object.assign(state, { open: true, r: null, error: null });
    try {
      state.r = await api.get(`/admin/crm/outreach/${id}`);
    } catch (error) {
      state.error = error;
    }
  }
  const row = (label, key, r) => ({ label, recipients: r.recipients[key], holdout: r.holdout[key],
    rr: r.recipients[`${key}_rate_bp`], hr: r.holdout[`${key}_rate_bp`], lift: r.lift_bp[key] });
  const dialog = () => h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; },
    title: state.r ? `触达效果 · ${state.r.outreach.name}` : "触达效果", width: "760px" }, () => {
    const r = state.r;
    if (!r) return refusal(state.error);
    const c = r.counts;
    return h("div", { "data-test": "outreach-results" }, [
      h(ElDescriptions, { column: 3, border: true, size: "small" }, () => [
        h(ElDescriptionsItem, { label: "分组人数" }, () => String(c.members ?? 0)),
        h(ElDescriptionsItem, { label: "对照组" }, () => `${c.holdout ?? 0} 人（${pct(r.outreach.holdout_bp)}）`),
        h(ElDescriptionsItem, { label: "统计窗口" }, () => (r.window_start ? `${time(r.window_start)} 起 ${r.outreach.lift_days} 天` : "尚未执行")),
        ...Object.entries(c).filter(([k]) => !["members", "holdout"].includes(k)).map(([k, n]) =>
          h(ElDescriptionsItem, { label: countLabel(k) }, () => String(n))),
      ]),
      h("div", { style: { height: "12px" } }),
      table([row("预约", "booked", r), row("核销券", "redeemed", r), row("支付订单", "paid", r)], [
        ["行为", (x) => x.label],
        [`触达组（${r.recipients.customers} 人）`, (x) => `${x.recipients} 人 · ${pct(x.rr)}`],
        [`对照组（${r.holdout.customers} 人）`, (x) => `${x.holdout} 人 · ${pct(x.hr)}`],
        ["提升", (x) => h(ElTag, { size: "small", type: x.lift > 0 ? "success" : x.lift < 0 ? "danger" : "info" },
          () => `${x.lift > 0 ? "+" : ""}${pct(x.lift)}`)],
      ], "", "lift-table"),
      h("p", { class: "muted" }, "提升 = 触达组比例 − 对照组比例（对照组什么也不会收到）。"),
    ]);
  });
  return { open, dialog };
}

// The coupon the CRM gives on its own: the birthday gift (with or instead of its voucher) and after a visit the
// front desk completes (PUT /admin/crm/coupon-rules/{occasion}).
function couponRulesEditor() {
  const state = reactive({ open: false, rules: {}, errors: {}, error: null, busy: false, coupons: [] });
  async function open() {
    Object.assign(state, { open: true, errors: {}, error: null });
    const [rules, coupons] = await Promise.all([api.get("/admin/crm/coupon-rules"), couponTemplateOptions()]);
    state.rules = Object.fromEntries(rules.map((r) => [r.occasion, { ...r }]));
    state.coupons = coupons;
  }
  async function save() {
    state.busy = true;
    state.errors = {};
    try {
      for (const occasion of ["birthday", "after_visit"]) {
        const r = state.rules[occasion];
        try {
          await api.put(`/admin/crm/coupon-rules/${occasion}`, { coupon_template_id: r.coupon_template_id || null,
            with_voucher: occasion === "birthday" ? r.with_voucher : false });
        } catch (error) {
          const errors = fieldErrors(error);
          state.errors = Object.fromEntries(Object.entries(errors).map(([k, v]) => [`${occasion}.${k}`, v]));
          state.error = error.detail && error.detail.field ? null : error;
          return;
        }
      }
      state.open = false;
      ElMessage.success("已保存赠券规则");
    } finally {
      state.busy = false;
    }
  }
  const coupon = (occasion, test) => picker(state.rules[occasion], "coupon_template_id", state.coupons,
    { clearable: true, placeholder: "不赠优惠券", style: { width: "100%" }, "data-test": test });
  const dialog = () => h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; },
    title: "赠券规则", width: "560px" }, {
    default: () => (state.rules.birthday ? h(ElForm, { labelWidth: "140px", "data-test": "coupon-rules-editor" }, () => [
      h(ElFormItem, { label: "生日礼：优惠券", error: state.errors["birthday.coupon_template_id"] }, () => coupon("birthday", "rule-birthday-coupon")),
      h(ElFormItem, { label: "", error: state.errors["birthday.with_voucher"] }, () => h(ElCheckbox, {
        modelValue: state.rules.birthday.with_voucher, "data-test": "rule-birthday-voucher",
        "onUpdate:modelValue": (v) => { state.rules.birthday.with_voucher = v; } }, () => "同时发生日礼券（不勾选：只发优惠券）")),
      h(ElFormItem, { label: "到店完成后：优惠券", error: state.errors["after_visit.coupon_template_id"] }, () => coupon("after_visit", "rule-visit-coupon")),
      refusal(state.error),
    ]) : null),
    footer: () => [button("取消", () => { state.open = false; }),
      button("保存", save, { type: "primary", loading: state.busy, "data-test": "coupon-rules-save" })],
  });
  return { open, dialog };
}

const Outreach = defineComponent({
  setup() {
    let list = null;
    const editor = outreachEditor(() => list && list.reload());
    const results = resultsView();
    const rules = couponRulesEditor();
    const List = listView({
      title: "精准触达",
      path: "/admin/crm/outreach",
      toolbar: () => [button("赠券规则", rules.open, { "data-test": "coupon-rules" }),
        button("新建触达", editor.open, { type: "primary", "data-test": "outreach-new" })],
      empty: "还没有触达",
      columns: [
        { label: "名称", prop: "name", minWidth: 130 },
        { label: "分组", prop: "segment_id", width: 70 },
        { label: "内容", minWidth: 150, render: (r) => [r.voucher_title ? `券：${r.voucher_title}（已发 ${r.vouchers_issued}${r.voucher_stock !== null ? ` / ${r.voucher_stock}` : ""}）` : "",
          r.coupon_template_id ? `优惠券 #${r.coupon_template_id}（已发 ${r.coupons_issued}）` : "",
          r.template_id ? `消息：${r.template_id}` : ""].filter(Boolean).join("；") || "—" },
        { label: "对照组", width: 80, render: (r) => pct(r.holdout_bp) },
        { label: "状态", width: 90, render: (r) => {
          const [label, type] = OUTREACH_STATUS[r.status] || [r.status, "info"];
          return h(ElTag, { size: "small", type }, () => label);
        } },
        { label: "执行时间", width: 140, render: (r) => time(r.started_at || r.scheduled_at) },
      ],
      actionsWidth: 210,
      actions: (r, reload) => [
        button("效果", () => results.open(r.id), { "data-test": `outreach-results-${r.id}` }),
        r.status === "draft" ? button("立即执行", () => act(api.post(`/admin/crm/outreach/${r.id}/schedule`, {}), "已安排执行", reload), { type: "primary" }) : null,
        ["draft", "scheduled"].includes(r.status) ? button("取消", () => act(api.post(`/admin/crm/outreach/${r.id}/cancel`), "已取消", reload), { type: "warning" }) : null,
      ],
    });
    return () => h("div", [h(List, { ref: (c) => { list = c; } }), editor.dialog(), results.dialog(), rules.dialog()]);
  },
});

export const CRM = [
  { path: "/crm/customers", title: "客户搜索", roles: ["campaign", "front_desk"], group: "crm", component: Customers },
  { path: "/crm/tags", title: "标签库", roles: ["campaign"], group: "crm", component: TagCatalogue },
  { path: "/crm/skin-import", title: "皮肤检测导入", roles: ["campaign", "front_desk"], group: "crm", component: SkinImport },
  { path: "/crm/segments", title: "人群分组", roles: ["campaign"], group: "crm", component: Segments },
  { path: "/crm/outreach", title: "精准触达", roles: ["campaign"], group: "crm", component: Outreach },
];
