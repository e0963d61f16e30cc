//! A binary frame on a protobuf socket, as the gateway decodes it.
#![no_main]

use bytes::Bytes;
use chat_proto::v1::ClientFrame;
use chat_protocol::codec::{Encoding, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Payload::Binary(Bytes::copy_from_slice(data));
    if let Ok(frame) = Encoding::Proto.decode::<ClientFrame>(&payload) {
        let again: ClientFrame = Encoding::Proto
            .decode(&Encoding::Proto.encode(&frame))
            .expect("a decoded frame re-encodes");
        assert_eq!(again, frame);
        // The same frame must survive the other encoding too: clients of
        // both kinds share rooms.
        let json: ClientFrame = Encoding::Json
            .decode(&Encoding::Json.encode(&frame))
            .expect("any frame has a JSON form");
        assert_eq!(json, frame);
    }
});
