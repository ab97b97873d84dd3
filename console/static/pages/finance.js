// Finance screens: referral rewards (review queue), settlement batches (maker-checker), orders and refunds, points liability.
import { defineComponent, h, reactive, ref, shallowRef, onMounted, onBeforeUnmount, nextTick } from "vue";
import {
  ElAlert, ElButton, ElCard, ElDatePicker, ElDescriptions, ElDescriptionsItem, ElDialog, ElEmpty, ElForm, ElFormItem,
  ElInput, ElMessage, ElMessageBox, ElOption, ElSelect, ElTable, ElTableColumn, ElTag,
} from "element-plus";
import { api, download, session } from "../api.js";
import { yuan, yuanToFen } from "../money.js";
import { button, clinicToday, fieldErrors, listView, refusal, refusalText, statusTag, time, title } from "../ui.js";

const HOLD_REASONS = { over_cap: "超过月度奖励上限", fraud_signal: "存在风险信号，需人工复核" };

async function reason(action) {
  try {
    const { value } = await ElMessageBox.prompt("请填写原因（记入审计日志）", action, { confirmButtonText: "确定",
      cancelButtonText: "取消", inputValidator: (v) => (v && v.trim() ? true : "请填写原因") });
    return value;
  } catch (_) {
    return null;
  }
}

async function act(promise, done, reload) {
  try {
    await promise;
    ElMessage.success(done);
    reload();
  } catch (error) {
    ElMessage.error(refusalText(error));
  }
}

const Rewards = listView({
  title: "推荐奖励",
  path: "/admin/referrals/rewards",
  defaults: () => ({ status: "held" }),
  filters: [{ key: "status", label: "状态", type: "select", width: "130px", options: [["pending", "待定"], ["held", "待复核"],
    ["payable", "可结算"], ["batched", "已入批次"], ["paid", "已打款"], ["cancelled", "已取消"], ["voided", "已作废"]] },
  { key: "beneficiary_id", label: "受益人编号", type: "text", width: "130px" }],
  empty: "没有这个状态的奖励",
  columns: [
    { label: "编号", prop: "id", width: 70 },
    { label: "受益人 / 被推荐人", width: 140, render: (r) => `#${r.beneficiary_id} ← #${r.referee_id}（${r.level}级）` },
    { label: "奖励", width: 110, render: (r) => (r.kind === "cash" ? yuan(r.amount_fen) : r.kind === "points" ? `${r.points} 积分` : "券") },
    { label: "状态", width: 90, render: (r) => statusTag(r.status) },
    { label: "原因", minWidth: 180, render: (r) => h("div", [
      r.hold_reason ? h("div", HOLD_REASONS[r.hold_reason] || r.hold_reason) : null,
      r.signals.length ? h("div", { class: "muted" }, `信号：${r.signals.join("、")}`) : null,
      r.cancel_reason ? h("div", { class: "muted" }, `取消：${r.cancel_reason}`) : null,
      r.decision_reason ? h("div", { class: "muted" }, `处理：${r.decision_reason}`) : null,
      r.status === "pending" ? h("div", { class: "muted" }, `冻结至 ${time(r.hold_until)}`) : null,
    ]) },
    { label: "消费", width: 100, render: (r) => yuan(r.qualifying_amount_fen) },
    { label: "时间", width: 140, render: (r) => time(r.created_at) },
  ],
  actionsWidth: 140,
  actions: (r, reload) => (r.status === "held" ? [
    button("放行", async () => { const why = await reason("放行奖励"); if (why) act(api.post(`/admin/referrals/rewards/${r.id}/approve`, { reason: why }), "已放行", reload); }, { type: "primary" }),
    button("作废", async () => { const why = await reason("作废奖励"); if (why) act(api.post(`/admin/referrals/rewards/${r.id}/void`, { reason: why }), "已作废", reload); }, { type: "danger" }),
  ] : []),
});

// One batch: lines per payee, the total, and the maker-checker steps.
function batchReview(onChanged) {
  const state = reactive({ open: false, review: null, error: null, busy: false, exporting: null });
  async function show(id) {
    state.open = true;
    try {
      state.review = await api.get(`/admin/settlements/${id}`);
      state.error = null;
    } catch (error) {
      state.error = error;
    }
  }
  async function run(promise, done) {
    state.busy = true;
    try {
      await promise;
      ElMessage.success(done);
      state.error = null;
      await show(state.review.batch.id);
      onChanged();
    } catch (error) {
      state.error = error;
    } finally {
      state.busy = false;
    }
  }
  const Dialog = defineComponent({
    setup() {
      return () => {
        if (!state.open) return null;
        const b = state.review && state.review.batch;
        const mine = b && session.staff && b.created_by_id === session.staff.id;
        return h(ElDialog, { modelValue: state.open, "onUpdate:modelValue": (v) => { state.open = v; }, width: "860px",
          title: b ? `结算批次 #${b.id}` : "结算批次" }, () => [
          refusal(state.error),
          b ? [
            h(ElDescriptions, { column: 3, border: true }, () => [
              h(ElDescriptionsItem, { label: "状态" }, () => statusTag(b.status)),
              h(ElDescriptionsItem, { label: "截至" }, () => b.up_to),
              h(ElDescriptionsItem, { label: "合计" }, () => h("b", { "data-test": "batch-total" }, yuan(b.total_fen))),
              h(ElDescriptionsItem, { label: "收款人" }, () => String(b.payee_count)),
              h(ElDescriptionsItem, { label: "奖励" }, () => `${b.reward_count} 笔 ${yuan(b.rewards_fen)}`),
              h(ElDescriptionsItem, { label: "调整" }, () => `${b.adjustment_count} 笔 ${yuan(b.adjustments_fen)}`),
              h(ElDescriptionsItem, { label: "制单" }, () => `#${b.created_by_id} ${time(b.created_at)}`),
              h(ElDescriptionsItem, { label: "审批" }, () => (b.approved_by_id ? `#${b.approved_by_id} ${time(b.approved_at)}` : "—")),
              h(ElDescriptionsItem, { label: "打款" }, () => (b.paid_at ? `${b.external_ref} ${time(b.paid_at)}` : "—")),
            ]),
            h(ElTable, { data: state.review.lines, border: true, size: "small", style: { marginTop: "12px" } }, {
              default: () => [
                h(ElTableColumn, { label: "收款人", minWidth: 140 }, { default: ({ row }) => `${row.nickname}（#${row.payee_id}）${row.phone_masked}` }),
                h(ElTableColumn, { label: "奖励", width: 130 }, { default: ({ row }) => `${row.reward_count} 笔 ${yuan(row.rewards_fen)}` }),
                h(ElTableColumn, { label: "调整", width: 130 }, { default: ({ row }) => `${row.adjustment_count} 笔 ${yuan(row.adjustments_fen)}` }),
                h(ElTableColumn, { label: "应付", width: 110 }, { default: ({ row }) => yuan(row.net_fen) }),
              ],
              empty: () => h(ElEmpty, { description: "本批次没有收款人", imageSize: 60 }),
            }),
            b.status === "draft" && mine ? h(ElAlert, { type: "info", showIcon: true, closable: false, class: "refusal",
              "data-test": "maker-note", title: "您是本批次的制单人，不能审批：须由另一位财务人员审批（制单与审批分离，防止一人完成付款）。" }) : null,
            h("div", { class: "toolbar", style: { marginTop: "12px" } }, [
              b.status === "draft" ? h(ElButton, { type: "primary", disabled: mine, loading: state.busy, "data-test": "batch-approve",
                onClick: () => run(api.post(`/admin/settlements/${b.id}/approve`), "已审批") }, () => "审批") : null,
              b.status === "approved" ? h(ElButton, { type: "success", loading: state.busy, "data-test": "batch-mark-paid", onClick: async () => {
                let ref;
                try {
                  ({ value: ref } = await ElMessageBox.prompt("银行/转账流水号", "标记已打款", { inputValidator: (v) => (v && v.trim() ? true : "请填写流水号") }));
                } catch (_) { return; }
                run(api.post(`/admin/settlements/${b.id}/mark-paid`, { external_ref: ref }), "已标记打款");
              } }, () => "标记已打款") : null,
              ["draft", "approved"].includes(b.status) ? h(ElButton, { type: "danger", plain: true, loading: state.busy,
                onClick: () => run(api.post(`/admin/settlements/${b.id}/cancel`), "已取消") }, () => "取消批次") : null,
              ...["csv", "xlsx"].map((format) => h(ElButton, { "data-test": `batch-${format}`, loading: state.exporting === format,
                onClick: async () => {
                  state.exporting = format;
                  try { await download(`/admin/settlements/${b.id}/export`, { format }, `settlement-${b.id}.${format}`); } catch (e) { state.error = e; }
                  finally { state.exporting = null; }
                } }, () => `下载 ${format.toUpperCase()}`)),
            ]),
          ] : null,
        ]);
      };
    },
  });
  return { show, Dialog };
}

const Settlements = defineComponent({
  setup() {
    const list = shallowRef(null);
    const review = batchReview(() => list.value && list.value.reload());
    // "Up to today" means the clinic's today: the API ends `up_to` at midnight in the clinic's zone
    // (CLINIC_TIMEZONE), not in a branch's nor the PC's.
    const create = reactive({ open: false, up_to: clinicToday(), note: "", errors: {}, error: null, busy: false });
    async function submit() {
      create.busy = true;
      try {
        const batch = await api.post("/admin/settlements", { up_to: create.up_to, note: create.note });
        Object.assign(create, { open: false, errors: {}, error: null });
        list.value && list.value.reload();
        review.show(batch.id);
      } catch (error) {
        Object.assign(create, { errors: fieldErrors(error), error: error.detail.field ? null : error });
      } finally {
        create.busy = false;
      }
    }
    const List = listView({
      title: "结算批次",
      path: "/admin/settlements",
      filters: [{ key: "status", label: "状态", type: "select", width: "120px",
        options: [["draft", "草稿"], ["approved", "已审批"], ["paid", "已打款"], ["cancelled", "已取消"]] }],
      toolbar: () => h(ElButton, { type: "primary", onClick: () => { create.open = true; }, "data-test": "batch-new" }, () => "新建批次"),
      empty: "还没有结算批次",
      columns: [
        { label: "批次", prop: "id", width: 70 },
        { label: "状态", width: 90, render: (r) => statusTag(r.status) },
        { label: "截至", prop: "up_to", width: 110 },
        { label: "合计", width: 110, render: (r) => yuan(r.total_fen) },
        { label: "收款人", prop: "payee_count", width: 80 },
        { label: "制单 / 审批", width: 120, render: (r) => `#${r.created_by_id} / ${r.approved_by_id ? "#" + r.approved_by_id : "—"}` },
        { label: "备注", prop: "note", minWidth: 120 },
        { label: "创建", width: 140, render: (r) => time(r.created_at) },
      ],
      actionsWidth: 90,
      actions: (r) => [button("查看", () => review.show(r.id), { type: "primary", "data-test": `batch-open-${r.id}` })],
    });
    return () => h("div", [
      h(List, { ref: list }),
      h(review.Dialog),
      create.open ? h(ElDialog, { modelValue: true, "onUpdate:modelValue": (v) => { create.open = v; }, title: "新建结算批次", width: "480px" }, {
        default: () => [
          refusal(create.error),
          h("p", { class: "muted" }, "把截至该日所有“可结算”的奖励放进一个批次，由另一位财务人员审批后打款。"),
          h(ElForm, { labelWidth: "80px" }, () => [
            h(ElFormItem, { label: "截至日期", error: create.errors.up_to }, () => h(ElDatePicker, { modelValue: create.up_to, type: "date",
              valueFormat: "YYYY-MM-DD", "onUpdate:modelValue": (v) => { create.up_to = v; } })),
            h(ElFormItem, { label: "备注", error: create.errors.note }, () => h(ElInput, { modelValue: create.note,
              "onUpdate:modelValue": (v) => { create.note = v; } })),
          ]),
        ],
        footer: () => h(ElButton, { type: "primary", loading: create.busy, onClick: submit, "data-test": "batch-create" }, () => "创建"),
      }) : null,
    ]);
  },
});

const ORDER_STATUSES = [["pending_payment", "待支付"], ["paid", "已支付"], ["fulfilled", "已完成"], ["refunding", "退款中"], ["refunded", "已退款"], ["closed", "已关闭"]];

const REFUND_REASONS = [["customer_request", "顾客申请"], ["service_issue", "服务问题"], ["goodwill", "关怀补偿"]];

const Orders = defineComponent({
  setup() {
    const exporting = ref(false);
    const detail = reactive({ open: false, data: null, error: null });
    const refund = reactive({ amount: "", reason: "customer_request", note: "", errors: {}, error: null, busy: false, key: null });
    async function submitRefund() {
      const text = refund.amount.trim();
      const amount = text ? yuanToFen(text) : null;
      if (text && (amount === null || amount <= 0)) { refund.errors = { amount_fen: "请输入金额（元，最多两位小数），留空为全额" }; return; }
      refund.busy = true;
      try {
        // One key per refund the member means: a retry of this form (a lost answer) is the same refund.
        refund.key = refund.key || Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
        await api.post(`/admin/orders/${detail.data.order.id}/refunds`, { reason: refund.reason, amount_fen: amount, note: refund.note },
          { "Idempotency-Key": refund.key });
        ElMessage.success("已提交退款");
        Object.assign(refund, { amount: "", note: "", errors: {}, error: null, key: null });
        await show(detail.data.order.id);
      } catch (error) {
        Object.assign(refund, { errors: fieldErrors(error), error: error.detail.field ? null : error });
      } finally {
        refund.busy = false;
      }
    }
    async function show(id) {
      detail.open = true;
      try { detail.data = await api.get(`/admin/orders/${id}`); detail.error = null; } catch (error) { detail.error = error; }
    }
    const List = listView({
      title: "订单与退款",
      path: "/admin/orders",
      filters: [{ key: "status", label: "状态", type: "select", width: "120px", options: ORDER_STATUSES },
        { key: "from", label: "起始日期", type: "date", width: "150px" }, { key: "to", label: "截止日期", type: "date", width: "150px" }],
      toolbar: (_, values) => h(ElButton, { loading: exporting.value, onClick: async () => {
        // The file is fetched with the token in a header, then saved: the button spins until it is here.
        exporting.value = true;
        try { await download("/admin/orders/export.csv", values, "orders.csv"); } catch (e) { ElMessage.error(refusalText(e)); }
        finally { exporting.value = false; }
      } }, () => (exporting.value ? "正在导出…" : "导出 CSV")),
      before: (state) => (state.data && state.data.totals ? h("div", { class: "totals" },
        `共 ${state.data.totals.orders} 单 · 应收 ${yuan(state.data.totals.total_fen)} · 实收 ${yuan(state.data.totals.paid_fen)} · 退款 ${yuan(state.data.totals.refunded_fen)} · 净额 ${yuan(state.data.totals.net_fen)}`) : null),
      empty: "没有符合条件的订单",
      columns: [
        { label: "订单号", prop: "out_trade_no", minWidth: 170 },
        { label: "内容", prop: "description", minWidth: 140 },
        { label: "状态", width: 90, render: (r) => h(ElTag, { size: "small", type: r.status === "paid" || r.status === "fulfilled" ? "success" : undefined },
          () => (ORDER_STATUSES.find(([k]) => k === r.status) || [r.status, r.status])[1]) },
        { label: "实收", width: 100, render: (r) => yuan(r.paid_fen) },
        { label: "退款", width: 100, render: (r) => yuan(r.refunded_fen) },
        { label: "净额", width: 100, render: (r) => yuan(r.net_fen) },
        { label: "下单", width: 140, render: (r) => time(r.created_at) },
      ],
      actionsWidth: 80,
      actions: (r) => [button("对账", () => show(r.id))],
    });
    const table = (rows, cols, empty) => h(ElTable, { data: rows, border: true, size: "small" }, {
      default: () => cols.map(([label, render]) => h(ElTableColumn, { label }, { default: ({ row }) => render(row) })),
      empty: () => h(ElEmpty, { description: empty, imageSize: 50 }),
    });
    return () => h("div", [
      h(List),
      detail.open ? h(ElDialog, { modelValue: true, "onUpdate:modelValue": (v) => { detail.open = v; }, width: "860px", title: "订单对账" }, () => [
        refusal(detail.error),
        detail.data ? [
          h("p", `${detail.data.order.out_trade_no} · 微信交易号 ${detail.data.order.transaction_id || "—"} · 实收 ${yuan(detail.data.order.paid_fen)} · 退款 ${yuan(detail.data.order.refunded_fen)}`),
          h("h4", "明细"), table(detail.data.lines, [["项目", (r) => r.title], ["数量", (r) => String(r.quantity)], ["金额", (r) => yuan(r.amount_fen)]], "无明细"),
          h("h4", "退款"), table(detail.data.refunds, [["退款单", (r) => r.out_refund_no], ["金额", (r) => yuan(r.amount_fen)], ["状态", (r) => r.status], ["原因", (r) => r.reason]], "没有退款"),
          h("h4", "支付事件（对账结果）"), table(detail.data.events, [["来源", (r) => r.source], ["事件", (r) => r.event_type], ["结果", (r) => r.outcome], ["金额", (r) => yuan(r.amount_fen)], ["时间", (r) => time(r.received_at)]], "没有支付事件"),
          ["paid", "fulfilled", "refunding"].includes(detail.data.order.status) ? [
            h("h4", "退款"),
            refusal(refund.error),
            h(ElForm, { inline: true }, () => [
              h(ElFormItem, { label: "金额（元）", error: refund.errors.amount_fen }, () => h(ElInput, { modelValue: refund.amount,
                "onUpdate:modelValue": (v) => { refund.amount = v; }, placeholder: "留空为全额", style: { width: "120px" } })),
              h(ElFormItem, { label: "原因", error: refund.errors.reason }, () => h(ElSelect, { modelValue: refund.reason, style: { width: "120px" },
                "onUpdate:modelValue": (v) => { refund.reason = v; } }, () => REFUND_REASONS.map(([value, label]) => h(ElOption, { value, label })))),
              h(ElFormItem, { label: "备注", error: refund.errors.note }, () => h(ElInput, { modelValue: refund.note,
                "onUpdate:modelValue": (v) => { refund.note = v; }, style: { width: "160px" } })),
              h(ElFormItem, null, () => h(ElButton, { type: "danger", loading: refund.busy, onClick: submitRefund }, () => "退款")),
            ]),
          ] : null,
        ] : null,
      ]) : null,
    ]);
  },
});

const Liability = defineComponent({
  setup() {
    const state = reactive({ data: null, error: null });
    const chartEl = shallowRef(null);
    let chart = null;
    onMounted(async () => {
      try {
        state.data = await api.get("/admin/points/liability");
      } catch (error) {
        state.error = error;
        return;
      }
      await nextTick();
      const echarts = await import("echarts");
      chart = echarts.init(chartEl.value);
      const months = state.data.expiring_by_month;
      chart.setOption({
        tooltip: {}, grid: { left: 60, right: 20, top: 30, bottom: 30 },
        xAxis: { type: "category", data: months.map((m) => m.month) },
        yAxis: { type: "value", name: "积分" },
        series: [{ type: "bar", name: "到期积分", data: months.map((m) => m.points), itemStyle: { color: "#409eff" } }],
      });
    });
    onBeforeUnmount(() => chart && chart.dispose());
    return () => {
      const d = state.data;
      return h("div", [
        title("积分负债"),
        refusal(state.error),
        d ? h(ElDescriptions, { column: 3, border: true }, () => [
          h(ElDescriptionsItem, { label: "未兑付积分" }, () => String(d.outstanding)),
          h(ElDescriptionsItem, { label: "待生效" }, () => String(d.pending)),
          h(ElDescriptionsItem, { label: "欠分" }, () => String(d.shortfall)),
          h(ElDescriptionsItem, { label: "持分顾客" }, () => `${d.customers_with_points} / ${d.accounts}`),
          h(ElDescriptionsItem, { label: "不过期" }, () => String(d.never_expiring)),
          h(ElDescriptionsItem, { label: "截至" }, () => time(d.as_of)),
        ]) : null,
        d ? h(ElCard, { header: "按月到期", style: { marginTop: "12px" } }, () => (d.expiring_by_month.length
          ? h("div", { ref: chartEl, class: "chart" }) : h(ElEmpty, { description: "没有将要到期的积分", imageSize: 60 }))) : null,
      ]);
    };
  },
});

export const FINANCE = [
  { path: "/finance/rewards", title: "推荐奖励", roles: ["finance"], component: Rewards },
  { path: "/finance/settlements", title: "结算批次", roles: ["finance"], component: Settlements },
  { path: "/finance/orders", title: "订单与退款", roles: ["finance"], component: Orders },
  { path: "/finance/liability", title: "积分负债", roles: ["finance"], component: Liability },
];
