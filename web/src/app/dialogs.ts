// Dialogs (native <dialog>: focus trapping and Escape come with it): new
// channel, browse channels, new direct message, join with a token,
// invite people; and the emoji picker popover.

import type { Channel, ChannelType, ChatStore } from "@switchboard-chat/client";
import { h, icon, icons } from "../shared/dom.js";

export interface DialogHost {
  store: ChatStore;
  go(chatId: string): void;
  toast(msg: string, err?: unknown): void;
}

/** Opens a modal dialog; resolves when it closes. */
function modal(title: string, body: Node[], actions: HTMLElement[], cls = ""): HTMLDialogElement {
  const d = h(
    "dialog",
    { class: `modal ${cls}`, "aria-label": title },
    h("header", null, h("h2", null, title), h("button", { type: "button", class: "icon-btn", "aria-label": "Close", onclick: () => d.close() }, icon(icons.x))),
    h("div", { class: "modal-body" }, body),
    actions.length ? h("footer", null, actions) : null,
  ) as HTMLDialogElement;
  d.addEventListener("close", () => d.remove());
  document.body.appendChild(d);
  d.showModal();
  return d;
}

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "field-hint" }, hint) : null);
}

function errorLine(): HTMLElement {
  return h("p", { class: "form-error", role: "alert", hidden: true });
}

function fail(line: HTMLElement, err: unknown): void {
  line.hidden = false;
  line.textContent = err instanceof Error ? err.message : String(err);
}

/** The id a channel name suggests: lower case, dashes. */
export function slug(name: string): string {
  return name.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60);
}

export function newChannel(host: DialogHost): void {
  const name = h("input", { required: true, maxlength: 200, placeholder: "e.g. design-team", autocomplete: "off" }) as HTMLInputElement;
  const id = h("input", { maxlength: 128, placeholder: "from the name", autocomplete: "off", pattern: "[!-~]+" }) as HTMLInputElement;
  const desc = h("input", { maxlength: 400, placeholder: "What is it about? (optional)" }) as HTMLInputElement;
  const type = h(
    "select",
    null,
    h("option", { value: "standard" }, "Standard — anyone can join"),
    h("option", { value: "private" }, "Private — by invitation"),
    h("option", { value: "community" }, "Community — anyone can join"),
    h("option", { value: "broadcast" }, "Broadcast — only moderators post"),
  ) as HTMLSelectElement;
  const err = errorLine();
  let idTouched = false;
  id.addEventListener("input", () => (idTouched = true));
  name.addEventListener("input", () => {
    if (!idTouched) id.value = slug(name.value);
  });
  const create = h("button", { type: "submit", class: "primary" }, "Create channel");
  const form = h("form", { class: "form", onsubmit: async (e: Event) => {
    e.preventDefault();
    create.setAttribute("disabled", "");
    try {
      const chat = await host.store.create({
        type: type.value as ChannelType,
        name: name.value.trim(),
        ...(id.value.trim() ? { id: id.value.trim() } : {}),
        ...(desc.value.trim() ? { description: desc.value.trim() } : {}),
      });
      d.close();
      host.go(chat.id);
    } catch (x) {
      fail(err, x);
      create.removeAttribute("disabled");
    }
  } }, field("Name", name), field("Channel id", id, "Letters, digits and dashes; it cannot change later."), field("Description", desc), field("Type", type), err, h("div", { class: "form-actions" }, create));
  const d = modal("Create a channel", [form], []);
  name.focus();
}

export function browse(host: DialogHost): void {
  const list = h("ul", { class: "browse-list", "aria-label": "Public channels" });
  const err = errorLine();
  const search = h("input", { type: "search", placeholder: "Filter by name", "aria-label": "Filter channels" }) as HTMLInputElement;
  let channels: Channel[] = [];
  let cursor: string | undefined;
  const more = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => void load() }, "Load more");
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const mine = host.store.getSnapshot().chats;
    const shown = channels.filter((c) => !q || (c.name || c.id).toLowerCase().includes(q) || c.id.includes(q));
    list.replaceChildren(
      ...(shown.length
        ? shown.map((c) =>
            h(
              "li",
              null,
              h("span", { class: "browse-icon" }, icon(icons.hash)),
              h("span", { class: "browse-meta" }, h("span", { class: "browse-name" }, c.name || c.id), h("span", { class: "browse-desc" }, c.description || `${c.member_count} member${c.member_count === 1 ? "" : "s"}`)),
              mine[c.id]
                ? h("button", { type: "button", class: "secondary", onclick: () => { d.close(); host.go(c.id); } }, "Open")
                : h("button", { type: "button", class: "primary", "aria-label": `Join ${c.name || c.id}`, onclick: async (e: Event) => {
                    (e.currentTarget as HTMLButtonElement).disabled = true;
                    try {
                      await host.store.join(c.id);
                      d.close();
                      host.go(c.id);
                    } catch (x) {
                      fail(err, x);
                    }
                  } }, "Join"),
            ),
          )
        : [h("li", { class: "empty" }, channels.length ? "No channel matches." : "No public channels yet.")]),
    );
  };
  const load = async () => {
    try {
      const res = await host.store.queryChannels({ limit: 50, ...(cursor ? { cursor } : {}) });
      channels = channels.concat(res.channels);
      cursor = res.cursor;
      more.hidden = !cursor;
      render();
    } catch (x) {
      fail(err, x);
    }
  };
  search.addEventListener("input", render);
  const d = modal("Browse channels", [search, err, list, more], [], "wide");
  list.append(h("li", { class: "empty" }, h("span", { class: "spinner small" }), " Loading…"));
  void load();
  search.focus();
}

export function newDirect(host: DialogHost): void {
  const users = h("input", { required: true, placeholder: "user ids, separated by commas", autocomplete: "off", "aria-label": "User ids" }) as HTMLInputElement;
  const err = errorLine();
  const go = h("button", { type: "submit", class: "primary" }, "Start conversation");
  const form = h("form", { class: "form", onsubmit: async (e: Event) => {
    e.preventDefault();
    const ids = users.value.split(/[\s,]+/).map((s) => s.replace(/^@/, "")).filter(Boolean);
    if (!ids.length) return;
    go.setAttribute("disabled", "");
    try {
      const chat = await host.store.openDirect(ids);
      d.close();
      host.go(chat.id);
    } catch (x) {
      fail(err, x);
      go.removeAttribute("disabled");
    }
  } }, field("To", users, "A conversation with the same people is reused."), err, h("div", { class: "form-actions" }, go));
  const d = modal("New message", [form], []);
  users.focus();
}

export function joinWithToken(host: DialogHost): void {
  const tok = h("textarea", { required: true, rows: 3, placeholder: "eyJhbGciOi…", "aria-label": "Join token", spellcheck: false }) as HTMLTextAreaElement;
  const err = errorLine();
  const go = h("button", { type: "submit", class: "primary" }, "Join");
  const form = h("form", { class: "form", onsubmit: async (e: Event) => {
    e.preventDefault();
    go.setAttribute("disabled", "");
    try {
      const chat = await host.store.joinByToken(tok.value.trim());
      d.close();
      host.go(chat.id);
    } catch (x) {
      fail(err, x);
      go.removeAttribute("disabled");
    }
  } }, field("Join token", tok, "A short-lived token from the channel's owner admits you to a private channel."), err, h("div", { class: "form-actions" }, go));
  const d = modal("Join with a token", [form], []);
  tok.focus();
}

export function invite(host: DialogHost, chatId: string, name: string): void {
  const users = h("input", { required: true, placeholder: "user ids, separated by commas", autocomplete: "off", "aria-label": "User ids" }) as HTMLInputElement;
  const err = errorLine();
  const go = h("button", { type: "submit", class: "primary" }, "Send invitations");
  const form = h("form", { class: "form", onsubmit: async (e: Event) => {
    e.preventDefault();
    const ids = users.value.split(/[\s,]+/).map((s) => s.replace(/^@/, "")).filter(Boolean);
    if (!ids.length) return;
    go.setAttribute("disabled", "");
    try {
      await host.store.invite(chatId, ids);
      d.close();
      host.toast(`Invited ${ids.join(", ")}`);
    } catch (x) {
      fail(err, x);
      go.removeAttribute("disabled");
    }
  } }, field("People", users), err, h("div", { class: "form-actions" }, go));
  const d = modal(`Invite people to ${name}`, [form], []);
  users.focus();
}

const EMOJI = ["👍", "👎", "❤️", "😂", "🎉", "👀", "🙏", "🔥", "✅", "❌", "😮", "😢", "😡", "🤔", "👏", "🚀", "💯", "☕", "🍕", "🙌", "😎", "🤝", "⭐", "💡"];

/** A small emoji picker next to anchor. */
export function emojiPicker(anchor: HTMLElement, onPick: (e: string) => void): void {
  document.querySelector(".emoji-picker")?.remove();
  const close = () => {
    pop.remove();
    document.removeEventListener("pointerdown", outside, true);
    anchor.focus();
  };
  const outside = (e: Event) => {
    if (!pop.contains(e.target as Node)) close();
  };
  const pop = h(
    "div",
    { class: "emoji-picker", role: "dialog", "aria-label": "Pick a reaction", onkeydown: (e: KeyboardEvent) => e.key === "Escape" && close() },
    EMOJI.map((e) => h("button", { type: "button", "aria-label": e, onclick: () => { close(); onPick(e); } }, e)),
  );
  document.body.appendChild(pop);
  const r = anchor.getBoundingClientRect();
  const w = pop.offsetWidth;
  const hgt = pop.offsetHeight;
  pop.style.left = `${Math.max(8, Math.min(window.innerWidth - w - 8, r.right - w))}px`;
  pop.style.top = `${r.top - hgt - 6 > 8 ? r.top - hgt - 6 : r.bottom + 6}px`;
  (pop.firstElementChild as HTMLElement | null)?.focus();
  setTimeout(() => document.addEventListener("pointerdown", outside, true));
}
