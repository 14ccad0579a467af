// The chat app's shell: sidebar of chats, the open chat (header, timeline,
// typing line, composer), a side panel (thread or members), the
// connection banner, toasts. It renders from the store's snapshots: a
// change schedules one render per frame, and each part rebuilds only when
// its slice of the state changed.

import type { Chat, ChatMessage, ChatState, ChatStore, User } from "@switchboard-chat/client";
import { h, icon, icons } from "../shared/dom.js";
import { Composer } from "./composer.js";
import { browse, emojiPicker, invite, joinWithToken, newChannel, newDirect } from "./dialogs.js";
import { renderMembers } from "./members.js";
import { avatar, reconcile, Timeline } from "./timeline.js";

type Panel = { kind: "thread"; id: string } | { kind: "members" } | null;

export class App {
  readonly root: HTMLElement;
  private state: ChatState;
  private active: string | null = null;
  private panel: Panel = null;
  private frame = 0;
  private unreadAfter = new Map<string, number>();
  private readonly chatList = h("nav", { class: "chat-list", "aria-label": "Chats" });
  private readonly meBox = h("div", { class: "me-box" });
  private readonly banner = h("div", { class: "banner", role: "status", hidden: true });
  private readonly head = h("header", { class: "chat-head" });
  private readonly main = h("main", { class: "main", "aria-label": "Conversation" });
  private readonly typingLine = h("div", { class: "typing-line", "aria-live": "polite" });
  private readonly side = h("aside", { class: "side-panel", hidden: true });
  private readonly sideHead = h("header", { class: "side-head" });
  private readonly sideBody = h("div", { class: "side-body" });
  private readonly toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
  private readonly timeline: Timeline;
  private readonly thread: Timeline;
  private readonly composer: Composer;
  private readonly threadComposer: Composer;
  private readonly empty = h("div", { class: "empty-state" });
  private rendered: { state?: ChatState; chat?: Chat; panel?: Panel; active?: string | null } = {};

  constructor(
    readonly store: ChatStore,
    private readonly onLogout: () => void,
  ) {
    this.state = store.getSnapshot();
    this.timeline = new Timeline(this, "main", () => {
      if (this.active) this.store.loadOlder(this.active).catch((e) => this.toast("Could not load earlier messages", e));
    });
    this.thread = new Timeline(this, "thread", () => {
      if (this.active && this.panel?.kind === "thread") this.store.loadThread(this.active, this.panel.id).catch(() => {});
    });
    this.composer = new Composer(this, () => "");
    this.threadComposer = new Composer(this, () => (this.panel?.kind === "thread" ? this.panel.id : ""));
    const sidebar = h(
      "aside",
      { class: "sidebar", "aria-label": "Sidebar" },
      h("header", { class: "sidebar-head" }, h("div", { class: "brand" }, h("span", { class: "brand-mark" }, "S"), "Switchboard")),
      h(
        "div",
        { class: "sidebar-actions" },
        h("button", { type: "button", class: "side-btn", onclick: () => newChannel(this) }, icon(icons.plus), "New channel"),
        h("button", { type: "button", class: "side-btn", onclick: () => browse(this) }, icon(icons.search), "Browse channels"),
        h("button", { type: "button", class: "side-btn", onclick: () => newDirect(this) }, icon(icons.message), "New message"),
        h("button", { type: "button", class: "side-btn", onclick: () => joinWithToken(this) }, icon(icons.key), "Join with a token"),
      ),
      this.chatList,
      this.meBox,
    );
    this.side.append(this.sideHead, this.sideBody, this.threadComposer.el);
    this.main.append(this.banner, this.head, this.timeline.root, this.typingLine, this.composer.el, this.empty);
    this.root = h("div", { class: "app" }, sidebar, this.main, this.side, this.toasts);
    this.root.addEventListener("timeline-refresh", () => this.render(true));
    store.subscribe(() => this.schedule());
    window.addEventListener("hashchange", () => this.route());
    document.addEventListener("visibilitychange", () => this.schedule());
    document.addEventListener("keydown", (e) => this.keys(e));
    this.timeline.el.addEventListener("scroll", () => this.markReadSoon());
    setInterval(() => this.schedule(), 30_000); // "last seen" and day labels age
    this.route();
  }

  // ---- hosts' helpers ----

  me(): string {
    return this.state.me?.id ?? "";
  }
  isAdmin(): boolean {
    return !!this.state.me?.admin;
  }
  user(id: string): User | undefined {
    return this.state.users[id];
  }
  userName(id: string): string {
    return this.state.users[id]?.name || id;
  }
  go(chatId: string): void {
    location.hash = `#/c/${encodeURIComponent(chatId)}`;
  }
  openThread(chatId: string, messageId: string): void {
    location.hash = `#/c/${encodeURIComponent(chatId)}/t/${encodeURIComponent(messageId)}`;
  }
  toast(msg: string, err?: unknown): void {
    const text = err ? `${msg}: ${err instanceof Error ? err.message : String(err)}` : msg;
    const t = h("div", { class: `toast${err ? " error" : ""}`, role: err ? "alert" : "status" }, text);
    this.toasts.append(t);
    setTimeout(() => t.remove(), err ? 6000 : 3500);
  }
  lightbox(src: string, alt: string): void {
    const d = h("dialog", { class: "lightbox", "aria-label": alt, onclick: () => d.close() }, h("img", { src, alt })) as HTMLDialogElement;
    d.addEventListener("close", () => d.remove());
    document.body.append(d);
    d.showModal();
  }
  pickEmoji(anchor: HTMLElement, onPick: (e: string) => void): void {
    emojiPicker(anchor, onPick);
  }
  editLast(chatId: string, parentId: string): void {
    const chat = this.state.chats[chatId];
    if (!chat) return;
    const list = parentId ? (chat.threads[parentId]?.messages ?? []) : chat.messages;
    const mine = [...list].reverse().find((m) => m.user === this.me() && !m.deleted && !m.system && m.status === "sent");
    if (mine) (parentId ? this.thread : this.timeline).startEdit(chat, mine);
  }

  // ---- routing ----

  private route(): void {
    const m = /^#\/c\/([^/]+)(?:\/(t|members)(?:\/([^/]+))?)?$/.exec(location.hash);
    const id = m ? decodeURIComponent(m[1]!) : null;
    const changed = id !== this.active;
    if (changed && this.active) this.markReadNow(); // what was on screen was seen
    this.active = id;
    this.panel = m?.[2] === "t" && m[3] ? { kind: "thread", id: decodeURIComponent(m[3]) } : m?.[2] === "members" ? { kind: "members" } : null;
    if (changed && id) {
      const chat = this.state.chats[id];
      this.unreadAfter.set(id, chat ? chat.channel.last_segment - chat.unread : Infinity);
      if (!chat) {
        // Not in the store yet (a link, or just joined elsewhere): watch it.
        this.store.watch(id).catch((e) => {
          this.toast(`Could not open ${id}`, e);
          location.hash = "";
        });
      }
    }
    if (this.active && this.panel?.kind === "thread") this.store.loadThread(this.active, this.panel.id).catch((e) => this.toast("Could not load the thread", e));
    if (this.active && this.panel?.kind === "members") this.store.loadMembers(this.active).catch((e) => this.toast("Could not load the members", e));
    this.root.classList.toggle("chat-open", !!id);
    this.render(true);
    if (changed && id && matchMedia("(min-width: 721px)").matches) this.composer.focus();
  }

  private keys(e: KeyboardEvent): void {
    if (e.key === "Escape" && this.panel && !document.querySelector("dialog[open]")) {
      this.closePanel();
      return;
    }
    if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      const ids = this.orderedIds();
      const i = this.active ? ids.indexOf(this.active) : -1;
      const next = ids[(i + (e.key === "ArrowUp" ? -1 : 1) + ids.length) % ids.length];
      if (next) {
        e.preventDefault();
        this.go(next);
      }
    }
  }

  private closePanel(): void {
    if (this.active) this.go(this.active);
  }

  // ---- rendering ----

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render(false);
    });
  }

  private render(force: boolean): void {
    this.state = this.store.getSnapshot();
    const s = this.state;
    const chat = this.active ? s.chats[this.active] : undefined;
    const r = this.rendered;
    if (force || r.state?.chats !== s.chats || r.state?.users !== s.users || r.state?.invites !== s.invites || r.active !== this.active) this.renderSidebar();
    if (force || r.state?.me !== s.me || r.state?.status !== s.status || r.state?.users !== s.users) this.renderMe();
    if (force || r.state?.status !== s.status) this.renderBanner();
    if (force || r.chat !== chat || r.state?.users !== s.users || r.active !== this.active) this.renderChat(chat);
    if (force || r.chat !== chat || r.panel !== this.panel || r.state?.users !== s.users) this.renderPanel(chat);
    this.rendered = { state: s, chat, panel: this.panel, active: this.active };
    document.title = this.title(chat);
    this.markReadSoon();
  }

  private title(chat: Chat | undefined): string {
    const unread = Object.values(this.state.chats).reduce((n, c) => n + c.unread, 0);
    return `${unread ? `(${unread}) ` : ""}${chat ? this.chatName(chat) + " · " : ""}Switchboard`;
  }

  chatName(chat: Chat): string {
    if (chat.channel.type === "conversation") {
      const others = (chat.members ?? []).map((m) => m.user).filter((u) => u !== this.me());
      return others.length ? others.map((u) => this.userName(u)).join(", ") : chat.channel.name || "Conversation";
    }
    return chat.channel.name || chat.id;
  }

  private orderedIds(): string[] {
    const chats = Object.values(this.state.chats);
    const channels = chats.filter((c) => c.channel.type !== "conversation").sort((a, b) => this.chatName(a).localeCompare(this.chatName(b)));
    const dms = chats.filter((c) => c.channel.type === "conversation").sort((a, b) => (a.channel.last_activity < b.channel.last_activity ? 1 : -1));
    return [...channels, ...dms].map((c) => c.id);
  }

  /** Sidebar sections, kept across renders; their items are reused while unchanged. */
  private readonly sections = {
    invites: this.section("Invitations"),
    channels: this.section("Channels"),
    dms: this.section("Direct messages"),
  };
  private readonly items = new Map<string, { sig: string; el: HTMLElement }>();

  private section(title: string): { el: HTMLElement; list: HTMLElement; empty: HTMLElement } {
    const list = h("div", { class: "chat-items" });
    const empty = h("p", { class: "muted small pad-x" });
    return { el: h("section", null, h("h2", null, title), list, empty), list, empty };
  }

  private chatItem(c: Chat): HTMLElement {
    const dm = c.channel.type === "conversation";
    const other = dm ? (c.members ?? []).find((m) => m.user !== this.me())?.user : undefined;
    const presence = other ? (this.user(other)?.status === "online" ? "online" : "offline") : undefined;
    // The open chat shows its new messages itself (the "New messages" line), not a badge.
    const active = c.id === this.active;
    const unread = active ? 0 : c.unread;
    const mentioned = !active && c.mentioned;
    const name = this.chatName(c);
    const sig = JSON.stringify([name, c.channel.type, other, presence, active, unread, mentioned]);
    const cached = this.items.get(c.id);
    if (cached?.sig === sig) return cached.el;
    const lead = dm
      ? avatar(other ?? c.id, other ? this.userName(other) : "?", presence, "sm")
      : h("span", { class: "chat-icon" }, icon(c.channel.type === "private" ? icons.lock : icons.hash));
    const el = h(
      "a",
      { href: `#/c/${encodeURIComponent(c.id)}`, class: `chat-item${active ? " active" : ""}${unread ? " unread" : ""}`, "aria-current": active ? "page" : undefined, "aria-label": `${name}${unread ? `, ${unread} unread` : ""}${mentioned ? ", mentioned" : ""}`, dataset: { chat: c.id } },
      lead,
      h("span", { class: "chat-name" }, name),
      mentioned ? h("span", { class: "mention-mark", title: "You were mentioned" }, "@") : null,
      unread ? h("span", { class: "badge-count", "aria-hidden": "true" }, unread > 99 ? "99+" : String(unread)) : null,
    );
    this.items.set(c.id, { sig, el });
    return el;
  }

  private renderSidebar(): void {
    const s = this.state;
    const chats = this.orderedIds().map((id) => s.chats[id]!);
    for (const id of this.items.keys()) if (!s.chats[id]) this.items.delete(id);
    const fill = (sec: { list: HTMLElement; empty: HTMLElement }, items: HTMLElement[], emptyText: string) => {
      reconcile(sec.list, items);
      sec.empty.textContent = emptyText;
      sec.empty.hidden = items.length > 0 || emptyText === "";
    };
    fill(this.sections.channels, chats.filter((c) => c.channel.type !== "conversation").map((c) => this.chatItem(c)), s.fetching ? "Loading…" : "No channels yet: create one or browse.");
    fill(this.sections.dms, chats.filter((c) => c.channel.type === "conversation").map((c) => this.chatItem(c)), "No conversations yet.");
    fill(
      this.sections.invites,
      s.invites.map((ch) =>
        h(
          "div",
          { class: "invite" },
          h("span", { class: "chat-icon" }, icon(ch.type === "private" ? icons.lock : icons.hash)),
          h("span", { class: "chat-name" }, ch.name || ch.id),
          h("button", { type: "button", class: "chip-btn", onclick: () => this.store.join(ch.id).then(() => this.go(ch.id), (e) => this.toast("Could not join", e)) }, "Accept"),
          h("button", { type: "button", class: "chip-btn subtle", "aria-label": `Decline ${ch.name || ch.id}`, onclick: () => this.store.leave(ch.id).catch((e) => this.toast("Could not decline", e)) }, "Decline"),
        ),
      ),
      "",
    );
    this.sections.invites.el.hidden = s.invites.length === 0;
    reconcile(this.chatList, [this.sections.invites.el, this.sections.channels.el, this.sections.dms.el]);
  }

  private renderMe(): void {
    const me = this.state.me;
    if (!me) return;
    const status = this.state.status;
    this.meBox.replaceChildren(
      avatar(me.id, me.name || me.id, status === "online" ? "online" : "offline"),
      h("div", { class: "me-meta" }, h("div", { class: "me-name" }, me.name || me.id), h("div", { class: "me-status" }, status === "online" ? "Online" : status === "offline" ? "Offline" : "Connecting…")),
      h("button", { type: "button", class: "icon-btn", "aria-label": "Sign out", title: "Sign out", onclick: () => this.onLogout() }, icon(icons.logout)),
    );
  }

  private renderBanner(): void {
    const st = this.state.status;
    this.banner.hidden = st === "online";
    if (st === "online") return;
    this.banner.className = `banner ${st}`;
    this.banner.replaceChildren(
      icon(icons.wifiOff),
      h("span", null, st === "offline" ? "You are offline." : st === "connecting" ? "Connecting…" : "Reconnecting… Messages you send now go out when the connection is back."),
      st === "offline"
        ? h("button", { type: "button", class: "link", onclick: () => location.reload() }, "Reload")
        : h("button", { type: "button", class: "link", onclick: () => this.store.client.reconnectNow() }, "Retry now"),
    );
  }

  private renderChat(chat: Chat | undefined): void {
    const hasChat = !!chat;
    this.head.hidden = !hasChat;
    this.timeline.root.hidden = !hasChat;
    this.composer.el.hidden = !hasChat;
    this.typingLine.hidden = !hasChat;
    this.empty.hidden = hasChat;
    if (!chat) {
      this.renderEmpty();
      return;
    }
    const name = this.chatName(chat);
    const dm = chat.channel.type === "conversation";
    const other = dm ? (chat.members ?? []).find((m) => m.user !== this.me())?.user : undefined;
    const sub = dm && other
      ? this.user(other)?.status === "online" ? "Online" : "Offline"
      : [chat.channel.description, `${chat.channel.member_count} member${chat.channel.member_count === 1 ? "" : "s"}`].filter(Boolean).join(" · ");
    this.head.replaceChildren(
      h("a", { href: "#", class: "icon-btn back", "aria-label": "Back to chats" }, icon(icons.back)),
      dm ? avatar(other ?? chat.id, other ? this.userName(other) : name, other ? (this.user(other)?.status === "online" ? "online" : "offline") : undefined, "sm") : h("span", { class: "chat-icon big" }, icon(chat.channel.type === "private" ? icons.lock : icons.hash)),
      h("div", { class: "chat-title" }, h("h1", null, name), h("div", { class: "chat-sub" }, sub, chat.sync !== "synced" && this.state.status === "online" ? h("span", { class: "sync" }, " · syncing…") : null)),
      h("div", { class: "head-actions" }, this.headActions(chat)),
    );
    this.timeline.update(chat, chat.messages, { unreadAfter: this.unreadAfter.get(chat.id) ?? null });
    const typing = chat.typing.map((u) => this.userName(u));
    this.typingLine.replaceChildren(
      ...(typing.length
        ? [h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")), `${typing.length > 2 ? `${typing.length} people are` : `${typing.join(" and ")} ${typing.length === 1 ? "is" : "are"}`} typing…`]
        : []),
    );
    this.composer.setChat(chat.id, `Message ${dm ? name : `#${name}`}`, this.sendBlocked(chat));
  }

  /** Why you cannot send here (null: you can). */
  private sendBlocked(chat: Chat): string | null {
    const m = chat.member;
    const now = Date.now();
    if (m?.muted_until && new Date(m.muted_until).getTime() > now) return `You are muted here until ${new Date(m.muted_until).toLocaleString()}`;
    if (chat.channel.muted_until && new Date(chat.channel.muted_until).getTime() > now && !chat.canModerate) return "This channel is muted: only moderators can post";
    if (chat.channel.type === "broadcast" && !chat.canModerate) return "Only moderators post in this channel";
    if (!m || (m.membership !== "member" && !chat.canModerate)) {
      if (m?.membership === "viewer" && chat.channel.type === "live") return null;
      return m?.membership === "viewer" ? "You can read this channel but not post" : "Join this channel to post";
    }
    return null;
  }

  private headActions(chat: Chat): HTMLElement[] {
    const out: HTMLElement[] = [];
    const member = chat.member?.membership === "member" || chat.member?.membership === "viewer";
    if (!member && chat.channel.type !== "conversation") {
      out.push(h("button", { type: "button", class: "primary small", onclick: () => this.store.join(chat.id).catch((e) => this.toast("Could not join", e)) }, "Join"));
    }
    out.push(
      h("button", { type: "button", class: "icon-btn", "aria-label": "Members", title: "Members", "aria-pressed": String(this.panel?.kind === "members"), onclick: () => {
        location.hash = this.panel?.kind === "members" ? `#/c/${encodeURIComponent(chat.id)}` : `#/c/${encodeURIComponent(chat.id)}/members`;
      } }, icon(icons.users), h("span", { class: "count" }, String(chat.channel.member_count))),
    );
    const menu = h("div", { class: "menu-items" });
    const add = (label: string, run: () => void, danger = false) => menu.append(h("button", { type: "button", class: danger ? "danger" : "", onclick: () => { details.open = false; run(); } }, label));
    if (chat.channel.type !== "conversation" && (chat.canModerate || chat.channel.type === "standard" || chat.channel.type === "community")) add("Invite people…", () => invite(this, chat.id, this.chatName(chat)));
    if (chat.canModerate && chat.channel.type !== "conversation") {
      const muted = chat.channel.muted_until && new Date(chat.channel.muted_until).getTime() > Date.now();
      add(muted ? "Unmute channel" : "Mute channel for 1 hour", () => (muted ? this.store.unmuteChannel(chat.id) : this.store.muteChannel(chat.id, 60)).catch((e) => this.toast("Could not change the channel", e)));
    }
    if (member) add("Mark as read", () => void this.store.markRead(chat.id).catch(() => {}));
    if (member) add(chat.channel.type === "conversation" ? "Leave conversation" : "Leave channel", () => {
      if (confirm(`Leave ${this.chatName(chat)}?`)) this.store.leave(chat.id).then(() => (location.hash = ""), (e) => this.toast("Could not leave", e));
    }, true);
    if (this.isAdmin() || chat.member?.roles.includes("owner")) add("Delete channel", () => {
      if (confirm(`Delete ${this.chatName(chat)} for everyone?`)) this.store.client.call("channel.delete", { channel: chat.id }).then(() => (location.hash = ""), (e) => this.toast("Could not delete", e));
    }, true);
    const details = h("details", { class: "menu" }, h("summary", { class: "icon-btn", "aria-label": "Channel menu", title: "More" }, icon(icons.more)), menu) as HTMLDetailsElement;
    out.push(details);
    return out;
  }

  private renderEmpty(): void {
    const s = this.state;
    this.empty.replaceChildren(
      h("div", { class: "empty-card" },
        h("div", { class: "empty-mark" }, icon(icons.message)),
        h("h1", null, `Welcome${s.me ? `, ${s.me.name || s.me.id}` : ""}`),
        h("p", null, s.chatIds.length ? "Pick a conversation on the left, or start a new one." : "You are not in any channel yet. Create one, or browse the public channels."),
        h("div", { class: "empty-actions" },
          h("button", { type: "button", class: "primary", onclick: () => newChannel(this) }, "Create a channel"),
          h("button", { type: "button", class: "secondary", onclick: () => browse(this) }, "Browse channels"),
        ),
      ),
    );
  }

  private renderPanel(chat: Chat | undefined): void {
    const p = this.panel;
    this.side.hidden = !chat || !p;
    this.root.classList.toggle("panel-open", !this.side.hidden);
    if (!chat || !p) return;
    const close = h("button", { type: "button", class: "icon-btn", "aria-label": "Close panel", onclick: () => this.closePanel() }, icon(icons.x));
    if (p.kind === "members") {
      this.side.setAttribute("aria-label", "Members");
      this.sideHead.replaceChildren(h("h2", null, "Members"), h("span", { class: "muted" }, String(chat.channel.member_count)), close);
      this.threadComposer.el.hidden = true;
      this.thread.root.remove();
      // Rebuilt only when what it shows changed: buttons stay put under the pointer.
      const sig = [chat.members, chat.member, chat.canModerate, ...(chat.members ?? []).map((m) => this.state.users[m.user])];
      if (sig.length !== this.membersSig.length || sig.some((v, i) => v !== this.membersSig[i]) || !this.sideBody.querySelector(".member-list, p")) {
        renderMembers(this, chat, this.sideBody);
        this.membersSig = sig;
      }
      return;
    }
    this.side.setAttribute("aria-label", "Thread");
    this.sideHead.replaceChildren(h("h2", null, "Thread"), h("span", { class: "muted" }, `#${this.chatName(chat)}`), close);
    if (this.thread.root.parentElement !== this.sideBody) this.sideBody.replaceChildren(this.thread.root);
    const parent = chat.messages.find((m) => m.id === p.id) ?? (chat.threads[p.id]?.messages.length ? undefined : undefined);
    const replies = chat.threads[p.id]?.messages ?? [];
    if (!parent) {
      this.sideBody.replaceChildren(h("p", { class: "muted pad" }, "This message is not loaded: scroll up to it, or it was deleted."));
      this.threadComposer.el.hidden = true;
      return;
    }
    this.thread.update(chat, replies as ChatMessage[], { parent });
    this.threadComposer.el.hidden = false;
    this.threadComposer.setChat(chat.id, "Reply…", parent.deleted ? "The message was deleted" : this.sendBlocked(chat));
  }

  /** Marks the open chat read if its newest message is on screen and the page is visible. */
  private markReadNow(): void {
    const chat = this.active ? this.store.getSnapshot().chats[this.active] : undefined;
    if (!chat || chat.unread === 0 || document.visibilityState !== "visible" || !this.timeline.atBottom()) return;
    this.store.markRead(chat.id).catch(() => {});
  }

  private membersSig: unknown[] = [];
  private markTimer = 0;
  /** Marks the open chat read once its newest message is on screen and the page is visible. */
  private markReadSoon(): void {
    if (this.markTimer) return;
    this.markTimer = window.setTimeout(() => {
      this.markTimer = 0;
      this.markReadNow();
    }, 400);
  }
}
