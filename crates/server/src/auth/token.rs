//! Bearer tokens: 256 random bits, shown once, stored as SHA-256 hashes.

use sha2::{Digest, Sha256};

/// Prefix that makes tokens recognisable in logs and secret scanners.
const PREFIX: &str = "pst_";

/// A new random token (`pst_` + 64 hex digits = 256 bits of entropy).
pub(crate) fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", hex(&bytes)))
}

/// The stored form of a token: lowercase hex SHA-256.
pub(crate) fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// Checks a user name (the namespace): 1 to 128 characters, no control characters, no spaces.
pub(crate) fn validate_user(user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > 128 {
        return Err("a user name has 1 to 128 bytes".into());
    }
    if user.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a user name has no spaces or control characters".into());
    }
    Ok(())
}

/// Checks a token id as `token list` shows it: the first 12 lowercase hex digits of its hash.
pub(crate) fn validate_id(id: &str) -> Result<(), String> {
    let digits = crate::storage::TOKEN_ID_LEN;
    if id.len() != digits || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!(
            "a token id is {digits} lowercase hex digits, as `persist-server token list` shows it, \
             not {id:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_hex() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn user_names_are_checked() {
        assert!(validate_user("alice").is_ok());
        assert!(validate_user("").is_err());
        assert!(validate_user("a b").is_err());
    }

    #[test]
    fn token_ids_are_twelve_hex_digits() {
        assert!(validate_id(&hash("abc")[..12]).is_ok());
        assert!(validate_id("ba7816bf8f0").is_err(), "too short");
        assert!(validate_id("BA7816BF8F01").is_err(), "uppercase");
        assert!(validate_id("ba7816bf8f0%").is_err());
        assert!(validate_id(&hash("abc")).is_err(), "the whole hash is not an id");
    }
}
