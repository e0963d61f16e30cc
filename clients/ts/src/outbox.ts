// Sends not yet acknowledged, kept so that they survive a reload: a page's
// IndexedDB, a file in Node, or memory. The client resends each with the
// same clientMsgId until it is acked, so each is stored once.

import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { ClientFrameSchema, type ClientFrame } from "./gen/chat/v1/chat_pb.js";

/** One unacknowledged send (or edit, delete, reaction), as its frame. */
export interface Outgoing {
  clientMsgId: string;
  frame: ClientFrame;
}

export interface Outbox {
  /** What was kept, in the order it was put. */
  load(): Promise<Outgoing[]>;
  put(send: Outgoing): Promise<void>;
  remove(clientMsgId: string): Promise<void>;
}

export class MemoryOutbox implements Outbox {
  private sends = new Map<string, Outgoing>();
  async load(): Promise<Outgoing[]> {
    return [...this.sends.values()];
  }
  async put(send: Outgoing): Promise<void> {
    this.sends.set(send.clientMsgId, send);
  }
  async remove(clientMsgId: string): Promise<void> {
    this.sends.delete(clientMsgId);
  }
}

function serialize(sends: Iterable<Outgoing>): string {
  return JSON.stringify([...sends].map((s) => toJsonString(ClientFrameSchema, s.frame)));
}

function deserialize(text: string): Outgoing[] {
  const frames = JSON.parse(text) as string[];
  return frames.map((f) => {
    const frame = fromJsonString(ClientFrameSchema, f, { ignoreUnknownFields: true });
    return { clientMsgId: clientMsgIdOf(frame), frame };
  });
}

/** The clientMsgId a send-like frame carries. */
export function clientMsgIdOf(frame: ClientFrame): string {
  const kind = frame.kind;
  switch (kind.case) {
    case "send":
    case "edit":
    case "delete":
    case "react":
      return kind.value.clientMsgId;
    default:
      throw new Error(`not a send: ${kind.case}`);
  }
}

/** Node: the outbox in one JSON file, rewritten whole on each change (an
 * outbox holds at most a window of sends). */
export class FileOutbox implements Outbox {
  private sends = new Map<string, Outgoing>();
  private reading?: Promise<void>;
  private writing: Promise<void> = Promise.resolve();
  constructor(private readonly path: string) {}

  /** Reads the file once; every change waits for it. */
  private read(): Promise<void> {
    this.reading ??= (async () => {
      const fs = await import("node:fs/promises");
      try {
        for (const s of deserialize(await fs.readFile(this.path, "utf8"))) {
          this.sends.set(s.clientMsgId, s);
        }
      } catch (e) {
        if ((e as { code?: string }).code !== "ENOENT") throw e;
      }
    })();
    return this.reading;
  }
  async load(): Promise<Outgoing[]> {
    await this.read();
    return [...this.sends.values()];
  }
  async put(send: Outgoing): Promise<void> {
    await this.read();
    this.sends.set(send.clientMsgId, send);
    await this.save();
  }
  async remove(clientMsgId: string): Promise<void> {
    await this.read();
    if (this.sends.delete(clientMsgId)) await this.save();
  }
  private save(): Promise<void> {
    const text = serialize(this.sends.values());
    this.writing = this.writing.then(async () => {
      const fs = await import("node:fs/promises");
      await fs.writeFile(`${this.path}.tmp`, text);
      await fs.rename(`${this.path}.tmp`, this.path);
    });
    return this.writing;
  }
}

/** Browsers: the outbox in IndexedDB, one record per send, in put order. */
export class IndexedDbOutbox implements Outbox {
  private db?: Promise<IDBDatabase>;
  constructor(private readonly name = "chat-outbox") {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(this.name, 1);
      req.onupgradeneeded = () => {
        req.result.createObjectStore("sends", { keyPath: "clientMsgId" }).createIndex("at", "at");
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }
  private async tx<T>(mode: IDBTransactionMode, run: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const req = run(db.transaction("sends", mode).objectStore("sends"));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  async load(): Promise<Outgoing[]> {
    const rows = await this.tx("readonly", (s) => s.index("at").getAll());
    return deserialize(JSON.stringify(rows.map((r: { frame: string }) => r.frame)));
  }
  async put(send: Outgoing): Promise<void> {
    const frame = toJsonString(ClientFrameSchema, send.frame);
    await this.tx("readwrite", (s) => s.put({ clientMsgId: send.clientMsgId, frame, at: Date.now() }));
  }
  async remove(clientMsgId: string): Promise<void> {
    await this.tx("readwrite", (s) => s.delete(clientMsgId));
  }
}
