// The message composer: a growing textarea (Enter sends, Shift+Enter is a
// new line), files uploaded as they are picked, pasted or dropped, typing
// notifications, and per-chat drafts.

import type { ChatStore, FileInfo } from "@switchboard-chat/client";
import { h, icon, icons } from "../shared/dom.js";
import { bytes } from "../shared/format.js";

interface Upload {
  file: File;
  info?: FileInfo;
  failed?: boolean;
  done: Promise<void>;
}

export interface ComposerHost {
  store: ChatStore;
  toast(msg: string, err?: unknown): void;
  /** ArrowUp in an empty composer: edit your last message. */
  editLast(chatId: string, parentId: string): void;
}

export class Composer {
  readonly el: HTMLFormElement;
  private readonly ta: HTMLTextAreaElement;
  private readonly files: HTMLElement;
  private readonly sendBtn: HTMLButtonElement;
  private readonly input: HTMLInputElement;
  private uploads: Upload[] = [];
  private chatId = "";
  private readonly drafts = new Map<string, string>();

  constructor(
    private readonly host: ComposerHost,
    private readonly parentId: () => string,
  ) {
    this.ta = h("textarea", { rows: 1, "aria-label": "Message", placeholder: "Message", enterkeyhint: "send" }) as HTMLTextAreaElement;
    this.input = h("input", { type: "file", multiple: true, hidden: true, tabindex: "-1", "aria-hidden": "true" }) as HTMLInputElement;
    this.files = h("div", { class: "composer-files", "aria-live": "polite" });
    this.sendBtn = h("button", { type: "submit", class: "send", "aria-label": "Send message", title: "Send (Enter)" }, icon(icons.send)) as HTMLButtonElement;
    const attach = h("button", { type: "button", class: "attach", "aria-label": "Attach files", title: "Attach files", onclick: () => this.input.click() }, icon(icons.paperclip));
    this.el = h("form", { class: "composer", onsubmit: (e: Event) => {
      e.preventDefault();
      void this.send();
    } }, this.files, h("div", { class: "composer-row" }, attach, this.input, this.ta, this.sendBtn)) as HTMLFormElement;
    this.input.addEventListener("change", () => {
      this.add([...(this.input.files ?? [])]);
      this.input.value = "";
    });
    this.ta.addEventListener("input", () => {
      this.grow();
      this.drafts.set(this.chatId, this.ta.value);
      if (this.ta.value.trim()) this.host.store.typing(this.chatId);
      else this.host.store.stopTyping(this.chatId);
      this.refreshButton();
    });
    this.ta.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void this.send();
      } else if (e.key === "ArrowUp" && this.ta.value === "") {
        e.preventDefault();
        this.host.editLast(this.chatId, this.parentId());
      }
    });
    this.ta.addEventListener("blur", () => {
      if (this.chatId && !this.ta.value.trim()) this.host.store.stopTyping(this.chatId);
    });
    this.ta.addEventListener("paste", (e) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (files.length) {
        e.preventDefault();
        this.add(files);
      }
    });
    this.el.addEventListener("dragover", (e) => {
      if (e.dataTransfer?.types.includes("Files")) {
        e.preventDefault();
        this.el.classList.add("drop");
      }
    });
    this.el.addEventListener("dragleave", () => this.el.classList.remove("drop"));
    this.el.addEventListener("drop", (e) => {
      this.el.classList.remove("drop");
      const files = [...(e.dataTransfer?.files ?? [])];
      if (files.length) {
        e.preventDefault();
        this.add(files);
      }
    });
    this.refreshButton();
  }

  /** Points the composer at a chat (restoring its draft). */
  setChat(chatId: string, placeholder: string, disabled: string | null): void {
    if (chatId !== this.chatId) {
      this.chatId = chatId;
      this.ta.value = this.drafts.get(chatId) ?? "";
      this.uploads = [];
      this.renderFiles();
      this.grow();
    }
    this.ta.placeholder = disabled ?? placeholder;
    this.ta.setAttribute("aria-label", placeholder);
    this.ta.disabled = disabled !== null;
    this.el.classList.toggle("disabled", disabled !== null);
    this.refreshButton();
  }

  focus(): void {
    this.ta.focus();
  }

  private grow(): void {
    this.ta.style.height = "auto";
    this.ta.style.height = `${Math.min(this.ta.scrollHeight, 200)}px`;
  }

  private refreshButton(): void {
    const busy = this.uploads.some((u) => !u.info && !u.failed);
    this.sendBtn.disabled = this.ta.disabled || busy || (!this.ta.value.trim() && !this.uploads.some((u) => u.info));
  }

  private add(files: File[]): void {
    const max = this.host.store.client.session?.limits.max_attachments ?? 10;
    for (const file of files.slice(0, Math.max(0, max - this.uploads.length))) {
      const u: Upload = { file, done: Promise.resolve() };
      u.done = this.host.store.upload(file, file.name).then(
        (info) => {
          u.info = info;
        },
        (err) => {
          u.failed = true;
          this.host.toast(`Could not upload ${file.name}`, err);
        },
      ).finally(() => {
        this.renderFiles();
        this.refreshButton();
      });
      this.uploads.push(u);
    }
    this.renderFiles();
    this.refreshButton();
    this.ta.focus();
  }

  private renderFiles(): void {
    this.files.replaceChildren(
      ...this.uploads.map((u) =>
        h(
          "span",
          { class: `file-chip${u.failed ? " failed" : u.info ? "" : " uploading"}` },
          u.info || u.failed ? icon(icons.file) : h("span", { class: "spinner small" }),
          h("span", { class: "file-name" }, u.file.name),
          h("span", { class: "file-size" }, u.failed ? "failed" : u.info ? bytes(u.file.size) : "uploading…"),
          h("button", { type: "button", class: "file-remove", "aria-label": `Remove ${u.file.name}`, onclick: () => {
            this.uploads = this.uploads.filter((x) => x !== u);
            this.renderFiles();
            this.refreshButton();
          } }, icon(icons.x)),
        ),
      ),
    );
    this.files.hidden = this.uploads.length === 0;
  }

  private async send(): Promise<void> {
    if (this.sendBtn.disabled) return;
    const text = this.ta.value.trim();
    const attachments = this.uploads.flatMap((u) => (u.info ? [u.info] : []));
    if (!text && attachments.length === 0) return;
    const mentions = [...new Set([...text.matchAll(/@([A-Za-z0-9._-]+)/g)].map((m) => m[1]!))];
    const chatId = this.chatId;
    this.ta.value = "";
    this.drafts.delete(chatId);
    this.uploads = [];
    this.renderFiles();
    this.grow();
    this.refreshButton();
    try {
      await this.host.store.send(chatId, text, { parentId: this.parentId() || undefined, attachments, mentions });
    } catch {
      // The message stays in the list as failed, with Retry.
    }
  }
}
