// The console shell: login, the menu of the member's roles, and a #/hash router over the screens.
import { createApp, defineComponent, h, reactive, ref, shallowRef } from "vue";
import ElementPlus, {
  ElAside, ElButton, ElCard, ElContainer, ElForm, ElFormItem, ElHeader, ElInput, ElMain, ElMenu,
  ElMenuItem, ElMenuItemGroup, ElTag,
} from "element-plus";
import zhCn from "element-plus/zh-cn";
import { api, loadSession, logout, saveSession, session } from "./api.js";
import { ROLE_NAMES, refusal } from "./ui.js";
import { SCREENS } from "./screens.js";

const route = ref(window.location.hash.slice(1) || "/");
window.addEventListener("hashchange", () => { route.value = window.location.hash.slice(1) || "/"; });

// A member sees the menus of the roles they hold; the API still checks every call (a typed address
// to another role's page shows the API's refusal).
function visibleScreens() {
  const held = new Set(session.staff ? session.staff.roles : []);
  return SCREENS.filter((s) => s.roles.some((r) => held.has(r)));
}

const Login = defineComponent({
  setup() {
    const form = reactive({ username: "", password: "" });
    const error = shallowRef(null);
    const busy = ref(false);
    async function submit() {
      busy.value = true;
      try {
        const result = await api.post("/admin/auth/login", { username: form.username, password: form.password });
        saveSession(result.access_token, result.staff, result.clinic_timezone);
        error.value = null;
        const first = visibleScreens()[0];
        window.location.hash = first ? `#${first.path}` : "#/";
      } catch (e) {
        error.value = e;
      } finally {
        busy.value = false;
      }
    }
    return () => h("div", { class: "login" }, h(ElCard, { header: "诊所管理后台 · 员工登录" }, () => [
      refusal(error.value),
      h(ElForm, { labelPosition: "top", onSubmit: (e) => { e.preventDefault(); submit(); } }, () => [
        h(ElFormItem, { label: "用户名" }, () => h(ElInput, { modelValue: form.username,
          "onUpdate:modelValue": (v) => { form.username = v; }, name: "username", autocomplete: "username" })),
        h(ElFormItem, { label: "密码" }, () => h(ElInput, { modelValue: form.password, type: "password", showPassword: true,
          "onUpdate:modelValue": (v) => { form.password = v; }, name: "password", autocomplete: "current-password",
          onKeyup: (e) => { if (e.key === "Enter") submit(); } })),
        h(ElButton, { type: "primary", loading: busy.value, onClick: submit, style: { width: "100%" },
          "data-test": "login" }, () => "登录"),
      ]),
    ]));
  },
});

// A screen sits in the group it names (CRM screens serve several roles), else in its first role's.
const GROUPS = [["front_desk", "前台"], ["crm", "客户运营"], ["campaign", "活动运营"], ["finance", "财务"], ["admin", "系统管理"]];

const Shell = defineComponent({
  setup() {
    return () => {
      const screens = visibleScreens();
      const current = SCREENS.find((s) => s.path === route.value) || screens[0];
      const menu = h(ElMenu, { defaultActive: current ? current.path : "", backgroundColor: "#001529",
        textColor: "#c0c4cc", activeTextColor: "#fff", "data-test": "menu",
        onSelect: (path) => { window.location.hash = `#${path}`; } }, () => GROUPS
        .map(([role, label]) => [label, screens.filter((s) => (s.group || s.roles[0]) === role)])
        .filter(([, items]) => items.length)
        .map(([label, items]) => h(ElMenuItemGroup, { title: label }, () => items.map((s) =>
          h(ElMenuItem, { index: s.path, "data-test": `menu-${s.path}` }, () => s.title)))));
      return h(ElContainer, { class: "layout" }, () => [
        h(ElAside, { width: "200px" }, () => [h("div", { class: "brand" }, "诊所管理后台"), menu]),
        h(ElContainer, null, () => [
          h(ElHeader, { height: "52px" }, () => [
            h("span", current ? current.title : ""),
            h("div", { class: "who" }, [
              h("span", { "data-test": "who" }, session.staff.display_name || session.staff.username),
              ...session.staff.roles.map((r) => h(ElTag, { size: "small" }, () => ROLE_NAMES[r] || r)),
              h(ElButton, { size: "small", onClick: logout, "data-test": "logout" }, () => "退出登录"),
            ]),
          ]),
          h(ElMain, null, () => current
            ? h(current.component, { key: current.path })
            : h("p", { class: "muted" }, "您的账号还没有角色，请联系管理员。")),
        ]),
      ]);
    };
  },
});

const Root = defineComponent({
  setup() {
    return () => (session.token && route.value !== "/login" ? h(Shell) : h(Login));
  },
});

loadSession();
createApp(Root).use(ElementPlus, { locale: zhCn }).mount("#app");
