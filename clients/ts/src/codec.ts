// Frames on the wire, in either encoding: protobuf in binary frames
// (`chat.v1.proto`), the proto3 JSON mapping in text frames (`chat.v1.json`).

import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import {
  ClientFrameSchema,
  ServerFrameSchema,
  type ClientFrame,
  type ServerFrame,
} from "./gen/chat/v1/chat_pb.js";

export type Encoding = "json" | "proto";

/** The WebSocket subprotocol that asks the gateway for `encoding`. */
export function subprotocol(encoding: Encoding): string {
  return encoding === "proto" ? "chat.v1.proto" : "chat.v1.json";
}

export function encode(frame: ClientFrame, encoding: Encoding): string | Uint8Array {
  return encoding === "proto"
    ? toBinary(ClientFrameSchema, frame)
    : toJsonString(ClientFrameSchema, frame);
}

/** A server frame from a WebSocket message's data; fields a newer gateway
 * adds are ignored. */
export function decode(data: unknown): ServerFrame {
  if (typeof data === "string") {
    return fromJsonString(ServerFrameSchema, data, { ignoreUnknownFields: true });
  }
  const bytes =
    data instanceof Uint8Array
      ? data
      : data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : Array.isArray(data)
          ? concat(data as Uint8Array[])
          : new Uint8Array(data as ArrayBufferLike);
  return fromBinary(ServerFrameSchema, bytes);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
