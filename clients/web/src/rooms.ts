// The room list: every room of the user from the feed (answered in full
// when watched, then each change), newest activity first, with unread
// counts; picking one opens it.

import type { Feed, Message, RoomSummary } from "@chat/client";
import { byId, el } from "./dom.js";
import { memberChange } from "./messages.js";

export class RoomList {
  private readonly rooms = new Map<string, RoomSummary>();
  private current?: string;
  private readonly list = byId("room-list");

  constructor(private readonly open: (room: string) => void) {}

  update(feed: Feed) {
    for (const r of feed.rooms) this.rooms.set(r.room, r);
    for (const r of feed.removed) this.rooms.delete(r);
    if (!feed.more) this.draw();
  }

  select(room: string) {
    this.current = room;
    this.draw();
  }

  /** The first room, for a page opened without one. */
  first(): string | undefined {
    return this.sorted()[0]?.room;
  }

  private sorted(): RoomSummary[] {
    const at = (r: RoomSummary) => r.lastMessage?.tsMs ?? 0n;
    return [...this.rooms.values()].sort((a, b) => (at(b) > at(a) ? 1 : at(b) < at(a) ? -1 : a.room.localeCompare(b.room)));
  }

  private draw() {
    this.list.replaceChildren(
      ...this.sorted().map((r) => {
        const unread = r.room === this.current ? 0 : r.unread;
        const last = r.lastMessage;
        const snippet = last ? summary(last) : "";
        const label = unread > 0 ? `${r.room}, ${unread >= 1000 ? "1000+" : unread} unread` : r.room;
        return el("li", {},
          el("button", {
            attrs: { type: "button", "data-room": r.room, "aria-label": label, ...(r.room === this.current ? { "aria-current": "true" } : {}) },
            on: { click: () => this.open(r.room) },
          },
            el("span", {}, r.room, el("span", { class: "last" }, snippet)),
            unread > 0 && el("span", { class: "badge", attrs: { "data-unread": `${unread}` } }, unread >= 1000 ? "1000+" : `${unread}`)));
      }),
    );
  }
}

/** A room's last entry in a few words. */
function summary(m: Message): string {
  switch (m.kind) {
    case "":
      return `${m.sender}: ${m.deleted ? "(deleted)" : m.body}`;
    case "message_edited":
      return `${m.sender} edited: ${m.body}`;
    case "message_deleted":
      return `${m.sender} deleted a message`;
    case "reaction_added":
      return `${m.sender} reacted ${m.emoji}`;
    case "reaction_removed":
      return `${m.sender} took back ${m.emoji}`;
    default:
      return memberChange(m);
  }
}
