//! Invite codes of invite-only rooms (presales): signed by the operator's own system with the
//! invite key, good for one entry of one account in one room until they expire.
//!
//! The format (documented for operators in docs/api.md, "Invite codes"):
//!
//! ```text
//! code    = "v1." base64url(payload) "." base64url(HMAC-SHA256(key, "v1." base64url(payload)))
//! payload = room "\n" account "\n" expires "\n" nonce          (UTF-8)
//! ```
//!
//! base64url is RFC 4648 §5 without padding; `room` is the room's id, `account` the account's
//! subject (1 to 255 bytes, no control characters), `expires` the Unix time in whole seconds
//! (decimal, no sign) from which the code is refused, and `nonce` 16 to 64 characters of
//! `[A-Za-z0-9_-]` that the signer draws at random (at least 128 bits) for each code. The MAC is
//! over the ASCII text before its dot, so a signer never has to re-encode what it signed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::id::RoomId;
use crate::InfrastructureError;

/// The secret invite codes are signed with (`APP__AUTH__INVITE_KEY`): at least 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteKey(Vec<u8>);

impl std::fmt::Debug for InviteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteKey(..)")
    }
}

/// An invite key too short to be secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an invite key has at least {} bytes", InviteKey::MIN_LEN)]
pub struct WeakInviteKey;

/// The layout version, first in every code.
const VERSION: &str = "v1";
/// The longest code accepted: the longest payload (40 + 255 + 12 + 64 bytes and 3 newlines)
/// encoded, with the version, two dots and the MAC, fits well within it.
const MAX_CODE_LEN: usize = 600;
/// The longest account subject, in bytes.
const MAX_ACCOUNT_LEN: usize = 255;
/// Bounds of a nonce, in characters.
const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=64;

impl InviteKey {
    /// The shortest key accepted.
    pub const MIN_LEN: usize = 32;

    /// # Errors
    /// [`WeakInviteKey`] when `secret` is shorter than [`InviteKey::MIN_LEN`] bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, WeakInviteKey> {
        let secret = secret.into();
        if secret.len() < Self::MIN_LEN {
            return Err(WeakInviteKey);
        }
        Ok(Self(secret))
    }

    fn mac(&self) -> Option<Hmac<Sha256>> {
        // HMAC takes keys of any length: this never fails.
        Hmac::<Sha256>::new_from_slice(&self.0).ok()
    }

    /// The code of `invite`, as an operator's own system would sign it.
    pub fn sign(&self, invite: &Invite) -> InviteCode {
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(invite.payload()));
        let tag = self
            .mac()
            .map(|mut mac| {
                mac.update(signed.as_bytes());
                mac.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default();
        InviteCode(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// What `code` invites to, when it is signed with this key and good at `now` for an entry of
    /// `account` into `room`. Whether it was used already is the ledger's business
    /// ([`InviteLedger`]).
    ///
    /// # Errors
    /// The [`InviteRefusal`] saying why not; the MAC is compared in constant time and checked
    /// before anything the code says is believed.
    pub fn verify(
        &self,
        code: &InviteCode,
        room: &RoomId,
        account: &InviteAccount,
        now: DateTime<Utc>,
    ) -> Result<Invite, InviteRefusal> {
        let (signed, tag) = code.0.rsplit_once('.').ok_or(InviteRefusal::Malformed)?;
        let payload = signed
            .strip_prefix(VERSION)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or(InviteRefusal::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| InviteRefusal::Malformed)?;
        let mut mac = self.mac().ok_or(InviteRefusal::Forged)?;
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).map_err(|_| InviteRefusal::Forged)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| InviteRefusal::Malformed)?;
        let invite = Invite::from_payload(&payload).ok_or(InviteRefusal::Malformed)?;
        if invite.room != *room {
            return Err(InviteRefusal::OtherRoom);
        }
        if invite.account != *account {
            return Err(InviteRefusal::OtherAccount);
        }
        if now >= invite.expires_at {
            return Err(InviteRefusal::Expired);
        }
        Ok(invite)
    }
}

/// Text sent as an invite code, of a shape that can be one: 1 to 600 characters of
/// `[A-Za-z0-9_.-]`, so that garbage never reaches the MAC check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InviteCode(String);

impl InviteCode {
    /// Checks the shape of `text`.
    ///
    /// # Errors
    /// [`InviteRefusal::Malformed`] when it cannot be a code.
    pub fn parse(text: &str) -> Result<Self, InviteRefusal> {
        let well_formed = !text.is_empty()
            && text.len() <= MAX_CODE_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if well_formed {
            Ok(Self(text.to_string()))
        } else {
            Err(InviteRefusal::Malformed)
        }
    }

    /// The code as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The account an invite is for: the subject of the identity provider's claim (until identity
/// is on, the user's id as decimal text). 1 to 255 bytes, no control characters (the payload
/// separates its fields with newlines).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InviteAccount(String);

/// Text that cannot be an account's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an account is 1 to 255 bytes without control characters")]
pub struct InvalidInviteAccount;

impl InviteAccount {
    /// # Errors
    /// [`InvalidInviteAccount`] when empty, too long or with a control character.
    pub fn new(text: &str) -> Result<Self, InvalidInviteAccount> {
        if text.is_empty() || text.len() > MAX_ACCOUNT_LEN || text.chars().any(char::is_control) {
            return Err(InvalidInviteAccount);
        }
        Ok(Self(text.to_string()))
    }

    /// The subject.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The random part of a code, which makes it single use: 16 to 64 characters of
/// `[A-Za-z0-9_-]` (safe in a key name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InviteNonce(String);

/// Text that cannot be a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a nonce is 16 to 64 characters of letters, digits, '-' and '_'")]
pub struct InvalidInviteNonce;

impl InviteNonce {
    /// # Errors
    /// [`InvalidInviteNonce`] for anything but 16 to 64 characters of `[A-Za-z0-9_-]`.
    pub fn parse(text: &str) -> Result<Self, InvalidInviteNonce> {
        let well_formed = NONCE_LEN.contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(text.to_string()))
        } else {
            Err(InvalidInviteNonce)
        }
    }

    /// The nonce of 16 random bytes (base64url, 22 characters).
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The nonce.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a code says: who may enter which room once, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The room it lets into.
    pub room: RoomId,
    /// The account it is for.
    pub account: InviteAccount,
    /// From then on it is refused (whole seconds).
    pub expires_at: DateTime<Utc>,
    /// Makes it single use.
    pub nonce: InviteNonce,
}

impl Invite {
    /// An invite of `account` into `room` until `expires_at` (cut to whole seconds, as the
    /// code carries it).
    pub fn new(
        room: RoomId,
        account: InviteAccount,
        expires_at: DateTime<Utc>,
        nonce: InviteNonce,
    ) -> Self {
        let seconds = expires_at.timestamp();
        Self {
            room,
            account,
            expires_at: DateTime::from_timestamp(seconds, 0).unwrap_or(expires_at),
            nonce,
        }
    }

    fn payload(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.room,
            self.account.as_str(),
            self.expires_at.timestamp().max(0),
            self.nonce.as_str()
        )
    }

    fn from_payload(payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut fields = text.split('\n');
        let room = RoomId::parse(fields.next()?).ok()?;
        let account = InviteAccount::new(fields.next()?).ok()?;
        let expires = fields.next()?;
        if expires.is_empty() || expires.len() > 12 || !expires.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let expires_at = DateTime::from_timestamp(expires.parse().ok()?, 0)?;
        let nonce = InviteNonce::parse(fields.next()?).ok()?;
        if fields.next().is_some() {
            return None;
        }
        Some(Self {
            room,
            account,
            expires_at,
            nonce,
        })
    }
}

/// Why an invite code does not let its bearer in (all are 403 `INVITE_INVALID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteRefusal {
    /// Not of a code's shape, or its signed payload cannot be read.
    #[error("the invite code is malformed")]
    Malformed,
    /// Its MAC does not verify: altered, or signed with another key.
    #[error("the invite code's signature does not verify")]
    Forged,
    /// Past its expiry.
    #[error("the invite code has expired")]
    Expired,
    /// Made for another room.
    #[error("the invite code is for another room")]
    OtherRoom,
    /// Made for another account.
    #[error("the invite code is for another account")]
    OtherAccount,
    /// Used already, and its account has no live place in the room to be handed back.
    #[error("the invite code was used already")]
    Used,
    /// This server has no invite key, so it can verify no code.
    #[error("this server verifies no invite codes (it has no invite key)")]
    NoKey,
}

/// Where the used invites' nonces are kept, so that each code lets in once: shared by every
/// instance, each claim atomic.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait InviteLedger: Send + Sync {
    /// Records `nonce` as used in `room` until `until` (the code's expiry, after which the code
    /// is refused anyway); answers whether this call recorded it (`false`: it was used before).
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer; nothing is recorded then.
    async fn claim(
        &self,
        room: &RoomId,
        nonce: &InviteNonce,
        until: DateTime<Utc>,
    ) -> Result<bool, InfrastructureError>;

    /// Forgets a claim whose entry failed, so that the code is not burned by an outage.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    async fn release(&self, room: &RoomId, nonce: &InviteNonce) -> Result<(), InfrastructureError>;
}

/// What an instance needs to let people into invite-only rooms: the key codes are verified
/// with (none: no room can be made invite-only) and the ledger of used codes.
#[derive(Clone)]
pub struct Invites {
    pub(crate) key: Option<InviteKey>,
    pub(crate) ledger: std::sync::Arc<dyn InviteLedger>,
}

impl std::fmt::Debug for Invites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invites")
            .field("key", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl Invites {
    /// Codes verified with `key`, their uses kept in `ledger`.
    pub fn new(key: Option<InviteKey>, ledger: std::sync::Arc<dyn InviteLedger>) -> Self {
        Self { key, ledger }
    }
}

/// What an entry carries towards an invite-only room: the code (`"invite"`) and the account it
/// is checked against. Either missing is 403 `INVITE_REQUIRED` there; open rooms ignore both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvitePass {
    /// The code as sent, not checked yet: an open room never looks at it.
    pub code: Option<String>,
    /// The caller's account.
    pub account: Option<InviteAccount>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: u8) -> InviteKey {
        InviteKey::new(vec![fill; 32]).expect("long enough")
    }

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).expect("a room id")
    }

    fn account(subject: &str) -> InviteAccount {
        InviteAccount::new(subject).expect("an account")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("a time")
    }

    fn invite() -> Invite {
        Invite::new(
            room("golden-hour"),
            account("auth0|fan-7"),
            at(2_000_000_000),
            InviteNonce::from_random([9; 16]),
        )
    }

    fn verify(code: &InviteCode, now: DateTime<Utc>) -> Result<Invite, InviteRefusal> {
        key(1).verify(code, &room("golden-hour"), &account("auth0|fan-7"), now)
    }

    #[test]
    fn a_good_code_lets_its_account_into_its_room_until_it_expires() {
        let code = key(1).sign(&invite());
        assert!(code.as_str().starts_with("v1."));
        let parsed = InviteCode::parse(code.as_str()).expect("a code's shape");
        assert_eq!(verify(&parsed, at(1_999_999_999)), Ok(invite()));
    }

    #[test]
    fn a_code_signed_with_another_key_or_altered_is_forged() {
        let code = key(2).sign(&invite());
        assert_eq!(verify(&code, at(0)), Err(InviteRefusal::Forged));
        let good = key(1).sign(&invite()).0;
        // Another account in the payload, the MAC of the original: the payload was altered.
        let other = Invite {
            account: account("auth0|fan-8"),
            ..invite()
        };
        let altered_payload = key(1).sign(&other).0;
        let (altered_signed, _) = altered_payload.rsplit_once('.').expect("a dot");
        let (_, good_tag) = good.rsplit_once('.').expect("a dot");
        let altered = InviteCode(format!("{altered_signed}.{good_tag}"));
        assert_eq!(verify(&altered, at(0)), Err(InviteRefusal::Forged));
        // A MAC cut short does not verify either.
        let (good_signed, good_tag) = good.rsplit_once('.').expect("a dot");
        let short_tag = &URL_SAFE_NO_PAD.decode(good_tag).expect("base64url")[..16];
        let truncated = InviteCode(format!(
            "{good_signed}.{}",
            URL_SAFE_NO_PAD.encode(short_tag)
        ));
        assert_eq!(verify(&truncated, at(0)), Err(InviteRefusal::Forged));
    }

    #[test]
    fn a_code_is_refused_from_its_expiry_on() {
        let code = key(1).sign(&invite());
        assert_eq!(
            verify(&code, at(2_000_000_000)),
            Err(InviteRefusal::Expired)
        );
        assert_eq!(
            verify(&code, at(2_100_000_000)),
            Err(InviteRefusal::Expired)
        );
    }

    #[test]
    fn a_code_of_another_room_or_account_is_refused() {
        let code = key(1).sign(&invite());
        assert_eq!(
            key(1).verify(&code, &room("other"), &account("auth0|fan-7"), at(0)),
            Err(InviteRefusal::OtherRoom)
        );
        assert_eq!(
            key(1).verify(&code, &room("golden-hour"), &account("auth0|fan-8"), at(0)),
            Err(InviteRefusal::OtherAccount)
        );
    }

    #[test]
    fn malformed_codes_are_refused_before_anything_is_believed() {
        for text in [
            "",
            "not a code",
            "v1.abc.def!",
            "v1.ab c.de",
            &"a".repeat(601),
        ] {
            assert_eq!(
                InviteCode::parse(text),
                Err(InviteRefusal::Malformed),
                "{text:?}"
            );
        }
        for text in ["v1", "v2.YWJj.YWJj", "v1.YWJj.***", "v1.YWJj.@"] {
            let code = InviteCode(text.to_string());
            assert!(
                matches!(
                    verify(&code, at(0)),
                    Err(InviteRefusal::Malformed | InviteRefusal::Forged)
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_signed_payload_that_cannot_be_read_is_malformed() {
        let sign_raw = |payload: &str| {
            let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(payload));
            let mut mac = key(1).mac().expect("a mac");
            mac.update(signed.as_bytes());
            let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            InviteCode(format!("{signed}.{tag}"))
        };
        let nonce = "AAAAAAAAAAAAAAAAAAAAAA";
        for payload in [
            "golden-hour\nauth0|fan-7\n2000000000".to_string(),
            format!("golden-hour\nauth0|fan-7\n-5\n{nonce}"),
            "golden-hour\nauth0|fan-7\n2000000000\nshort".to_string(),
            format!("Golden Hour\nauth0|fan-7\n2000000000\n{nonce}"),
            format!("golden-hour\n\n2000000000\n{nonce}"),
            format!("golden-hour\nauth0|fan-7\n2000000000\n{nonce}\nextra"),
        ] {
            assert_eq!(
                verify(&sign_raw(&payload), at(0)),
                Err(InviteRefusal::Malformed),
                "{payload:?}"
            );
        }
        // The same way of signing, with a readable payload, is a good code: the format above
        // is what an operator's system follows.
        let good = format!("golden-hour\nauth0|fan-7\n2000000000\n{nonce}");
        assert!(verify(&sign_raw(&good), at(0)).is_ok());
    }

    #[test]
    fn a_short_key_an_account_with_a_newline_and_a_short_nonce_are_refused() {
        assert_eq!(InviteKey::new(vec![1; 31]), Err(WeakInviteKey));
        assert_eq!(InviteAccount::new("a\nb"), Err(InvalidInviteAccount));
        assert_eq!(InviteAccount::new(""), Err(InvalidInviteAccount));
        assert_eq!(
            InviteAccount::new(&"x".repeat(256)),
            Err(InvalidInviteAccount)
        );
        assert_eq!(InviteNonce::parse("short"), Err(InvalidInviteNonce));
        assert_eq!(InviteNonce::parse(&"n".repeat(65)), Err(InvalidInviteNonce));
        assert!(InviteNonce::parse(&"n".repeat(16)).is_ok());
    }

    #[test]
    fn the_longest_invite_fits_in_a_code() {
        let longest = Invite::new(
            room(&"r".repeat(40)),
            account(&"a".repeat(255)),
            at(99_999_999_999),
            InviteNonce::parse(&"n".repeat(64)).expect("a nonce"),
        );
        let code = key(1).sign(&longest);
        assert!(InviteCode::parse(code.as_str()).is_ok());
        assert_eq!(
            key(1).verify(&code, &longest.room, &longest.account, at(0)),
            Ok(longest)
        );
    }
}
