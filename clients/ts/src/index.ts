export { ChatClient, ChatError, type ChatClientOptions, type ChatEvents, type WebSocketLike } from "./client.js";
export { type Encoding } from "./codec.js";
export { FileOutbox, IndexedDbOutbox, MemoryOutbox, type Outbox, type Outgoing } from "./outbox.js";
export * from "./gen/chat/v1/chat_pb.js";
