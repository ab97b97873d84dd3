// Front-desk screens (1024×768 reception tablet): queue, seats, vouchers, customer card, spend, follow-ups.
import { defineComponent, h, reactive, shallowRef, onMounted, onBeforeUnmount } from "vue";
import {
  ElButton, ElCard, ElDescriptions, ElDescriptionsItem, ElEmpty, ElForm, ElFormItem, ElInput, ElInputNumber,
  ElMessage, ElMessageBox, ElOption, ElSelect, ElTable, ElTableColumn, ElTabs, ElTabPane, ElTag,
} from "element-plus";
import { api } from "../api.js";
import { yuan, yuanToFen } from "../money.js";
import { button, fieldErrors, listView, refusal, refusalText, statusTag, time, title } from "../ui.js";

// The branch this desk works at: chosen once, kept for the tab (not sensitive).
export const desk = reactive({ branches: [], departments: [], branchId: Number(sessionStorage.getItem("desk.branch")) || null });
let catalogue = null;
export function loadCatalogue() {
  catalogue = catalogue || Promise.all([api.get("/admin/catalogue/branches"), api.get("/admin/catalogue/departments")])
    .then(([branches, departments]) => {
      desk.branches = branches.items;
      desk.departments = departments.items;
      if (!desk.branchId && branches.items.length) desk.branchId = branches.items[0].id;
    })
    .catch((error) => { catalogue = null; throw error; });
  return catalogue;
}
const branchName = (id) => (desk.branches.find((b) => b.id === id) || {}).name || `#${id}`;
const departmentName = (id) => (desk.departments.find((d) => d.id === id) || {}).name || `#${id}`;

// The answers that made the form flagged, by their questions' labels.
function flaggedLabels(triage) {
  if (!triage) return "";
  return triage.flagged.map((key) => (triage.answers.find((a) => a.key === key) || { label: key }).label).join("、");
}

function branchFilter() {
  return { key: "branch_id", label: "院区", type: "select", width: "150px",
    get options() { return desk.branches.map((b) => [b.id, b.name]); } };
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

function withCatalogue(component) {
  return defineComponent({
    setup() {
      const state = reactive({ ready: false, error: null });
      loadCatalogue().then(() => { state.ready = true; }, (error) => { state.error = error; });
      return () => (state.error ? refusal(state.error) : state.ready ? h(component) : null);
    },
  });
}

const QueueList = listView({
  title: "今日队列",
  path: "/admin/bookings",
  defaults: () => ({ branch_id: desk.branchId, date: "", status: "" }),
  filters: [branchFilter(), { key: "date", label: "今天（院区时区）", type: "date", width: "170px" },
    { key: "status", label: "状态", type: "select", width: "120px",
      options: [["booked", "已预约"], ["arrived", "已到院"], ["completed", "已完成"], ["no_show", "未到院"], ["cancelled", "已取消"]] }],
  rowKey: (row) => row.booking.id,
  empty: "今天这个院区没有预约",
  columns: [
    { label: "时间", width: 70, render: (r) => r.booking.local_start.slice(11, 16) },
    { label: "顾客", minWidth: 120, render: (r) => h("div", [r.customer.nickname, h("div", { class: "muted" }, r.customer.phone || "")]) },
    { label: "科室 / 项目", minWidth: 130, render: (r) => `${r.department_name}${r.service_name ? " · " + r.service_name : ""}` },
    { label: "预检", minWidth: 150, render: (r) => (r.booking.needs_doctor_review
      ? h("div", [h(ElTag, { type: "danger", size: "small" }, () => "需医生复核"),
        h("div", { class: "muted" }, flaggedLabels(r.triage))])
      : h("span", { class: "muted" }, r.triage ? "无异常" : "未填写")) },
    { label: "状态", width: 90, render: (r) => statusTag(r.booking.status) },
  ],
  actionsWidth: 190,
  actions: (r, reload) => {
    const id = r.booking.id;
    const s = r.booking.status;
    return [
      s === "booked" ? button("到院", () => act(api.post(`/admin/bookings/${id}/arrive`), "已标记到院", reload), { type: "primary", "data-test": `arrive-${id}` }) : null,
      s === "arrived" ? button("完成", () => act(api.post(`/admin/bookings/${id}/complete`), "已完成", reload), { type: "success" }) : null,
      s === "booked" ? button("未到", () => act(api.post(`/admin/bookings/${id}/no-show`), "已标记未到院", reload), { type: "warning" }) : null,
    ];
  },
});

const SlotsList = listView({
  title: "今日号源",
  path: (v) => (v.branch_id ? "/admin/slots" : null),
  paged: false,
  defaults: () => ({ branch_id: desk.branchId, date: "", department_id: "" }),
  filters: [branchFilter(), { key: "date", label: "今天（院区时区）", type: "date", width: "170px" },
    { key: "department_id", label: "科室", type: "select", width: "140px",
      get options() { return desk.departments.map((d) => [d.id, d.name]); } }],
  empty: "这一天没有排班",
  columns: [
    { label: "科室", minWidth: 120, render: (r) => departmentName(r.department_id) },
    { label: "时段", minWidth: 110, render: (r) => `${r.local_start.slice(11, 16)}–${r.local_end.slice(11, 16)}` },
    { label: "容量", prop: "capacity", width: 70 },
    { label: "已约", prop: "booked", width: 70 },
    { label: "剩余", width: 70, render: (r) => h(ElTag, { type: r.remaining ? "success" : "info", size: "small" }, () => String(r.remaining)) },
    { label: "状态", width: 80, render: (r) => (r.status === "closed" ? "已关闭" : "开放") },
  ],
});

// The camera path exists only where the browser ships a barcode detector (Chrome on Android, macOS).
function cameraScanner(onCode) {
  return defineComponent({
    setup() {
      const state = reactive({ on: false, error: "" });
      let stream = null;
      let timer = null;
      const video = shallowRef(null);
      async function start() {
        try {
          const detector = new window.BarcodeDetector({ formats: ["qr_code", "code_128"] });
          stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
          state.on = true;
          await Promise.resolve();
          video.value.srcObject = stream;
          await video.value.play();
          timer = setInterval(async () => {
            const codes = await detector.detect(video.value).catch(() => []);
            if (codes.length) { stop(); onCode(codes[0].rawValue); }
          }, 300);
        } catch (e) {
          state.error = "无法打开摄像头，请手动输入券码";
          stop();
        }
      }
      function stop() {
        clearInterval(timer);
        if (stream) stream.getTracks().forEach((t) => t.stop());
        stream = null;
        state.on = false;
      }
      onBeforeUnmount(stop);
      return () => ("BarcodeDetector" in window && navigator.mediaDevices
        ? h("span", [button(state.on ? "停止扫码" : "扫码", state.on ? stop : start),
          state.on ? h("video", { ref: video, class: "chart", muted: true, playsinline: true }) : null,
          state.error ? h("span", { class: "muted" }, state.error) : null])
        : null);
    },
  });
}

const VoucherDesk = defineComponent({
  setup() {
    const state = reactive({ code: "", found: null, error: null, redeemError: null, busy: false });
    async function lookup() {
      const code = state.code.trim();
      if (!code) return;
      state.redeemError = null;
      try {
        state.found = await api.get(`/admin/vouchers/${encodeURIComponent(code)}`);
        state.error = null;
      } catch (error) {
        state.found = null;
        state.error = error;
      }
    }
    async function redeem() {
      state.busy = true;
      try {
        await api.post(`/admin/vouchers/${encodeURIComponent(state.found.voucher.code)}/redeem`, { branch_id: desk.branchId });
        ElMessage.success("核销成功");
        state.redeemError = null;
        await lookup();
      } catch (error) {
        state.redeemError = error;
      } finally {
        state.busy = false;
      }
    }
    const Scanner = cameraScanner((code) => { state.code = code; lookup(); });
    return () => {
      const f = state.found;
      return h("div", [
        title("券码核销"),
        h("div", { class: "toolbar" }, [
          h(ElInput, { modelValue: state.code, "onUpdate:modelValue": (v) => { state.code = v; }, placeholder: "输入或扫描券码",
            style: { width: "260px" }, clearable: true, "data-test": "voucher-code",
            onKeyup: (e) => { if (e.key === "Enter") lookup(); } }),
          h(ElButton, { type: "primary", onClick: lookup, "data-test": "voucher-lookup" }, () => "查询"),
          h(Scanner),
          h(ElSelect, { modelValue: desk.branchId, style: { width: "160px" }, "data-test": "voucher-branch",
            "onUpdate:modelValue": (v) => { desk.branchId = v; sessionStorage.setItem("desk.branch", v); } },
          () => desk.branches.map((b) => h(ElOption, { value: b.id, label: b.name }))),
        ]),
        refusal(state.error),
        f ? h(ElCard, { "data-test": "voucher-card" }, () => [
          h(ElDescriptions, { column: 2, border: true }, () => [
            h(ElDescriptionsItem, { label: "券" }, () => f.voucher.title),
            h(ElDescriptionsItem, { label: "状态" }, () => statusTag(f.voucher.status)),
            h(ElDescriptionsItem, { label: "顾客" }, () => `${f.customer_nickname} ${f.customer_phone || ""}`),
            h(ElDescriptionsItem, { label: "有效期至" }, () => time(f.voucher.valid_until)),
            h(ElDescriptionsItem, { label: "适用院区" }, () => (f.voucher.branch_ids.length ? f.voucher.branch_ids.map(branchName).join("、") : "全部院区")),
            h(ElDescriptionsItem, { label: "核销" }, () => (f.voucher.redeemed_at ? `${time(f.voucher.redeemed_at)} @ ${branchName(f.redeemed_branch_id)}` : "—")),
          ]),
          f.redeemable ? null : h("p", { class: "muted", "data-test": "voucher-refusal" }, `不能核销：${f.refusal}`),
          refusal(state.redeemError),
          h("div", { class: "toolbar" }, h(ElButton, { type: "primary", loading: state.busy, onClick: redeem,
            "data-test": "voucher-redeem" }, () => `在 ${branchName(desk.branchId)} 核销`)),
        ]) : null,
      ]);
    };
  },
});

const CustomerCard = defineComponent({
  setup() {
    const state = reactive({ query: "", id: null, history: null, points: null, vouchers: [], consumptions: [], error: null,
      matches: null });
    async function open(id) {
      state.id = id;
      try {
        const [history, points, redemptions, consumptions] = await Promise.all([
          api.get(`/admin/customers/${id}`),
          api.get(`/admin/points/customers/${id}`).catch(() => null),
          api.get("/admin/mall/redemptions", { customer_id: id, limit: 50 }).catch(() => ({ items: [] })),
          api.get("/admin/consumptions", { customer_id: id, limit: 50 }).catch(() => ({ items: [] })),
        ]);
        Object.assign(state, { history, points, vouchers: redemptions.items.flatMap((r) => r.vouchers),
          consumptions: consumptions.items, error: null });
      } catch (error) {
        Object.assign(state, { history: null, error });
      }
    }
    // Four digits are the phone's tail, a 6+ letter/digit word a referral code, anything else a name.
    async function search() {
      const q = state.query.trim();
      if (!q) return;
      const params = /^\d{4}$/.test(q) ? { phone_last4: q } : /^[A-Za-z0-9]{6,16}$/.test(q) && /\d/.test(q) ? { referral_code: q } : { name: q };
      try {
        const found = await api.get("/admin/customer-lookup", { ...params, limit: 20 });
        state.matches = found.items;
        state.error = null;
        state.history = null;
        if (found.items.length === 1) open(found.items[0].id);
      } catch (error) {
        Object.assign(state, { error, matches: null, history: null });
      }
    }
    const table = (rows, cols, empty) => h(ElTable, { data: rows, border: true, size: "small" }, {
      default: () => cols.map(([label, render]) => h(ElTableColumn, { label }, { default: ({ row }) => render(row) })),
      empty: () => h(ElEmpty, { description: empty, imageSize: 60 }),
    });
    return () => {
      const c = state.history;
      const p = state.points && state.points.overview;
      return h("div", [
        title("顾客查询"),
        h("div", { class: "toolbar" }, [
          h(ElInput, { modelValue: state.query, "onUpdate:modelValue": (v) => { state.query = v; }, placeholder: "姓名 / 手机后四位 / 推荐码",
            style: { width: "260px" }, onKeyup: (e) => { if (e.key === "Enter") search(); }, "data-test": "customer-query" }),
          h(ElButton, { type: "primary", onClick: search }, () => "查询"),
        ]),
        refusal(state.error),
        state.matches && !c ? table(state.matches, [["顾客", (r) => `${r.nickname}（#${r.id}）`], ["手机", (r) => r.phone || "—"],
          ["推荐码", (r) => r.referral_code], ["", (r) => button("打开", () => open(r.id), { type: "primary", "data-test": `customer-open-${r.id}` })]],
          "没有找到顾客") : null,
        c ? h(ElCard, { header: `${c.customer.nickname}（#${c.customer.id}） ${c.customer.phone || ""}` }, () => [
          p ? h(ElDescriptions, { column: 4, border: true }, () => [
            h(ElDescriptionsItem, { label: "可用积分" }, () => String(p.spendable)),
            h(ElDescriptionsItem, { label: "待生效" }, () => String(p.pending)),
            h(ElDescriptionsItem, { label: "即将过期" }, () => String(p.expiring_soon)),
            h(ElDescriptionsItem, { label: "会员等级" }, () => (p.tier ? p.tier.name : "—")),
          ]) : null,
          h(ElTabs, null, () => [
            h(ElTabPane, { label: "预约" }, () => table(c.bookings, [["时间", (r) => r.local_start.replace("T", " ").slice(0, 16)],
              ["院区", (r) => branchName(r.branch_id)], ["科室", (r) => departmentName(r.department_id)], ["状态", (r) => statusTag(r.status)]], "没有预约")),
            h(ElTabPane, { label: "预检问卷" }, () => table(c.triage, [["时间", (r) => time(r.created_at)],
              ["诉求", (r) => r.concerns.join("、")],
              ["回答", (r) => r.answers.map((a) => `${a.label}：${a.value === true ? "是" : a.value === false ? "否" : a.value}`).join("；")],
              ["需复核", (r) => (r.needs_doctor_review ? "是" : "否")]], "没有问卷")),
            h(ElTabPane, { label: "券" }, () => table(state.vouchers, [["券", (r) => r.title], ["券码", (r) => r.code],
              ["状态", (r) => statusTag(r.status)], ["有效期至", (r) => time(r.valid_until)]], "没有券")),
            h(ElTabPane, { label: "消费" }, () => table(state.consumptions, [["时间", (r) => time(r.occurred_at)],
              ["金额", (r) => yuan(r.amount_fen)], ["积分", (r) => String(r.points)], ["单号", (r) => r.external_ref]], "没有消费")),
            h(ElTabPane, { label: "满意度" }, () => table(c.surveys, [["时间", (r) => time(r.created_at)],
              ["评分", (r) => String(r.score)], ["评价", (r) => r.comment]], "没有评价")),
            h(ElTabPane, { label: "回访" }, () => table(c.follow_ups, [["应回访", (r) => r.due_date],
              ["状态", (r) => statusTag(r.status)], ["记录", (r) => r.note]], "没有回访")),
          ]),
        ]) : null,
      ]);
    };
  },
});

const ConsumptionDesk = defineComponent({
  setup() {
    const form = reactive({ customer_id: null, amount: "", external_ref: "" });
    const state = reactive({ errors: {}, error: null, busy: false });
    const list = shallowRef(null);
    const Consumptions = listView({
      path: "/admin/consumptions",
      defaults: () => ({ branch_id: desk.branchId }),
      filters: [branchFilter()],
      empty: "还没有消费记录",
      columns: [
        { label: "时间", minWidth: 130, render: (r) => time(r.occurred_at) },
        { label: "顾客", prop: "customer_id", width: 80 },
        { label: "金额", render: (r) => yuan(r.amount_fen) },
        { label: "积分", prop: "points", width: 80 },
        { label: "积分状态", width: 100, render: (r) => statusTag(r.points_status) },
        { label: "单号", prop: "external_ref", minWidth: 120 },
      ],
    });
    async function submit() {
      const amount = yuanToFen(form.amount);
      if (amount === null || amount <= 0) { state.errors = { amount_fen: "请输入金额（元，最多两位小数）" }; return; }
      state.busy = true;
      try {
        await api.post("/admin/consumptions", { customer_id: form.customer_id, amount_fen: amount,
          external_ref: form.external_ref, branch_id: desk.branchId });
        ElMessage.success("已记录消费，积分随后到账");
        Object.assign(form, { amount: "", external_ref: "" });
        Object.assign(state, { errors: {}, error: null });
        list.value && list.value.reload();
      } catch (error) {
        Object.assign(state, { errors: fieldErrors(error), error });
      } finally {
        state.busy = false;
      }
    }
    return () => h("div", [
      title("消费录入"),
      h(ElCard, null, () => h(ElForm, { inline: true }, () => [
        h(ElFormItem, { label: "顾客编号", error: state.errors.customer_id }, () => h(ElInputNumber, { modelValue: form.customer_id,
          "onUpdate:modelValue": (v) => { form.customer_id = v; }, min: 1, controls: false })),
        h(ElFormItem, { label: "金额（元）", error: state.errors.amount_fen }, () => h(ElInput, { modelValue: form.amount,
          "onUpdate:modelValue": (v) => { form.amount = v; }, style: { width: "120px" } })),
        h(ElFormItem, { label: "小票号", error: state.errors.external_ref }, () => h(ElInput, { modelValue: form.external_ref,
          "onUpdate:modelValue": (v) => { form.external_ref = v; }, style: { width: "160px" } })),
        h(ElFormItem, null, () => h(ElButton, { type: "primary", loading: state.busy, onClick: submit }, () => "记录")),
      ])),
      state.error && !state.error.detail.field ? refusal(state.error) : null,
      h("div", { style: { height: "12px" } }),
      h(Consumptions, { ref: list }),
    ]);
  },
});

const FollowUps = listView({
  title: "今日回访",
  path: "/admin/follow-ups",
  defaults: () => ({ due: "today", status: "open", branch_id: desk.branchId }),
  filters: [branchFilter(), { key: "status", label: "状态", type: "select", width: "120px", options: [["open", "待回访"], ["done", "已回访"]] }],
  empty: "今天没有需要回访的顾客",
  columns: [
    { label: "应回访日", prop: "due_date", width: 110 },
    { label: "顾客", prop: "customer_id", width: 80 },
    { label: "预约", prop: "booking_id", width: 80 },
    { label: "术后天数", render: (r) => `第 ${r.days_after} 天`, width: 100 },
    { label: "状态", width: 90, render: (r) => statusTag(r.status) },
    { label: "记录", prop: "note", minWidth: 140 },
  ],
  actionsWidth: 110,
  actions: (r, reload) => [r.status === "open" ? button("完成回访", async () => {
    let note;
    try {
      ({ value: note } = await ElMessageBox.prompt("回访记录", "完成回访", { confirmButtonText: "保存", cancelButtonText: "取消",
        inputValidator: (v) => (v && v.trim() ? true : "请填写回访记录") }));
    } catch (_) { return; }
    act(api.post(`/admin/follow-ups/${r.id}/done`, { note }), "已记录", reload);
  }, { type: "primary" }) : null],
});

export const FRONT_DESK = [
  { path: "/frontdesk/queue", title: "今日队列", roles: ["front_desk"], component: withCatalogue(QueueList) },
  { path: "/frontdesk/slots", title: "号源", roles: ["front_desk"], component: withCatalogue(SlotsList) },
  { path: "/frontdesk/vouchers", title: "券码核销", roles: ["front_desk"], component: withCatalogue(VoucherDesk) },
  { path: "/frontdesk/customers", title: "顾客查询", roles: ["front_desk"], component: withCatalogue(CustomerCard) },
  { path: "/frontdesk/consumptions", title: "消费录入", roles: ["front_desk"], component: withCatalogue(ConsumptionDesk) },
  { path: "/frontdesk/follow-ups", title: "今日回访", roles: ["front_desk"], component: withCatalogue(FollowUps) },
];
