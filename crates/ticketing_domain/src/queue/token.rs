//! The queue token: a signed ticket the client keeps from entry to payment.
//!
//! A token carries what can be signed once, at entry: the line it belongs to (`epoch`), the
//! person's arrival number in it (`seq`) and the user it is bound to. Any instance holding the
//! signing key verifies it without asking anyone; whether the ticket is still ACTIVE, WAITING or
//! dead is the line's business ([`super::line::LineView`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::ids::UserId;
use crate::rooms::RoomId;

/// The text a client sends in `Queue-Token`, of a shape that can be a token.
///
/// Only its shape is checked here (1..=128 characters of `[A-Za-z0-9_-]`), so that garbage never
/// reaches the signature check or the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueToken(String);

/// A `Queue-Token` value that cannot be a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a queue token is 1 to 128 characters of letters, digits, '-' and '_'")]
pub struct MalformedToken;

impl QueueToken {
    /// The longest token accepted.
    pub const MAX_LEN: usize = 128;

    /// Checks the shape of `value`.
    ///
    /// # Errors
    /// [`MalformedToken`] when it is empty, too long or has other characters.
    pub fn parse(value: &str) -> Result<Self, MalformedToken> {
        let well_formed = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(value.to_string()))
        } else {
            Err(MalformedToken)
        }
    }

    /// The token as sent over the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An arrival number in the line: 1 for the first person of an epoch, then one more for each.
pub type Seq = u64;

/// What a token proves once its signature verifies: which line, which place, which user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The incarnation of the line: a line whose store was lost starts a new epoch, and the
    /// tickets of the old one are dead.
    pub epoch: u32,
    /// Arrival number: the line is first come, first served by it.
    pub seq: Seq,
    /// The user the ticket is bound to, if it was entered with one.
    pub user: Option<UserId>,
}

/// A token that is not one of ours: altered, truncated, signed with another or a retired key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue token's signature does not verify")]
pub struct ForgedToken;

/// A key the tokens are signed with: at least 32 bytes, shared by every instance.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// A signing key that is too short to be secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a signing key has at least {} bytes", SigningKey::MIN_LEN)]
pub struct WeakSigningKey;

impl SigningKey {
    /// The shortest key accepted.
    pub const MIN_LEN: usize = 32;

    /// # Errors
    /// [`WeakSigningKey`] when `secret` is shorter than [`SigningKey::MIN_LEN`] bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, WeakSigningKey> {
        let secret = secret.into();
        if secret.len() < Self::MIN_LEN {
            return Err(WeakSigningKey);
        }
        Ok(Self(secret))
    }

    fn tag(&self, claims: &[u8]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        // HMAC takes keys of any length, so this cannot fail; an empty tag would only refuse.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) {
            mac.update(claims);
            let full = mac.finalize().into_bytes();
            tag.copy_from_slice(&full[..TAG_LEN]);
        }
        tag
    }

    /// A key of its own for another use of this secret (`label` names the use), so that what
    /// one use signs can never pass for what another signs.
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut derived = [0u8; 32];
        // HMAC takes keys of any length, so this cannot fail.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) {
            mac.update(label);
            derived.copy_from_slice(&mac.finalize().into_bytes());
        }
        derived
    }

    fn verifies(&self, claims: &[u8], tag: &[u8]) -> bool {
        Hmac::<Sha256>::new_from_slice(&self.0).is_ok_and(|mut mac| {
            mac.update(claims);
            mac.verify_truncated_left(tag).is_ok()
        })
    }
}

/// Layout version of the signed bytes of a ticket of the room `default` (the v1/v2 layout).
const VERSION: u8 = 1;
/// Layout version of a ticket of any other room: the room's id follows the version.
const VERSION_IN_ROOM: u8 = 2;
/// epoch (4), seq (8), user (8; 0 for none).
const TICKET_LEN: usize = 4 + 8 + 8;
/// 128 bits of HMAC-SHA256.
const TAG_LEN: usize = 16;

/// Signs tickets with the current key; accepts the current key and, during a rotation, the
/// previous one. Rotation: deploy `current = new, previous = old` to every instance, then, once
/// the old key's tokens may all be dead (or are to be refused), drop `previous`.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    current: SigningKey,
    previous: Option<SigningKey>,
}

impl TokenKeys {
    /// Signs with `current`; accepts tokens of `current` and, during a rotation, of `previous`.
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Self {
        Self { current, previous }
    }

    /// Keys of their own for another use of these secrets (see [`SigningKey::derive`]): the
    /// current key's first, then, during a rotation, the previous one's.
    pub(crate) fn derive(&self, label: &[u8]) -> Vec<[u8; 32]> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(|key| key.derive(label))
            .collect()
    }

    /// The token of `ticket` in the room `default`: the same ticket always gives the same text
    /// under the same key, so a user entering again is handed the very token they hold.
    pub fn seal(&self, ticket: &Ticket) -> QueueToken {
        self.seal_in_room(&RoomId::default_room(), ticket)
    }

    /// The token of `ticket` in `room`. A ticket of the room `default` keeps the v1/v2 layout
    /// (50 characters); one of another room carries the room's id (at most 104 characters).
    pub fn seal_in_room(&self, room: &RoomId, ticket: &Ticket) -> QueueToken {
        let claims = claims(room, ticket);
        let mut bytes = Vec::with_capacity(claims.len() + TAG_LEN);
        bytes.extend_from_slice(&claims);
        bytes.extend_from_slice(&self.current.tag(&claims));
        // Base64url without padding is within QueueToken's alphabet.
        QueueToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The ticket `token` proves, whatever its room.
    ///
    /// # Errors
    /// [`ForgedToken`] when it does not decode to a ticket signed by an accepted key.
    pub fn open(&self, token: &QueueToken) -> Result<Ticket, ForgedToken> {
        self.open_in_room(token).map(|(_, ticket)| ticket)
    }

    /// The room and ticket `token` proves.
    ///
    /// # Errors
    /// [`ForgedToken`] when it does not decode to a ticket signed by an accepted key.
    pub fn open_in_room(&self, token: &QueueToken) -> Result<(RoomId, Ticket), ForgedToken> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.as_str())
            .map_err(|_| ForgedToken)?;
        let claims_len = bytes.len().checked_sub(TAG_LEN).ok_or(ForgedToken)?;
        let (claims, tag) = bytes.split_at(claims_len);
        let signed = self.current.verifies(claims, tag)
            || self
                .previous
                .as_ref()
                .is_some_and(|key| key.verifies(claims, tag));
        if !signed {
            return Err(ForgedToken);
        }
        parse_claims(claims).ok_or(ForgedToken)
    }
}

fn claims(room: &RoomId, ticket: &Ticket) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(2 + RoomId::MAX_LEN + TICKET_LEN);
    if room.is_default() {
        bytes.push(VERSION);
    } else {
        bytes.push(VERSION_IN_ROOM);
        let room = room.as_bytes();
        // A room id is at most 40 bytes.
        bytes.push(u8::try_from(room.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(room);
    }
    bytes.extend_from_slice(&ticket.epoch.to_be_bytes());
    bytes.extend_from_slice(&ticket.seq.to_be_bytes());
    let user = ticket
        .user
        .map_or(0, |user| u64::try_from(user.get()).unwrap_or(0));
    bytes.extend_from_slice(&user.to_be_bytes());
    bytes
}

fn parse_claims(claims: &[u8]) -> Option<(RoomId, Ticket)> {
    let (room, ticket) = match *claims.first()? {
        VERSION => (RoomId::default_room(), claims.get(1..)?),
        VERSION_IN_ROOM => {
            let len = usize::from(*claims.get(1)?);
            let room = std::str::from_utf8(claims.get(2..2 + len)?).ok()?;
            let room = RoomId::parse(room).ok().filter(|room| !room.is_default())?;
            (room, claims.get(2 + len..)?)
        }
        _ => return None,
    };
    if ticket.len() != TICKET_LEN {
        return None;
    }
    let epoch = u32::from_be_bytes(ticket.get(0..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(ticket.get(4..12)?.try_into().ok()?);
    let user = u64::from_be_bytes(ticket.get(12..20)?.try_into().ok()?);
    let user = match user {
        0 => None,
        id => Some(UserId::new(i64::try_from(id).ok()?).ok()?),
    };
    Some((room, Ticket { epoch, seq, user }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: u8) -> SigningKey {
        SigningKey::new(vec![fill; 32]).expect("long enough")
    }

    fn ticket() -> Ticket {
        Ticket {
            epoch: 7,
            seq: 123_456,
            user: Some(UserId::new(42).expect("valid")),
        }
    }

    #[test]
    fn a_sealed_ticket_opens_to_itself_and_fits_the_contract_shape() {
        let keys = TokenKeys::new(key(1), None);
        let token = keys.seal(&ticket());

        assert_eq!(keys.open(&token), Ok(ticket()));
        assert!(QueueToken::parse(token.as_str()).is_ok());
        assert!(token.as_str().len() <= QueueToken::MAX_LEN);
    }

    #[test]
    fn an_unbound_ticket_round_trips() {
        let keys = TokenKeys::new(key(1), None);
        let anonymous = Ticket {
            user: None,
            ..ticket()
        };
        assert_eq!(keys.open(&keys.seal(&anonymous)), Ok(anonymous));
    }

    #[test]
    fn the_same_ticket_gives_the_same_token() {
        let keys = TokenKeys::new(key(1), None);
        assert_eq!(keys.seal(&ticket()), keys.seal(&ticket()));
    }

    #[test]
    fn every_altered_character_is_refused() {
        let keys = TokenKeys::new(key(1), None);
        let text = keys.seal(&ticket()).as_str().to_string();
        for index in 0..text.len() {
            let mut altered = text.clone().into_bytes();
            altered[index] = if altered[index] == b'A' { b'B' } else { b'A' };
            let altered = QueueToken::parse(std::str::from_utf8(&altered).expect("ascii"))
                .expect("same alphabet");
            assert_eq!(keys.open(&altered), Err(ForgedToken), "character {index}");
        }
    }

    #[test]
    fn truncated_or_extended_tokens_are_refused() {
        let keys = TokenKeys::new(key(1), None);
        let text = keys.seal(&ticket()).as_str().to_string();
        for cut in [1, 2, 10, text.len() - 1] {
            let short = QueueToken::parse(&text[..cut]).expect("shape");
            assert_eq!(keys.open(&short), Err(ForgedToken));
        }
        let long = QueueToken::parse(&format!("{text}AA")).expect("shape");
        assert_eq!(keys.open(&long), Err(ForgedToken));
    }

    #[test]
    fn a_token_of_another_key_is_refused() {
        let ours = TokenKeys::new(key(1), None);
        let theirs = TokenKeys::new(key(2), None);
        assert_eq!(ours.open(&theirs.seal(&ticket())), Err(ForgedToken));
    }

    #[test]
    fn during_a_rotation_the_previous_key_still_opens_and_after_it_does_not() {
        let before = TokenKeys::new(key(1), None);
        let during = TokenKeys::new(key(2), Some(key(1)));
        let after = TokenKeys::new(key(2), None);
        let old_token = before.seal(&ticket());

        assert_eq!(during.open(&old_token), Ok(ticket()));
        assert_eq!(after.open(&old_token), Err(ForgedToken));
        assert_eq!(after.open(&during.seal(&ticket())), Ok(ticket()));
    }

    #[test]
    fn a_ticket_of_a_room_carries_the_room_and_fits_the_contract_shape() {
        let keys = TokenKeys::new(key(1), None);
        let room = RoomId::parse(&"r".repeat(40)).expect("a slug");
        let token = keys.seal_in_room(&room, &ticket());
        assert!(token.as_str().len() <= QueueToken::MAX_LEN);
        assert!(QueueToken::parse(token.as_str()).is_ok());
        assert_eq!(keys.open_in_room(&token), Ok((room, ticket())));
        assert_eq!(
            keys.open_in_room(&keys.seal(&ticket())),
            Ok((RoomId::default_room(), ticket()))
        );
        assert_eq!(keys.seal(&ticket()).as_str().len(), 50, "the v1/v2 layout");
    }

    #[test]
    fn a_room_token_altered_anywhere_is_refused() {
        let keys = TokenKeys::new(key(1), None);
        let room = RoomId::parse("golden-hour").expect("a slug");
        let text = keys.seal_in_room(&room, &ticket()).as_str().to_string();
        for index in 0..text.len() {
            let mut altered = text.clone().into_bytes();
            altered[index] = if altered[index] == b'A' { b'B' } else { b'A' };
            let altered = QueueToken::parse(std::str::from_utf8(&altered).expect("ascii"))
                .expect("same alphabet");
            assert_eq!(
                keys.open_in_room(&altered),
                Err(ForgedToken),
                "character {index}"
            );
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(SigningKey::new(vec![1; 31]), Err(WeakSigningKey));
    }

    #[test]
    fn tokens_of_the_wrong_shape_are_malformed() {
        assert!(QueueToken::parse("").is_err());
        assert!(QueueToken::parse(&"a".repeat(129)).is_err());
        assert!(QueueToken::parse("has space").is_err());
        assert!(QueueToken::parse("../../etc").is_err());
        assert!(QueueToken::parse(&"a".repeat(128)).is_ok());
        assert!(QueueToken::parse("Ab-9_x").is_ok());
    }
}
