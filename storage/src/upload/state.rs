//! A SHA-256 hasher whose state can be saved after any byte and restored in another process, so that a session's
//! digest is computed while its bytes stream in, whichever replica receives them.

use sha2_resumable::digest::common::hazmat::{SerializableState, SerializedState};
use sha2_resumable::{Digest as _, Sha256};
use wharf_format::Digest;

use crate::{Error, Result};

pub(crate) struct Sha256State(Sha256);

impl Sha256State {
    pub fn new() -> Sha256State {
        Sha256State(Sha256::new())
    }

    /// Restores a state that [`save`](Self::save) produced; anything else is `Corrupt`.
    pub fn restore(bytes: &[u8]) -> Result<Sha256State> {
        let corrupt = || Error::Corrupt("an upload session's hash state does not restore".into());
        let array = SerializedState::<Sha256>::try_from(bytes).map_err(|_| corrupt())?;
        Sha256::deserialize(&array).map(Sha256State).map_err(|_| corrupt())
    }

    pub fn save(&self) -> Vec<u8> {
        self.0.serialize().to_vec()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Digest {
        let hex = hex::encode(self.0.finalize());
        // 64 lowercase hex characters always parse as a SHA-256 digest.
        format!("sha256:{hex}").parse().unwrap_or_else(|_| unreachable!("a SHA-256 digest always parses"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_continues_anywhere() {
        let mut a = Sha256State::new();
        a.update(b"hello ");
        let saved = a.save();
        let mut b = Sha256State::restore(&saved).unwrap();
        b.update(b"world");
        assert_eq!(b.finish(), Digest::sha256_of(b"hello world"));
        assert!(Sha256State::restore(&saved[1..]).is_err());
        assert!(Sha256State::restore(b"").is_err());
    }
}
