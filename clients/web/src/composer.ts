// The send box: Enter sends (Shift+Enter is a new line), a reply or an
// edit is a mode shown above it until sent or cancelled, and typing tells
// the room at most every 2.5 s.

import type { ChatClient, Message } from "@chat/client";
import { byId } from "./dom.js";
import type { Timeline } from "./timeline.js";

const TYPING_EVERY_MS = 2500;

type Mode = { kind: "reply" | "edit"; message: Message } | undefined;

export class Composer {
  private readonly form = byId<HTMLFormElement>("composer");
  private readonly body = byId<HTMLTextAreaElement>("body");
  private mode: Mode;
  private lastTyping = 0;
  private timeline?: Timeline;

  constructor(
    private readonly client: ChatClient,
    private readonly redraw: () => void,
  ) {
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.body.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      } else if (e.key === "Escape") this.setMode(undefined);
    });
    this.body.addEventListener("input", () => this.typed());
    byId("mode-cancel").addEventListener("click", () => this.setMode(undefined));
  }

  open(timeline: Timeline) {
    this.timeline = timeline;
    this.form.hidden = false;
    this.setMode(undefined);
    this.body.value = "";
  }

  reply(message: Message) {
    this.setMode({ kind: "reply", message });
  }

  edit(message: Message) {
    this.setMode({ kind: "edit", message });
    this.body.value = message.body;
  }

  notice(text: string) {
    byId("notice").textContent = text;
  }

  private setMode(mode: Mode) {
    this.mode = mode;
    byId("mode").hidden = !mode;
    if (mode) {
      const what = mode.kind === "reply" ? `Replying to ${mode.message.sender}` : "Editing your message";
      byId("mode-text").textContent = `${what}: ${mode.message.body.slice(0, 80)}`;
    }
    this.body.focus();
  }

  private typed() {
    const now = Date.now();
    if (!this.timeline || !this.body.value || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.client.typing(this.timeline.room);
  }

  private submit() {
    const t = this.timeline;
    const text = this.body.value.trim();
    if (!t || !text) return;
    const mode = this.mode;
    this.body.value = "";
    this.lastTyping = 0;
    this.setMode(undefined);
    this.notice("");
    const refused = (e: Error) => this.notice(`Not sent: ${e.message}`);
    if (mode?.kind === "edit") {
      this.client.edit(t.room, mode.message.seq, text).catch(refused);
      return;
    }
    const clientMsgId = crypto.randomUUID();
    t.pending.set(clientMsgId, { clientMsgId, body: text });
    this.redraw();
    this.client.send(t.room, text, { clientMsgId, replyTo: mode?.message.seq }).catch((e: Error) => {
      t.pending.delete(clientMsgId);
      this.redraw();
      refused(e);
    });
  }
}
