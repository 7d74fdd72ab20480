//! Per-route authorization: `none`, `bearer` tokens, API keys in a header,
//! and `basic` users with salted password hashes.
//!
//! An [`Authorizer`] is built once per shard from an [`AuthConfig`] (it keeps
//! a shard-local cache, so it is `!Send` by design) and answers
//! [`Authorizer::check`] for each request head with a [`Decision`]:
//!
//! | request                                              | decision     | status |
//! |------------------------------------------------------|--------------|--------|
//! | no credential, or one of another scheme              | `Missing`    | 401 + `WWW-Authenticate: `[`Authorizer::challenge`] |
//! | a well-formed credential that is not accepted        | `Denied`     | 403    |
//! | two or more credential fields, or malformed syntax   | `BadRequest` | 400    |
//! | an accepted credential                               | `Allow`      | forward (minus [`Authorizer::strip_header`]) |
//!
//! Why these lines fall where they do:
//! - Another scheme (`Basic` on a bearer route) is `Missing`, not `Denied`:
//!   the client has not presented anything this route could check, and the
//!   401's challenge tells it which scheme to use (RFC 9110 §11.6.1).
//! - More than one `Authorization` line is `BadRequest`: the field is not a
//!   list (RFC 9110 §11.6.2 `credentials`), so repeating it is invalid
//!   (§5.3), and it is ambiguous between hops: we would check one line while
//!   a backend that reads credentials itself (`keep_credentials`) might use
//!   another. The codec refuses duplicate Host and Content-Length for the
//!   same reason. The same holds for two lines of an API-key header.
//! - Malformed credentials (non-token68 bearer token, bad or non-canonical
//!   base64, no `:` in basic credentials) are `BadRequest`, as RFC 6750 §3.1
//!   does for `invalid_request`: no well-formed credential was presented, and
//!   403 would claim one was checked.
//!
//! Scheme names compare case-insensitively (RFC 9110 §11.1); the credential
//! follows after one or more spaces (§11.4: `auth-scheme [ 1*SP token68 ]`).
//!
//! # Timing
//!
//! Bearer tokens and API keys are stored as SHA-256 digests. A presented
//! value is hashed, and its digest compared with *every* configured digest
//! with `subtle`'s constant-time equality, folding the results without an
//! early exit, so neither the content of a configured token, nor its length,
//! nor its position in the list shows in the response time.
//!
//! # Basic users and the stored hash format
//!
//! A user's password is stored as an Argon2 PHC string (the format of
//! `argon2`, `libsodium`, `passlib`, Python's `argon2-cffi`):
//!
//! ```text
//! $argon2id$v=19$m=19456,t=2,p=1$<salt, base64 without padding>$<hash, base64 without padding>
//! ```
//!
//! [`hash_password`] produces it (exposed as `corelay hash-password`) with
//! Argon2id, version 19 (0x13), a random 16-byte salt, and the parameters of
//! [`HASH_M_COST_KIB`], [`HASH_T_COST`] and [`HASH_P_COST`]. Hashes made by
//! other tools verify too, as long as they are Argon2 (`argon2id`, `argon2i`
//! or `argon2d`) within [`MAX_M_COST_KIB`] and [`MAX_T_COST`];
//! [`Authorizer::new`] checks every hash at start-up and names the user whose
//! hash is unusable.
//!
//! # Cost on the shard, and the verification cache
//!
//! One Argon2 verification with the default parameters costs tens of
//! milliseconds of CPU (~60 ms measured on a 2-core CI VM in release,
//! seconds in a debug build), during which the shard serves no other
//! connection. So each successful verification is remembered, per shard:
//! the key is a SHA-256 digest of the decoded `user:password` bytes,
//! prefixed with a random per-shard key (so a memory dump holds no plain,
//! precomputable SHA-256 of a password), and the value is the user name.
//! A repeated request with the same credentials (every request of a
//! logged-in browser) then costs one SHA-256, not one Argon2.
//!
//! Trade-offs:
//! - Failures are never cached: a cache of failures could be filled by
//!   anyone with random passwords, and would evict good entries. Only a
//!   correct password can create an entry, and each user has one correct
//!   password, so the cache holds at most one entry per user;
//!   [`CACHE_CAPACITY`] bounds it anyway (first in, first out).
//! - Entries never expire: the configuration is static, so a changed
//!   password (a new hash in the config) takes a restart, which empties the
//!   cache. A revoked password keeps working until then, exactly as it would
//!   without the cache.
//! - A cache entry is a fast hash of a valid password, which is weaker than
//!   the Argon2 hash against offline guessing; but reading it takes the
//!   process's memory, where the plaintext passes by in every request buffer
//!   anyway, and the per-shard random key rules out precomputed tables.
//! - A wrong password, or an unknown user, still costs one full Argon2 run
//!   on the shard. An unknown user is verified against the first user's hash
//!   (and denied whatever the result) so that response times do not tell
//!   which user names exist. A client can thus spend a shard's CPU by
//!   sending wrong passwords; limiting that is a rate limiter's job (see
//!   [`Authorizer::verifications`] to watch it), and cached users are not
//!   slowed by it beyond the shared core time. Running verifications on
//!   glommio's blocking thread pool would take them off the shard entirely;
//!   that needs an asynchronous check, which this module does not offer yet.
//!
//! # Secrets in logs
//!
//! `Debug` for [`AuthConfig`] and [`Authorizer`] prints no token, key or
//! hash, only how many there are. The one identity meant to be printed (by
//! the access log) is the basic-auth user name in [`Decision::Allow`].

mod base64;

/// SHA-256 from the `sha2` crate, under the names this module uses.
mod sha256 {
    use sha2::Digest;

    pub const DIGEST_LEN: usize = 32;

    pub fn digest(data: &[u8]) -> [u8; DIGEST_LEN] {
        sha2::Sha256::digest(data).into()
    }

    #[derive(Default)]
    pub struct Sha256(sha2::Sha256);

    impl Sha256 {
        pub fn new() -> Sha256 {
            Sha256::default()
        }

        pub fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }

        pub fn finish(self) -> [u8; DIGEST_LEN] {
            self.0.finalize().into()
        }
    }
}

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHashString, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, Version};
use subtle::{Choice, ConstantTimeEq};

use crate::http1::RequestHead;
use sha256::{Sha256, DIGEST_LEN};

/// Argon2 memory cost of [`hash_password`], in KiB: 19 MiB, with
/// [`HASH_T_COST`] = 2, is OWASP's recommended Argon2id configuration and
/// RustCrypto's default. It makes a guess cost ~19 MiB of memory traffic
/// (what GPUs are bad at); one verification then takes tens of
/// milliseconds, which the per-shard cache keeps off the common path.
pub const HASH_M_COST_KIB: u32 = 19 * 1024;

/// Argon2 passes of [`hash_password`] (see [`HASH_M_COST_KIB`]).
pub const HASH_T_COST: u32 = 2;

/// Argon2 lanes of [`hash_password`]: 1, since the `argon2` crate computes
/// lanes one after the other on the calling thread anyway, so more lanes
/// would cost the shard time without making a guess any dearer.
pub const HASH_P_COST: u32 = 1;

/// The largest Argon2 memory cost accepted in a stored hash, in KiB (64 MiB,
/// above OWASP's largest recommendation of 46 MiB). Each verification
/// allocates this much on the shard and spends time in proportion to it, so
/// a hash with an absurd cost (a typo, or a hostile config) would make every
/// login a stall or an out-of-memory; refusing it at start-up is cheaper.
pub const MAX_M_COST_KIB: u32 = 64 * 1024;

/// The largest Argon2 pass count accepted in a stored hash, for the same
/// reason as [`MAX_M_COST_KIB`]: verification time grows linearly with it.
pub const MAX_T_COST: u32 = 10;

/// Successful basic-auth verifications remembered per shard. There is at
/// most one entry per user (see the module docs), so this only matters for
/// configs with more users than this; 1,024 entries take ~100 KiB.
pub const CACHE_CAPACITY: usize = 1024;

/// Realm for a route whose config names none. The realm is what a browser
/// shows in its login prompt and the scope it reuses credentials for, so one
/// fixed name keeps one login for every route of the proxy unless the config
/// wants them apart.
pub const DEFAULT_REALM: &str = "corelay";

/// Bytes of the random per-shard key mixed into cache keys.
const CACHE_KEY_SALT_LEN: usize = 32;

/// Header names an API key may not be carried in: the codec rewrites or
/// drops them (framing, routing, hop-by-hop, proxy fields), so a key there
/// would be read differently from what the codec acts on, or stripping it
/// would break the request.
const RESERVED_KEY_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "max-forwards",
];

/// How one route authorizes its requests.
#[derive(Clone, Default)]
pub enum AuthConfig {
    /// Everyone may pass.
    #[default]
    None,
    /// `Authorization: Bearer <token>`, with one of `tokens` (RFC 6750).
    Bearer { realm: String, tokens: Vec<String> },
    /// `<header>: <key>`, with one of `keys` (e.g. `X-Api-Key`).
    ApiKey { header: String, keys: Vec<String> },
    /// `Authorization: Basic <base64(user:password)>` (RFC 7617); `users`
    /// holds (user name, stored hash as produced by [`hash_password`]).
    Basic {
        realm: String,
        users: Vec<(String, String)>,
    },
}

impl fmt::Debug for AuthConfig {
    /// Secrets are counted, never printed: config values end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthConfig::None => f.write_str("None"),
            AuthConfig::Bearer { realm, tokens } => f
                .debug_struct("Bearer")
                .field("realm", realm)
                .field("tokens", &Redacted(tokens.len()))
                .finish(),
            AuthConfig::ApiKey { header, keys } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("keys", &Redacted(keys.len()))
                .finish(),
            AuthConfig::Basic { realm, users } => f
                .debug_struct("Basic")
                .field("realm", realm)
                .field(
                    "users",
                    &users.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(),
                )
                .field("hashes", &Redacted(users.len()))
                .finish(),
        }
    }
}

/// Prints as `<N redacted>`.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted>", self.0)
    }
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward it. `user` is the basic-auth user name (for the access log);
    /// `None` for the other schemes, whose tokens have no name to print.
    Allow { user: Option<Rc<str>> },
    /// 401 with `WWW-Authenticate: ` [`Authorizer::challenge`].
    Missing,
    /// 403.
    Denied,
    /// 400, with a short reason for logs (never containing the credential).
    BadRequest(&'static str),
    /// 503 with `Retry-After`: the shard's budget of password verifications is spent
    /// (see [`VERIFICATIONS_PER_SECOND`]).
    Throttled,
}

impl Decision {
    /// The status to answer with, or `None` to forward the request.
    pub fn status(&self) -> Option<u16> {
        match self {
            Decision::Allow { .. } => None,
            Decision::Missing => Some(401),
            Decision::Denied => Some(403),
            Decision::BadRequest(_) => Some(400),
            Decision::Throttled => Some(503),
        }
    }
}

/// Argon2 verifications (cache misses) a shard runs per second, at most. Each costs tens of
/// milliseconds of the shard's CPU, time in which none of its other connections move, so a
/// flood of wrong passwords would otherwise stall the core. Legitimate users need one
/// verification per shard until the cache holds them; beyond the budget, cache misses get
/// 503 with `Retry-After` while cached users keep passing.
pub const VERIFICATIONS_PER_SECOND: u32 = 5;

/// Tokens the verification budget can save up: a burst of new users after a start.
const VERIFICATION_BURST: u32 = 10;

/// A token bucket for password verifications.
struct Budget {
    per_second: Cell<f64>,
    burst: Cell<f64>,
    tokens: Cell<f64>,
    at: Cell<std::time::Instant>,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            per_second: Cell::new(f64::from(VERIFICATIONS_PER_SECOND)),
            burst: Cell::new(f64::from(VERIFICATION_BURST)),
            tokens: Cell::new(f64::from(VERIFICATION_BURST)),
            at: Cell::new(std::time::Instant::now()),
        }
    }

    fn take(&self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.at.get()).as_secs_f64() * self.per_second.get();
        let tokens = (self.tokens.get() + refill).min(self.burst.get());
        self.at.set(now);
        if tokens >= 1.0 {
            self.tokens.set(tokens - 1.0);
            true
        } else {
            self.tokens.set(tokens);
            false
        }
    }
}

/// One route's authorization, for one shard.
pub struct Authorizer {
    scheme: Scheme,
    /// `WWW-Authenticate` value for 401s, built once.
    challenge: Option<Box<str>>,
    /// The header to remove before forwarding, unless the route keeps it.
    strip: Option<Box<[u8]>>,
}

enum Scheme {
    None,
    Bearer {
        digests: Box<[[u8; DIGEST_LEN]]>,
    },
    ApiKey {
        header: Box<str>,
        digests: Box<[[u8; DIGEST_LEN]]>,
    },
    Basic(Box<Basic>),
}

struct Basic {
    users: Box<[User]>,
    cache: RefCell<Cache>,
    /// Argon2 verifications run so far (cache misses, including failures).
    verifications: Cell<u64>,
    /// Scratch for decoded credentials, reused between requests.
    decoded: RefCell<Vec<u8>>,
    budget: Budget,
}

struct User {
    name: Rc<str>,
    hash: PasswordHashString,
}

impl Authorizer {
    /// Builds the authorizer for a route, checking the whole config: tokens
    /// and keys are sendable, the realm can be quoted, user names can be
    /// presented, and every stored hash is a usable Argon2 PHC string (the
    /// error names the user, never the hash). `keep_credentials` = true
    /// forwards the credential header to the backend; by default the proxy
    /// consumes it.
    pub fn new(cfg: &AuthConfig, keep_credentials: bool) -> Result<Authorizer, String> {
        let (scheme, challenge, header) = match cfg {
            AuthConfig::None => (Scheme::None, None, None),
            AuthConfig::Bearer { realm, tokens } => {
                check_realm(realm)?;
                if tokens.is_empty() {
                    return Err("bearer auth needs at least one token".into());
                }
                for (i, t) in tokens.iter().enumerate() {
                    if !is_token68(t.as_bytes()) {
                        return Err(format!(
                            "bearer token #{} is not a valid token68 (letters, digits, \
                             -._~+/ then optional =, RFC 9110 §11.2)",
                            i + 1
                        ));
                    }
                }
                let digests = tokens
                    .iter()
                    .map(|t| sha256::digest(t.as_bytes()))
                    .collect();
                (
                    Scheme::Bearer { digests },
                    Some(format!("Bearer realm=\"{realm}\"")),
                    Some("Authorization"),
                )
            }
            AuthConfig::ApiKey { header, keys } => {
                if header.is_empty() || !header.bytes().all(is_tchar) {
                    return Err(format!(
                        "API key header {header:?} is not a valid field name"
                    ));
                }
                if RESERVED_KEY_HEADERS
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(header))
                {
                    return Err(format!(
                        "API key header {header:?} is one the proxy rewrites or drops"
                    ));
                }
                if keys.is_empty() {
                    return Err("API key auth needs at least one key".into());
                }
                for (i, k) in keys.iter().enumerate() {
                    // Visible ASCII only: httparse trims surrounding blanks,
                    // so a key with them could never match, and a key with
                    // CR/LF or other controls could not be sent at all.
                    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(format!(
                            "API key #{} must be non-empty visible ASCII (no spaces)",
                            i + 1
                        ));
                    }
                }
                let digests = keys.iter().map(|k| sha256::digest(k.as_bytes())).collect();
                (
                    Scheme::ApiKey {
                        header: header.as_str().into(),
                        digests,
                    },
                    // No standard scheme exists for API keys, but RFC 9110
                    // §15.5.2 requires a challenge on every 401. This one is
                    // syntactically valid (auth-scheme + auth-param), ignored
                    // by browsers and HTTP libraries as an unknown scheme, and
                    // tells a person reading the response which header to
                    // send. The header name is a token, so needs no quoting
                    // beyond the quotes.
                    Some(format!("ApiKey header=\"{header}\"")),
                    Some(header.as_str()),
                )
            }
            AuthConfig::Basic { realm, users } => {
                check_realm(realm)?;
                (
                    Scheme::Basic(Box::new(Basic::new(users)?)),
                    // RFC 7617 §2.1: charset="UTF-8" tells clients to send the
                    // user name and password as UTF-8 (as hash_password takes
                    // them), not in a legacy charset.
                    Some(format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")),
                    Some("Authorization"),
                )
            }
        };
        Ok(Authorizer {
            scheme,
            challenge: challenge.map(String::into_boxed_str),
            strip: header
                .filter(|_| !keep_credentials)
                .map(|h| h.as_bytes().into()),
        })
    }

    /// Decides about the request whose head `head` was parsed from `buf`.
    pub fn check(&self, buf: &[u8], head: &RequestHead) -> Decision {
        match &self.scheme {
            Scheme::None => Decision::Allow { user: None },
            Scheme::Bearer { digests } => {
                let token = match credentials(buf, head, "Authorization", b"bearer") {
                    Ok(t) => t,
                    Err(d) => return d,
                };
                if !is_token68(token) {
                    return Decision::BadRequest("malformed Bearer credentials");
                }
                allow_if(matches_any(digests, token))
            }
            Scheme::ApiKey { header, digests } => {
                let key = match single_field(buf, head, header) {
                    Ok(Some(k)) if !k.is_empty() => k,
                    Ok(_) => return Decision::Missing,
                    Err(d) => return d,
                };
                allow_if(matches_any(digests, key))
            }
            Scheme::Basic(basic) => {
                let encoded = match credentials(buf, head, "Authorization", b"basic") {
                    Ok(t) => t,
                    Err(d) => return d,
                };
                basic.check(encoded)
            }
        }
    }

    /// The `WWW-Authenticate` value to send with a 401; `None` for a route
    /// without authorization (which never answers 401).
    pub fn challenge(&self) -> Option<&str> {
        self.challenge.as_deref()
    }

    /// The header to leave out when forwarding (`Authorization` or the API
    /// key header), or `None` when there is none or the route keeps
    /// credentials. Made for [`crate::http1::ForwardInfo::strip`]:
    /// `let s = authz.strip_header(); ForwardInfo { strip: s.as_slice(), .. }`.
    pub fn strip_header(&self) -> Option<&[u8]> {
        self.strip.as_deref()
    }

    /// Changes the verification budget (tests use a large one to count verifications, and a
    /// small one to see throttling).
    #[cfg(test)]
    pub(crate) fn set_verification_budget(&self, per_second: u32, burst: u32) {
        if let Scheme::Basic(b) = &self.scheme {
            b.budget.per_second.set(f64::from(per_second));
            b.budget.burst.set(f64::from(burst));
            b.budget.tokens.set(f64::from(burst));
        }
    }

    /// Argon2 verifications run by this shard so far: basic-auth cache
    /// misses, successful or not (0 for other schemes). Each is tens of milliseconds
    /// of shard CPU, so a climbing count without new users is worth a
    /// metric or an alert.
    pub fn verifications(&self) -> u64 {
        match &self.scheme {
            Scheme::Basic(b) => b.verifications.get(),
            _ => 0,
        }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Authorizer");
        match &self.scheme {
            Scheme::None => d.field("scheme", &"none"),
            Scheme::Bearer { digests } => d
                .field("scheme", &"bearer")
                .field("tokens", &Redacted(digests.len())),
            Scheme::ApiKey { header, digests } => d
                .field("scheme", &"api-key")
                .field("header", header)
                .field("keys", &Redacted(digests.len())),
            Scheme::Basic(b) => d
                .field("scheme", &"basic")
                .field(
                    "users",
                    &b.users.iter().map(|u| &*u.name).collect::<Vec<_>>(),
                )
                .field("cached", &b.cache.borrow().len()),
        };
        d.field("challenge", &self.challenge)
            .field("strip", &self.strip.as_deref().map(String::from_utf8_lossy))
            .finish()
    }
}

impl Basic {
    fn new(users: &[(String, String)]) -> Result<Basic, String> {
        if users.is_empty() {
            return Err("basic auth needs at least one user".into());
        }
        let mut out: Vec<User> = Vec::with_capacity(users.len());
        for (name, stored) in users {
            // RFC 7617 §2: the user-id cannot contain ':' (the password
            // starts at the first one) nor control characters.
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
                return Err(format!(
                    "basic auth user {name:?}: a user name must be non-empty, \
                     without ':' or control characters"
                ));
            }
            if out.iter().any(|u| *u.name == **name) {
                return Err(format!("basic auth user {name:?} is listed twice"));
            }
            let hash = check_stored_hash(stored)
                .map_err(|why| format!("basic auth user {name:?}: password hash {why}"))?;
            out.push(User {
                name: name.as_str().into(),
                hash,
            });
        }
        Ok(Basic {
            users: out.into(),
            cache: RefCell::new(Cache::new(CACHE_CAPACITY)),
            verifications: Cell::new(0),
            decoded: RefCell::new(Vec::new()),
            budget: Budget::new(),
        })
    }

    /// Checks `Basic` credentials (the base64 part).
    fn check(&self, encoded: &[u8]) -> Decision {
        let mut decoded = self.decoded.borrow_mut();
        if base64::decode(encoded, &mut decoded).is_err() {
            return Decision::BadRequest("malformed Basic credentials");
        }
        let decision = self.check_decoded(&decoded);
        // The password should not outlive the request in our scratch.
        decoded.fill(0);
        decision
    }

    fn check_decoded(&self, decoded: &[u8]) -> Decision {
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return Decision::BadRequest("Basic credentials without ':'");
        };
        let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let mut cache = self.cache.borrow_mut();
        let key = cache.key(decoded);
        if let Some(user) = cache.get(&key) {
            return Decision::Allow {
                user: Some(user.clone()),
            };
        }
        if !self.budget.take() {
            return Decision::Throttled;
        }
        let user = self.users.iter().find(|u| u.name.as_bytes() == name);
        // An unknown user is verified against a real hash too, and denied
        // whatever the outcome, so that timing does not reveal user names.
        let hash = user.unwrap_or(&self.users[0]).hash.password_hash();
        self.verifications.set(self.verifications.get() + 1);
        let ok = Argon2::default().verify_password(password, &hash).is_ok();
        match user {
            Some(u) if ok => {
                cache.insert(key, u.name.clone());
                Decision::Allow {
                    user: Some(u.name.clone()),
                }
            }
            _ => Decision::Denied,
        }
    }
}

/// The successful-verification cache: credential digest → user name, first
/// in first out beyond `capacity`.
struct Cache {
    capacity: usize,
    map: HashMap<[u8; DIGEST_LEN], Rc<str>>,
    order: VecDeque<[u8; DIGEST_LEN]>,
    /// Random per-shard prefix of every key (see the module docs).
    salt: [u8; CACHE_KEY_SALT_LEN],
}

impl Cache {
    fn new(capacity: usize) -> Cache {
        let mut salt = [0; CACHE_KEY_SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        Cache {
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
            salt,
        }
    }

    fn key(&self, credentials: &[u8]) -> [u8; DIGEST_LEN] {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(credentials);
        h.finish()
    }

    fn get(&self, key: &[u8; DIGEST_LEN]) -> Option<&Rc<str>> {
        self.map.get(key)
    }

    fn insert(&mut self, key: [u8; DIGEST_LEN], user: Rc<str>) {
        if self.map.insert(key, user).is_none() {
            self.order.push_back(key);
            if self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Produces the stored form of `password`: an Argon2id PHC string with a
/// fresh random salt and the `HASH_*` parameters (see the module docs).
/// Takes tens of milliseconds: for the command line, never a shard.
pub fn hash_password(password: &str) -> String {
    let params = Params::new(HASH_M_COST_KIB, HASH_T_COST, HASH_P_COST, None)
        .expect("HASH_* constants are valid Argon2 parameters");
    hash_password_with(password, params)
}

fn hash_password_with(password: &str, params: Params) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id accepts any password with a generated salt")
        .to_string()
}

/// Parses and checks one stored hash; the error says why (never the hash).
fn check_stored_hash(stored: &str) -> Result<PasswordHashString, String> {
    let owned = PasswordHashString::new(stored)
        .map_err(|e| format!("is not a PHC string ({e}); make one with `corelay hash-password`"))?;
    let hash: PasswordHash<'_> = owned.password_hash();
    Algorithm::try_from(hash.algorithm)
        .map_err(|_| format!("uses {}, not argon2id/argon2i/argon2d", hash.algorithm))?;
    if let Some(v) = hash.version {
        Version::try_from(v).map_err(|_| format!("has unknown Argon2 version {v}"))?;
    }
    let params = Params::try_from(&hash).map_err(|e| format!("has bad parameters ({e})"))?;
    if params.m_cost() > MAX_M_COST_KIB || params.t_cost() > MAX_T_COST {
        return Err(format!(
            "costs too much to verify on a shard (m={} KiB, t={}; at most m={MAX_M_COST_KIB}, \
             t={MAX_T_COST})",
            params.m_cost(),
            params.t_cost()
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("has no salt or no hash part".into());
    }
    Ok(owned)
}

/// Whether `presented` is one of the tokens whose digests are `digests`:
/// every digest is compared, in constant time, and the results are OR-ed
/// without branching, so the time depends only on the list's length.
fn matches_any(digests: &[[u8; DIGEST_LEN]], presented: &[u8]) -> bool {
    let d = sha256::digest(presented);
    digests
        .iter()
        .fold(Choice::from(0), |acc, c| acc | c.ct_eq(&d))
        .into()
}

fn allow_if(ok: bool) -> Decision {
    if ok {
        Decision::Allow { user: None }
    } else {
        Decision::Denied
    }
}

/// The value of the only `name` field: `Ok(None)` if there is none,
/// `BadRequest` if there are several.
fn single_field<'b>(
    buf: &'b [u8],
    head: &RequestHead,
    name: &str,
) -> Result<Option<&'b [u8]>, Decision> {
    let mut lines = head.headers.iter().filter(|h| h.is(buf, name));
    let first = lines.next().map(|h| h.value.get(buf));
    if lines.next().is_some() {
        return Err(Decision::BadRequest("repeated credential field"));
    }
    Ok(first)
}

/// The credentials after `scheme` (lower case) in the only `name` field.
/// `Missing` for no field, an empty one, or another scheme; `BadRequest` for
/// repeated fields, or `scheme` with no credentials.
fn credentials<'b>(
    buf: &'b [u8],
    head: &RequestHead,
    name: &str,
    scheme: &[u8],
) -> Result<&'b [u8], Decision> {
    let value = match single_field(buf, head, name)? {
        Some(v) if !v.is_empty() => v,
        _ => return Err(Decision::Missing),
    };
    let split = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    let (got, rest) = value.split_at(split);
    if !got.eq_ignore_ascii_case(scheme) {
        return Err(Decision::Missing);
    }
    // 1*SP between scheme and credentials (RFC 9110 §11.4); the field value
    // has no trailing blanks, so after the spaces something must follow.
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let creds = &rest[spaces..];
    if creds.is_empty() {
        return Err(Decision::BadRequest("scheme without credentials"));
    }
    Ok(creds)
}

/// RFC 9110 §11.2: `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`.
fn is_token68(t: &[u8]) -> bool {
    let body = t.iter().position(|&b| b == b'=').unwrap_or(t.len());
    body > 0
        && t[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        && t[body..].iter().all(|&b| b == b'=')
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A realm goes into a quoted-string verbatim, so it may hold neither the
/// characters that would need escaping nor controls (which could split the
/// response header).
fn check_realm(realm: &str) -> Result<(), String> {
    if realm.is_empty()
        || !realm
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(format!(
            "realm {realm:?} must be non-empty printable ASCII without '\"' or '\\'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
