// The chat app's entry: sign in (a user id in development auth, or a
// session token), then the app. The sign-in is remembered in this
// browser (a token only for the tab's session).

import { ChatStore, SwitchboardError } from "@switchboard-chat/client";
import { h } from "../shared/dom.js";
import { App } from "./app.js";
import "./app.css";

interface Saved {
  userId?: string;
  name?: string;
  token?: string;
}

const KEY = "switchboard.login";
const defaultURL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;

function saved(): Saved {
  try {
    const tok = sessionStorage.getItem(`${KEY}.token`);
    const s = JSON.parse(localStorage.getItem(KEY) ?? "{}") as Saved;
    return tok ? { ...s, token: tok } : s;
  } catch {
    return {};
  }
}

function save(s: Saved): void {
  localStorage.setItem(KEY, JSON.stringify({ userId: s.userId, name: s.name }));
  if (s.token) sessionStorage.setItem(`${KEY}.token`, s.token);
  else sessionStorage.removeItem(`${KEY}.token`);
}

function forget(): void {
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(`${KEY}.token`);
}

const root = document.getElementById("root")!;

function loginView(error?: string): void {
  const prev = saved();
  let mode: "dev" | "token" = prev.token ? "token" : "dev";
  const user = h("input", { id: "login-user", name: "user", required: true, autocomplete: "username", maxlength: 128, pattern: "[!-~]+", placeholder: "e.g. alice", value: prev.userId ?? "" }) as HTMLInputElement;
  const name = h("input", { id: "login-name", name: "name", autocomplete: "name", maxlength: 200, placeholder: "e.g. Alice Liddell", value: prev.name ?? "" }) as HTMLInputElement;
  const token = h("textarea", { id: "login-token", name: "token", rows: 3, spellcheck: false, placeholder: "eyJhbGciOi…" }) as HTMLTextAreaElement;
  const err = h("p", { class: "form-error", role: "alert", hidden: !error }, error ?? "");
  const devFields = h("div", null, h("label", { class: "field" }, h("span", { class: "field-label" }, "User id"), user), h("label", { class: "field" }, h("span", { class: "field-label" }, "Display name"), name, h("span", { class: "field-hint" }, "Optional. Development sign-in: the node has no auth key.")));
  const tokenFields = h("div", { hidden: true }, h("label", { class: "field" }, h("span", { class: "field-label" }, "Session token"), token, h("span", { class: "field-hint" }, "A JWT your backend signed with the node's key.")));
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const setMode = (m: "dev" | "token") => {
    mode = m;
    devFields.hidden = m !== "dev";
    tokenFields.hidden = m !== "token";
    user.required = m === "dev";
    token.required = m === "token";
    for (const b of tabs.children) b.setAttribute("aria-selected", String((b as HTMLElement).dataset["mode"] === m));
  };
  tabs.append(
    h("button", { type: "button", role: "tab", dataset: { mode: "dev" }, onclick: () => setMode("dev") }, "User id"),
    h("button", { type: "button", role: "tab", dataset: { mode: "token" }, onclick: () => setMode("token") }, "Token"),
  );
  const submit = h("button", { type: "submit", class: "primary wide" }, "Sign in") as HTMLButtonElement;
  const form = h("form", { class: "login-card", "aria-label": "Sign in", onsubmit: (e: Event) => {
    e.preventDefault();
    submit.disabled = true;
    submit.textContent = "Signing in…";
    const s: Saved = mode === "token" ? { token: token.value.trim() } : { userId: user.value.trim(), name: name.value.trim() || undefined };
    void start(s).catch((x: unknown) => {
      submit.disabled = false;
      submit.textContent = "Sign in";
      err.hidden = false;
      err.textContent = describe(x);
    });
  } },
    h("div", { class: "login-brand" }, h("span", { class: "brand-mark big" }, "S"), h("h1", null, "Switchboard"), h("p", { class: "muted" }, "Sign in to chat")),
    tabs, devFields, tokenFields, err, submit,
  );
  setMode(mode);
  root.replaceChildren(h("div", { class: "login" }, form));
  (mode === "dev" ? user : token).focus();
}

function describe(x: unknown): string {
  if (x instanceof SwitchboardError) {
    switch (x.code) {
      case "unauthenticated":
        return "This node needs a token: sign in with a session token.";
      case "token_invalid":
        return "That token is not valid here.";
      case "token_expired":
        return "That token has expired: get a fresh one.";
      case "bad_request":
      case "too_long":
        return x.message.replace(/^switchboard: /, "");
      default:
        return `Could not connect: ${x.message}`;
    }
  }
  return String(x);
}

async function start(s: Saved): Promise<void> {
  const store = new ChatStore({ connection: { urls: defaultURL, requestTimeoutMs: 15_000 } });
  await store.login(s.token ? { token: s.token } : { userId: s.userId!, ...(s.name ? { name: s.name } : {}) });
  save(s);
  const app = new App(store, () => {
    forget();
    void store.logout().finally(() => {
      location.hash = "";
      loginView();
    });
  });
  root.replaceChildren(app.root);
}

const s = saved();
if (s.token || s.userId) {
  root.replaceChildren(h("div", { class: "splash" }, h("span", { class: "brand-mark big" }, "S"), h("span", { class: "spinner" })));
  start(s).catch((x: unknown) => loginView(describe(x)));
} else {
  loginView();
}
