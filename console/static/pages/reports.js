// Report screens (复盘): one per /admin/reports/<report>; the chart and the table are drawn from the API's rows.
import { defineComponent, h, reactive, shallowRef, onMounted, onBeforeUnmount, nextTick } from "vue";
import { ElButton, ElCard, ElDatePicker, ElEmpty, ElInput, ElTable, ElTableColumn } from "element-plus";
import { api, download } from "../api.js";
import { clinicToday, refusal, refusalText, title } from "../ui.js";

const UNIT_NAMES = { fen: "分", bp: "‱", points: "积分" };

function monthsBack(day, months) {
  const [y, m] = day.split("-").map(Number);
  const d = new Date(Date.UTC(y, m - 1 - months, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}-01`;
}

// The category of a row on the chart's x axis: the `x` columns joined, as the API gave them.
function label(row, keys, x) {
  return x.map((k) => row[keys.indexOf(k)]).filter((v) => v !== null && v !== undefined && v !== "").join(" ");
}

function reportScreen({ slug, name, branch, x, series, type = "bar", stack = false }) {
  return defineComponent({
    setup() {
      // Reports count in the clinic's days (CLINIC_TIMEZONE, which the login answered), not the PC's nor a fixed zone.
      const today = clinicToday();
      const values = reactive({ from: monthsBack(today, 11), to: today, branch_id: "" });
      const state = reactive({ data: null, error: null, loading: false });
      const chartEl = shallowRef(null);
      let chart = null;

      function params() {
        const p = { from: values.from, to: values.to };
        if (branch && values.branch_id) p.branch_id = values.branch_id;
        return p;
      }

      async function draw() {
        await nextTick();
        if (!chartEl.value || !state.data) return;
        const echarts = await import("echarts");
        chart = chart || echarts.init(chartEl.value);
        const keys = state.data.columns.map((c) => c.key);
        const shown = series.filter((k) => keys.includes(k));
        const column = (k) => state.data.columns[keys.indexOf(k)];
        chart.setOption({
          tooltip: { trigger: "axis" }, legend: { top: 0 }, grid: { left: 70, right: 20, top: 40, bottom: 60 },
          xAxis: { type: "category", data: state.data.rows.map((r) => label(r, keys, x)), axisLabel: { rotate: 30 } },
          yAxis: { type: "value" },
          series: shown.map((k) => ({
            type, name: `${column(k).label}${UNIT_NAMES[column(k).unit] ? `（${UNIT_NAMES[column(k).unit]}）` : ""}`,
            stack: stack ? "total" : undefined, data: state.data.rows.map((r) => r[keys.indexOf(k)]),
          })),
        }, true);
      }

      async function load() {
        state.loading = true;
        try {
          state.data = await api.get(`/admin/reports/${slug}`, params());
          state.error = null;
        } catch (error) {
          state.error = error;
          state.data = null;
          if (chart) { chart.dispose(); chart = null; }
        } finally {
          state.loading = false;
        }
        await draw();
      }

      async function exportAs(format) {
        try {
          await download(`/admin/reports/${slug}/export`, { ...params(), format }, `${slug}.${format}`);
        } catch (error) {
          state.error = error;
        }
      }

      onMounted(load);
      onBeforeUnmount(() => chart && chart.dispose());
      return () => {
        const d = state.data;
        const picker = (key) => h(ElDatePicker, { modelValue: values[key], type: "date", valueFormat: "YYYY-MM-DD",
          clearable: false, style: { width: "150px" }, "data-test": `report-${key}`,
          "onUpdate:modelValue": (v) => { values[key] = v; load(); } });
        return h("div", [
          title(name),
          h("div", { class: "toolbar" }, [
            picker("from"), h("span", { style: { margin: "0 6px" } }, "至"), picker("to"),
            branch ? h(ElInput, { modelValue: values.branch_id, placeholder: "院区编号（全部）", clearable: true,
              style: { width: "150px", marginLeft: "8px" }, "data-test": "report-branch",
              "onUpdate:modelValue": (v) => { values.branch_id = v; }, onChange: () => load() }) : null,
            h(ElButton, { style: { marginLeft: "8px" }, loading: state.loading, onClick: load, "data-test": "report-load" },
              () => "刷新"),
            d ? h(ElButton, { onClick: () => exportAs("csv"), "data-test": "report-export-csv" }, () => "导出 CSV") : null,
            d ? h(ElButton, { onClick: () => exportAs("xlsx"), "data-test": "report-export-xlsx" }, () => "导出 Excel") : null,
          ]),
          refusal(state.error),
          d ? h(ElCard, { style: { marginTop: "12px" } }, () => (d.rows.length
            ? h("div", { ref: chartEl, class: "chart", "data-test": "report-chart" })
            : h(ElEmpty, { description: "这段时间没有数据", imageSize: 60, "data-test": "report-empty" }))) : null,
          d ? h(ElCard, { style: { marginTop: "12px" }, "data-test": "report-figures", "data-from": d.date_from,
            "data-to": d.date_to }, () => [
            h(ElTable, { data: d.rows.map((r) => Object.fromEntries(d.columns.map((c, i) => [c.key, r[i]]))),
              size: "small", "data-test": "report-table" }, () => d.columns.map((c) => h(ElTableColumn, {
              prop: c.key, minWidth: 110,
              label: `${c.label}${UNIT_NAMES[c.unit] ? `（${UNIT_NAMES[c.unit]}）` : ""}` }))),
            ...(d.notes || []).map((n) => h("p", { class: "note", style: { color: "#909399", fontSize: "12px" } }, n)),
          ]) : null,
        ]);
      };
    },
  });
}

// What each report's chart shows: the x-axis columns and the series (money series only for finance and admin:
// the API leaves those columns out for other roles, and a missing column is simply not drawn).
export const REPORT_SCREENS = [
  { slug: "new-customers", name: "新客来源", roles: ["campaign"], branch: false, x: ["month"],
    series: ["customer_referral", "staff", "partner", "ad", "organic"], stack: true },
  { slug: "repurchase", name: "复购率", roles: ["campaign", "finance"], branch: true, x: ["month", "branch"],
    series: ["repurchase_rate_bp"] },
  { slug: "rfm-classes", name: "RFM 分层", roles: ["campaign"], branch: false, x: ["label"], series: ["at_start", "at_end"] },
  { slug: "rfm-movements", name: "RFM 流动", roles: ["campaign"], branch: false, x: ["from_class", "to_class"],
    series: ["customers"] },
  { slug: "group-buys", name: "拼团漏斗", roles: ["campaign", "finance"], branch: true, x: ["title"],
    series: ["views", "opened", "joined", "paid", "succeeded", "failed", "refunded"] },
  { slug: "mall", name: "商城兑换与核销", roles: ["campaign", "finance"], branch: true, x: ["month"],
    series: ["redemptions", "units", "vouchers_used"] },
  { slug: "consultations", name: "咨询转化与爽约", roles: ["campaign", "finance", "front_desk"], branch: true,
    x: ["department", "practitioner"], series: ["consultations", "converted", "no_shows"] },
  { slug: "surveys", name: "满意度", roles: ["campaign", "front_desk"], branch: true, x: ["department", "practitioner"],
    series: ["average_score"] },
  { slug: "points", name: "积分发放与到期", roles: ["finance"], branch: false, x: ["month"],
    series: ["issued", "spent", "expired"] },
  { slug: "referral-roi", name: "转介绍奖励与收入", roles: ["finance"], branch: true, x: ["month"],
    series: ["net_reward_fen", "referred_revenue_fen"] },
  { slug: "top-customers", name: "头部 20% 顾客贡献", roles: ["finance"], branch: true, x: ["month"],
    series: ["top_share_bp"], type: "line" },
];

export const REPORTS = [
  { path: "/reports/new-customers", title: "新客来源", roles: ["campaign"], component: reportScreen(REPORT_SCREENS[0]) },
  { path: "/reports/repurchase", title: "复购率", roles: ["campaign", "finance"], component: reportScreen(REPORT_SCREENS[1]) },
  { path: "/reports/rfm-classes", title: "RFM 分层", roles: ["campaign"], component: reportScreen(REPORT_SCREENS[2]) },
  { path: "/reports/rfm-movements", title: "RFM 流动", roles: ["campaign"], component: reportScreen(REPORT_SCREENS[3]) },
  { path: "/reports/group-buys", title: "拼团漏斗", roles: ["campaign", "finance"], component: reportScreen(REPORT_SCREENS[4]) },
  { path: "/reports/mall", title: "商城兑换与核销", roles: ["campaign", "finance"], component: reportScreen(REPORT_SCREENS[5]) },
  { path: "/reports/consultations", title: "咨询转化与爽约", roles: ["campaign", "finance", "front_desk"], component: reportScreen(REPORT_SCREENS[6]) },
  { path: "/reports/surveys", title: "满意度", roles: ["campaign", "front_desk"], component: reportScreen(REPORT_SCREENS[7]) },
  { path: "/reports/points", title: "积分发放与到期", roles: ["finance"], component: reportScreen(REPORT_SCREENS[8]) },
  { path: "/reports/referral-roi", title: "转介绍奖励与收入", roles: ["finance"], component: reportScreen(REPORT_SCREENS[9]) },
  { path: "/reports/top-customers", title: "头部 20% 顾客贡献", roles: ["finance"], component: reportScreen(REPORT_SCREENS[10]) },
];
