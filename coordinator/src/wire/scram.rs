//! SCRAM-SHA-256 (RFC 5802 / 7677) against stored verifiers.
//!
//! Written here rather than taken from pgwire: pgwire's `ScramAuth` asks its
//! `AuthSource` for the *salted password*, which is enough to log in as the user,
//! so a config holding it would hold a password equivalent. PostgreSQL stores
//! only `StoredKey` and `ServerKey` (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`),
//! which let the server check a proof without being able to produce one; Vivace
//! reads exactly that format, so verifiers can be copied from `pg_authid` too.
//! Channel binding (`-PLUS`) is not offered.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

/// Iterations used for new verifiers (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// A stored SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(SCRAM-SHA-256, redacted)")
    }
}

impl std::str::FromStr for Verifier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            "expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (generate one with `vivace password`)".to_string()
        };
        let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let key = |k: &str| -> Result<[u8; 32], String> {
            B64.decode(k)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)
        };
        let iterations: u32 = iterations.parse().map_err(|_| bad())?;
        if iterations == 0 {
            return Err(bad());
        }
        Ok(Self {
            iterations,
            salt: B64.decode(salt).map_err(|_| bad())?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data)
        .as_ref()
        .try_into()
        .expect("SHA-256 output is 32 bytes")
}

fn sha256(data: &[u8]) -> [u8; 32] {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .try_into()
        .expect("SHA-256 output is 32 bytes")
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system random source works");
    out
}

impl Verifier {
    /// The verifier of `password` with a fresh random salt.
    pub fn generate(password: &str) -> Self {
        Self::derive(password, &random_bytes(16), DEFAULT_ITERATIONS)
    }

    /// The verifier of `password` for a given salt and iteration count.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Self {
        // SASLprep is the identity for the printable ASCII passwords the tests use;
        // libpq falls back to the raw bytes for strings SASLprep rejects, as here.
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations).expect("iterations > 0"),
            salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this verifier was made from (HTTP basic
    /// logins to the web page), compared in constant time.
    pub fn accepts(&self, password: &str) -> bool {
        let candidate = Self::derive(password, &self.salt, self.iterations);
        candidate
            .stored_key
            .iter()
            .zip(self.stored_key.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
            && self.stored_key != [0; 32]
    }

    /// A verifier no password matches, used for unknown users so that they go
    /// through the same exchange and fail at the same step as a wrong password.
    pub fn impossible() -> Self {
        Self {
            iterations: DEFAULT_ITERATIONS,
            salt: random_bytes(16),
            stored_key: [0; 32],
            server_key: [0; 32],
        }
    }
}

/// The server side of one exchange.
pub enum Exchange {
    /// `server-first` sent; waiting for `client-final`.
    AwaitingFinal {
        /// The verifier checked against.
        verifier: Verifier,
        /// `client-first-message-bare`.
        client_first_bare: String,
        /// `server-first-message`.
        server_first: String,
        /// `gs2-header` the client sent, base64-encoded as it must come back in `c=`.
        channel_binding: String,
        /// Client nonce + server nonce.
        nonce: String,
    },
}

/// Why an exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    /// A message that does not follow the protocol.
    Malformed(&'static str),
    /// The proof does not match the verifier.
    WrongPassword,
}

/// Start an exchange from `client-first-message`; returns `server-first-message`.
pub fn server_first(
    client_first: &[u8],
    verifier: Verifier,
) -> Result<(String, Exchange), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: "n,," (no binding) or "y,," (client could bind, server did not offer).
    let (gs2, bare) = if let Some(bare) = text.strip_prefix("n,,") {
        ("n,,", bare)
    } else if let Some(bare) = text.strip_prefix("y,,") {
        ("y,,", bare)
    } else {
        return Err(ScramError::Malformed(
            "channel binding is not supported; use SCRAM-SHA-256",
        ));
    };
    let client_nonce = bare
        .split(',')
        .find_map(|part| part.strip_prefix("r="))
        .filter(|n| !n.is_empty())
        .ok_or(ScramError::Malformed("client-first has no nonce"))?;
    let nonce = format!("{client_nonce}{}", B64.encode(random_bytes(18)));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok((
        server_first.clone(),
        Exchange::AwaitingFinal {
            verifier,
            client_first_bare: bare.to_string(),
            server_first,
            channel_binding: B64.encode(gs2),
            nonce,
        },
    ))
}

impl Exchange {
    /// Check `client-final-message`; returns `server-final-message`.
    pub fn finish(&self, client_final: &[u8]) -> Result<String, ScramError> {
        let Exchange::AwaitingFinal {
            verifier,
            client_first_bare,
            server_first,
            channel_binding,
            nonce,
        } = self;
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("client-final has no proof"))?;
        let field = |name: &str| {
            without_proof
                .split(',')
                .find_map(|part| part.strip_prefix(name))
        };
        if field("c=") != Some(channel_binding.as_str()) {
            return Err(ScramError::Malformed("channel binding mismatch"));
        }
        if field("r=") != Some(nonce.as_str()) {
            return Err(ScramError::Malformed("nonce mismatch"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(ScramError::Malformed("proof has the wrong length"));
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac_sha256(&verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        // Compare H(ClientKey) with StoredKey without an early exit.
        let difference = sha256(&client_key)
            .iter()
            .zip(verifier.stored_key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err(ScramError::WrongPassword);
        }
        let server_signature = hmac_sha256(&verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, as libpq computes it, to drive the server side.
    fn client_final(password: &str, server_first: &str, client_first_bare: &str) -> String {
        let mut parts = server_first.split(',');
        let nonce = parts.next().unwrap().strip_prefix("r=").unwrap();
        let salt = B64
            .decode(parts.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = parts.next().unwrap()[2..].parse().unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations).unwrap(),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac_sha256(&sha256(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn right_password_passes_wrong_fails() {
        let verifier = Verifier::generate("s3cret");
        let text = verifier.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!text.contains("s3cret"));
        assert_eq!(text.parse::<Verifier>().unwrap(), verifier);
        for (password, ok) in [("s3cret", true), ("wrong", false)] {
            let bare = "n=,r=abcdefgh";
            let (first, exchange) =
                server_first(format!("n,,{bare}").as_bytes(), verifier.clone()).unwrap();
            let result = exchange.finish(client_final(password, &first, bare).as_bytes());
            assert_eq!(result.is_ok(), ok, "{password}");
        }
    }

    #[test]
    fn a_verifier_accepts_its_password_only() {
        let verifier = Verifier::generate("correct horse");
        assert!(verifier.accepts("correct horse"));
        assert!(!verifier.accepts("correct horsf"));
        assert!(!Verifier::impossible().accepts(""));
    }

    #[test]
    fn verifier_text_round_trips_and_rejects_other_formats() {
        let v = Verifier::derive("pencil", b"0123456789abcdef", 4096);
        let parsed: Verifier = v.to_string().parse().unwrap();
        assert_eq!(parsed, v);
        assert!("SCRAM-SHA-256$x".parse::<Verifier>().is_err());
        assert!("md5abc".parse::<Verifier>().is_err());
        assert!(!format!("{v:?}").contains(&B64.encode(v.stored_key)));
    }
}
