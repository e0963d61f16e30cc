// The client: one socket at a time to one of a list of gateways, and
// everything an app would otherwise have to get right itself. Sends wait
// in an outbox and are resent with the same clientMsgId until acked (the
// gateway stores each once); a lost socket is reopened with backoff and
// jitter, on the next gateway of the list, and every joined room resumes
// from the last seq it delivered; messages reach the app per room in seq
// order, each once; a `resync` is answered by joining again from there.

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientFrameSchema,
  type Ack,
  type ClientFrame,
  type Error as ErrorFrame,
  type Feed,
  type HistoryPage,
  type Joined,
  type Message,
  type PresenceNow,
  type Applied,
  type DirectRoom,
  type ReadMarker,
  type Reads,
  type Resync,
  type RoomList,
  type ScheduledList,
  type ScheduledMessage,
  type SearchResults,
  type ServerFrame,
  type TypingNow,
} from "./gen/chat/v1/chat_pb.js";
import { type Backoff, DEFAULT_BACKOFF, delay, sleep } from "./backoff.js";
import { decode, encode, type Encoding, subprotocol } from "./codec.js";
import { MemoryOutbox, type Outbox, type Outgoing } from "./outbox.js";

/** What the app hears, by event name. */
export interface ChatEvents {
  /** A joined room's message (or event on one), in seq order, once. */
  message: Message;
  /** A send was acknowledged: stored with its seq (also for sends from a
   * previous page load, kept in the outbox). */
  ack: Ack;
  typing: TypingNow;
  presence: PresenceNow;
  reads: Reads;
  readMarker: ReadMarker;
  feed: Feed;
  /** A room fell behind on this socket; the client joins it again from its
   * last seq by itself, and the missed messages follow as `message`s. */
  resync: Resync;
  /** A socket is open to `url` (again). */
  connected: { url: string };
  /** The socket closed; the client reconnects unless closed. */
  disconnected: { code: number; reason: string };
  /** An error frame no request of the app waits for. */
  error: ErrorFrame;
}

type Listener<T> = (event: T) => void;

/** A WebSocket constructor: the browser's, or `ws` in Node (which takes
 * headers, for a bearer token). */
export type WebSocketLike = new (
  url: string,
  protocols: string[],
  options?: { headers: Record<string, string> },
) => WebSocket;

export interface ChatClientOptions {
  /** Gateway WebSocket URLs (`ws://host/v1/ws`); tried in turn. */
  urls: string[];
  /** The user's JWT, or a function that returns a fresh one. */
  token: string | (() => Promise<string>);
  encoding?: Encoding;
  /** `header`: `Authorization: Bearer` on the upgrade (Node's `ws`);
   * `ticket`: a one-use ticket first (browsers). Default: ticket where
   * there is a `window`. */
  auth?: "header" | "ticket";
  WebSocket?: WebSocketLike;
  outbox?: Outbox;
  backoff?: Backoff;
  /** Most sends awaiting their ack at once (the gateway refuses past 256). */
  window?: number;
}

/** A client frame's request, as `create` takes it. */
type FrameKind = MessageInitShape<typeof ClientFrameSchema>["kind"];

/** Errors worth the same send again, later. */
const RETRYABLE = new Set(["rate_limited", "timeout", "unavailable"]);

export class ChatError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

interface Room {
  /** The last seq delivered to the app; joins resume after it. */
  last?: bigint;
  waiting: Array<{ resolve: (j: Joined) => void; reject: (e: Error) => void }>;
}

interface Waiter {
  frame: ClientFrame;
  resolve: (f: ServerFrame) => void;
  reject: (e: Error) => void;
}

interface Send extends Outgoing {
  resolve?: (a: Ack) => void;
  reject?: (e: Error) => void;
  onWire: boolean;
}

export class ChatClient {
  private readonly options: Required<Omit<ChatClientOptions, "auth" | "WebSocket">> &
    Pick<ChatClientOptions, "auth" | "WebSocket">;
  private socket?: WebSocket;
  private closed = false;
  private next = 0;
  private readonly listeners = new Map<keyof ChatEvents, Set<Listener<never>>>();
  private readonly rooms = new Map<string, Room>();
  private readonly asks = new Map<string, Waiter>();
  /** Unacknowledged sends, in the order they were made. */
  private readonly sends = new Map<string, Send>();
  /** After a send was refused for now, nothing more is written until
   * then, so the ones after it do not overtake it. */
  private holdUntil = 0;
  private readonly loaded: Promise<void>;
  /** Whether the app watches the feed: watched again on each socket. */
  private watching = false;
  /** In a browser, a socket is given up when the network goes (browsers
   * may keep a dead one open for minutes) and none is tried until it is
   * back. */
  private abandon?: () => void;
  private readonly offline = () => this.abandon?.();

  constructor(options: ChatClientOptions) {
    this.options = {
      encoding: "json",
      outbox: new MemoryOutbox(),
      backoff: DEFAULT_BACKOFF,
      window: 64,
      ...options,
    };
    this.loaded = this.options.outbox.load().then((kept) => {
      for (const s of kept) this.sends.set(s.clientMsgId, { ...s, onWire: false });
      this.pump();
    });
    if (typeof window !== "undefined") window.addEventListener("offline", this.offline);
    void this.run();
  }

  on<K extends keyof ChatEvents>(event: K, listener: Listener<ChatEvents[K]>): () => void {
    const set = this.listeners.get(event) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(event, set);
    return () => set.delete(listener as Listener<never>);
  }

  private emit<K extends keyof ChatEvents>(event: K, value: ChatEvents[K]) {
    for (const l of this.listeners.get(event) ?? []) (l as Listener<ChatEvents[K]>)(value);
  }

  /** Joins a room, from after `sinceSeq` if given; the client then follows
   * it across reconnects. */
  join(room: string, sinceSeq?: bigint): Promise<Joined> {
    const state = this.rooms.get(room) ?? { waiting: [] };
    if (sinceSeq !== undefined) state.last = sinceSeq;
    this.rooms.set(room, state);
    const joined = new Promise<Joined>((resolve, reject) => state.waiting.push({ resolve, reject }));
    this.sendJoin(room);
    return joined;
  }

  async leave(room: string): Promise<void> {
    this.rooms.delete(room);
    await this.ask({ case: "leave", value: { room } });
  }

  /** Sends a message; resolves with its ack once it is stored, whatever
   * reconnects happen meanwhile. */
  send(room: string, body: string, extra: { replyTo?: bigint; clientMsgId?: string } = {}): Promise<Ack> {
    const clientMsgId = extra.clientMsgId ?? crypto.randomUUID();
    return this.submit(clientMsgId, {
      case: "send",
      value: { room, body, clientMsgId, replyTo: extra.replyTo },
    });
  }

  edit(room: string, seq: bigint, body: string): Promise<Ack> {
    const clientMsgId = crypto.randomUUID();
    return this.submit(clientMsgId, { case: "edit", value: { room, seq, body, clientMsgId } });
  }

  delete(room: string, seq: bigint): Promise<Ack> {
    const clientMsgId = crypto.randomUUID();
    return this.submit(clientMsgId, { case: "delete", value: { room, seq, clientMsgId } });
  }

  react(room: string, seq: bigint, emoji: string, remove = false): Promise<Ack> {
    const clientMsgId = crypto.randomUUID();
    return this.submit(clientMsgId, {
      case: "react",
      value: { room, seq, emoji, remove, clientMsgId },
    });
  }

  /** A page of a room's history: the newest, or before, after or around a seq. */
  async history(room: string, cursor: { before?: bigint; after?: bigint; around?: bigint } = {}, limit = 50): Promise<HistoryPage> {
    const reply = await this.ask({ case: "history", value: { room, limit, ...cursor } });
    return expect(reply, "historyPage");
  }

  /** Says this user is typing (again every 2–3 s while they type); dropped
   * while disconnected. */
  typing(room: string): void {
    this.write(create(ClientFrameSchema, { requestId: this.id(), kind: { case: "typing", value: { room } } }));
  }

  async markRead(room: string, seq: bigint): Promise<ReadMarker> {
    return expect(await this.ask({ case: "markRead", value: { room, seq } }), "readMarker");
  }

  async presence(users: string[]): Promise<PresenceNow> {
    return expect(await this.ask({ case: "presence", value: { users } }), "presenceNow");
  }

  /** Follows every room of the user (`feed` events) without joining them. */
  watchFeed(): void {
    this.watching = true;
    this.write(create(ClientFrameSchema, { requestId: this.id(), kind: { case: "watchFeed", value: {} } }));
  }

  unwatchFeed(): Promise<Feed> {
    this.watching = false;
    return this.ask({ case: "unwatchFeed", value: {} }).then((f) => expect(f, "feed"));
  }

  /** A page of the user's rooms, newest activity first. */
  async listRooms(cursor = "", limit?: number): Promise<RoomList> {
    return expect(await this.ask({ case: "listRooms", value: { cursor, limit } }), "roomList");
  }

  async search(query: string, options: { room?: string; cursor?: string; limit?: number } = {}): Promise<SearchResults> {
    const value = { query, room: options.room ?? "", cursor: options.cursor ?? "", limit: options.limit };
    return expect(await this.ask({ case: "search", value }), "searchResults");
  }

  /** The direct room of this user and `user`, made on first use. */
  async openDirect(user: string): Promise<DirectRoom> {
    return expect(await this.ask({ case: "openDirect", value: { user } }), "directRoom");
  }

  async addMember(room: string, user: string, commandId = crypto.randomUUID()): Promise<Applied> {
    return expect(await this.ask({ case: "addMember", value: { room, user, commandId } }), "applied");
  }

  async removeMember(room: string, user: string, commandId = crypto.randomUUID()): Promise<Applied> {
    return expect(await this.ask({ case: "removeMember", value: { room, user, commandId } }), "applied");
  }

  /** A new `role` (or "" to keep it), then flags granted and revoked. */
  async setAccess(
    room: string,
    user: string,
    change: { role?: string; grant?: string[]; revoke?: string[] },
    commandId = crypto.randomUUID(),
  ): Promise<Applied> {
    const value = { room, user, role: change.role ?? "", grant: change.grant ?? [], revoke: change.revoke ?? [], commandId };
    return expect(await this.ask({ case: "setAccess", value }), "applied");
  }

  /** Sends `body` at `at` (at most 30 days ahead); answered with the
   * pending scheduled message. Asked again with the same clientMsgId after
   * a reconnect, so it is kept once. */
  async schedule(room: string, body: string, at: Date, extra: { replyTo?: bigint; clientMsgId?: string } = {}): Promise<ScheduledMessage> {
    const value = {
      room,
      body,
      clientMsgId: extra.clientMsgId ?? crypto.randomUUID(),
      replyTo: extra.replyTo,
      deliverAtMs: BigInt(at.getTime()),
    };
    return expect(await this.ask({ case: "send", value }), "scheduled");
  }

  async cancelScheduled(room: string, id: string): Promise<ScheduledMessage> {
    return expect(await this.ask({ case: "cancelScheduled", value: { room, id } }), "scheduled");
  }

  async listScheduled(room: string): Promise<ScheduledList> {
    return expect(await this.ask({ case: "listScheduled", value: { room } }), "scheduledList");
  }

  /** Sends not yet acknowledged, oldest first. */
  unacknowledged(): Outgoing[] {
    return [...this.sends.values()].map(({ clientMsgId, frame }) => ({ clientMsgId, frame }));
  }

  close(): void {
    this.closed = true;
    if (typeof window !== "undefined") window.removeEventListener("offline", this.offline);
    this.socket?.close(1000);
    const closed = new ChatError("closed", "the client was closed");
    for (const w of this.asks.values()) w.reject(closed);
    for (const s of this.sends.values()) s.reject?.(closed);
    for (const r of this.rooms.values()) for (const w of r.waiting) w.reject(closed);
  }

  // --- the connection -------------------------------------------------

  private async run(): Promise<void> {
    await this.loaded;
    let attempt = 0;
    for (let i = 0; !this.closed; i++) {
      const url = this.options.urls[i % this.options.urls.length];
      await online();
      try {
        const socket = await this.open(url);
        attempt = 0;
        await this.serve(socket, url);
      } catch {
        // Not reachable, or refused: the next gateway, after a pause.
      }
      if (this.closed) return;
      await sleep(delay(this.options.backoff, attempt++));
    }
  }

  private async open(url: string): Promise<WebSocket> {
    const token = typeof this.options.token === "string" ? this.options.token : await this.options.token();
    const Socket = this.options.WebSocket ?? (globalThis.WebSocket as unknown as WebSocketLike);
    const protocols = [subprotocol(this.options.encoding)];
    const auth = this.options.auth ?? (typeof window === "undefined" ? "header" : "ticket");
    let socket: WebSocket;
    if (auth === "header") {
      socket = new Socket(url, protocols, { headers: { Authorization: `Bearer ${token}` } });
    } else {
      const ticketUrl = url.replace(/^ws/, "http").replace(/\/v1\/ws.*$/, "/v1/ws/ticket");
      const res = await fetch(ticketUrl, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
      if (!res.ok) throw new ChatError("unauthorized", `ticket: HTTP ${res.status}`);
      const { ticket } = (await res.json()) as { ticket: string };
      socket = new Socket(`${url}?ticket=${encodeURIComponent(ticket)}`, protocols);
    }
    socket.binaryType = "arraybuffer";
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new ChatError("unavailable", `cannot connect to ${url}`));
      socket.onclose = () => reject(new ChatError("unavailable", `closed while connecting to ${url}`));
    });
    return socket;
  }

  /** Serves one open socket until it closes, or is given up (the network
   * went): rooms resumed, asks and sends written again, frames handled. */
  private serve(socket: WebSocket, url: string): Promise<void> {
    return new Promise<void>((done) => {
      let ended = false;
      const end = (code: number, reason: string) => {
        if (ended) return;
        ended = true;
        if (this.socket === socket) this.socket = undefined;
        for (const s of this.sends.values()) s.onWire = false;
        this.emit("disconnected", { code, reason });
        done();
      };
      socket.onmessage = (event) => {
        if (!ended) this.receive(event.data);
      };
      socket.onerror = () => {};
      socket.onclose = (event) => end(event.code, event.reason);
      // Without waiting for a close handshake that may never come back.
      this.abandon = () => {
        end(4000, "offline");
        socket.close(4000, "offline");
      };
      this.socket = socket;
      this.emit("connected", { url });
      for (const room of this.rooms.keys()) this.sendJoin(room);
      if (this.watching) this.watchFeed();
      for (const w of this.asks.values()) this.write(w.frame);
      this.pump();
    });
  }

  private write(frame: ClientFrame): boolean {
    if (this.socket?.readyState !== 1) return false;
    this.socket.send(encode(frame, this.options.encoding));
    return true;
  }

  private id(): string {
    return `${++this.next}`;
  }

  private sendJoin(room: string) {
    const since = this.rooms.get(room)?.last;
    this.write(
      create(ClientFrameSchema, {
        requestId: `join:${room}`,
        kind: { case: "join", value: { room, sinceSeq: since } },
      }),
    );
  }

  private ask(kind: FrameKind): Promise<ServerFrame> {
    const frame = create(ClientFrameSchema, { requestId: this.id(), kind });
    return new Promise((resolve, reject) => {
      this.asks.set(frame.requestId, { frame, resolve, reject });
      this.write(frame);
    });
  }

  private async submit(clientMsgId: string, kind: FrameKind): Promise<Ack> {
    const frame = create(ClientFrameSchema, { requestId: `send:${clientMsgId}`, kind });
    // After the kept sends, in the order of the calls (each waits here in turn).
    await this.loaded;
    const acked = new Promise<Ack>((resolve, reject) => {
      this.sends.set(clientMsgId, { clientMsgId, frame, resolve, reject, onWire: false });
    });
    await this.options.outbox.put({ clientMsgId, frame });
    this.pump();
    return acked;
  }

  /** Writes unacknowledged sends in order, up to the window. */
  private pump() {
    if (Date.now() < this.holdUntil) return;
    let onWire = 0;
    for (const s of this.sends.values()) {
      if (onWire >= this.options.window) return;
      // A room's first join reports its head: a send stored before that
      // would be at or below it, and never delivered. Its sends wait.
      const room = (s.frame.kind.value as { room?: string } | undefined)?.room;
      if (!s.onWire && room !== undefined && this.rooms.has(room) && this.rooms.get(room)?.last === undefined) {
        continue;
      }
      if (!s.onWire) {
        s.frame.requestId = `send:${s.clientMsgId}`;
        if (!this.write(s.frame)) return;
        s.onWire = true;
      }
      onWire++;
    }
  }

  // --- what comes back ------------------------------------------------

  private receive(data: unknown) {
    let frame: ServerFrame;
    try {
      frame = decode(data);
    } catch {
      return;
    }
    const kind = frame.kind;
    switch (kind.case) {
      case "message":
        return this.deliver(kind.value);
      case "ack":
        return this.acked(kind.value);
      case "joined": {
        const room = this.rooms.get(kind.value.room);
        if (!room) return;
        room.last ??= kind.value.headSeq;
        for (const w of room.waiting.splice(0)) w.resolve(kind.value);
        this.pump();
        return;
      }
      case "resync": {
        // The room goes on from fromSeq: join again from just before it
        // and the gateway replays the rest. Usually that is the last seq
        // delivered; past it, retention deleted what lies between; at or
        // below it, the store was restored from a backup, and the seqs
        // from fromSeq on will be new messages.
        const room = this.rooms.get(kind.value.room);
        if (room) {
          room.last = kind.value.fromSeq - 1n;
          this.sendJoin(kind.value.room);
        }
        return this.emit("resync", kind.value);
      }
      case "error":
        return this.refused(frame.requestId, kind.value);
      case "typingNow":
        return this.emit("typing", kind.value);
      case "presenceNow":
        if (!frame.requestId) return this.emit("presence", kind.value);
        break;
      case "reads":
        return this.emit("reads", kind.value);
      case "readMarker":
        if (!frame.requestId || frame.requestId.startsWith("join:")) return this.emit("readMarker", kind.value);
        break;
      case "feed":
        if (!frame.requestId || this.watching) return this.emit("feed", kind.value);
        break;
    }
    const waiter = this.asks.get(frame.requestId);
    if (waiter) {
      this.asks.delete(frame.requestId);
      waiter.resolve(frame);
    }
  }

  /** Each seq once, in order: older ones are duplicates of what was
   * delivered; a gap (never sent by a gateway) is filled by joining again. */
  private deliver(message: Message) {
    const room = this.rooms.get(message.room);
    if (!room) return;
    if (room.last !== undefined) {
      if (message.seq <= room.last) return;
      if (message.seq > room.last + 1n) return this.sendJoin(message.room);
    }
    room.last = message.seq;
    this.emit("message", message);
  }

  private acked(ack: Ack) {
    const send = this.sends.get(ack.clientMsgId);
    if (!send) return;
    this.sends.delete(ack.clientMsgId);
    void this.options.outbox.remove(ack.clientMsgId);
    send.resolve?.(ack);
    this.emit("ack", ack);
    this.pump();
  }

  private refused(requestId: string, error: ErrorFrame) {
    if (requestId.startsWith("send:")) {
      const send = this.sends.get(requestId.slice(5));
      if (!send) return;
      if (RETRYABLE.has(error.code)) {
        // Written again after a pause, in its place.
        send.onWire = false;
        const pause = 200 + Math.random() * 300;
        this.holdUntil = Date.now() + pause;
        setTimeout(() => this.pump(), pause);
        return;
      }
      this.sends.delete(send.clientMsgId);
      void this.options.outbox.remove(send.clientMsgId);
      return send.reject?.(new ChatError(error.code, error.message));
    }
    if (requestId.startsWith("join:")) {
      const room = this.rooms.get(requestId.slice(5));
      if (!room) return;
      this.rooms.delete(requestId.slice(5));
      for (const w of room.waiting.splice(0)) w.reject(new ChatError(error.code, error.message));
      return;
    }
    const waiter = this.asks.get(requestId);
    if (!waiter) return this.emit("error", error);
    this.asks.delete(requestId);
    waiter.reject(new ChatError(error.code, error.message));
  }
}

/** Resolves when the browser says the network is up (at once in Node). */
function online(): Promise<void> {
  if (typeof window === "undefined" || navigator.onLine) return Promise.resolve();
  return new Promise((resolve) => window.addEventListener("online", () => resolve(), { once: true }));
}

type ReplyOf<C> = Extract<ServerFrame["kind"], { case: C }> extends { value: infer V } ? V : never;

function expect<C extends NonNullable<ServerFrame["kind"]["case"]>>(frame: ServerFrame, kase: C): ReplyOf<C> {
  if (frame.kind.case !== kase) throw new ChatError("bad_frame", `expected ${kase}, got ${frame.kind.case}`);
  return frame.kind.value as unknown as ReplyOf<C>;
}

