// The page in a real browser (Debian's Chromium, driven by playwright-core)
// against a real cluster: two gateways, a worker, Postgres, Redis and NATS,
// started by the Rust harness (tests/tests/e2e/web_page.rs), which passes
// the pages' addresses in CHAT_WEB_*. Run it through that test.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { chromium } from "playwright-core";

const pages = (process.env.CHAT_WEB_PAGES ?? "").split(",").filter(Boolean);
const tokens = JSON.parse(process.env.CHAT_WEB_TOKENS ?? "{}");
const artifacts = process.env.CHAT_WEB_ARTIFACTS ?? "test-results";
assert.equal(pages.length, 2, "run through tests/tests/e2e/web_page.rs");

// Without the background-networking flags Chromium keeps trying hosts this
// closed network refuses.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Resolves once `check()` is true, polling; fails naming `what`. */
async function until(what, check, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const bodies = (page) => page.locator("#messages li.msg:not(.pending) .body").allTextContents();
const has = (page, text) => async () => (await bodies(page)).includes(text);
const message = (page, text) => page.locator("#messages li.msg", { has: page.locator(".body", { hasText: text }) });

async function signIn(browser, user, url, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`${user}'s page: ${e.message}`));
  await page.goto(`${url}#web`);
  await page.getByLabel("Access token").fill(tokens[user]);
  await page.getByRole("button", { name: "Sign in" }).click();
  await until(`${user} is connected in room web`, async () =>
    (await page.locator("#banner").isHidden()) && (await page.locator("#room-title").textContent()) === "web");
  return { context, page };
}

async function send(page, text) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
}

test("two users on two gateways chat, see typing, receipts and unread, and one comes back from offline with every message once, in order", async (t) => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  await mkdir(artifacts, { recursive: true });
  const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  // Ann on a desktop over protobuf; Bob on a phone-sized screen over JSON.
  const ann = await signIn(browser, "ann", pages[0], { width: 1100, height: 720 });
  const bob = await signIn(browser, "bob", `${pages[1]}?encoding=json`, { width: 390, height: 760 });
  try {
    // History: the newest page first, then older ones on request.
    await until("bob's page shows the newest page", has(bob.page, "earlier 59"));
    const earlier = (await bodies(bob.page)).filter((b) => b.startsWith("earlier "));
    assert.ok(earlier.length < 60 && earlier.at(-1) === "earlier 59", `the newest page: ${earlier.length}`);
    await bob.page.getByRole("button", { name: "Load older messages" }).click();
    await until("bob has paged back to the first message", has(bob.page, "earlier 0"));
    assert.deepEqual(
      (await bodies(bob.page)).filter((b) => b.startsWith("earlier ")),
      Array.from({ length: 60 }, (_, i) => `earlier ${i}`),
      "every earlier message once, in order",
    );
    await until("nothing older is offered", () => bob.page.locator("#older").isHidden());

    // Typing, each way.
    await ann.page.getByLabel("Message", { exact: true }).fill("hello b");
    await until("bob sees ann typing", async () => (await bob.page.locator("#typing").textContent()) === "ann is typing…");
    await bob.page.getByLabel("Message", { exact: true }).fill("…");
    await until("ann sees bob typing", async () => (await ann.page.locator("#typing").textContent()) === "bob is typing…");
    await bob.page.getByLabel("Message", { exact: true }).fill("");

    // A message, and bob's read receipt back to ann.
    await send(ann.page, "hello bob");
    await until("bob sees ann's message", has(bob.page, "hello bob"));
    await until("ann sees bob's receipt", async () => (await message(ann.page, "hello bob").locator(".seen").textContent().catch(() => "")) === "Seen by bob");

    // Presence: each sees the other online.
    await until("ann sees bob online", () => ann.page.locator('#members li[data-user="bob"][data-online="true"]').isVisible());
    await until("bob sees ann online", async () => (await bob.page.locator('#members li[data-user="ann"]').getAttribute("data-online")) === "true");

    // A reply, a reaction, an edit and a deletion, seen on the other side.
    await message(bob.page, "hello bob").getByRole("button", { name: "Reply" }).click();
    await send(bob.page, "hi ann");
    await until("ann sees bob's reply quoting her", async () =>
      (await message(ann.page, "hi ann").locator(".quote").textContent().catch(() => "")) === "ann: hello bob");
    await message(ann.page, "hi ann").getByRole("button", { name: "React 👍" }).click();
    await until("bob sees ann's reaction", async () => (await message(bob.page, "hi ann").locator(".reactions").textContent().catch(() => "")) === "👍 1");
    await message(ann.page, "hello bob").getByRole("button", { name: "Edit" }).click();
    await send(ann.page, "hello bob, edited");
    await until("bob sees the edit", async () =>
      (await has(bob.page, "hello bob, edited")()) && (await message(bob.page, "hello bob, edited").locator(".edited").textContent()) === "(edited)");
    await send(ann.page, "a mistake");
    await until("ann sees her message stored", has(ann.page, "a mistake"));
    await message(ann.page, "a mistake").getByRole("button", { name: "Delete" }).click();
    await until("bob sees it deleted", has(bob.page, "This message was deleted."));
    assert.ok(!(await bodies(bob.page)).includes("a mistake"));

    // Unread: a message in the room bob does not have open.
    await ann.page.locator('#room-list [data-room="side"]').click();
    await until("ann is in side", async () => (await ann.page.locator("#room-title").textContent()) === "side");
    await send(ann.page, "over here");
    await until("bob's list shows side with 1 unread", async () =>
      (await bob.page.locator('#room-list [data-room="side"] .badge').textContent().catch(() => "")) === "1");
    await ann.page.locator('#room-list [data-room="web"]').click();
    await shot(ann.page, "ann-desktop");
    await bob.page.getByRole("button", { name: "Rooms" }).click();
    await shot(bob.page, "bob-phone-rooms");
    await bob.page.locator('#room-list [data-room="web"]').click();

    // Bob goes offline; ann sends meanwhile, and so does bob (kept in his outbox).
    await bob.context.setOffline(true);
    await until("bob's page says it is reconnecting", () => bob.page.locator("#banner").isVisible());
    const burst = Array.from({ length: 10 }, (_, i) => `while bob was away ${i}`);
    for (const text of burst) await send(ann.page, text);
    await send(bob.page, "written offline");
    await until("ann's burst is stored", has(ann.page, burst[9]));
    assert.ok(!(await has(bob.page, burst[0])()), "nothing reaches an offline page");
    await shot(bob.page, "bob-offline");
    await bob.context.setOffline(false);
    await until("bob is back", () => bob.page.locator("#banner").isHidden());
    await until("bob has the whole burst", has(bob.page, burst[9]));
    await until("ann has bob's offline message", has(ann.page, "written offline"));

    // Every message once, in seq order, on both pages.
    for (const { page } of [ann, bob]) {
      const seqs = (await page.locator("#messages li[data-seq]").evaluateAll((els) => els.map((e) => Number(e.dataset.seq))));
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in seq order");
      assert.equal(new Set(seqs).size, seqs.length, "each seq once");
      const got = await bodies(page);
      assert.deepEqual(got.filter((b) => b.startsWith("while bob was away")), burst, "the burst once, in order");
      assert.equal(got.filter((b) => b === "written offline").length, 1, "the offline send stored once");
      assert.equal(await page.locator("#messages li.pending").count(), 0, "nothing left unsent");
    }
    // A send made offline survives closing the page (IndexedDB outbox): the
    // next page load sends it, once.
    await bob.context.setOffline(true);
    await until("bob's page is offline", () => bob.page.locator("#banner").isVisible());
    await send(bob.page, "kept across a reload");
    await until("it waits as pending", async () => (await bob.page.locator("#messages li.pending").count()) === 1);
    await bob.page.close();
    await bob.context.setOffline(false);
    bob.page = await bob.context.newPage();
    await bob.page.goto(`${pages[1]}?encoding=json#web`);
    await until("ann gets the kept send", has(ann.page, "kept across a reload"));
    await until("bob's new page shows it stored", has(bob.page, "kept across a reload"));
    for (const { page } of [ann, bob]) {
      assert.equal((await bodies(page)).filter((b) => b === "kept across a reload").length, 1, "stored once");
    }
    await shot(bob.page, "bob-phone");
    await shot(ann.page, "ann-desktop-after");
  } catch (e) {
    await shot(ann.page, "failed-ann").catch(() => {});
    await shot(bob.page, "failed-bob").catch(() => {});
    throw e;
  }
});
