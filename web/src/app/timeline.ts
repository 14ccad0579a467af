// A message list (the chat's timeline, or a thread): keyed rendering that
// reuses a message's element while the message is unchanged, day
// separators, author grouping, an unread divider, and a scroll position
// that sticks to the bottom and holds still when older pages load above.

import type { Chat, ChatMessage, ChatStore, User } from "@switchboard-chat/client";
import { h, icon, icons } from "../shared/dom.js";
import { bytes, colorFor, day, initials, sameDay, time } from "../shared/format.js";
import { blobURL, download } from "./files.js";

export interface TimelineHost {
  store: ChatStore;
  me(): string;
  userName(id: string): string;
  user(id: string): User | undefined;
  openThread(chatId: string, messageId: string): void;
  toast(msg: string, err?: unknown): void;
  lightbox(src: string, alt: string): void;
  pickEmoji(anchor: HTMLElement, onPick: (e: string) => void): void;
}

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "👀"];

interface Cached {
  m: ChatMessage;
  grouped: boolean;
  author: User | undefined;
  canModerate: boolean;
  el: HTMLElement;
}

export class Timeline {
  /** The list with its "jump to the newest" button: what the host places. */
  readonly root: HTMLElement;
  readonly el: HTMLElement;
  private readonly inner: HTMLElement;
  private readonly jump: HTMLButtonElement;
  private readonly cache = new Map<string, Cached>();
  private chatId = "";
  private firstKey = "";
  private stickToBottom = true;
  private loadingOlder = false;
  private editing: string | null = null;

  constructor(
    private readonly host: TimelineHost,
    private readonly mode: "main" | "thread",
    private readonly onNearTop: () => void,
  ) {
    this.inner = h("div", { class: "timeline-inner" });
    this.el = h("div", { class: "timeline", role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "-1" }, this.inner);
    this.jump = h("button", { type: "button", class: "jump", hidden: true, onclick: () => this.scrollToBottom() }, icon(icons.back), "Jump to the newest") as HTMLButtonElement;
    this.root = h("div", { class: "timeline-wrap" }, this.el, this.jump);
    this.el.addEventListener("scroll", () => {
      this.stickToBottom = this.atBottom();
      this.jump.hidden = this.stickToBottom;
      if (this.el.scrollTop < 300) this.onNearTop();
    });
    // Content that grows after it was laid out (an image loading, a
    // reaction) keeps a list that follows the newest message at the bottom.
    new ResizeObserver(() => {
      if (this.stickToBottom) this.el.scrollTop = this.el.scrollHeight;
    }).observe(this.inner);
  }

  atBottom(): boolean {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 48;
  }

  scrollToBottom(): void {
    this.el.scrollTop = this.el.scrollHeight;
    this.stickToBottom = true;
    this.jump.hidden = true;
  }

  /** Renders messages of chat; parent (thread mode) heads the list; unreadAfter puts a divider after that segment. */
  update(chat: Chat, messages: readonly ChatMessage[], opts: { parent?: ChatMessage; unreadAfter?: number | null; header?: Node | null } = {}): void {
    if (chat.id !== this.chatId) {
      this.chatId = chat.id;
      this.cache.clear();
      this.firstKey = "";
      this.stickToBottom = true;
      this.editing = null;
    }
    const prevHeight = this.el.scrollHeight;
    const prevTop = this.el.scrollTop;
    const nodes: Node[] = [];
    if (opts.header) nodes.push(opts.header);
    if (this.mode === "main" && chat.loadingOlder) nodes.push(h("div", { class: "loading-older" }, h("span", { class: "spinner" }), "Loading earlier messages…"));
    if (this.mode === "main" && !chat.hasMore && chat.status === "ready") nodes.push(this.beginning(chat));
    if (opts.parent) {
      nodes.push(this.item(chat, opts.parent, false));
      const n = messages.length;
      nodes.push(h("div", { class: "thread-divider" }, h("span", null, n === 1 ? "1 reply" : `${n} replies`)));
    }
    // In a thread the parent heads the list: no day line under it for replies of its day.
    let prev: ChatMessage | undefined = opts.parent;
    const seen = new Set<string>();
    let dividerShown = false;
    for (const m of messages) {
      if (!prev || !sameDay(prev.created_at, m.created_at)) {
        nodes.push(h("div", { class: "day", role: "separator" }, h("span", null, day(m.created_at))));
        prev = undefined;
      }
      const unread = !dividerShown && opts.unreadAfter != null && m.segment > opts.unreadAfter && m.user !== this.host.me() && m.status === "sent";
      if (unread) {
        dividerShown = true;
        nodes.push(h("div", { class: "unread-divider", role: "separator" }, h("span", null, "New messages")));
      }
      const grouped =
        !!prev && prev !== opts.parent && !unread && prev.user === m.user && !prev.system && !m.system && !prev.deleted &&
        new Date(m.created_at).getTime() - new Date(prev.created_at).getTime() < 5 * 60_000;
      nodes.push(this.item(chat, m, grouped));
      seen.add(m.id);
      prev = m;
    }
    for (const k of this.cache.keys()) if (!seen.has(k) && k !== opts.parent?.id) this.cache.delete(k);
    reconcile(this.inner, nodes);
    const first = messages[0]?.id ?? "";
    const prepended = this.firstKey !== "" && first !== this.firstKey && this.loadingOlder;
    if (prepended) this.el.scrollTop = this.el.scrollHeight - (prevHeight - prevTop);
    else if (this.stickToBottom) this.el.scrollTop = this.el.scrollHeight;
    this.firstKey = first;
    this.loadingOlder = chat.loadingOlder;
  }

  private beginning(chat: Chat): HTMLElement {
    const name = chat.channel.name || chat.id;
    return h(
      "div",
      { class: "beginning" },
      h("div", { class: "beginning-icon" }, icon(chat.channel.type === "private" || chat.channel.type === "conversation" ? icons.lock : icons.hash)),
      h("h2", null, chat.channel.type === "conversation" ? "This is the start of your conversation" : `Welcome to #${name}`),
      h("p", null, chat.channel.description || `This is the very beginning of ${chat.channel.type === "conversation" ? "this conversation" : `#${name}`}.`),
    );
  }

  private item(chat: Chat, m: ChatMessage, grouped: boolean): HTMLElement {
    const author = this.host.user(m.user);
    const c = this.cache.get(m.id);
    if (c && c.m === m && c.grouped === grouped && c.author === author && c.canModerate === chat.canModerate && this.editing !== m.id) return c.el;
    const el = m.system ? this.systemItem(m) : this.messageItem(chat, m, grouped);
    this.cache.set(m.id, { m, grouped, author, canModerate: chat.canModerate, el });
    return el;
  }

  private systemItem(m: ChatMessage): HTMLElement {
    return h("div", { class: "msg system", dataset: { id: m.id } }, h("span", { class: "system-text" }, m.text), h("time", { datetime: m.created_at }, time(m.created_at)));
  }

  private messageItem(chat: Chat, m: ChatMessage, grouped: boolean): HTMLElement {
    const me = this.host.me();
    const name = this.host.userName(m.user);
    const mine = m.user === me;
    const cls = ["msg", grouped ? "grouped" : "", mine ? "mine" : "", m.status !== "sent" ? m.status : "", m.deleted ? "deleted" : "", me && m.mentions.includes(me) && !mine ? "mentions-me" : ""].filter(Boolean).join(" ");
    const el = h("div", { class: cls, dataset: { id: m.id }, tabindex: "0", "aria-label": `${name}, ${time(m.created_at)}: ${m.deleted ? "deleted message" : m.text}` });
    const gutter = grouped
      ? h("div", { class: "msg-gutter" }, h("time", { class: "hover-time", datetime: m.created_at }, time(m.created_at)))
      : h("div", { class: "msg-gutter" }, avatar(m.user, name));
    const body = h("div", { class: "msg-body" });
    if (!grouped) {
      body.append(
        h("div", { class: "msg-head" }, h("span", { class: "msg-author" }, name), h("time", { datetime: m.created_at, title: new Date(m.created_at).toLocaleString() }, time(m.created_at))),
      );
    }
    if (m.deleted) {
      body.append(h("div", { class: "msg-text deleted-text" }, icon(icons.trash), "This message was deleted."));
    } else if (this.editing === m.id) {
      body.append(this.editor(chat, m));
    } else {
      if (m.text) body.append(h("div", { class: "msg-text" }, richText(m.text, m.mentions, me), m.edited_at ? h("span", { class: "edited", title: `Edited ${new Date(m.edited_at).toLocaleString()}` }, " (edited)") : null));
      if (m.attachments.length) body.append(this.attachments(m));
      const reactions = Object.entries(m.reactions).filter(([, n]) => n > 0);
      if (reactions.length) {
        body.append(
          h(
            "div",
            { class: "reactions" },
            reactions.map(([r, n]) => {
              const on = m.my_reactions?.includes(r) ?? false;
              return h("button", { class: `reaction${on ? " mine" : ""}`, type: "button", "aria-pressed": String(on), "aria-label": `${r} ${n} reaction${n === 1 ? "" : "s"}${on ? ", including yours" : ""}`, onclick: () => this.react(chat, m, r) }, h("span", { class: "emoji" }, r), h("span", { class: "count" }, String(n)));
            }),
            m.status === "sent" ? h("button", { class: "reaction add", type: "button", "aria-label": "Add reaction", onclick: (e: Event) => this.host.pickEmoji(e.currentTarget as HTMLElement, (r) => this.react(chat, m, r)) }, icon(icons.smile)) : null,
          ),
        );
      }
      if (this.mode === "main" && m.reply_count > 0) {
        body.append(
          h("button", { class: "thread-link", type: "button", onclick: () => this.host.openThread(chat.id, m.id) }, icon(icons.message), m.reply_count === 1 ? "1 reply" : `${m.reply_count} replies`),
        );
      }
    }
    if (m.status === "sending") body.append(h("div", { class: "msg-status" }, h("span", { class: "spinner small" }), "Sending…"));
    if (m.status === "failed") {
      body.append(
        h(
          "div",
          { class: "msg-status failed", role: "alert" },
          `Not sent${m.error ? `: ${m.error.message}` : ""}.`,
          h("button", { type: "button", class: "link", onclick: () => this.host.store.resend(m).catch((e) => this.host.toast("Still could not send", e)) }, "Retry"),
          h("button", { type: "button", class: "link", onclick: () => this.host.store.discard(m) }, "Discard"),
        ),
      );
    }
    el.append(gutter, body);
    if (m.status === "sent" && !m.deleted) el.append(this.actions(chat, m));
    return el;
  }

  private actions(chat: Chat, m: ChatMessage): HTMLElement {
    const me = this.host.me();
    const mine = m.user === me;
    const bar = h("div", { class: "msg-actions", role: "toolbar", "aria-label": "Message actions" });
    for (const r of QUICK_REACTIONS.slice(0, 3)) {
      bar.append(h("button", { type: "button", class: "act emoji-act", title: `React ${r}`, "aria-label": `React with ${r}`, onclick: () => this.react(chat, m, r) }, r));
    }
    bar.append(h("button", { type: "button", class: "act", title: "Add reaction", "aria-label": "Add reaction", onclick: (e: Event) => this.host.pickEmoji(e.currentTarget as HTMLElement, (r) => this.react(chat, m, r)) }, icon(icons.smile)));
    if (this.mode === "main" && !m.parent_id) {
      bar.append(h("button", { type: "button", class: "act", title: "Reply in thread", "aria-label": "Reply in thread", onclick: () => this.host.openThread(chat.id, m.id) }, icon(icons.reply)));
    }
    if (mine) {
      bar.append(h("button", { type: "button", class: "act", title: "Edit", "aria-label": "Edit message", onclick: () => this.startEdit(chat, m) }, icon(icons.edit)));
    }
    if (mine || chat.canModerate) {
      bar.append(
        h("button", { type: "button", class: "act danger", title: "Delete", "aria-label": "Delete message", onclick: () => {
          if (!confirm(mine ? "Delete this message?" : `Delete this message from ${this.host.userName(m.user)}?`)) return;
          this.host.store.delete(chat.id, m.id).catch((e) => this.host.toast("Could not delete the message", e));
        } }, icon(icons.trash)),
      );
    }
    if (!mine) {
      bar.append(
        h("button", { type: "button", class: "act", title: "Report to moderators", "aria-label": "Report message", onclick: () => {
          const reason = prompt("Why are you reporting this message? (optional)");
          if (reason === null) return;
          this.host.store.flag(chat.id, m.id, reason || undefined).then(() => this.host.toast("Reported to the moderators"), (e) => this.host.toast("Could not report the message", e));
        } }, icon(icons.flag)),
      );
    }
    return bar;
  }

  private react(chat: Chat, m: ChatMessage, name: string): void {
    this.host.store.react(chat.id, m.id, name).catch((e) => this.host.toast("Could not react", e));
  }

  /** Starts editing your message (ArrowUp in an empty composer edits the last one). */
  startEdit(_chat: Chat, m: ChatMessage): void {
    this.editing = m.id;
    this.cache.delete(m.id);
    this.el.dispatchEvent(new CustomEvent("timeline-refresh", { bubbles: true })); // the host re-renders at once
    const ta = this.inner.querySelector<HTMLTextAreaElement>(".edit-box textarea");
    ta?.focus();
    ta?.setSelectionRange(ta.value.length, ta.value.length);
  }

  /** Re-renders with the current chat (the host calls it after editing ends). */
  private endEdit(): void {
    const id = this.editing;
    this.editing = null;
    if (id) this.cache.delete(id);
    this.el.dispatchEvent(new CustomEvent("timeline-refresh", { bubbles: true }));
  }

  private editor(chat: Chat, m: ChatMessage): HTMLElement {
    const ta = h("textarea", { "aria-label": "Edit message", rows: 2 }) as HTMLTextAreaElement;
    ta.value = m.text;
    const save = () => {
      const text = ta.value.trim();
      if (!text || text === m.text) return this.endEdit();
      this.host.store.edit(chat.id, m.id, text).then(() => this.endEdit(), (e) => this.host.toast("Could not edit the message", e));
    };
    ta.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        save();
      } else if (e.key === "Escape") {
        e.preventDefault();
        this.endEdit();
      }
    });
    return h(
      "div",
      { class: "edit-box" },
      ta,
      h("div", { class: "edit-hint" }, "Enter to ", h("button", { type: "button", class: "link", onclick: save }, "save"), " · Escape to ", h("button", { type: "button", class: "link", onclick: () => this.endEdit() }, "cancel")),
    );
  }

  private attachments(m: ChatMessage): HTMLElement {
    return h(
      "div",
      { class: "attachments" },
      m.attachments.map((f) => {
        if (f.type === "image") {
          const img = h("img", { alt: f.name, decoding: "async" }) as HTMLImageElement;

          const btn = h("button", { type: "button", class: "att-image loading", "aria-label": `Open image ${f.name}` }, img);
          blobURL(this.host.store, f).then(
            (u) => {
              img.addEventListener("load", () => btn.classList.remove("loading"), { once: true });
              img.src = u;
              btn.onclick = () => this.host.lightbox(u, f.name);
            },
            () => btn.classList.replace("loading", "broken"),
          );
          return btn;
        }
        return h(
          "button",
          { type: "button", class: "att-file", "aria-label": `Download ${f.name}`, onclick: () => download(this.host.store, f).catch((e) => this.host.toast("Could not download the file", e)) },
          h("span", { class: "att-icon" }, icon(icons.file)),
          h("span", { class: "att-meta" }, h("span", { class: "att-name" }, f.name), h("span", { class: "att-size" }, `${bytes(f.size)} · ${f.mime}`)),
        );
      }),
    );
  }
}

/** An avatar: initials on a color from the id, with an optional presence dot. */
export function avatar(id: string, name: string, presence?: "online" | "offline", size = "md"): HTMLElement {
  return h(
    "span",
    { class: `avatar ${size}`, style: `--av:${colorFor(id)}`, "aria-hidden": "true" },
    initials(name || id),
    presence ? h("span", { class: `presence ${presence}` }) : null,
  );
}

const TOKEN = /(https?:\/\/[^\s<]+[^\s<.,;:!?)\]'"])|(@[A-Za-z0-9._-]+)/g;

/** Message text with links and @mentions (of users the message mentions) marked up. */
export function richText(text: string, mentions: readonly string[], me: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    const i = match.index ?? 0;
    if (i > last) frag.append(text.slice(last, i));
    const [whole, url, at] = match;
    if (url) frag.append(h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, url));
    else if (at && mentions.includes(at.slice(1))) frag.append(h("span", { class: `mention${at.slice(1) === me ? " mention-self" : ""}` }, at));
    else frag.append(whole);
    last = i + whole.length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

/** Makes parent's children exactly nodes, moving as little as possible. */
export function reconcile(parent: HTMLElement, nodes: Node[]): void {
  let cur = parent.firstChild;
  for (const n of nodes) {
    if (cur === n) {
      cur = cur.nextSibling;
      continue;
    }
    parent.insertBefore(n, cur);
  }
  while (cur) {
    const next = cur.nextSibling;
    parent.removeChild(cur);
    cur = next;
  }
}
