// A message as events carry it (message.new, message.updated,
// message.deleted, reaction.updated, and the same events in a resume's
// `events`) leaves out every field that has no value, its `channel` (the
// event's) and `type` when it is "text" (docs/protocol.md, "A message in
// an event"). The client puts them back before an event reaches a
// listener, so a Message always has every field.
import type { Message, ServerEvent } from "./types.js";

/** The events whose data carries a message. */
export const MESSAGE_EVENTS: ReadonlySet<string> = new Set(["message.new", "message.updated", "message.deleted", "reaction.updated"]);

/** m with every field an event leaves out put back: empty values, "text", and the event's channel. */
export function fullMessage(m: Partial<Message> & Pick<Message, "id" | "segment">, channel: string): Message {
  const full: Message = {
    id: m.id,
    channel: m.channel ?? channel,
    segment: m.segment,
    user: m.user ?? "",
    type: m.type ?? "text",
    text: m.text ?? "",
    data: m.data ?? null,
    metadata: m.metadata ?? null,
    tags: m.tags ?? [],
    parent_id: m.parent_id ?? "",
    reply_count: m.reply_count ?? 0,
    mentions: m.mentions ?? [],
    attachments: m.attachments ?? [],
    reactions: m.reactions ?? {},
    client_id: m.client_id ?? "",
    created_at: m.created_at ?? "",
    edited_at: m.edited_at ?? null,
    deleted: m.deleted ?? false,
    system: m.system ?? null,
  };
  if (m.my_reactions !== undefined) full.my_reactions = m.my_reactions;
  if (m.favorite !== undefined) full.favorite = m.favorite;
  if (m.flag_count !== undefined) full.flag_count = m.flag_count;
  return full;
}

/** e with its message, if it carries one, made whole (in place). */
export function withFullMessage(e: ServerEvent): ServerEvent {
  if (MESSAGE_EVENTS.has(e.event)) {
    const data = e.data as { message?: Message };
    if (data && typeof data.message === "object" && data.message !== null) data.message = fullMessage(data.message, e.channel ?? "");
  }
  return e;
}
