// The stack most teams pick: Socket.IO 4.8 with the Redis adapter, so that
// several Node processes share rooms. Same chat semantics as the others:
// join a room, broadcast a send to the room, ack the sender.
const { createServer } = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

// Starts the server on `port`; `onSend(io, socket, m)` answers a send.
// store.js serves with its own.
async function serve(port, name, onSend) {
  const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub),
    transports: ["websocket"],
    perMessageDeflate: false,
  });
  io.on("connection", (socket) => {
    socket.on("join", (room) => {
      socket.join(room);
      socket.emit("joined", room);
    });
    socket.on("send", (m) => onSend(io, socket, m));
  });
  httpServer.listen(port, "127.0.0.1", () => console.error(`${name} on ${port}`));
}

if (require.main === module) {
  serve(Number(process.argv[2] || 9400), "socket.io peer", (io, socket, m) => {
    io.to(m.room).emit("message", { room: m.room, id: m.id, body: m.body });
    socket.emit("ack", m.id);
  });
}

module.exports = { serve };
