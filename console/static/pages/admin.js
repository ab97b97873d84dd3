// Admin screens: staff members (roles, disabling) and the audit log.
import { defineComponent, h, reactive, shallowRef } from "vue";
import {
  ElButton, ElCheckbox, ElCheckboxGroup, ElDialog, ElForm, ElFormItem, ElInput, ElMessage, ElTag,
} from "element-plus";
import { api } from "../api.js";
import { button, fieldErrors, listView, refusal, refusalText, ROLE_NAMES, time } from "../ui.js";

const Staff = defineComponent({
  setup() {
    const list = shallowRef(null);
    const dialog = reactive({ open: false, id: null, form: null, errors: {}, error: null, busy: false });
    function open(member) {
      Object.assign(dialog, { open: true, id: member ? member.id : null, errors: {}, error: null,
        form: { username: member ? member.username : "", display_name: member ? member.display_name : "",
          password: "", roles: member ? [...member.roles] : ["front_desk"] } });
    }
    async function save() {
      dialog.busy = true;
      const f = dialog.form;
      try {
        if (dialog.id === null) {
          await api.post("/admin/staff", { username: f.username, display_name: f.display_name, password: f.password, roles: f.roles });
        } else {
          const body = { display_name: f.display_name, roles: f.roles };
          if (f.password) body.password = f.password;
          await api.patch(`/admin/staff/${dialog.id}`, body);
        }
        dialog.open = false;
        ElMessage.success("已保存");
        list.value.reload();
      } catch (error) {
        Object.assign(dialog, { errors: fieldErrors(error), error: error.detail.field ? null : error });
      } finally {
        dialog.busy = false;
      }
    }
    const List = listView({
      title: "员工",
      path: "/admin/staff",
      toolbar: () => h(ElButton, { type: "primary", onClick: () => open(null) }, () => "新增员工"),
      empty: "还没有员工",
      columns: [
        { label: "编号", prop: "id", width: 70 },
        { label: "用户名", prop: "username", minWidth: 120 },
        { label: "姓名", prop: "display_name", minWidth: 100 },
        { label: "角色", minWidth: 180, render: (r) => h("div", { class: "toolbar" }, r.roles.map((role) => h(ElTag, { size: "small" }, () => ROLE_NAMES[role] || role))) },
        { label: "状态", width: 80, render: (r) => (r.is_active ? "在职" : h(ElTag, { type: "info", size: "small" }, () => "已停用")) },
        { label: "创建", width: 140, render: (r) => time(r.created_at) },
      ],
      actionsWidth: 150,
      actions: (r, reload) => [
        button("编辑", () => open(r)),
        button(r.is_active ? "停用" : "启用", async () => {
          try {
            await api.patch(`/admin/staff/${r.id}`, { is_active: !r.is_active });
            ElMessage.success(r.is_active ? "已停用：该员工的登录立即失效" : "已启用");
            reload();
          } catch (error) { ElMessage.error(refusalText(error)); }
        }, { type: r.is_active ? "danger" : "success" }),
      ],
    });
    const bind = (key, extra = {}) => ({ modelValue: dialog.form[key], "onUpdate:modelValue": (v) => { dialog.form[key] = v; }, ...extra });
    return () => h("div", [
      h(List, { ref: list }),
      dialog.open ? h(ElDialog, { modelValue: true, "onUpdate:modelValue": (v) => { dialog.open = v; }, width: "520px",
        title: dialog.id ? "编辑员工" : "新增员工" }, {
        default: () => [
          refusal(dialog.error),
          h(ElForm, { labelWidth: "80px" }, () => [
            h(ElFormItem, { label: "用户名", error: dialog.errors.username }, () => h(ElInput, bind("username", { disabled: dialog.id !== null }))),
            h(ElFormItem, { label: "姓名", error: dialog.errors.display_name }, () => h(ElInput, bind("display_name"))),
            h(ElFormItem, { label: dialog.id ? "重置密码" : "密码", error: dialog.errors.password }, () => h(ElInput, bind("password", { type: "password", showPassword: true, placeholder: dialog.id ? "留空则不修改" : "至少 15 个字符，可用几个词组成的短语" }))),
            h(ElFormItem, { label: "角色", error: dialog.errors.roles }, () => h(ElCheckboxGroup, bind("roles"), () => Object.entries(ROLE_NAMES).map(([value, label]) => h(ElCheckbox, { value, label })))),
          ]),
          h("p", { class: "muted" }, "修改角色或停用后，该员工当前的登录立即失效。"),
        ],
        footer: () => h(ElButton, { type: "primary", loading: dialog.busy, onClick: save }, () => "保存"),
      }) : null,
    ]);
  },
});

const Audit = listView({
  title: "审计日志",
  path: "/admin/audit-log",
  filters: [{ key: "action", label: "动作，如 settlement.approve", type: "text", width: "220px" },
    { key: "target_type", label: "对象类型", type: "text", width: "150px" }, { key: "target_id", label: "对象编号", type: "text", width: "110px" }],
  empty: "没有符合条件的记录",
  columns: [
    { label: "时间", width: 140, render: (r) => time(r.created_at) },
    { label: "员工", width: 70, render: (r) => (r.staff_id === null ? "系统" : `#${r.staff_id}`) },
    { label: "动作", prop: "action", minWidth: 170 },
    { label: "对象", minWidth: 150, render: (r) => `${r.target_type} #${r.target_id}` },
    { label: "详情", minWidth: 220, render: (r) => h("code", { class: "muted" }, JSON.stringify(r.detail)) },
  ],
});

export const ADMIN = [
  { path: "/admin/staff", title: "员工与角色", roles: ["admin"], component: Staff },
  { path: "/admin/audit", title: "审计日志", roles: ["admin", "finance"], component: Audit },
];
