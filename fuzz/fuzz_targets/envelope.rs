//! A payload on the ingest stream, as the worker decodes it.
#![no_main]

use chat_protocol::envelope;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    if let Ok((env, room)) = envelope::decode(data) {
        assert_eq!(room.as_str(), env.room);
        let (again, _) = envelope::decode(&env.encode_to_vec()).expect("re-encodes");
        assert_eq!(again, env);
    }
});
