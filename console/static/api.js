// The console's one door to the /admin API: the session, JSON calls, errors, downloads.
//
// The token lives in sessionStorage: it survives a reload of the tab (staff reload often) but not the
// closing of the tab, is not shared with other tabs, and never reaches a URL or a cookie. It is not
// in localStorage, which would keep a 12-hour credential on a shared reception PC after the browser closes.
import { reactive } from "vue";

const KEY = "clinic.console.session";

// clinic_timezone: the zone the login answered (CLINIC_TIMEZONE), in which ui.js shows every time.
export const session = reactive({ token: null, staff: null, clinic_timezone: null });

export function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (saved && saved.token) Object.assign(session, saved);
  } catch (_) { /* a damaged entry is a logged-out tab */ }
}

export function saveSession(token, staff, clinic_timezone) {
  Object.assign(session, { token, staff, clinic_timezone });
  sessionStorage.setItem(KEY, JSON.stringify({ token, staff, clinic_timezone }));
}

export function logout() {
  session.token = null;
  session.staff = null;
  session.clinic_timezone = null;
  sessionStorage.removeItem(KEY);
  window.location.hash = "#/login";
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "http_error";
    this.detail = (body && body.detail) || {};
  }
}

function query(params) {
  const pairs = Object.entries(params || {}).filter(([, v]) => v !== null && v !== undefined && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

async function send(method, path, { params, body, text, contentType, raw, extraHeaders } = {}) {
  const headers = { Accept: "application/json", ...(extraHeaders || {}) };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (text !== undefined) headers["Content-Type"] = contentType;
  const response = await fetch(path + query(params), {
    method, headers, body: text !== undefined ? text : body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  if (response.status === 401 && session.token) {
    // Revoked, expired, disabled or roles changed: the API already refuses; the console follows at once.
    logout();
  }
  if (!response.ok) {
    let payload = null;
    try { payload = await response.json(); } catch (_) { /* not JSON */ }
    // A disabled account is refused with 403 when its token still matches: the session ends as well.
    if (response.status === 403 && payload && payload.detail && payload.detail.reason === "staff_disabled") logout();
    throw new ApiError(response.status, payload);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (path, params) => send("GET", path, { params }),
  post: (path, body, extraHeaders) => send("POST", path, { body: body === undefined ? {} : body, extraHeaders }),
  patch: (path, body) => send("PATCH", path, { body }),
  put: (path, body) => send("PUT", path, { body }),
  del: (path) => send("DELETE", path),
  // A file's text as the body (the skin analyser's CSV), not JSON.
  postText: (path, text, contentType) => send("POST", path, { text, contentType }),
};

// A file download with the token in the Authorization header (never in a link): fetch, then save the blob.
export async function download(path, params, fallbackName) {
  const response = await send("GET", path, { params, raw: true });
  const disposition = response.headers.get("content-disposition") || "";
  const match = disposition.match(/filename="?([^";]+)"?/);
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = match ? match[1] : fallbackName;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  return blob;
}
