// The SDK against a real cluster: two gateways, a worker, Postgres, Redis
// and NATS, started by the Rust harness (tests/tests/e2e/ts_sdk.rs), which
// passes their addresses in CHAT_TS_*. Run it through that test.

import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, test } from "node:test";
import WebSocket from "ws";

import { ChatClient, FileOutbox } from "../dist/index.js";

const gateways = (process.env.CHAT_TS_GATEWAYS ?? "").split(",").filter(Boolean);
const pids = (process.env.CHAT_TS_GATEWAY_PIDS ?? "").split(",").map(Number);
const tokens = JSON.parse(process.env.CHAT_TS_TOKENS ?? "{}");
const room = process.env.CHAT_TS_ROOM;
assert.equal(gateways.length, 2, "run through tests/tests/e2e/ts_sdk.rs");

/** Every client a test made is closed when it ends, pass or fail. */
const open = new Set();
const client = (user, urls, encoding, extra = {}) => {
  const c = new ChatClient({ urls, token: tokens[user], encoding, WebSocket, backoff: { initialMs: 50, maxMs: 500 }, ...extra });
  open.add(c);
  return c;
};
afterEach(() => {
  for (const c of open) c.close();
  open.clear();
});

/** Resolves once `check()` holds, checking on every event of `client`. */
function until(client, event, check, ms = 60_000) {
  return new Promise((resolve, reject) => {
    if (check()) return resolve();
    const timer = setTimeout(() => reject(new Error(`timed out waiting on ${event}`)), ms);
    const off = client.on(event, () => {
      if (check()) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}

function ordered(messages, from, count, prefix) {
  const mine = messages.filter((m) => m.body.startsWith(prefix));
  assert.deepEqual(
    mine.map((m) => m.body),
    Array.from({ length: count }, (_, i) => `${prefix}${i}`),
    "each send once, in the order it was sent",
  );
  const seqs = messages.map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1n, "no gap, no duplicate");
  return mine;
}

test("offline sends wait in a file outbox and are stored once after a reload", async () => {
  const path = join(await mkdtemp(join(tmpdir(), "chat-outbox-")), "outbox.json");
  // Nothing listens here: the sends wait.
  const offline = client("ann", ["ws://127.0.0.1:9/v1/ws"], "json", { outbox: new FileOutbox(path) });
  const waiting = ["o0", "o1", "o2"].map((body) => offline.send(room, body).catch(() => {}));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(offline.unacknowledged().length, 3);
  offline.close();
  await Promise.all(waiting);

  // The page comes back, online: the kept sends go out first, in order.
  const acks = [];
  const online = client("ann", gateways, "json", { outbox: new FileOutbox(path) });
  online.on("ack", (ack) => acks.push(ack));
  await until(online, "ack", () => acks.length === 3, 20_000);
  // Acks may come in any order; the seqs are three in a row.
  const seqs = acks.map((a) => a.seq).sort((a, b) => (a < b ? -1 : 1));
  assert.deepEqual(seqs, [seqs[0], seqs[0] + 1n, seqs[0] + 2n]);
  const page = await online.history(room, { after: seqs[0] - 1n }, 10);
  assert.deepEqual(
    page.messages.map((m) => m.body),
    ["o0", "o1", "o2"],
  );
  assert.equal(online.unacknowledged().length, 0);
  online.close();
});

test("a gateway SIGKILLed mid-burst loses and duplicates nothing", async () => {
  const count = 300;
  const ann = client("ann", [gateways[0], gateways[1]], "proto");
  const bob = client("bob", [gateways[1], gateways[0]], "json");
  const seen = { ann: [], bob: [] };
  ann.on("message", (m) => seen.ann.push(m));
  bob.on("message", (m) => seen.bob.push(m));
  const reconnected = [];
  ann.on("connected", ({ url }) => reconnected.push(url));
  await ann.join(room);
  await bob.join(room);

  let acked = 0;
  ann.on("ack", () => acked++);
  const sends = Array.from({ length: count }, (_, i) => ann.send(room, `b${i}`));
  await until(ann, "ack", () => acked >= 60);
  process.kill(pids[0], "SIGKILL");

  const acks = await Promise.all(sends);
  assert.equal(new Set(acks.map((a) => a.seq)).size, count, "one seq per send");
  const done = (list) => () => list.filter((m) => m.body.startsWith("b")).length >= count;
  await until(bob, "message", done(seen.bob));
  await until(ann, "message", done(seen.ann));
  assert.equal(reconnected.at(-1), gateways[1], "ann moved to the other gateway");

  const forBob = ordered(seen.bob, 0, count, "b");
  const forAnn = ordered(seen.ann, 0, count, "b");
  assert.deepEqual(
    forAnn.map((m) => m.seq),
    forBob.map((m) => m.seq),
    "both see one order",
  );
  assert.deepEqual(
    forBob.map((m) => m.seq),
    acks.map((a) => a.seq),
    "what each ack said",
  );
  ann.close();
  bob.close();
});

test("every client frame in docs/protocol.md names an SDK call that exists", async () => {
  const { readFile } = await import("node:fs/promises");
  const doc = await readFile(new URL("../../../docs/protocol.md", import.meta.url), "utf8");
  const table = doc.split("\n").filter((l) => l.startsWith("| `"));
  const frames = new Set();
  for (const row of table.slice(0, table.findIndex((l) => l.startsWith("| `unwatchFeed")) + 1)) {
    const [frame, , sdk] = row.split(" | ");
    frames.add(frame.slice(3).split(/[ `]/)[0]);
    for (const [, call] of sdk.matchAll(/`(\w+)\(/g)) {
      assert.equal(typeof ChatClient.prototype[call], "function", `${frame}: ChatClient has no ${call}()`);
    }
  }
  assert.ok(frames.size >= 21, `the frames table was read: ${[...frames]}`);
  // The proto's client frames, each with its row.
  const proto = await readFile(new URL("../../../proto/chat/v1/chat.proto", import.meta.url), "utf8");
  let checked = 0;
  const oneof = proto.slice(proto.indexOf("message ClientFrame"), proto.indexOf("// Start receiving"));
  for (const [, type] of oneof.matchAll(/^\s+([A-Z]\w*) \w+ = \d+;/gm)) {
    const name = type[0].toLowerCase() + type.slice(1);
    assert.ok(frames.has(name), `${name} has no row in docs/protocol.md`);
    checked++;
  }
  assert.equal(checked, 21, "every frame of ClientFrame's oneof was looked for");
});
