// The page: sign in with a token, then one ChatClient (tickets, IndexedDB
// outbox) to the gateway that served the page. Rooms come from the feed;
// an open room shows its newest page of history, then follows it live
// from there, and marks what is shown as read while the page is visible.

import { ChatClient, IndexedDbOutbox, type Message } from "@chat/client";
import { Composer } from "./composer.js";
import { byId } from "./dom.js";
import { draw } from "./messages.js";
import { People } from "./people.js";
import { RoomList } from "./rooms.js";
import { check, forgetToken, savedToken, saveToken, userOf } from "./session.js";
import { Timeline } from "./timeline.js";

const MARK_AFTER_MS = 300;

class App {
  private readonly timelines = new Map<string, Timeline>();
  private readonly rooms = new RoomList((room) => void this.open(room));
  private readonly people: People;
  private readonly composer: Composer;
  private current?: Timeline;
  private marking?: ReturnType<typeof setTimeout>;
  private drawing = false;

  constructor(
    private readonly client: ChatClient,
    private readonly me: string,
    token: string,
  ) {
    this.people = new People(client, me, token);
    this.composer = new Composer(client, () => this.draw());
    const banner = byId("banner");
    banner.textContent = "Connecting…";
    banner.hidden = false;
    client.on("connected", () => (banner.hidden = true));
    client.on("disconnected", () => {
      banner.textContent = "Connection lost. Reconnecting… (what you send meanwhile is kept and sent then)";
      banner.hidden = false;
    });
    client.on("feed", (f) => this.rooms.update(f));
    client.on("message", (m) => this.message(m));
    client.on("reads", (r) => {
      const t = this.timelines.get(r.room);
      if (!t) return;
      for (const by of r.reads) if ((t.reads.get(by.user) ?? 0n) < by.seq) t.reads.set(by.user, by.seq);
      if (t === this.current) this.draw();
    });
    client.on("error", (e) => this.composer.notice(`${e.code}: ${e.message}`));
    document.addEventListener("visibilitychange", () => this.markRead());
    client.watchFeed();
  }

  async open(room: string) {
    history.replaceState(null, "", `#${encodeURIComponent(room)}`);
    this.rooms.select(room);
    byId("room-title").textContent = room;
    byId("rooms").classList.remove("open");
    byId("menu").setAttribute("aria-expanded", "false");
    let t = this.timelines.get(room);
    if (!t) {
      t = new Timeline(room, this.me);
      this.timelines.set(room, t);
      for (const kept of this.client.unacknowledged()) {
        const k = kept.frame.kind;
        if (k.case === "send" && k.value.room === room) t.pending.set(kept.clientMsgId, { clientMsgId: kept.clientMsgId, body: k.value.body });
      }
      const page = await this.client.history(room);
      t.addPage(page);
      // From the page's head on: the rest comes live, replayed if missed.
      await this.client.join(room, page.headSeq);
    }
    this.current = t;
    this.composer.open(t);
    void this.people.open(room);
    this.draw(true);
    this.markRead();
  }

  async older() {
    const t = this.current;
    if (!t) return;
    const scroller = byId("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    t.addPage(await this.client.history(t.room, { before: t.first() }));
    this.draw();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }

  private message(m: Message) {
    const t = this.timelines.get(m.room);
    if (!t) return;
    t.apply(m);
    if (t === this.current) {
      this.draw();
      this.markRead();
    }
  }

  /** Draws the open room once per frame, keeping to the bottom when there. */
  draw(bottom = false) {
    if (this.drawing) return;
    this.drawing = true;
    requestAnimationFrame(() => {
      this.drawing = false;
      const t = this.current;
      if (!t) return;
      const scroller = byId("scroller");
      const atBottom = bottom || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
      byId("older").hidden = !t.hasBefore;
      draw(byId("messages"), t, this.me, {
        reply: (m) => this.composer.reply(m),
        edit: (m) => this.composer.edit(m),
        remove: (m) => void this.client.delete(t.room, m.seq).catch((e: Error) => this.composer.notice(e.message)),
        react: (m, emoji, remove) => void this.client.react(t.room, m.seq, emoji, remove).catch((e: Error) => this.composer.notice(e.message)),
      });
      if (atBottom) scroller.scrollTop = scroller.scrollHeight;
    });
  }

  /** What the open room shows is read, once the page is seen. */
  private markRead() {
    clearTimeout(this.marking);
    this.marking = setTimeout(() => {
      const t = this.current;
      if (!t || document.visibilityState !== "visible" || t.last === 0n) return;
      this.client.markRead(t.room, t.last).catch(() => {});
    }, MARK_AFTER_MS);
  }
}

function signIn() {
  byId("signin").hidden = false;
  byId("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = byId<HTMLTextAreaElement>("token").value.trim();
    try {
      userOf(token);
      await check(token);
      saveToken(token);
      location.reload();
    } catch (err) {
      byId("signin-error").textContent = (err as Error).message;
    }
  });
}

function start(token: string) {
  const me = userOf(token);
  const encoding = new URLSearchParams(location.search).get("encoding") === "json" ? "json" : "proto";
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = new ChatClient({
    urls: [`${scheme}://${location.host}/v1/ws`],
    token,
    encoding,
    auth: "ticket",
    outbox: new IndexedDbOutbox(`chat-outbox-${me}`),
  });
  const app = new App(client, me, token);
  byId("app").hidden = false;
  byId("me").textContent = me;
  byId("older").addEventListener("click", () => void app.older());
  byId("direct-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = byId<HTMLInputElement>("direct-user");
    const direct = await client.openDirect(input.value.trim());
    input.value = "";
    await app.open(direct.room);
  });
  const menu = byId("menu");
  menu.addEventListener("click", () => {
    const open = byId("rooms").classList.toggle("open");
    menu.setAttribute("aria-expanded", String(open));
  });
  byId("signout").addEventListener("click", () => {
    client.close();
    forgetToken();
    location.hash = "";
    location.reload();
  });
  const room = decodeURIComponent(location.hash.slice(1));
  if (room) void app.open(room);
}

const token = savedToken();
if (token) {
  try {
    start(token);
  } catch {
    forgetToken();
    signIn();
  }
} else signIn();
