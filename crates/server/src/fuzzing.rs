//! What the fuzz targets (`fuzz/`) and the encryption suite reach inside the server: the
//! parsers and validators that take untrusted bytes, and the keyring that reads stored
//! values. Not a stable API; the library's API is [`crate::Server`], [`crate::Config`] and
//! [`crate::bind`].

pub use crate::auth::{Auth, hash_refresh_token};
pub use crate::crypto::{Keyring, column};
pub use crate::error::{Error, Result};
pub use crate::http::{ApiJson, OptionalJson};
pub use crate::messages::new_message;
pub use crate::push::validate_subscription;

/// Uploads: type sniffing, image decoding, file names.
pub mod media {
    pub use crate::media::clean_name;
    pub use crate::media::image::{ImageError, process_from};
    pub use crate::media::sniff::{HEAD, Kind, sniff};
}

/// The WebSocket gateway: the frame codec and the text-frame parser.
pub mod ws {
    pub use crate::ws::codec::{Decoder, Incoming, close_code_allowed};
    pub use crate::ws::{Request, decode};
}

/// Input parsed at the edge and the typed IDs.
pub mod domain {
    pub use crate::domain::*;
}
