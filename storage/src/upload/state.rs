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

/// Bytes gathered before one hash step on a blocking thread.
const HASH_BATCH: usize = 1 << 20;

/// A [`Sha256State`] fed on a blocking thread, one batch behind the bytes received: a request's task receives the
/// next batch while the previous one is hashed (and, on a local store, written by the file's own task), so that
/// receiving, hashing and writing use the machine's cores at once. [`Behind::catch_up`] hands the state back with
/// every byte fed hashed.
pub(crate) struct Behind {
    state: Option<Sha256State>,
    hashing: Option<tokio::task::JoinHandle<Sha256State>>,
    batch: Vec<bytes::Bytes>,
    batched: usize,
}

impl Behind {
    pub fn new(state: Sha256State) -> Behind {
        Behind { state: Some(state), hashing: None, batch: Vec::new(), batched: 0 }
    }

    /// Takes `chunk` (a reference to the same bytes the writer gets, not a copy).
    pub async fn feed(&mut self, chunk: bytes::Bytes) -> Result<()> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= HASH_BATCH {
            self.hash_batch().await?;
        }
        Ok(())
    }

    /// Starts hashing the gathered batch once the previous one is done.
    async fn hash_batch(&mut self) -> Result<()> {
        let mut state = self.wait().await?;
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.hashing = Some(tokio::task::spawn_blocking(move || {
            for b in &batch {
                state.update(b);
            }
            state
        }));
        Ok(())
    }

    async fn wait(&mut self) -> Result<Sha256State> {
        match (self.hashing.take(), self.state.take()) {
            (Some(h), _) => h.await.map_err(Error::task("hash")),
            (None, Some(s)) => Ok(s),
            (None, None) => Err(Error::Corrupt("an upload's hash state was lost after a failed step".into())),
        }
    }

    /// The state after every byte fed.
    pub async fn catch_up(mut self) -> Result<Sha256State> {
        let mut state = self.wait().await?;
        for b in &self.batch {
            state.update(b);
        }
        Ok(state)
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

    #[tokio::test]
    async fn hashing_behind_sees_every_byte_in_order() {
        let data: Vec<u8> = (0..3 * HASH_BATCH + 12345).map(|i| (i * 7 % 251) as u8).collect();
        let mut start = Sha256State::new();
        start.update(b"prefix");
        let mut behind = Behind::new(start);
        for piece in data.chunks(70_001) {
            behind.feed(bytes::Bytes::copy_from_slice(piece)).await.unwrap();
        }
        let want = Digest::sha256_of(&[b"prefix".as_slice(), &data].concat());
        assert_eq!(behind.catch_up().await.unwrap().finish(), want);
        assert_eq!(Behind::new(Sha256State::new()).catch_up().await.unwrap().finish(), Digest::sha256_of(b""));
    }
}
