// The members panel: who is in the chat, their roles and presence, and —
// for moderators — mute, kick, ban and role changes.

import type { Chat, ChatStore, Member, User } from "@switchboard-chat/client";
import { h } from "../shared/dom.js";
import { ago } from "../shared/format.js";
import { avatar } from "./timeline.js";

export interface MembersHost {
  store: ChatStore;
  me(): string;
  userName(id: string): string;
  user(id: string): User | undefined;
  toast(msg: string, err?: unknown): void;
  isAdmin(): boolean;
}

const rank = (m: Member | null | undefined, admin = false): number =>
  admin ? 4 : !m ? 0 : m.roles.includes("owner") ? 3 : m.roles.includes("moderator") ? 2 : m.membership === "member" || m.membership === "viewer" ? 1 : 0;

/** Renders the member list of chat into el. */
export function renderMembers(host: MembersHost, chat: Chat, el: HTMLElement): void {
  if (!chat.members) {
    el.replaceChildren(h("p", { class: "muted pad" }, h("span", { class: "spinner small" }), " Loading members…"));
    return;
  }
  const myRank = rank(chat.member, host.isAdmin());
  const owner = host.isAdmin() || !!chat.member?.roles.includes("owner");
  const now = Date.now();
  const list = [...chat.members].sort((a, b) => {
    const ua = host.user(a.user)?.status === "online" ? 0 : 1;
    const ub = host.user(b.user)?.status === "online" ? 0 : 1;
    return ua - ub || rank(b) - rank(a) || host.userName(a.user).localeCompare(host.userName(b.user));
  });
  el.replaceChildren(
    h(
      "ul",
      { class: "member-list", "aria-label": "Members" },
      list.map((m) => {
        const u = host.user(m.user);
        const online = u?.status === "online";
        const muted = m.muted_until && new Date(m.muted_until).getTime() > now;
        const badges = [
          m.roles.includes("owner") ? h("span", { class: "badge role" }, "owner") : null,
          m.roles.includes("moderator") ? h("span", { class: "badge role" }, "moderator") : null,
          m.membership === "invited" ? h("span", { class: "badge" }, "invited") : null,
          m.membership === "banned" ? h("span", { class: "badge danger" }, "banned") : null,
          muted ? h("span", { class: "badge warn" }, "muted") : null,
        ];
        const who = host.userName(m.user);
        const act = (label: string, done: string, run: () => Promise<unknown>, danger = false) =>
          h("button", { type: "button", class: `chip-btn${danger ? " danger" : ""}`, onclick: () => run().then(() => host.toast(done), (e) => host.toast(`Could not ${label.toLowerCase()} ${who}`, e)) }, label);
        const canAct = chat.canModerate && m.user !== host.me() && rank(m) < myRank;
        const actions = canAct
          ? h(
              "div",
              { class: "member-actions", role: "group", "aria-label": `Moderate ${host.userName(m.user)}` },
              muted
                ? act("Unmute", `${who} can post again`, () => host.store.unmute(chat.id, m.user))
                : act("Mute 1 h", `${who} is muted for an hour`, () => host.store.mute(chat.id, m.user, 60)),
              m.membership === "banned"
                ? act("Unban", `${who} is no longer banned`, () => host.store.unban(chat.id, m.user))
                : [
                    act("Kick", `${who} was removed`, () => host.store.kick(chat.id, m.user), true),
                    act("Ban 1 day", `${who} is banned for a day`, () => host.store.ban(chat.id, m.user, 1440), true),
                  ],
              owner && m.membership === "member"
                ? m.roles.includes("moderator")
                  ? act("Remove moderator", `${who} is no longer a moderator`, () => host.store.setRoles(chat.id, m.user, ["member"]))
                  : act("Make moderator", `${who} is now a moderator`, () => host.store.setRoles(chat.id, m.user, ["moderator", "member"]))
                : null,
            )
          : null;
        return h(
          "li",
          { class: "member" },
          avatar(m.user, host.userName(m.user), online ? "online" : "offline"),
          h(
            "div",
            { class: "member-meta" },
            h("div", { class: "member-name" }, host.userName(m.user), m.user === host.me() ? h("span", { class: "muted" }, " (you)") : null, badges),
            h("div", { class: "member-sub muted" }, online ? "Online" : `Last seen ${ago(u?.last_seen, now)}`, ` · @${m.user}`),
            actions,
          ),
        );
      }),
    ),
  );
}
