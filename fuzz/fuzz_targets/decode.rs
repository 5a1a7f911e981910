//! Arbitrary bytes into every wire decoder: an error is fine, a panic or a hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use navaro_protocol::{Command, Encoding, EventRecord, Rejection, Reply, decode, encode};

fuzz_target!(|data: &[u8]| {
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        if let Ok(command) = decode::<Command>(encoding, data) {
            // Whatever decodes must encode and decode back to itself.
            let bytes = encode(encoding, &command).expect("a decoded command encodes");
            assert_eq!(decode::<Command>(encoding, &bytes).expect("round trip"), command);
        }
        let _ = decode::<EventRecord>(encoding, data);
        let _ = decode::<Reply>(encoding, data);
        let _ = decode::<Rejection>(encoding, data);
    }
});
