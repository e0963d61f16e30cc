// What a team builds when its chat must keep messages: the stack of
// server.js (Socket.IO 4.8, the Redis adapter so that several Node processes
// share rooms) with node-postgres, written the plain way. Each send is stored
// in its own transaction, taking the room's next sequence number, and only
// after the commit is it emitted to the room (with its seq) and acked to the
// sender. It is in the bench as the peer that, like this system, keeps
// "stored before delivered"; server.js keeps nothing. Same chat semantics as
// the others: join a room, broadcast a send to the room, ack the sender.
//
//   PG_URL=postgres://… REDIS_URL=redis://… node store.js PORT [PG_URL]
const { Pool } = require("pg");
const { serve } = require("./server");

const port = Number(process.argv[2] || 9400);
const pgUrl = process.argv[3] || process.env.PG_URL || "postgres://postgres@127.0.0.1:5432/chat";

// pg's default size, and what a Node service usually runs with. Sends to
// one room queue on its row lock whatever the size, and one event loop gains
// little from more transactions in flight; two processes make 20 connections.
const pool = new Pool({ connectionString: pgUrl, max: 10 });
// An idle client's error (Postgres restarting) is emitted on the pool: log
// it rather than let it crash the process.
pool.on("error", (err) => console.error("pg pool:", err.message));

// `sio_` tables, so that they never meet the product's in the same database.
// Both processes start at once and concurrent CREATE TABLE IF NOT EXISTS can
// still fail (pg_type's unique index): an advisory lock takes turns.
async function createSchema() {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext('sio_schema'))");
    await client.query(`CREATE TABLE IF NOT EXISTS sio_rooms (
      id text PRIMARY KEY,
      last_seq bigint NOT NULL DEFAULT 0)`);
    await client.query(`CREATE TABLE IF NOT EXISTS sio_messages (
      room text NOT NULL,
      seq bigint NOT NULL,
      sender text NOT NULL,
      client_id text NOT NULL,
      body text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (room, seq),
      UNIQUE (room, client_id))`);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

// Stores one send and returns its seq and whether it is new. The upsert
// locks the room's row until the commit, which serialises a room's sends.
// A client id seen before in the room returns the stored seq (a retry).
async function store(room, sender, clientId, body) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query(
      `INSERT INTO sio_rooms (id, last_seq) VALUES ($1, 1)
       ON CONFLICT (id) DO UPDATE SET last_seq = sio_rooms.last_seq + 1
       RETURNING last_seq`,
      [room],
    );
    const seq = rows[0].last_seq;
    const inserted = await client.query(
      `INSERT INTO sio_messages (room, seq, sender, client_id, body) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (room, client_id) DO NOTHING`,
      [room, seq, sender, clientId, body],
    );
    if (inserted.rowCount === 0) {
      // A duplicate: give the seq back and answer with the stored one.
      await client.query("ROLLBACK");
      const stored = await client.query(
        "SELECT seq FROM sio_messages WHERE room = $1 AND client_id = $2",
        [room, clientId],
      );
      return { seq: Number(stored.rows[0].seq), fresh: false };
    }
    await client.query("COMMIT");
    return { seq: Number(seq), fresh: true };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

(async () => {
  await createSchema();
  await serve(port, "socket.io + postgres peer", async (io, socket, m) => {
    try {
      const { seq, fresh } = await store(String(m.room), socket.id, String(m.id), String(m.body));
      // A retry was delivered the first time; only its sender hears again.
      if (fresh) io.to(m.room).emit("message", { room: m.room, id: m.id, seq, body: m.body });
      socket.emit("ack", m.id, seq);
    } catch (err) {
      console.error("send:", err.message);
      socket.emit("error", { id: m && m.id, code: "store_failed" });
    }
  });
})().catch((err) => {
  console.error("start:", err);
  process.exit(1);
});
