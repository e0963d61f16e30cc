// One room's messages as they stand: chat messages and member changes by
// seq, with edits, deletions, reactions and replies applied to their
// targets; sends not yet stored; and where each other member has read to.
// No DOM here: `messages.ts` draws it.

import type { HistoryPage, Message, Reaction } from "@chat/client";

/** Entry kinds that change another message rather than showing. */
const EVENTS = new Set(["message_edited", "message_deleted", "reaction_added", "reaction_removed"]);

export interface Pending {
  clientMsgId: string;
  body: string;
}

export class Timeline {
  /** Shown entries by seq (chat messages and member changes). */
  readonly entries = new Map<bigint, Message>();
  /** Sends of this user not stored yet, oldest first. */
  readonly pending = new Map<string, Pending>();
  /** Other members' read markers that were heard. */
  readonly reads = new Map<string, bigint>();
  /** The newest seq applied (an event's included). */
  last = 0n;
  hasBefore = false;

  constructor(
    readonly room: string,
    private readonly me: string,
  ) {}

  /** The first page (the newest) or an older one. */
  addPage(page: HistoryPage) {
    for (const m of page.messages) this.apply(m);
    if (page.messages.length === 0 || page.before <= this.first()) this.hasBefore = page.hasBefore;
    if (page.after > this.last) this.last = page.after;
  }

  first(): bigint {
    let first = this.last + 1n;
    for (const seq of this.entries.keys()) if (seq < first) first = seq;
    return first;
  }

  apply(m: Message) {
    if (m.seq > this.last) this.last = m.seq;
    this.pending.delete(m.clientMsgId);
    if (!EVENTS.has(m.kind)) {
      if (!this.entries.has(m.seq)) this.entries.set(m.seq, m);
      if (m.kind === "" && m.replyTo) this.bumpReplies(m);
      return;
    }
    const target = this.entries.get(m.targetSeq);
    // A page or replay already holds the target as it stands after this.
    if (!target || m.seq <= target.changedSeq) return;
    target.changedSeq = m.seq;
    switch (m.kind) {
      case "message_edited":
        target.body = m.body;
        target.editedTsMs = m.tsMs;
        break;
      case "message_deleted":
        target.deleted = true;
        target.body = "";
        target.reactions = [];
        break;
      default:
        target.reactions = react(target.reactions, m.emoji, m.kind === "reaction_added" ? 1 : -1, m.sender === this.me);
    }
  }

  private bumpReplies(reply: Message) {
    const target = this.entries.get(reply.replyTo);
    if (target && reply.seq > target.changedSeq) {
      target.changedSeq = reply.seq;
      target.replyCount += 1;
    }
  }
}

function react(reactions: Reaction[], emoji: string, by: 1 | -1, mine: boolean): Reaction[] {
  const out = reactions.map((r) => ({ ...r }));
  let r = out.find((x) => x.emoji === emoji);
  if (!r) {
    r = { $typeName: "chat.v1.Reaction", emoji, count: 0, mine: false } as Reaction;
    out.push(r);
  }
  r.count = Math.max(0, r.count + by);
  if (mine) r.mine = by > 0;
  return out.filter((x) => x.count > 0);
}
