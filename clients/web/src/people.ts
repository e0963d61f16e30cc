// Who is in the open room, who of them is online (a dot), and who is
// typing. Members come from the room API; presence is asked once per room
// and then pushed by the gateway; typing is pushed.

import type { ChatClient, PresenceNow, TypingNow } from "@chat/client";
import { byId, el, names } from "./dom.js";

export class People {
  private readonly online = new Map<string, boolean>();
  private readonly typing = new Map<string, string[]>();
  private members: string[] = [];
  private room?: string;

  constructor(
    private readonly client: ChatClient,
    private readonly me: string,
    private readonly token: string,
  ) {
    client.on("presence", (p) => this.presence(p));
    client.on("typing", (t) => this.typingNow(t));
  }

  async open(room: string) {
    this.room = room;
    this.members = [];
    this.draw();
    const res = await fetch(`/v1/rooms/${encodeURIComponent(room)}/members`, { headers: { Authorization: `Bearer ${this.token}` } });
    if (!res.ok || this.room !== room) return;
    this.members = ((await res.json()) as Array<{ user: string }>).map((m) => m.user).sort();
    this.draw();
    this.presence(await this.client.presence(this.members.slice(0, 100)));
  }

  private presence(p: PresenceNow) {
    if (p.room && p.room !== this.room) return;
    for (const u of p.users) this.online.set(u.user, u.online);
    this.draw();
  }

  private typingNow(t: TypingNow) {
    this.typing.set(t.room, t.users.filter((u) => u !== this.me));
    if (t.room === this.room) this.draw();
  }

  private draw() {
    byId("members").replaceChildren(
      ...this.members.map((u) => {
        const on = this.online.get(u) ?? false;
        return el("li", { attrs: { "data-user": u, "data-online": String(on) } },
          el("span", { class: `dot${on ? " online" : ""}`, attrs: { "aria-hidden": "true" } }),
          el("span", { class: "visually-hidden" }, on ? "online: " : "offline: "),
          u);
      }),
    );
    const typists = (this.room && this.typing.get(this.room)) || [];
    byId("typing").textContent = typists.length === 0 ? "" : `${names(typists)} ${typists.length === 1 ? "is" : "are"} typing…`;
  }
}
