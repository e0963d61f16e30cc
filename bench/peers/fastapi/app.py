"""The seed guides' stack: FastAPI + uvicorn + broadcaster[redis].

Same chat semantics as the other peers, in the plain JSON protocol:
{"type":"join","room"} -> {"type":"joined"}; {"type":"send","room","id","body"}
-> {"type":"message",...} to the room and {"type":"ack","id"} to the sender.
"""
import asyncio
import json
import os

from broadcaster import Broadcast
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

broadcast = Broadcast(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
app = FastAPI(on_startup=[broadcast.connect], on_shutdown=[broadcast.disconnect])
# broadcaster 0.3.1 races when two sockets subscribe to a new channel at once
# (the second replaces the first's queue, which then never hears a thing);
# serialising the subscribe step is the workaround a team would ship.
subscribe_lock = asyncio.Lock()


@app.websocket("/ws")
async def chat(websocket: WebSocket):
    await websocket.accept()
    relays = []

    async def relay(room: str):
        subscription = broadcast.subscribe(channel=room)
        async with subscribe_lock:
            subscriber = await subscription.__aenter__()
        try:
            await websocket.send_text(json.dumps({"type": "joined", "room": room}))
            async for event in subscriber:
                await websocket.send_text(event.message)
        finally:
            await subscription.__aexit__(None, None, None)

    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            if frame.get("type") == "join":
                relays.append(asyncio.create_task(relay(frame["room"])))
            elif frame.get("type") == "send":
                message = {"type": "message", "room": frame["room"], "id": frame["id"], "body": frame["body"]}
                await broadcast.publish(channel=frame["room"], message=json.dumps(message))
                await websocket.send_text(json.dumps({"type": "ack", "id": frame["id"]}))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for task in relays:
            task.cancel()
