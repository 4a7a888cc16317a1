//! Player session tokens (SPEC §1: "player clients may only connect to the WebSocket API with a
//! session token the game issued"). The game server asks for a token for one of its players
//! (`POST /players/{player_id}/session-token`); the player's client passes it when it opens the
//! WebSocket (`?token=`), and the `$connect` authorizer verifies it.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`, without
//! padding; the claims are `{sub, iat, exp, kid}`. `kid` names the signing key: the first 16
//! hex digits of a SHA-256 of the key (domain-separated), so operators rotating the key never
//! pick key ids by hand and a kid tells nothing useful about the key. The key ring holds the
//! current key and optionally the previous one: a token signed by either verifies, so a
//! rotation never disconnects players holding tokens of the key before.
//!
//! Pure: the keys come through the [`SessionKeys`] port (Secrets Manager in AWS). The MAC is
//! checked with `hmac`'s constant-time comparison; nothing here ever logs a key or a token.

use crate::ids::PlayerId;
use crate::ports::{Clock, StoreError};
use crate::{DomainError, DomainResult};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused before any decoding (a real one is ~200 bytes).
pub const MAX_TOKEN_BYTES: usize = 1024;
/// Signing keys shorter than this are refused: HMAC-SHA256 wants at least 256 bits.
pub const MIN_KEY_BYTES: usize = 32;

/// One signing key. Its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    kid: String,
    secret: Vec<u8>,
}

impl SigningKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let secret = secret.into();
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                bytes: secret.len(),
            });
        }
        let mut hash = Sha256::new();
        hash.update(b"clanwar-session-kid\0");
        hash.update(&secret);
        let kid = hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self { kid, secret })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(payload);
        mac
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("signing key has {bytes} bytes; at least {MIN_KEY_BYTES} are needed")]
    TooShort { bytes: usize },
}

/// The keys tokens may be signed with: new tokens are signed with `current`; `previous` (the key
/// before the last rotation) still verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

impl KeyRing {
    pub fn new(current: SigningKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    pub fn with_previous(mut self, previous: SigningKey) -> Self {
        self.previous = Some(previous);
        self
    }

    fn find(&self, kid: &str) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
    }
}

/// What a token says, once its MAC is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The player.
    pub sub: PlayerId,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds: the token is refused from that second on.
    pub exp: i64,
    /// The signing key's id.
    pub kid: String,
}

/// Why a token is refused. The messages never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed session token")]
    Malformed,
    #[error("session token signed with an unknown key")]
    UnknownKey,
    #[error("session token signature does not verify")]
    BadSignature,
    #[error("session token expired")]
    Expired,
}

/// Signs `claims` with `key` (whose id must be `claims.kid`).
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    debug_assert_eq!(claims.kid, key.kid);
    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize to JSON"));
    let mac = key.mac(payload.as_bytes()).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The token's parts, decoded but not verified.
struct Parsed<'a> {
    payload: &'a str,
    mac: Vec<u8>,
    claims: Claims,
}

fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let (payload, mac) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenError::Malformed)?;
    if mac.len() != 32 {
        return Err(TokenError::Malformed); // HMAC-SHA256 is 32 bytes
    }
    let claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    Ok(Parsed {
        payload,
        mac,
        claims,
    })
}

/// The key id a token names, unverified: which key ring to verify it against (a kid the cached
/// ring lacks means the key was rotated since).
pub fn key_id(token: &str) -> Result<String, TokenError> {
    Ok(parse(token)?.claims.kid)
}

/// Verifies the token's MAC (constant-time) with the key its `kid` names, then its expiry.
/// Nothing of the claims is trusted before the MAC verifies.
pub fn verify(token: &str, keys: &KeyRing, now: DateTime<Utc>) -> Result<Claims, TokenError> {
    let parsed = parse(token)?;
    let key = keys
        .find(&parsed.claims.kid)
        .ok_or(TokenError::UnknownKey)?;
    key.mac(parsed.payload.as_bytes())
        .verify_slice(&parsed.mac)
        .map_err(|_| TokenError::BadSignature)?;
    if now.timestamp() >= parsed.claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(parsed.claims)
}

/// The signing keys, wherever they are kept.
#[async_trait]
pub trait SessionKeys: Send + Sync {
    /// The key ring; adapters cache it and read it again every so often.
    async fn key_ring(&self) -> Result<Arc<KeyRing>, StoreError>;
    /// The key ring read again now (a token names a key the cached ring lacks: the key was
    /// rotated since). Adapters may rate-limit this and answer from the cache.
    async fn reload(&self) -> Result<Arc<KeyRing>, StoreError>;
}

/// An issued token, as `POST /players/{player_id}/session-token` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionToken {
    pub player_id: PlayerId,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a connection is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the session keys are unavailable")]
    Unavailable(#[source] StoreError),
}

/// Issues and verifies session tokens.
#[derive(Clone)]
pub struct Sessions {
    pub keys: Arc<dyn SessionKeys>,
    pub clock: Arc<dyn Clock>,
    /// How long an issued token is valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// A token for `player`, signed with the current key.
    pub async fn issue(&self, player: &PlayerId) -> DomainResult<SessionToken> {
        let keys = self
            .keys
            .key_ring()
            .await
            .map_err(DomainError::Unavailable)?;
        let now = self.clock.now();
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: player.clone(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            kid: keys.current.kid().to_owned(),
        };
        Ok(SessionToken {
            player_id: player.clone(),
            token: sign(&keys.current, &claims),
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires_at),
        })
    }

    /// The player a valid token names. A token naming a key the cached ring lacks makes the
    /// ring be read again (once) before it is refused: a key rotated in the meantime.
    pub async fn authenticate(&self, token: &str) -> Result<PlayerId, AuthError> {
        let kid = key_id(token)?;
        let mut keys = self.keys.key_ring().await.map_err(AuthError::Unavailable)?;
        if keys.find(&kid).is_none() {
            keys = self.keys.reload().await.map_err(AuthError::Unavailable)?;
        }
        Ok(verify(token, &keys, self.clock.now())?.sub)
    }
}

/// An in-memory key ring, for tests.
#[cfg(any(test, feature = "testing"))]
pub mod memory {
    use super::*;
    use std::sync::Mutex;

    /// Answers `key_ring` from `cached` and `reload` from `stored` (then caching it), like a
    /// cache in front of a secret store; `reloads` counts the reloads.
    #[derive(Debug)]
    pub struct MemorySessionKeys {
        pub cached: Mutex<Arc<KeyRing>>,
        pub stored: Mutex<Arc<KeyRing>>,
        pub reloads: Mutex<usize>,
    }

    /// Sessions over one fixed in-memory key (tokens valid one hour), for tests of the routes.
    pub fn sessions(clock: Arc<dyn Clock>) -> Sessions {
        let key = SigningKey::new(b"in-memory session key, for tests only".to_vec())
            .expect("long enough");
        Sessions {
            keys: Arc::new(MemorySessionKeys::new(KeyRing::new(key))),
            clock,
            ttl: Duration::hours(1),
        }
    }

    impl MemorySessionKeys {
        pub fn new(ring: KeyRing) -> Self {
            let ring = Arc::new(ring);
            Self {
                cached: Mutex::new(ring.clone()),
                stored: Mutex::new(ring),
                reloads: Mutex::new(0),
            }
        }
    }

    #[async_trait]
    impl SessionKeys for MemorySessionKeys {
        async fn key_ring(&self) -> Result<Arc<KeyRing>, StoreError> {
            Ok(self.cached.lock().expect("poisoned").clone())
        }
        async fn reload(&self) -> Result<Arc<KeyRing>, StoreError> {
            *self.reloads.lock().expect("poisoned") += 1;
            let stored = self.stored.lock().expect("poisoned").clone();
            *self.cached.lock().expect("poisoned") = stored.clone();
            Ok(stored)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemorySessionKeys;
    use super::*;
    use proptest::prelude::*;

    fn key(fill: u8) -> SigningKey {
        SigningKey::new(vec![fill; 40]).unwrap()
    }

    fn player(id: &str) -> PlayerId {
        PlayerId::new(id).unwrap()
    }

    fn claims(key: &SigningKey, exp: i64) -> Claims {
        Claims {
            sub: player("p-1"),
            iat: 1_000,
            exp,
            kid: key.kid().to_owned(),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let k = key(1);
        let token = sign(&k, &claims(&k, 2_000));
        let ring = KeyRing::new(k);
        assert_eq!(verify(&token, &ring, at(1_999)).unwrap().sub, player("p-1"));
        assert_eq!(verify(&token, &ring, at(2_000)), Err(TokenError::Expired));
    }

    #[test]
    fn the_previous_key_still_verifies_and_an_unknown_one_does_not() {
        let (old, new, other) = (key(1), key(2), key(3));
        let old_token = sign(&old, &claims(&old, 2_000));
        let rotated = KeyRing::new(new.clone()).with_previous(old.clone());
        assert!(verify(&old_token, &rotated, at(1_500)).is_ok());
        let new_token = sign(&new, &claims(&new, 2_000));
        assert!(verify(&new_token, &rotated, at(1_500)).is_ok());
        // Rotated twice: the oldest key is gone.
        let twice = KeyRing::new(other).with_previous(new);
        assert_eq!(
            verify(&old_token, &twice, at(1_500)),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_with_a_forged_kid_does_not_verify() {
        let (real, forger) = (key(1), key(2));
        let mut forged = claims(&forger, 2_000);
        forged.kid = real.kid().to_owned(); // claims to be signed by the real key
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let mac = forger.mac(payload.as_bytes()).finalize().into_bytes();
        let token = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac));
        assert_eq!(
            verify(&token, &KeyRing::new(real), at(1_500)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let k = key(1);
        let ring = KeyRing::new(k.clone());
        let good = sign(&k, &claims(&k, 2_000));
        let (payload, mac) = good.split_once('.').unwrap();
        let not_json = URL_SAFE_NO_PAD.encode(b"not json");
        let unknown_field = URL_SAFE_NO_PAD
            .encode(br#"{"sub":"p-1","iat":1,"exp":9999999999,"kid":"x","admin":true}"#);
        for bad in [
            String::new(),
            "abc".into(),
            payload.to_owned(),
            format!("{payload}."),
            format!(".{mac}"),
            format!("{payload}.{mac}.extra"),
            format!("{payload}=.{mac}"),
            format!("{not_json}.{mac}"),
            format!("{unknown_field}.{mac}"),
            "a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(
                verify(&bad, &ring, at(1_500)),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn short_keys_are_refused_and_debug_never_shows_the_key() {
        assert_eq!(
            SigningKey::new(vec![7; 31]),
            Err(KeyError::TooShort { bytes: 31 })
        );
        let k = SigningKey::new(b"super-secret-key-material-0123456789".to_vec()).unwrap();
        let shown = format!("{k:?} {:?}", KeyRing::new(k.clone()));
        assert!(!shown.contains("super-secret"), "{shown}");
        assert_eq!(k.kid().len(), 16);
        assert_ne!(k.kid(), key(1).kid());
    }

    #[derive(Debug)]
    struct FixedClock(DateTime<Utc>);
    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
        fn pause(&self, _: std::time::Duration) -> futures_util::future::BoxFuture<'static, ()> {
            Box::pin(std::future::ready(()))
        }
    }

    fn sessions(keys: Arc<MemorySessionKeys>, now: i64) -> Sessions {
        Sessions {
            keys,
            clock: Arc::new(FixedClock(at(now))),
            ttl: Duration::seconds(600),
        }
    }

    #[tokio::test]
    async fn an_issued_token_authenticates_its_player_until_its_expiry() {
        let keys = Arc::new(MemorySessionKeys::new(KeyRing::new(key(1))));
        let issued = sessions(keys.clone(), 1_000)
            .issue(&player("p-9"))
            .await
            .unwrap();
        assert_eq!(issued.expires_at, at(1_600));
        let later = sessions(keys.clone(), 1_599);
        assert_eq!(
            later.authenticate(&issued.token).await.unwrap(),
            player("p-9")
        );
        let expired = sessions(keys, 1_600).authenticate(&issued.token).await;
        assert!(matches!(
            expired,
            Err(AuthError::Token(TokenError::Expired))
        ));
    }

    #[tokio::test]
    async fn a_key_rotated_since_the_cache_was_filled_is_read_again_once() {
        let (old, new) = (key(1), key(2));
        let keys = Arc::new(MemorySessionKeys::new(KeyRing::new(old.clone())));
        // Rotated in the store; the cache still has the old ring.
        *keys.stored.lock().unwrap() = Arc::new(KeyRing::new(new.clone()).with_previous(old));
        let token = sign(&new, &claims(&new, 2_000));
        let s = sessions(keys.clone(), 1_500);
        assert_eq!(s.authenticate(&token).await.unwrap(), player("p-1"));
        assert_eq!(*keys.reloads.lock().unwrap(), 1);
        // Known now: no further reload.
        s.authenticate(&token).await.unwrap();
        assert_eq!(*keys.reloads.lock().unwrap(), 1);
        // A key nobody has: one reload, then refused.
        let stranger = key(9);
        let bad = sign(&stranger, &claims(&stranger, 2_000));
        assert!(matches!(
            s.authenticate(&bad).await,
            Err(AuthError::Token(TokenError::UnknownKey))
        ));
    }

    proptest! {
        /// Changing any one character of a valid token, or cutting it anywhere, never yields a
        /// token that verifies.
        #[test]
        fn a_tampered_token_never_verifies(
            position in any::<prop::sample::Index>(),
            replacement in prop::char::range('!', '~'),
            cut in any::<prop::sample::Index>(),
            exp in 1_001i64..4_000_000_000,
            fill in any::<u8>(),
        ) {
            let k = key(fill);
            let token = sign(&k, &claims(&k, exp));
            let ring = KeyRing::new(k);
            prop_assert!(verify(&token, &ring, at(1_000)).is_ok());
            let mut chars: Vec<char> = token.chars().collect();
            let i = position.index(chars.len());
            if chars[i] != replacement {
                chars[i] = replacement;
                let tampered: String = chars.into_iter().collect();
                prop_assert!(verify(&tampered, &ring, at(1_000)).is_err(), "{}", tampered);
            }
            let cut = &token[..cut.index(token.len())];
            prop_assert!(verify(cut, &ring, at(1_000)).is_err());
        }

        /// Whatever a client sends, verification answers (never panics) and only a token
        /// signed by a ring key passes.
        #[test]
        fn arbitrary_input_is_refused(input in "\\PC{0,300}") {
            let ring = KeyRing::new(key(5));
            prop_assert!(verify(&input, &ring, at(1_000)).is_err());
        }
    }
}
