//! A payload on the ingest stream, as the worker decodes it: one envelope
//! alone, or a gateway's batch.
#![no_main]

use chat_proto::internal::EnvelopeBatch;
use chat_protocol::envelope;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    if let Ok((env, room)) = envelope::decode(data) {
        assert_eq!(room.as_str(), env.room);
        let (again, _) = envelope::decode(&env.encode_to_vec()).expect("re-encodes");
        assert_eq!(again, env);
    }
    if let Ok(sends) = envelope::decode_batch(data) {
        assert!(!sends.is_empty());
        let envelopes: Vec<_> = sends.into_iter().map(|(env, _)| env).collect();
        let batch = EnvelopeBatch { envelopes };
        let again = envelope::decode_batch(&batch.encode_to_vec()).expect("re-encodes");
        assert!(again.into_iter().map(|(env, _)| env).eq(batch.envelopes));
    }
});
