//! The request cache: a CRI request is stored under a random single-use token, and the streaming
//! URL carries only the token (as the kubelet's `request_cache.go` does).
//!
//! Tokens expire after a TTL and at most `max` are outstanding; an expired or consumed token is
//! indistinguishable from one never issued. The clock is passed in so tests need not sleep.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// Random bytes per token: 256 bits (the kubelet uses 8 base64 characters, 48 bits; a longer
/// token costs nothing and makes guessing hopeless even with a long TTL).
const TOKEN_BYTES: usize = 32;
/// Length of a token in the URL: `TOKEN_BYTES` in unpadded URL-safe base64.
pub const TOKEN_LEN: usize = (TOKEN_BYTES * 8).div_ceil(6);

/// Why a request could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `max` tokens are outstanding (gRPC `ResourceExhausted`, as the kubelet answers).
    #[error("maximum number of in-flight streaming requests ({max}) exceeded")]
    TooManyInFlight { max: usize },
}

struct Entry<T> {
    request: T,
    expires: Instant,
    seq: u64,
}

struct Inner<T> {
    by_token: HashMap<String, Entry<T>>,
    /// Expiry order, for removing expired entries oldest first.
    by_expiry: BTreeMap<(Instant, u64), String>,
    next_seq: u64,
}

/// Single-use tokens for stored requests.
pub struct TokenCache<T> {
    inner: Mutex<Inner<T>>,
    ttl: Duration,
    max: usize,
}

impl<T> TokenCache<T> {
    /// A cache whose tokens live `ttl` and of which at most `max` are outstanding.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                by_token: HashMap::new(),
                by_expiry: BTreeMap::new(),
                next_seq: 0,
            }),
            ttl,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock leaves the maps consistent (every mutation is a single
        // insert or remove pair), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `request` and returns its token.
    pub fn insert(&self, request: T, now: Instant) -> Result<String, TokenError> {
        let mut inner = self.lock();
        inner.remove_expired(now);
        if inner.by_token.len() >= self.max {
            return Err(TokenError::TooManyInFlight { max: self.max });
        }
        let token = loop {
            let mut raw = [0u8; TOKEN_BYTES];
            rand::rng().fill_bytes(&mut raw);
            let token = URL_SAFE_NO_PAD.encode(raw);
            // 256 random bits do not collide, but a collision must never hand out one
            // request under two tokens or two requests under one.
            if !inner.by_token.contains_key(&token) {
                break token;
            }
        };
        let expires = now + self.ttl;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.by_expiry.insert((expires, seq), token.clone());
        inner.by_token.insert(
            token.clone(),
            Entry {
                request,
                expires,
                seq,
            },
        );
        Ok(token)
    }

    /// Removes the token and returns its request, unless it is unknown or expired.
    pub fn consume(&self, token: &str, now: Instant) -> Option<T> {
        if !is_well_formed(token) {
            return None;
        }
        let mut inner = self.lock();
        let entry = inner.by_token.remove(token)?;
        inner.by_expiry.remove(&(entry.expires, entry.seq));
        (now <= entry.expires).then_some(entry.request)
    }

    /// Tokens outstanding, expired ones included until the next insert removes them.
    pub fn len(&self) -> usize {
        self.lock().by_token.len()
    }

    /// Whether no token is outstanding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Inner<T> {
    fn remove_expired(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 >= now {
                break;
            }
            let token = entry.remove();
            self.by_token.remove(&token);
        }
    }
}

/// Whether `token` could have been issued: right length, URL-safe base64 alphabet.
fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_use() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let token = cache.insert("a", now).unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(is_well_formed(&token));
        assert_eq!(cache.consume(&token, now), Some("a"));
        assert_eq!(cache.consume(&token, now), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn tokens_expire() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let early = cache.insert(1, now).unwrap();
        let late = cache.insert(2, now + Duration::from_secs(30)).unwrap();
        assert_eq!(cache.consume(&early, now + Duration::from_secs(61)), None);
        assert_eq!(cache.consume(&late, now + Duration::from_secs(90)), Some(2));
    }

    #[test]
    fn outstanding_tokens_are_bounded_and_expired_ones_are_freed() {
        let cache = TokenCache::new(Duration::from_secs(60), 3);
        let now = Instant::now();
        for i in 0..3 {
            cache.insert(i, now).unwrap();
        }
        assert_eq!(
            cache.insert(9, now),
            Err(TokenError::TooManyInFlight { max: 3 })
        );
        // Still full a little later: none has expired yet.
        assert!(cache.insert(9, now + Duration::from_secs(59)).is_err());
        let later = now + Duration::from_secs(61);
        // All three expired: the insert removes them first.
        let t = cache.insert(4, later).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.consume(&t, later), Some(4));
    }

    #[test]
    fn consume_frees_a_place() {
        let cache = TokenCache::new(Duration::from_secs(60), 1);
        let now = Instant::now();
        let t = cache.insert(1, now).unwrap();
        assert!(cache.insert(2, now).is_err());
        assert_eq!(cache.consume(&t, now), Some(1));
        assert!(cache.insert(2, now).is_ok());
    }

    #[test]
    fn malformed_tokens_are_unknown() {
        let cache: TokenCache<u8> = TokenCache::new(Duration::from_secs(60), 1);
        let now = Instant::now();
        for bad in [
            "",
            "short",
            &"a".repeat(TOKEN_LEN + 1),
            &"/".repeat(TOKEN_LEN),
        ] {
            assert_eq!(cache.consume(bad, now), None);
        }
    }
}
