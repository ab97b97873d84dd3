// Shared pieces of every screen: labels, formatting, the refusal message, field errors and the paged list.
import { defineComponent, h, reactive, onMounted, withDirectives } from "vue";
import {
  ElAlert, ElButton, ElDatePicker, ElEmpty, ElInput, ElOption, ElPagination, ElSelect, ElTable,
  ElTableColumn, ElTag, vLoading,
} from "element-plus";
import { api, session } from "./api.js";

export const ROLE_NAMES = { front_desk: "前台", campaign: "活动运营", finance: "财务", admin: "管理员" };

export const STATUS_NAMES = {
  booked: "已预约", arrived: "已到院", completed: "已完成", cancelled: "已取消", no_show: "未到院",
  draft: "草稿", scheduled: "待开始", live: "进行中", ended: "已结束",
  approved: "已审批", paid: "已打款", pending: "待定", held: "待复核", payable: "可结算", batched: "已入批次",
  voided: "已作废", issued: "未使用", redeemed: "已核销", expired: "已过期", open: "待回访", done: "已回访",
  pending_payment: "待支付", fulfilled: "已完成", refunding: "退款中", refunded: "已退款", closed: "已关闭",
  active: "有效", released: "已生效", reversed: "已冲回", running: "执行中",
};

export function statusTag(status) {
  const type = { live: "success", arrived: "success", redeemed: "success", paid: "success", approved: "success",
    held: "warning", draft: "info", no_show: "danger", cancelled: "info", voided: "info" }[status] || "";
  return h(ElTag, { type: type || undefined, size: "small" }, () => STATUS_NAMES[status] || status);
}

// An instant as the clinic's wall clock (the zone the login answered), not the browser's: reception PCs are not
// always set right, and a PC on UTC showed a 10:00 Shanghai booking as 02:00. A session from before the login
// told the zone, or a zone this browser does not know, falls back to the browser's own, as before.
const clocks = new Map();
function clinicClock(zone) {
  if (!clocks.has(zone)) {
    const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23" };
    let format;
    try {
      format = new Intl.DateTimeFormat("en-CA", { ...options, timeZone: zone || undefined });
    } catch (_) {
      format = new Intl.DateTimeFormat("en-CA", options);
    }
    clocks.set(zone, format);
  }
  return clocks.get(zone);
}

function clinicParts(d) {
  return Object.fromEntries(clinicClock(session.clinic_timezone).formatToParts(d).map((x) => [x.type, x.value]));
}

export function time(iso) {
  if (!iso) return "—";
  const wallClock = clinicWallClock(iso);
  return wallClock === null ? iso : wallClock.slice(0, 16); // to the minute
}

// What staff type or pick in a date-time editor is the clinic's wall clock too: on a PC set to UTC, a campaign
// meant to start at 10:00 Shanghai time started at 18:00, because the picker read and wrote the PC's zone.
// An editor binds ElDatePicker with valueFormat WALL_CLOCK, so the picker holds the typed text as it is (no zone
// of its own), and the page converts at its edges: clinicWallClock() when an editor opens an existing value,
// clinicInstant() when it sends one. Same zone, same fallback as time().
export const WALL_CLOCK = "YYYY-MM-DD HH:mm:ss";
// The picker's props for such an editor. No "此刻" (now) button: it fills in the PC's clock, which on a PC set
// to UTC is eight hours behind the clinic's.
export const CLINIC_DATETIME_PICKER = { type: "datetime", valueFormat: WALL_CLOCK, format: WALL_CLOCK, showNow: false };

export function clinicWallClock(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return null;
  const p = clinicParts(d);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

export function clinicInstant(wallClock) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(wallClock || "");
  if (!m) return null;
  const [y, mo, d, hh, mm, ss] = m.slice(1).map((v) => Number(v || 0));
  const asIfUtc = Date.UTC(y, mo - 1, d, hh, mm, ss);
  // The zone's offset at an instant: its wall clock read as if it were UTC, minus the instant itself.
  const offsetAt = (ms) => {
    const p = clinicParts(new Date(ms));
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
  };
  // Twice: the offset at the first guess may differ from the one at the answer when a DST change lies between
  // (zones with summer time; Asia/Shanghai has none since 1991).
  const guess = asIfUtc - offsetAt(asIfUtc);
  return new Date(asIfUtc - offsetAt(guess)).toISOString();
}

// The clinic's calendar day (the zone the login answered; the browser's for an older session): reports, the
// prepaid liability and settlement batches count in the clinic's days, whatever zone the PC is set to.
export function clinicToday() {
  const p = clinicParts(new Date());
  return `${p.year}-${p.month}-${p.day}`;
}

// A refusal in plain words. 403 is the API's role check: the console never decides that on its own.
export function refusalText(error) {
  if (!error) return "";
  if (error.status === 403 && error.code === "role_required") {
    const roles = (error.detail.required || []).map((r) => ROLE_NAMES[r] || r).join("、");
    return `无权访问：您的角色不能查看或执行此操作${roles ? `（需要：${roles}）` : ""}。`;
  }
  if (error.status === 403) return `操作被拒绝：${error.message}`;
  if (error.status === 0 || !error.status) return `网络错误：${error.message}`;
  return `${error.message}（${error.code}）`;
}

export function refusal(error) {
  if (!error) return null;
  return h(ElAlert, { type: error.status === 403 ? "error" : "warning", title: refusalText(error),
    showIcon: true, closable: false, class: "refusal", "data-test": "refusal" });
}

// detail.field -> the message to show under that field (e.g. "skus[0].tiers[1].price_fen").
export function fieldErrors(error) {
  if (error && error.detail && error.detail.field) return { [error.detail.field]: error.message };
  return {};
}

export function title(text) {
  return h("h2", { class: "page-title" }, text);
}

function filterControl(filter, values, onChange) {
  const common = { modelValue: values[filter.key], "onUpdate:modelValue": (v) => { values[filter.key] = v; onChange(); },
    placeholder: filter.label, clearable: true, style: { width: filter.width || "160px" }, "data-test": `filter-${filter.key}` };
  if (filter.type === "select") {
    return h(ElSelect, common, () => filter.options.map(([value, label]) => h(ElOption, { value, label })));
  }
  if (filter.type === "date") {
    return h(ElDatePicker, { ...common, type: "date", valueFormat: "YYYY-MM-DD" });
  }
  return h(ElInput, { ...common, "onUpdate:modelValue": (v) => { values[filter.key] = v; },
    onChange: () => onChange() });
}

// A list that pages on the server (limit/offset), filters the way the endpoint allows, and has an empty state.
// options: { path, params(values) (the query sent, e.g. yuan typed → fen), filters, columns: [{label, prop, width, render(row)}], actions(row, reload),
//            toolbar(reload), paged (default true), defaults, empty, after(data) }
export function listView(options) {
  return defineComponent({
    setup(_, { expose }) {
      const values = reactive({ ...(options.defaults ? options.defaults() : {}) });
      const state = reactive({ items: [], total: 0, page: 1, size: options.size || 20, loading: false,
        error: null, data: null });
      const paged = options.paged !== false;
      async function load() {
        state.loading = true;
        try {
          const params = options.params ? options.params({ ...values }) : { ...values };
          if (paged) Object.assign(params, { limit: state.size, offset: (state.page - 1) * state.size });
          const path = typeof options.path === "function" ? options.path(values) : options.path;
          if (!path) { state.items = []; state.total = 0; state.error = null; return; }
          const data = await api.get(path, params);
          state.data = data;
          const items = Array.isArray(data) ? data : data.items;
          state.items = items;
          state.total = Array.isArray(data) || data.total === undefined ? items.length : data.total;
          state.error = null;
        } catch (error) {
          state.error = error;
          state.items = [];
        } finally {
          state.loading = false;
        }
      }
      const reload = () => load();
      const refilter = () => { state.page = 1; load(); };
      onMounted(load);
      expose({ reload });
      return () => h("div", [
        options.title ? title(options.title) : null,
        h("div", { class: "toolbar" }, [
          ...(options.filters || []).map((f) => filterControl(f, values, refilter)),
          options.toolbar ? options.toolbar(reload, values) : null,
        ]),
        refusal(state.error),
        options.before ? options.before(state) : null,
        withDirectives(h(ElTable, { data: state.items, border: true, stripe: true,
          rowKey: options.rowKey || "id", "data-test": "list" }, {
          default: () => [
            ...options.columns.map((col) => h(ElTableColumn, { label: col.label, prop: col.prop,
              width: col.width, minWidth: col.minWidth }, col.render ? { default: ({ row }) => col.render(row, reload) } : undefined)),
            options.actions ? h(ElTableColumn, { label: "操作", fixed: "right", width: options.actionsWidth || 200 },
              { default: ({ row }) => h("div", { class: "toolbar" }, options.actions(row, reload)) }) : null,
          ],
          empty: () => h(ElEmpty, { description: state.error ? "无法加载" : (options.empty || "暂无数据"), imageSize: 80 }),
        }), [[vLoading, state.loading]]),
        paged ? h("div", { class: "pager" }, h(ElPagination, {
          layout: "total, prev, pager, next", total: state.total, pageSize: state.size,
          currentPage: state.page, "onUpdate:currentPage": (p) => { state.page = p; load(); },
        })) : null,
      ]);
    },
  });
}

export function button(label, onClick, extra = {}) {
  return h(ElButton, { size: "small", onClick, ...extra }, () => label);
}
