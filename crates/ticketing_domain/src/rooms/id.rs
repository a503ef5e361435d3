//! A room's identifier: a slug, small enough to travel inside a queue token.

use std::fmt;

/// A room id that is not a slug of `[a-z0-9-]{1,40}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a room id is 1 to 40 characters of a-z, 0-9 and '-', not {0:?}")]
pub struct InvalidRoomId(pub String);

/// A waiting room's id: 1 to 40 characters of `[a-z0-9-]`. Kept inline (no allocation) so that
/// a ticket carrying it stays `Copy`. Ordered as its text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId {
    len: u8,
    bytes: [u8; RoomId::MAX_LEN],
}

impl RoomId {
    /// The longest id.
    pub const MAX_LEN: usize = 40;
    /// The id of the room that always exists: the v1/v2 line.
    pub const DEFAULT: &'static str = "default";

    /// The room `default`: the line of every performance that no other room covers.
    pub fn default_room() -> Self {
        Self::from_slug(Self::DEFAULT.as_bytes())
    }

    /// Checks `text` is a slug.
    ///
    /// # Errors
    /// [`InvalidRoomId`] when it is empty, longer than 40 characters or has other characters.
    pub fn parse(text: &str) -> Result<Self, InvalidRoomId> {
        let bytes = text.as_bytes();
        let is_slug = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if is_slug {
            Ok(Self::from_slug(bytes))
        } else {
            Err(InvalidRoomId(text.chars().take(80).collect()))
        }
    }

    /// Only for bytes already known to be a slug.
    fn from_slug(slug: &[u8]) -> Self {
        let mut bytes = [0u8; Self::MAX_LEN];
        let len = slug.len().min(Self::MAX_LEN);
        bytes[..len].copy_from_slice(&slug[..len]);
        Self {
            len: u8::try_from(len).unwrap_or(0),
            bytes,
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII slugs are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The id's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether this is the room `default`.
    pub fn is_default(&self) -> bool {
        self.as_bytes() == Self::DEFAULT.as_bytes()
    }
}

impl Ord for RoomId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for RoomId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Default for RoomId {
    fn default() -> Self {
        Self::default_room()
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({})", self.as_str())
    }
}

impl std::str::FromStr for RoomId {
    type Err = InvalidRoomId;
    fn from_str(text: &str) -> Result<Self, InvalidRoomId> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_is_a_room_id() {
        let id = RoomId::parse("golden-hour-2027").expect("a slug");
        assert_eq!(id.as_str(), "golden-hour-2027");
        assert!(!id.is_default());
        assert!(RoomId::default().is_default());
    }

    #[test]
    fn ids_are_ordered_as_their_text() {
        let parse = |text| RoomId::parse(text).expect("a slug");
        assert!(parse("golden-hour") < parse("palette"));
        assert!(parse("a") < parse("ab"));
    }

    #[test]
    fn anything_else_is_refused() {
        for text in ["", "Golden", "a_b", "a b", "é", &"a".repeat(41), "{x}"] {
            assert!(RoomId::parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(RoomId::parse(&"a".repeat(40)).is_ok());
    }
}
