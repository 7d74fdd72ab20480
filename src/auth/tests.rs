//! Tests of the authorizer on parsed request heads.
//!
//! Basic-auth tests use Argon2 hashes with the smallest parameters (8 KiB,
//! one pass), so that a verification is fast in a debug build; the real
//! parameters are exercised once, in `hash_password_format`.

use std::time::{Duration, Instant};

use super::*;
use crate::http1::{encode_request, parse_request, ForwardInfo, Limits};

/// Cheap Argon2id parameters for tests (the minimum memory for one lane).
fn test_params() -> Params {
    Params::new(8, 1, 1, None).unwrap()
}

fn cheap_hash(password: &str) -> String {
    hash_password_with(password, test_params())
}

/// Parses `headers` (CRLF-terminated lines) under a GET request line and
/// runs `a.check` on it.
fn check(a: &Authorizer, headers: &str) -> Decision {
    let buf = format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
    let mut head = RequestHead::new();
    assert_eq!(
        parse_request(buf.as_bytes(), &Limits::default(), &mut head),
        Ok(true),
        "{buf}"
    );
    a.check(buf.as_bytes(), &head)
}

fn allow(user: Option<&str>) -> Decision {
    Decision::Allow {
        user: user.map(Rc::from),
    }
}

fn bearer(tokens: &[&str]) -> Authorizer {
    Authorizer::new(
        &AuthConfig::Bearer {
            realm: "api".into(),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
        },
        false,
    )
    .unwrap()
}

fn api_key(keys: &[&str]) -> Authorizer {
    Authorizer::new(
        &AuthConfig::ApiKey {
            header: "X-Api-Key".into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        },
        false,
    )
    .unwrap()
}

fn basic_config(users: &[(&str, &str)]) -> AuthConfig {
    AuthConfig::Basic {
        realm: "staff".into(),
        users: users
            .iter()
            .map(|(u, p)| (u.to_string(), cheap_hash(p)))
            .collect(),
    }
}

fn basic(users: &[(&str, &str)]) -> Authorizer {
    Authorizer::new(&basic_config(users), false).unwrap()
}

/// `Authorization: Basic <base64(user:password)>`, with a small encoder.
fn basic_header(credentials: &[u8]) -> String {
    let a = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::from("Authorization: Basic ");
    for c in credentials.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            s.push(if i <= c.len() {
                a[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    s + "\r\n"
}

#[test]
fn none_allows_everything_and_strips_nothing() {
    let a = Authorizer::new(&AuthConfig::None, false).unwrap();
    assert_eq!(check(&a, ""), allow(None));
    assert_eq!(check(&a, "Authorization: Bearer x\r\n"), allow(None));
    assert_eq!(a.challenge(), None);
    assert_eq!(a.strip_header(), None);
    assert_eq!(Decision::Allow { user: None }.status(), None);
}

#[test]
fn bearer_missing_wrong_right() {
    let a = bearer(&["tok-1", "s3cr3t.Token_~+/=="]);
    assert_eq!(check(&a, ""), Decision::Missing);
    assert_eq!(
        check(&a, "Authorization: Bearer nope\r\n"),
        Decision::Denied
    );
    assert_eq!(check(&a, "Authorization: Bearer tok-1\r\n"), allow(None));
    assert_eq!(
        check(&a, "Authorization: Bearer s3cr3t.Token_~+/==\r\n"),
        allow(None)
    );
    // A prefix or extension of a valid token is just a wrong token.
    assert_eq!(
        check(&a, "Authorization: Bearer tok-\r\n"),
        Decision::Denied
    );
    assert_eq!(
        check(&a, "Authorization: Bearer tok-12\r\n"),
        Decision::Denied
    );
    assert_eq!(a.challenge(), Some("Bearer realm=\"api\""));
    assert_eq!(a.strip_header(), Some(&b"Authorization"[..]));
    assert_eq!(Decision::Missing.status(), Some(401));
    assert_eq!(Decision::Denied.status(), Some(403));
}

#[test]
fn bearer_scheme_is_case_insensitive_and_spaces_are_1_sp() {
    let a = bearer(&["tok"]);
    for h in [
        "Authorization: bearer tok\r\n",
        "Authorization: BEARER tok\r\n",
        "authorization: BeArEr   tok\r\n",
    ] {
        assert_eq!(check(&a, h), allow(None), "{h}");
    }
    // The token itself is case-sensitive.
    assert_eq!(check(&a, "Authorization: Bearer TOK\r\n"), Decision::Denied);
}

#[test]
fn bearer_wrong_scheme_is_missing() {
    let a = bearer(&["tok"]);
    for h in [
        "Authorization: Basic dG9rOg==\r\n",
        "Authorization: Bearertok\r\n",
        "Authorization: Token tok\r\n",
        "Authorization:\r\n",
        // The API-key header means nothing on a bearer route.
        "X-Api-Key: tok\r\n",
    ] {
        assert_eq!(check(&a, h), Decision::Missing, "{h}");
    }
}

#[test]
fn bearer_malformed_is_bad_request() {
    let a = bearer(&["tok"]);
    for h in [
        "Authorization: Bearer\r\n",
        "Authorization: Bearer tok tok\r\n",
        "Authorization: Bearer tok, Basic x\r\n",
        "Authorization: Bearer =tok\r\n",
        "Authorization: Bearer to=k\r\n",
        "Authorization: Bearer \ttok\r\n",
        "Authorization: Bearer \"tok\"\r\n",
    ] {
        assert!(
            matches!(check(&a, h), Decision::BadRequest(_)),
            "{h}: {:?}",
            check(&a, h)
        );
    }
    assert_eq!(Decision::BadRequest("x").status(), Some(400));
}

#[test]
fn multiple_authorization_fields_are_bad_request() {
    let a = bearer(&["tok"]);
    // Even when both are right: the backend might read the other one.
    for h in [
        "Authorization: Bearer tok\r\nAuthorization: Bearer tok\r\n",
        "Authorization: Bearer tok\r\nauthorization: Bearer bad\r\n",
        "Authorization: Basic x\r\nAuthorization: Bearer tok\r\n",
        "Authorization: Bearer tok\r\nAuthorization:\r\n",
    ] {
        assert!(matches!(check(&a, h), Decision::BadRequest(_)), "{h}");
    }
    let b = basic(&[("ann", "pw")]);
    let one = basic_header(b"ann:pw");
    assert_eq!(check(&b, &one), allow(Some("ann")));
    assert!(matches!(
        check(&b, &format!("{one}{one}")),
        Decision::BadRequest(_)
    ));
    let k = api_key(&["k1"]);
    assert!(matches!(
        check(&k, "X-Api-Key: k1\r\nx-api-key: k1\r\n"),
        Decision::BadRequest(_)
    ));
}

#[test]
fn api_key_missing_wrong_right() {
    let a = api_key(&["k1-abc", "K2"]);
    assert_eq!(check(&a, ""), Decision::Missing);
    assert_eq!(check(&a, "X-Api-Key:\r\n"), Decision::Missing);
    assert_eq!(
        check(&a, "Authorization: Bearer k1-abc\r\n"),
        Decision::Missing
    );
    assert_eq!(check(&a, "X-Api-Key: nope\r\n"), Decision::Denied);
    assert_eq!(check(&a, "X-Api-Key: k2\r\n"), Decision::Denied);
    assert_eq!(check(&a, "X-Api-Key: k1-abc\r\n"), allow(None));
    // Header names are case-insensitive, values are not.
    assert_eq!(check(&a, "x-api-key: K2\r\n"), allow(None));
    // httparse trims surrounding blanks from field values.
    assert_eq!(check(&a, "X-Api-Key:   K2  \r\n"), allow(None));
    assert_eq!(a.challenge(), Some("ApiKey header=\"X-Api-Key\""));
    assert_eq!(a.strip_header(), Some(&b"X-Api-Key"[..]));
}

#[test]
fn basic_missing_wrong_right() {
    let a = basic(&[("ann", "correct horse"), ("bob", "hunter2")]);
    assert_eq!(check(&a, ""), Decision::Missing);
    assert_eq!(check(&a, &basic_header(b"ann:wrong")), Decision::Denied);
    assert_eq!(
        check(&a, &basic_header(b"bob:correct horse")),
        Decision::Denied
    );
    assert_eq!(check(&a, &basic_header(b"eve:hunter2")), Decision::Denied);
    assert_eq!(check(&a, &basic_header(b"ann:")), Decision::Denied);
    assert_eq!(
        check(&a, &basic_header(b"ann:correct horse")),
        allow(Some("ann"))
    );
    assert_eq!(check(&a, &basic_header(b"bob:hunter2")), allow(Some("bob")));
    assert_eq!(
        a.challenge(),
        Some("Basic realm=\"staff\", charset=\"UTF-8\"")
    );
    assert_eq!(a.strip_header(), Some(&b"Authorization"[..]));
}

#[test]
fn basic_splits_at_first_colon_and_takes_utf8() {
    // RFC 7617 §2: the user-id has no ':', so the password may contain them.
    let a = basic(&[("ann", "a:b:c"), ("zoë", "pässwörd")]);
    assert_eq!(check(&a, &basic_header(b"ann:a:b:c")), allow(Some("ann")));
    assert_eq!(check(&a, &basic_header(b"ann:a:b")), Decision::Denied);
    assert_eq!(
        check(&a, &basic_header("zoë:pässwörd".as_bytes())),
        allow(Some("zoë"))
    );
    // The same password in Latin-1 is a different byte string.
    assert_eq!(
        check(&a, &basic_header(b"zo\xeb:p\xe4ssw\xf6rd")),
        Decision::Denied
    );
}

#[test]
fn basic_scheme_case_wrong_scheme_and_malformed() {
    let a = basic(&[("ann", "pw")]);
    let b64 = "YW5uOnB3"; // ann:pw
    for scheme in ["basic", "BASIC", "bAsIc"] {
        assert_eq!(
            check(&a, &format!("Authorization: {scheme} {b64}\r\n")),
            allow(Some("ann")),
            "{scheme}"
        );
    }
    assert_eq!(
        check(&a, &format!("Authorization: Bearer {b64}\r\n")),
        Decision::Missing
    );
    assert_eq!(
        check(&a, &format!("Authorization: Digest {b64}\r\n")),
        Decision::Missing
    );
    for h in [
        "Authorization: Basic\r\n",
        "Authorization: Basic YW5uOnB3=\r\n", // bad padding
        "Authorization: Basic YW5uOnB\r\n",   // not a multiple of 4
        "Authorization: Basic YW5u OnB3\r\n",
        "Authorization: Basic YW5uOnB3!!!!\r\n",
        "Authorization: Basic YW5uOnB3Yw\r\n", // unpadded
        "Authorization: Basic YW5uOnB=\r\n",   // non-canonical trailing bits
        "Authorization: Basic YW5u\r\n",       // "ann": no colon
        "Authorization: Basic YW5uOnB3\tx\r\n",
    ] {
        assert!(
            matches!(check(&a, h), Decision::BadRequest(_)),
            "{h}: {:?}",
            check(&a, h)
        );
    }
    // Malformed input never reaches Argon2.
    assert_eq!(a.verifications(), 1);
}

#[test]
fn cache_hit_avoids_rehashing() {
    let a = basic(&[("ann", "pw"), ("bob", "pw2")]);
    let ann = basic_header(b"ann:pw");
    assert_eq!(a.verifications(), 0);
    assert_eq!(check(&a, &ann), allow(Some("ann")));
    assert_eq!(a.verifications(), 1);
    for _ in 0..5 {
        assert_eq!(check(&a, &ann), allow(Some("ann")));
    }
    assert_eq!(
        a.verifications(),
        1,
        "repeated credentials must hit the cache"
    );
    // Another user is a miss once, then a hit.
    assert_eq!(check(&a, &basic_header(b"bob:pw2")), allow(Some("bob")));
    assert_eq!(check(&a, &basic_header(b"bob:pw2")), allow(Some("bob")));
    assert_eq!(a.verifications(), 2);
    // A different password for a cached user is not a hit.
    assert_eq!(check(&a, &basic_header(b"ann:pw2")), Decision::Denied);
    assert_eq!(a.verifications(), 3);
}

#[test]
fn cache_hit_with_real_parameters_runs_no_verification() {
    // With the real parameters a miss costs one full Argon2 run; a hit costs one SHA-256.
    // Counted, not timed: a timing ratio flakes on a loaded machine.
    let users = vec![("ann".to_string(), hash_password("pw"))];
    let a = Authorizer::new(
        &AuthConfig::Basic {
            realm: "r".into(),
            users,
        },
        false,
    )
    .unwrap();
    let ann = basic_header(b"ann:pw");
    assert_eq!(check(&a, &ann), allow(Some("ann")));
    assert_eq!(a.verifications(), 1);
    for _ in 0..5 {
        assert_eq!(check(&a, &ann), allow(Some("ann")));
    }
    assert_eq!(a.verifications(), 1, "a cache hit ran Argon2");
}

#[test]
fn failures_are_not_cached() {
    let a = basic(&[("ann", "pw")]);
    a.set_verification_budget(1_000, 1_000);
    for i in 0..50 {
        let cred = format!("ann:guess{i}");
        assert_eq!(check(&a, &basic_header(cred.as_bytes())), Decision::Denied);
        // Unknown users too (verified against a real hash for timing).
        let cred = format!("user{i}:pw");
        assert_eq!(check(&a, &basic_header(cred.as_bytes())), Decision::Denied);
    }
    assert_eq!(a.verifications(), 100);
    let Scheme::Basic(b) = &a.scheme else {
        unreachable!()
    };
    assert_eq!(b.cache.borrow().len(), 0);
    // The same wrong password twice is verified twice.
    check(&a, &basic_header(b"ann:x"));
    check(&a, &basic_header(b"ann:x"));
    assert_eq!(a.verifications(), 102);
}

#[test]
fn password_verifications_are_budgeted_and_cached_users_still_pass() {
    let a = basic(&[("ann", "pw")]);
    a.set_verification_budget(1, 3);
    // A cached user passes whatever the budget.
    assert_eq!(check(&a, &basic_header(b"ann:pw")), allow(Some("ann")));
    assert_eq!(check(&a, &basic_header(b"ann:x1")), Decision::Denied);
    assert_eq!(check(&a, &basic_header(b"ann:x2")), Decision::Denied);
    assert_eq!(check(&a, &basic_header(b"ann:x3")), Decision::Throttled);
    assert_eq!(Decision::Throttled.status(), Some(503));
    assert_eq!(a.verifications(), 3, "a throttled check runs no Argon2");
    assert_eq!(check(&a, &basic_header(b"ann:pw")), allow(Some("ann")));
    // The bucket's clock moved back by 1.1 s (instead of sleeping): one token refilled at
    // 1 per second, so one more verification runs, and then none.
    let Scheme::Basic(b) = &a.scheme else {
        unreachable!()
    };
    b.budget
        .at
        .set(b.budget.at.get() - Duration::from_millis(1100));
    assert_eq!(check(&a, &basic_header(b"ann:x4")), Decision::Denied);
    assert_eq!(check(&a, &basic_header(b"ann:x5")), Decision::Throttled);
    assert_eq!(a.verifications(), 4);
}

#[test]
fn unknown_user_with_another_users_password_is_denied() {
    // The dummy verification runs against the first user's hash; its
    // password must not let a non-existent user in.
    let a = basic(&[("ann", "pw")]);
    assert_eq!(check(&a, &basic_header(b"mallory:pw")), Decision::Denied);
    assert_eq!(
        a.verifications(),
        1,
        "unknown users still cost one verification"
    );
    assert_eq!(check(&a, &basic_header(b"mallory:pw")), Decision::Denied);
    assert_eq!(a.verifications(), 2);
}

#[test]
fn cache_is_bounded_fifo() {
    let mut c = Cache::new(3);
    let keys: Vec<_> = (0..5u8).map(|i| c.key(&[i])).collect();
    for (i, k) in keys.iter().enumerate() {
        c.insert(*k, Rc::from(format!("u{i}")));
    }
    assert_eq!(c.len(), 3);
    assert!(c.get(&keys[0]).is_none() && c.get(&keys[1]).is_none());
    assert_eq!(c.get(&keys[4]).map(|u| &**u), Some("u4"));
    // Re-inserting a present key does not duplicate it in the order.
    c.insert(keys[4], Rc::from("u4"));
    c.insert(keys[4], Rc::from("u4"));
    assert_eq!((c.len(), c.order.len()), (3, 3));
    // Keys are salted per cache: the same credentials differ across shards.
    assert_ne!(Cache::new(1).key(b"ann:pw"), Cache::new(1).key(b"ann:pw"));
    assert_ne!(c.key(b"ann:pw"), sha256::digest(b"ann:pw"));
}

#[test]
fn constant_time_match_checks_every_token() {
    // Functional: a match anywhere in the list counts, including the last.
    let toks: Vec<String> = (0..10).map(|i| format!("token-{i}")).collect();
    let digests: Vec<_> = toks.iter().map(|t| sha256::digest(t.as_bytes())).collect();
    for t in &toks {
        assert!(matches_any(&digests, t.as_bytes()));
    }
    assert!(!matches_any(&digests, b"token-10"));
    assert!(!matches_any(&[], b"token-1"));
}

#[test]
fn constant_time_match_has_no_early_exit() {
    // With 20,000 tokens an early exit would make a match on the first token
    // thousands of times faster than no match; without one, the times are
    // about equal. The bound (3x, best of 7) leaves room for noise while
    // catching any short-circuit.
    let n = 20_000;
    let toks: Vec<String> = (0..n).map(|i| format!("token-{i}")).collect();
    let digests: Vec<_> = toks.iter().map(|t| sha256::digest(t.as_bytes())).collect();
    let best = |presented: &[u8]| -> Duration {
        (0..7)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(matches_any(&digests, std::hint::black_box(presented)));
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let first = best(b"token-0");
    let none = best(b"not-a-token");
    // A long token costs more SHA-256 blocks, but nothing per configured token.
    let long = best(&[b'x'; 4096]);
    assert!(
        first * 3 > none && none * 3 > first,
        "first {first:?}, none {none:?}"
    );
    assert!(long < none * 3, "long {long:?}, none {none:?}");
}

#[test]
fn keep_credentials_strips_nothing() {
    for cfg in [
        AuthConfig::Bearer {
            realm: "r".into(),
            tokens: vec!["t".into()],
        },
        AuthConfig::ApiKey {
            header: "X-Key".into(),
            keys: vec!["k".into()],
        },
        basic_config(&[("ann", "pw")]),
    ] {
        let keep = Authorizer::new(&cfg, true).unwrap();
        assert_eq!(keep.strip_header(), None, "{cfg:?}");
        assert!(keep.challenge().is_some());
        assert!(Authorizer::new(&cfg, false)
            .unwrap()
            .strip_header()
            .is_some());
    }
}

#[test]
fn strip_header_feeds_encode_request() {
    let a = bearer(&["tok"]);
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\nauthorization: Bearer tok\r\nX-Other: 1\r\n\r\n";
    let mut head = RequestHead::new();
    parse_request(buf, &Limits::default(), &mut head).unwrap();
    assert_eq!(a.check(buf, &head), allow(None));
    let forward = |strip: Option<&[u8]>| {
        let info = ForwardInfo {
            client_ip: "192.0.2.1".parse().unwrap(),
            proto: "http",
            via: "corelay",
            default_host: "b",
            strip: strip.as_slice(),
            upgrade: &[],
        };
        let mut out = Vec::new();
        encode_request(buf, &head, &info, &mut out);
        String::from_utf8(out).unwrap()
    };
    let out = forward(a.strip_header());
    assert!(!out.to_ascii_lowercase().contains("authorization"), "{out}");
    assert!(!out.contains("tok"), "{out}");
    assert!(out.contains("X-Other: 1\r\n"), "{out}");
    let kept = Authorizer::new(
        &AuthConfig::Bearer {
            realm: "r".into(),
            tokens: vec!["tok".into()],
        },
        true,
    )
    .unwrap();
    assert!(forward(kept.strip_header()).contains("\r\nauthorization: Bearer tok\r\n"));

    let k = api_key(&["k1"]);
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-API-KEY: k1\r\nAuthorization: Basic eDp5\r\n\r\n";
    parse_request(buf, &Limits::default(), &mut head).unwrap();
    assert_eq!(k.check(buf, &head), allow(None));
    let s = k.strip_header();
    let info = ForwardInfo {
        client_ip: "192.0.2.1".parse().unwrap(),
        proto: "http",
        via: "corelay",
        default_host: "b",
        strip: s.as_slice(),
        upgrade: &[],
    };
    let mut out = Vec::new();
    encode_request(buf, &head, &info, &mut out);
    let out = String::from_utf8(out).unwrap();
    // Only the route's own credential goes; an Authorization it did not
    // check is the backend's business.
    assert!(!out.contains("k1"), "{out}");
    assert!(out.contains("Authorization: Basic eDp5\r\n"), "{out}");
}

#[test]
fn hash_password_format() {
    let stored = hash_password("correct horse");
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    // $argon2id$v=19$params$salt$hash: 16-byte salt, 32-byte hash, unpadded base64.
    let parts: Vec<&str> = stored.split('$').collect();
    assert_eq!(parts.len(), 6, "{stored}");
    assert_eq!(parts[4].len(), 22, "{stored}");
    assert_eq!(parts[5].len(), 43, "{stored}");
    // Fresh salt each time.
    assert_ne!(
        hash_password_with("x", test_params()),
        hash_password_with("x", test_params())
    );
    assert!(check_stored_hash(&stored).is_ok());
    let h = PasswordHash::new(&stored).unwrap();
    assert!(Argon2::default()
        .verify_password(b"correct horse", &h)
        .is_ok());
    assert!(Argon2::default()
        .verify_password(b"correct hors", &h)
        .is_err());
}

#[test]
fn foreign_argon2_hashes_verify() {
    // Hashes as other tools make them: every Argon2 variant, and version 16
    // (0x10, which the reference `argon2` CLI can produce).
    let salt = SaltString::encode_b64(b"somesaltsomesalt").unwrap();
    for alg in [Algorithm::Argon2i, Algorithm::Argon2d, Algorithm::Argon2id] {
        let stored = Argon2::new(alg, Version::V0x10, test_params())
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        let a = Authorizer::new(
            &AuthConfig::Basic {
                realm: "r".into(),
                users: vec![("ann".into(), stored.clone())],
            },
            false,
        )
        .unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(check(&a, &basic_header(b"ann:pw")), allow(Some("ann")));
    }
}

#[test]
fn new_rejects_bad_config_and_names_the_culprit() {
    let err = |cfg: AuthConfig| Authorizer::new(&cfg, false).unwrap_err();
    let good = cheap_hash("pw");
    let users = |u: &[(&str, &str)]| AuthConfig::Basic {
        realm: "r".into(),
        users: u
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    };
    // Hash problems name the user and never echo the hash.
    for (bad, why) in [
        ("plaintext", "PHC"),
        (
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "PHC",
        ),
        (
            "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "not argon2",
        ),
        (
            "$argon2id$v=19$m=1048576,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "costs too much",
        ),
        (
            "$argon2id$v=19$m=19456,t=50,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "costs too much",
        ),
        (
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA",
            "no salt or no hash",
        ),
    ] {
        let e = err(users(&[("ann", &good), ("bob", bad)]));
        assert!(e.contains("\"bob\""), "{bad}: {e}");
        assert!(!e.contains(bad), "{e}");
        assert!(
            e.contains(why) || (why == "not argon2" && e.contains("not argon2id")),
            "{bad}: {e}"
        );
    }
    assert!(err(users(&[])).contains("at least one user"));
    assert!(err(users(&[("ann", &good), ("ann", &good)])).contains("twice"));
    assert!(err(users(&[("a:b", &good)])).contains("':'"));
    assert!(err(users(&[("", &good)])).contains("non-empty"));
    assert!(err(users(&[("a\nb", &good)])).contains("control"));

    let bearer_cfg = |realm: &str, tokens: &[&str]| AuthConfig::Bearer {
        realm: realm.into(),
        tokens: tokens.iter().map(|t| t.to_string()).collect(),
    };
    assert!(err(bearer_cfg("r", &[])).contains("at least one token"));
    let e = err(bearer_cfg("r", &["ok", "has space"]));
    assert!(e.contains("#2") && !e.contains("has space"), "{e}");
    assert!(err(bearer_cfg("r", &[""])).contains("#1"));
    for realm in ["", "a\"b", "a\\b", "a\r\nX-Injected: 1", "caf\u{e9}"] {
        assert!(
            err(bearer_cfg(realm, &["t"])).contains("realm"),
            "{realm:?}"
        );
    }

    let key_cfg = |header: &str, keys: &[&str]| AuthConfig::ApiKey {
        header: header.into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    };
    assert!(err(key_cfg("X-Key", &[])).contains("at least one key"));
    for h in ["", "X Key", "X-Key:", "X-Key\r\n"] {
        assert!(
            err(key_cfg(h, &["k"])).contains("valid field name"),
            "{h:?}"
        );
    }
    for h in ["Host", "content-length", "Connection", "X-Forwarded-For"] {
        assert!(err(key_cfg(h, &["k"])).contains("rewrites"), "{h}");
    }
    let e = err(key_cfg("X-Key", &["ok", "sec ret"]));
    assert!(e.contains("#2") && !e.contains("sec ret"), "{e}");
    assert!(err(key_cfg("X-Key", &[""])).contains("#1"));
}

#[test]
fn debug_never_prints_secrets() {
    let hash = cheap_hash("pw");
    let cfgs = [
        AuthConfig::Bearer {
            realm: "r".into(),
            tokens: vec!["SECRET-TOKEN".into()],
        },
        AuthConfig::ApiKey {
            header: "X-Key".into(),
            keys: vec!["SECRET-KEY".into(), "OTHER".into()],
        },
        AuthConfig::Basic {
            realm: "r".into(),
            users: vec![("ann".into(), hash.clone())],
        },
    ];
    for cfg in &cfgs {
        let a = Authorizer::new(cfg, false).unwrap();
        check(&a, &basic_header(b"ann:pw"));
        for text in [format!("{cfg:?}"), format!("{a:?}"), format!("{a:#?}")] {
            for secret in ["SECRET", "OTHER", hash.as_str(), "argon2"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains("redacted") || text.contains("ann"), "{text}");
        }
    }
    let basic_dbg = format!("{:?}", cfgs[2]);
    assert!(basic_dbg.contains("\"ann\""), "{basic_dbg}");
    assert_eq!(format!("{:?}", AuthConfig::default()), "None");
}
