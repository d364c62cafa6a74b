//! Who may log in: no check, a static account -> token table, or HMAC-signed
//! tokens that a backend mints without talking to us.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "mode", rename_all = "camelCase", deny_unknown_fields)]
pub enum AuthConfig {
    /// Anyone is whoever they say. For development and the embedded demo.
    // An empty struct variant, not a unit one: serde's deny_unknown_fields
    // then refuses stray keys beside "mode" here too.
    None {},
    /// account -> token.
    Static { accounts: HashMap<String, String> },
    /// Tokens made by [`hmac_token`] with this secret.
    Hmac { secret: String },
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig::None {}
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, account: &str, expiry: u64) -> HmacSha256 {
    // Keys of any length are accepted by HMAC; this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac accepts any key");
    m.update(account.as_bytes());
    m.update(b"\n");
    m.update(expiry.to_string().as_bytes());
    m
}

/// A token for `account` valid until `expiry` (Unix seconds):
/// `"<expiry>.<hex HMAC-SHA256(secret, account \n expiry)>"`.
pub fn hmac_token(secret: &str, account: &str, expiry: u64) -> String {
    let sig = mac(secret, account, expiry).finalize().into_bytes();
    format!("{expiry}.{}", hex::encode(sig))
}

/// Constant-time comparison of two byte strings.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AuthConfig {
    /// Whether `token` lets `account` log in at `now_secs`.
    pub fn verify(&self, account: &str, token: &str, now_secs: u64) -> bool {
        match self {
            AuthConfig::None {} => true,
            AuthConfig::Static { accounts } => accounts
                .get(account)
                .map(|t| same(t.as_bytes(), token.as_bytes()))
                .unwrap_or(false),
            AuthConfig::Hmac { secret } => {
                let Some((exp, sig)) = token.split_once('.') else {
                    return false;
                };
                let Ok(expiry) = exp.parse::<u64>() else {
                    return false;
                };
                let Ok(sig) = hex::decode(sig) else {
                    return false;
                };
                expiry > now_secs && mac(secret, account, expiry).verify_slice(&sig).is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_tokens_are_bound_to_account_secret_and_time() {
        let auth = AuthConfig::Hmac {
            secret: "s3cret".into(),
        };
        let t = hmac_token("s3cret", "alice", 2_000);
        assert!(auth.verify("alice", &t, 1_000));
        assert!(!auth.verify("bob", &t, 1_000), "other account");
        assert!(!auth.verify("alice", &t, 2_000), "expired");
        assert!(
            !auth.verify("alice", &hmac_token("other", "alice", 2_000), 1_000),
            "forged"
        );
        assert!(!auth.verify("alice", "garbage", 1_000));
        assert!(!auth.verify("alice", "2000.zz", 1_000));
    }

    #[test]
    fn static_tokens() {
        let auth = AuthConfig::Static {
            accounts: [("alice".to_string(), "ta".to_string())].into(),
        };
        assert!(auth.verify("alice", "ta", 0));
        assert!(!auth.verify("alice", "tb", 0));
        assert!(!auth.verify("bob", "ta", 0));
    }
}
