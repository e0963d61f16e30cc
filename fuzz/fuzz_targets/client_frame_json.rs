//! A text frame on a JSON socket, as the gateway decodes it.
#![no_main]

use chat_proto::v1::ClientFrame;
use chat_protocol::codec::{Encoding, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8; tungstenite refuses the rest.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let payload = Payload::Text(text.to_owned());
    if let Ok(frame) = Encoding::Json.decode::<ClientFrame>(&payload) {
        // What decodes must re-encode to something that decodes to it.
        let again: ClientFrame = Encoding::Json
            .decode(&Encoding::Json.encode(&frame))
            .expect("a decoded frame re-encodes");
        assert_eq!(again, frame);
    }
});
