//! End-to-end tests: real NATS, Postgres and Redis, real gateway and worker
//! processes, real WebSocket clients. One binary, one module per concern.

mod bad_input;
mod canary;
mod client_library;
mod commands;
mod dead_letters;
mod direct;
mod dlq;
mod drain;
mod event_refusals;
mod events;
mod faults;
mod history;
mod lanes;
mod lifecycle;
mod limits;
mod liveness;
mod loadgen_smoke;
mod message_path;
mod my_rooms;
mod nats_cluster;
mod observability;
mod ordering;
mod permissions;
mod presence;
mod publish;
mod reads;
mod redis_cluster;
mod resilience;
mod room_api;
mod rooms;
mod search;
mod sender_order;
mod startup;
mod store;
mod typing;
