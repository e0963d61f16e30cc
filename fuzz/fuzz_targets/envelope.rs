//! A payload on the ingest stream, as the worker decodes it: one envelope
//! alone, or a gateway's batch.
#![no_main]

use chat_proto::internal::EnvelopeBatch;
use chat_protocol::envelope;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    if let Ok(send) = envelope::decode(data) {
        assert_eq!(send.room.as_str(), send.envelope.room);
        let again = envelope::decode(&send.envelope.encode_to_vec()).expect("re-encodes");
        assert_eq!(again, send);
    }
    if let Ok(sends) = envelope::decode_batch(data) {
        assert!(!sends.is_empty());
        let envelopes: Vec<_> = sends.into_iter().map(|send| send.envelope).collect();
        let batch = EnvelopeBatch { envelopes };
        let again = envelope::decode_batch(&batch.encode_to_vec()).expect("re-encodes");
        assert!(again.into_iter().map(|send| send.envelope).eq(batch.envelopes));
    }
});
