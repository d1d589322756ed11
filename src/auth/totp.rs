//! RFC 6238 TOTP as stock authenticator apps do it: SHA-1, 6 digits, 30 s
//! steps, ±1 step of drift. Pure: the time is passed in.

use totp_rs::{Algorithm, Builder, Secret};

pub const STEP_SECS: u64 = 30;
pub const SECRET_BYTES: usize = 20; // 160 bits, RFC 4226's recommendation
/// Longest answer we look at; anything longer is refused unparsed.
pub const MAX_ANSWER_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TotpError {
    #[error("TOTP secret must be {SECRET_BYTES} bytes")]
    BadSecret,
}

/// The row a user's sealed TOTP secret is bound to (vault additional data).
pub fn row(user: &str) -> String {
    format!("totp:{user}")
}

pub fn generate_secret() -> [u8; SECRET_BYTES] {
    let mut s = [0u8; SECRET_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut s);
    s
}

fn totp(secret: &[u8]) -> Result<totp_rs::Totp, TotpError> {
    if secret.len() != SECRET_BYTES {
        return Err(TotpError::BadSecret);
    }
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .build()
        .map_err(|_| TotpError::BadSecret)
}

/// The time step a code is valid for, if it matches within ±1 step of `unix_secs`.
pub fn verify(secret: &[u8], answer: &str, unix_secs: u64) -> Result<Option<u64>, TotpError> {
    let t = totp(secret)?;
    let answer = answer.trim();
    if answer.len() != 6 || !answer.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(t.check(answer, unix_secs))
}

/// The code for `unix_secs` (tests, enrollment hints).
pub fn code_at(secret: &[u8], unix_secs: u64) -> Result<String, TotpError> {
    Ok(totp(secret)?.generate(unix_secs).to_string())
}

pub fn base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// The `otpauth://` URI authenticator apps scan.
pub fn uri(issuer: &str, user: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{issuer}:{user}?secret={}&issuer={issuer}&algorithm=SHA1&digits=6&period={STEP_SECS}",
        base32(secret)
    )
}

/// The URI as a QR code drawn with Unicode half blocks, for a terminal.
pub fn qr(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 seed "12345678901234567890"; the RFC lists
    // 8 digits, and 6-digit codes are their last six.
    const SEED: &[u8; 20] = b"12345678901234567890";
    const VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn rfc6238_vectors() {
        for (t, code8) in VECTORS {
            assert_eq!(code_at(SEED, t).unwrap(), code8[2..], "t={t}");
            assert_eq!(verify(SEED, &code8[2..], t).unwrap(), Some(t / 30));
        }
    }

    #[test]
    fn drift_of_one_step_only() {
        let t = 1_700_000_000;
        let now = code_at(SEED, t).unwrap();
        assert_eq!(verify(SEED, &now, t + 30).unwrap(), Some(t / 30));
        assert_eq!(verify(SEED, &now, t - 30).unwrap(), Some(t / 30));
        assert_eq!(verify(SEED, &now, t + 60).unwrap(), None);
        assert_eq!(verify(SEED, &now, t - 60).unwrap(), None);
    }

    #[test]
    fn malformed_answers_and_secrets() {
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(verify(SEED, bad, 59).unwrap(), None, "{bad:?}");
        }
        assert_eq!(verify(b"short", "123456", 59), Err(TotpError::BadSecret));
    }

    #[test]
    fn uri_has_base32_secret() {
        let u = uri("portcullis", "alice", SEED);
        assert!(
            u.starts_with(
                "otpauth://totp/portcullis:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
            ),
            "{u}"
        );
        assert!(qr(&u).lines().count() > 10);
    }
}
