//! JWT verification and issuing, the secret's life cycle, and [`AuthUser`]. No HTTP here:
//! the extractor every `/chat` handler takes is in `http::extract`.

use std::path::Path;

use chat_protocol::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;

use crate::config::CommonConfig;
use crate::error::Error;
use crate::model::Username;

/// The claims chatd reads: `sub` (user id, UUID), `username`, `exp` (shared wire type).
pub use chat_protocol::auth::Claims;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// Who is calling, after the token was checked and the user provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: UserId,
    pub username: Username,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the JWT secret at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the JWT secret is empty")]
    EmptySecret,
    #[error("{0} is neither an RSA nor an Ed25519 public key in PEM form")]
    BadPublicKey(String),
}

/// Keys in force: the HS256 secret always; optionally one public key.
pub struct JwtKeys {
    hs_decode: DecodingKey,
    hs_encode: EncodingKey,
    public: Option<(Algorithm, DecodingKey)>,
    /// Key for signing local media URLs, derived from the HS256 secret so every instance
    /// sharing the secret accepts every instance's links.
    media_key: Vec<u8>,
    /// `CHAT_JWT_MAX_LIFETIME`: the longest `exp - iat` accepted.
    max_lifetime: Option<std::time::Duration>,
}

impl JwtKeys {
    pub fn media_key(&self) -> &[u8] {
        &self.media_key
    }

    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(JwtKeys {
            hs_decode: DecodingKey::from_secret(secret),
            hs_encode: EncodingKey::from_secret(secret),
            public: None,
            media_key: {
                use hmac::{Hmac, Mac};
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret)
                    .expect("HMAC takes any key length");
                mac.update(b"chatd media url signing v1");
                mac.finalize().into_bytes().to_vec()
            },
            max_lifetime: None,
        })
    }

    /// Refuse tokens whose `exp - iat` is longer than `max` (and tokens without `iat`).
    pub fn with_max_lifetime(mut self, max: Option<std::time::Duration>) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Secret from the configuration, else from `<data dir>/jwt_secret`, created once.
    pub fn load(cfg: &CommonConfig) -> Result<Self, KeyError> {
        let secret = match &cfg.jwt_secret {
            Some(s) => s.clone().into_bytes(),
            None => load_or_create_secret(&cfg.data_dir.join("jwt_secret"))?,
        };
        if secret.len() < 32 {
            tracing::warn!("CHAT_JWT_SECRET is shorter than 32 bytes; use a longer random secret");
        }
        let mut keys = JwtKeys::from_secret(&secret)?.with_max_lifetime(cfg.jwt_max_lifetime);
        if let Some(path) = &cfg.jwt_public_key {
            keys.public = Some(load_public_key(path)?);
        }
        Ok(keys)
    }

    /// Check signature, algorithm and expiry; return the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        let bad = |why: &str| Error::Unauthorized(format!("invalid token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed"))?;
        let key = match header.alg {
            Algorithm::HS256 => &self.hs_decode,
            alg => match &self.public {
                Some((pub_alg, key)) if *pub_alg == alg => key,
                _ => return Err(bad("algorithm not accepted")),
            },
        };
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY_SECS;
        // A token valid from tomorrow is not valid today.
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => bad("expired"),
                ErrorKind::ImmatureSignature => bad("not valid yet (nbf)"),
                ErrorKind::InvalidSignature => bad("bad signature"),
                _ => bad("malformed"),
            }
        })?;
        if let Some(max) = self.max_lifetime {
            let Some(iat) = data.claims.iat else {
                return Err(bad("no iat (CHAT_JWT_MAX_LIFETIME is set)"));
            };
            if iat > chrono::Utc::now().timestamp() + LEEWAY_SECS as i64 {
                return Err(bad("issued in the future (iat)"));
            }
            let lifetime = data.claims.exp.saturating_sub(iat);
            if lifetime > max.as_secs() as i64 {
                return Err(bad(&format!(
                    "lifetime {lifetime}s exceeds the {}s allowed",
                    max.as_secs()
                )));
            }
        }
        Ok(data.claims)
    }

    /// Mint an HS256 token (used by `chatctl token issue` and tests).
    pub fn issue(
        &self,
        id: UserId,
        username: &str,
        ttl: chrono::Duration,
    ) -> Result<String, Error> {
        let now = chrono::Utc::now();
        let claims = Claims {
            sub: id.to_string(),
            username: username.to_string(),
            exp: (now + ttl).timestamp(),
            iat: Some(now.timestamp()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.hs_encode)
            .map_err(|e| Error::Internal(format!("cannot sign token: {e}")))
    }
}

fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Ok(existing) = std::fs::read_to_string(path) {
        let s = existing.trim();
        if s.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(secret.as_bytes()).map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new JWT secret");
            Ok(secret.into_bytes())
        }
        // Another process (chatctl, a second chatd) created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let s = std::fs::read_to_string(path).map_err(io)?;
            Ok(s.trim().as_bytes().to_vec())
        }
        Err(e) => Err(io(e)),
    }
}

fn load_public_key(path: &Path) -> Result<(Algorithm, DecodingKey), KeyError> {
    let pem = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((Algorithm::RS256, k));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
        return Ok((Algorithm::EdDSA, k));
    }
    Err(KeyError::BadPublicKey(path.display().to_string()))
}

/// Parse verified claims into an id and username.
pub fn identity(claims: &Claims) -> Result<(UserId, Username), Error> {
    let id: UserId = claims
        .sub
        .parse()
        .map_err(|_| Error::Unauthorized("invalid token: sub is not a UUID".into()))?;
    let username = Username::parse(&claims.username)
        .map_err(|_| Error::Unauthorized("invalid token: bad username claim".into()))?;
    Ok((id, username))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::from_secret(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn issued_token_verifies() {
        let k = keys();
        let id = UserId::new();
        let t = k.issue(id, "alice", chrono::Duration::hours(1)).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, id.to_string());
        assert_eq!(c.username, "alice");
    }

    #[test]
    fn expired_forged_and_alg_none_are_refused() {
        let k = keys();
        let id = UserId::new();
        let expired = k.issue(id, "alice", chrono::Duration::hours(-2)).unwrap();
        assert!(matches!(k.verify(&expired), Err(Error::Unauthorized(_))));

        let other = JwtKeys::from_secret(b"another-secret-another-secret-xx").unwrap();
        let forged = other
            .issue(id, "alice", chrono::Duration::hours(1))
            .unwrap();
        assert!(matches!(k.verify(&forged), Err(Error::Unauthorized(_))));

        // alg: none — header {"alg":"none","typ":"JWT"}, no signature.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(format!(
            r#"{{"sub":"{id}","username":"alice","exp":{}}}"#,
            chrono::Utc::now().timestamp() + 3600
        ));
        for t in [format!("{header}.{body}."), format!("{header}.{body}")] {
            assert!(matches!(k.verify(&t), Err(Error::Unauthorized(_))));
        }
        assert!(matches!(k.verify("garbage"), Err(Error::Unauthorized(_))));
    }

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("chatd-secret-{}", uuid::Uuid::new_v4()));
        let path = dir.join("jwt_secret");
        let a = load_or_create_secret(&path).unwrap();
        let b = load_or_create_secret(&path).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let _ = std::fs::remove_dir_all(dir);
    }
}
