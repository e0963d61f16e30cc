#!/usr/bin/env python3
"""A chat client in Python, written from docs/protocol.md alone.

    pip install -r requirements.txt
    python3 example.py --url ws://127.0.0.1:8080/v1/ws --url ws://127.0.0.1:8081/v1/ws \\
        --token "$ALICE" --room lobby --state lobby.seq --send "hi" --send "there"

It joins the room, from the last seq kept in --state when there is one, so
a second run resumes where the first stopped and misses nothing; sends each
--send text with its own clientMsgId, writing it again after a reconnect
until it is acked (the gateway stores an id once); prints every message of
the room as "#<seq> <sender>: <body>", each once and in seq order; and
reconnects to the next --url with jittered backoff when a gateway goes.
It stops once every send is acked and delivered, after --listen more
seconds. The frames are protobuf, from proto/chat/v1/chat.proto, compiled
by grpcio-tools when the script starts.
"""

import argparse
import asyncio
import importlib
import itertools
import pathlib
import random
import sys
import tempfile
import uuid

import websockets
from grpc_tools import protoc

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "proto"
# Worth the same send again later; any other error refuses it for good.
RETRYABLE = {"rate_limited", "timeout", "unavailable"}


def compile_proto():
    """chat_pb2, generated from proto/ into a temporary directory."""
    out = tempfile.mkdtemp(prefix="chat-proto-")
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out}", "chat/v1/chat.proto"]
    if protoc.main(args) != 0:
        sys.exit(f"protoc could not compile {PROTO_DIR}/chat/v1/chat.proto")
    sys.path.insert(0, out)
    return importlib.import_module("chat.v1.chat_pb2")


class Client:
    def __init__(self, pb, args):
        self.pb = pb
        self.args = args
        self.state = pathlib.Path(args.state) if args.state else None
        self.last = int(self.state.read_text()) if self.state and self.state.exists() else None
        # Unacked sends by clientMsgId, in the order they were made.
        self.unacked = {str(uuid.uuid4()): body for body in args.send}
        self.acked_up_to = 0
        # Frames a received one calls for, written after it is handled.
        self.outgoing = []
        self.joined = False

    def frame(self, request_id, **kind):
        return self.pb.ClientFrame(request_id=request_id, **kind).SerializeToString()

    def join(self):
        join = self.pb.Join(room=self.args.room)
        if self.last is not None:
            join.since_seq = self.last
        return self.frame(f"join:{self.args.room}", join=join)

    def send(self, cmid):
        body = self.unacked[cmid]
        return self.frame(f"send:{cmid}", send=self.pb.Send(room=self.args.room, client_msg_id=cmid, body=body))

    def done(self):
        """Every send acked, and delivered back in the room's order."""
        return not self.unacked and self.last is not None and self.last >= self.acked_up_to

    async def serve(self, ws):
        """One socket: join (resuming), write the unacked sends, handle frames."""
        await ws.send(self.join())
        # Sends wait for `joined`: one committed before the join is read
        # would be at or below the head it reports, and not delivered.
        self.joined = False
        while not self.joined:
            self.handle(await ws.recv())
        for cmid in list(self.unacked):
            await ws.send(self.send(cmid))
        while not self.done():
            self.handle(await ws.recv())
            await self.flush(ws)
        # Then listen a while longer for what others say.
        try:
            async with asyncio.timeout(self.args.listen):
                while True:
                    self.handle(await ws.recv())
                    await self.flush(ws)
        except TimeoutError:
            pass

    def handle(self, data):
        f = self.pb.ServerFrame.FromString(data)
        kind = f.WhichOneof("kind")
        if kind == "joined":
            self.joined = True
            if self.last is None:
                self.last = f.joined.head_seq
        elif kind == "message":
            self.deliver(f.message)
        elif kind == "ack":
            if self.unacked.pop(f.ack.client_msg_id, None) is not None:
                self.acked_up_to = max(self.acked_up_to, f.ack.seq)
                print(f"ack #{f.ack.seq} {f.ack.client_msg_id}", flush=True)
        elif kind == "resync":
            # The room goes on from from_seq: join again from just before
            # it. Usually the last seq delivered; past it, retention deleted
            # what lies between; at or below it, a restore from a backup.
            self.last = f.resync.from_seq - 1
            self.outgoing.append(self.join())
        elif kind == "error":
            self.refused(f.request_id, f.error)

    def deliver(self, m):
        if self.last is not None:
            if m.seq <= self.last:
                return  # a replay of what was printed
            if m.seq > self.last + 1:
                self.outgoing.append(self.join())  # a gap: the gateway replays it
                return
        self.last = m.seq
        if self.state:
            self.state.write_text(str(m.seq))
        what = m.body if not m.kind else f"({m.kind}{' ' + m.member if m.member else ''})"
        print(f"#{m.seq} {m.sender}: {what}", flush=True)

    def refused(self, request_id, error):
        cmid = request_id.removeprefix("send:")
        if request_id.startswith("send:") and error.code in RETRYABLE and cmid in self.unacked:
            self.outgoing.append(self.send(cmid))
            return
        sys.exit(f"refused ({request_id}): {error.code}: {error.message}")

    async def flush(self, ws):
        for frame in self.outgoing:
            await ws.send(frame)
        self.outgoing = []

    async def run(self):
        urls = itertools.cycle(self.args.url)
        headers = {"Authorization": f"Bearer {self.args.token}"}
        for attempt in itertools.count():
            url = next(urls)
            try:
                async with websockets.connect(url, additional_headers=headers, subprotocols=["chat.v1.proto"]) as ws:
                    await self.serve(ws)
                    return
            except websockets.InvalidStatus as e:
                if e.response.status_code in (401, 403):
                    sys.exit(f"{url} refused the token: HTTP {e.response.status_code}")
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake):
                pass
            # Full jitter, so clients of a gateway that died do not return at once.
            await asyncio.sleep(random.uniform(0, min(5.0, 0.1 * 2 ** min(attempt, 6))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", action="append", required=True, help="a gateway's ws://host/v1/ws; tried in turn")
    parser.add_argument("--token", required=True, help="the user's JWT")
    parser.add_argument("--room", required=True)
    parser.add_argument("--send", action="append", default=[], help="a message to send (repeatable)")
    parser.add_argument("--state", help="file keeping the last seq seen, to resume from")
    parser.add_argument("--listen", type=float, default=0.0, help="seconds to keep listening after the sends")
    args = parser.parse_args()
    asyncio.run(Client(compile_proto(), args).run())


if __name__ == "__main__":
    main()
