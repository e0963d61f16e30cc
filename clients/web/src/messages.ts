// Draws a room's timeline: each message with its sender, time, body, the
// message it answers, reactions, who has read up to it, and the actions
// (reply, react, edit, delete) as buttons, so all of it works from the
// keyboard.

import type { Message } from "@chat/client";
import { el, names } from "./dom.js";
import type { Timeline } from "./timeline.js";

export const QUICK_REACTIONS = ["👍", "🎉", "❤️"];

export interface MessageActions {
  reply(m: Message): void;
  edit(m: Message): void;
  remove(m: Message): void;
  react(m: Message, emoji: string, remove: boolean): void;
}

const time = (ms: bigint) => {
  const d = new Date(Number(ms));
  return el("time", { attrs: { datetime: d.toISOString() } }, d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
};

/** Replaces the list's items with the timeline as it stands. */
export function draw(list: HTMLElement, t: Timeline, me: string, act: MessageActions) {
  const seqs = [...t.entries.keys()].sort((a, b) => (a < b ? -1 : 1));
  // Each reader shows once, under the newest message of another they have read.
  const seenAt = new Map<bigint, string[]>();
  for (const [user, at] of t.reads) {
    if (user === me) continue;
    const under = seqs.filter((s) => s <= at && t.entries.get(s)?.kind === "" && t.entries.get(s)?.sender !== user).pop();
    if (under !== undefined) seenAt.set(under, [...(seenAt.get(under) ?? []), user]);
  }
  const items = seqs.map((seq) => {
    const m = t.entries.get(seq)!;
    return m.kind === "" ? message(m, t, me, act, seenAt.get(seq) ?? []) : memberEvent(m);
  });
  for (const p of t.pending.values()) {
    items.push(
      el("li", { class: "msg mine pending", attrs: { "data-pending": p.clientMsgId } },
        el("span", { class: "who" }, me),
        el("span", { class: "edited" }, "sending…"),
        el("p", { class: "body" }, p.body)),
    );
  }
  list.replaceChildren(...items);
}

function message(m: Message, t: Timeline, me: string, act: MessageActions, seenBy: string[]): HTMLElement {
  const mine = m.sender === me;
  const target = m.replyTo ? t.entries.get(m.replyTo) : undefined;
  const quote =
    m.replyTo > 0n &&
    el("p", { class: "quote" }, target ? `${target.sender}: ${target.deleted ? "(deleted)" : target.body}` : `a reply to #${m.replyTo}`);
  const reactions = el(
    "div",
    { class: "reactions" },
    ...m.reactions.map((r) =>
      el("button", {
        attrs: { type: "button", "aria-pressed": String(r.mine), "aria-label": `${r.emoji} ${r.count}${r.mine ? ", yours: take back" : ""}` },
        on: { click: () => act.react(m, r.emoji, r.mine) },
      }, `${r.emoji} ${r.count}`),
    ),
  );
  const actions = !m.deleted &&
    el("div", { class: "actions" },
      el("button", { attrs: { type: "button" }, on: { click: () => act.reply(m) } }, "Reply"),
      ...QUICK_REACTIONS.filter((e) => !m.reactions.some((r) => r.emoji === e && r.mine)).map((e) =>
        el("button", { attrs: { type: "button", "aria-label": `React ${e}` }, on: { click: () => act.react(m, e, false) } }, e),
      ),
      mine && el("button", { attrs: { type: "button" }, on: { click: () => act.edit(m) } }, "Edit"),
      mine && el("button", { attrs: { type: "button" }, on: { click: () => act.remove(m) } }, "Delete"));
  return el("li", { class: `msg${mine ? " mine" : ""}${m.deleted ? " deleted" : ""}`, attrs: { "data-seq": `${m.seq}` } },
    el("span", { class: "who" }, m.sender),
    time(m.tsMs),
    m.editedTsMs > 0n && !m.deleted && el("span", { class: "edited" }, "(edited)"),
    quote,
    el("p", { class: "body" }, m.deleted ? "This message was deleted." : m.body),
    m.replyCount > 0 && el("span", { class: "replies" }, `${m.replyCount} ${m.replyCount === 1 ? "reply" : "replies"}`),
    reactions.childElementCount > 0 && reactions,
    actions,
    seenBy.length > 0 && el("p", { class: "seen" }, `Seen by ${names(seenBy.sort())}`));
}

/** A change to a member, in a few words. */
export function memberChange(m: Message): string {
  const what = { member_joined: "joined", member_left: "left", role_changed: `is now ${m.access?.role ?? "changed"}` }[m.kind] ?? m.kind;
  return `${m.member} ${what}`;
}

function memberEvent(m: Message): HTMLElement {
  return el("li", { class: "event", attrs: { "data-seq": `${m.seq}` } }, memberChange(m));
}
