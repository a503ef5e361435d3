//! The fair draw of a scheduled opening, as a rule anyone can check.
//!
//! When an opening is scheduled, a secret 32-byte seed is chosen and its commitment (SHA-256 of
//! the seed's bytes) is published; at the opening, the places handed out so far (a
//! [`DrawRange`]) are ordered by [`drawn_order`], a pure function of the seed and the range, and
//! the seed is published. Whoever saw the commitment before the opening can check that the seed
//! was not chosen after the fact, and recompute the order.
//!
//! The order: the arrival numbers `after + 1 ..= through`, sorted ascending by
//! `SHA-256(seed || n as 8 bytes big-endian)`, ties (never seen, but defined) by `n`.
//! `order[i]` is the arrival number at the place `after + 1 + i`.

use std::fmt;

use sha2::{Digest, Sha256};

use super::controls::DrawRange;
use super::token::Seq;

/// The bytes of a draw's seed.
pub const SEED_LEN: usize = 32;

/// A draw's secret seed: 32 bytes from a cryptographic source, published only once the draw is
/// made. Its `Debug` does not show it, so a log line cannot leak it before the draw.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DrawSeed([u8; SEED_LEN]);

impl fmt::Debug for DrawSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DrawSeed(..)")
    }
}

/// Text that is not 64 hex digits where a seed or a commitment was due.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not 64 hex digits: {0:?}")]
pub struct NotHex32(pub String);

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn parse_hex32(text: &str) -> Result<[u8; SEED_LEN], NotHex32> {
    let refused = || NotHex32(text.chars().take(80).collect());
    let digits = text.as_bytes();
    if digits.len() != SEED_LEN * 2 {
        return Err(refused());
    }
    let value = |digit: u8| char::from(digit).to_digit(16).ok_or_else(refused);
    let mut bytes = [0u8; SEED_LEN];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let high = value(pair[0])?;
        let low = value(pair[1])?;
        *byte = u8::try_from(high * 16 + low).map_err(|_| refused())?;
    }
    Ok(bytes)
}

impl DrawSeed {
    /// The seed of these bytes.
    pub const fn from_bytes(bytes: [u8; SEED_LEN]) -> Self {
        Self(bytes)
    }

    /// The seed's bytes.
    pub fn as_bytes(&self) -> &[u8; SEED_LEN] {
        &self.0
    }

    /// The seed spelled as 64 lowercase hex digits, as it is stored and published.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The seed of 64 hex digits (either case).
    ///
    /// # Errors
    /// [`NotHex32`] for anything else.
    pub fn from_hex(text: &str) -> Result<Self, NotHex32> {
        parse_hex32(text).map(Self)
    }

    /// What is published while the draw is to come: SHA-256 of the seed's 32 bytes (not of
    /// its hex spelling).
    pub fn commitment(&self) -> DrawCommitment {
        DrawCommitment(Sha256::digest(self.0).into())
    }
}

/// The SHA-256 of a draw's seed, published before the draw so that the seed cannot be changed
/// afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DrawCommitment([u8; 32]);

impl DrawCommitment {
    /// The commitment spelled as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The commitment of 64 hex digits (either case).
    ///
    /// # Errors
    /// [`NotHex32`] for anything else.
    pub fn from_hex(text: &str) -> Result<Self, NotHex32> {
        parse_hex32(text).map(Self)
    }

    /// Whether `seed` is the one committed to.
    pub fn opens_to(&self, seed: &DrawSeed) -> bool {
        seed.commitment() == *self
    }
}

/// Where draw seeds come from: a cryptographic random source in production, a fixed one in
/// tests, so the domain stays free of I/O and the draw is reproducible under test.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait SeedSource: Send + Sync {
    /// A new seed nobody can predict.
    fn seed(&self) -> DrawSeed;
}

/// Always the same seed: for tests and benchmarks only, where the draw must be reproducible.
#[derive(Debug, Clone, Copy)]
pub struct FixedSeed(pub DrawSeed);

impl SeedSource for FixedSeed {
    fn seed(&self) -> DrawSeed {
        self.0
    }
}

/// The key arrival number `seq` is sorted by in the draw of `seed`.
fn draw_key(seed: &DrawSeed, seq: Seq) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(seed.0);
    hasher.update(seq.to_be_bytes());
    hasher.finalize().into()
}

/// The order of the draw of `range` by `seed`: the arrival numbers of the range sorted by
/// `SHA-256(seed || n as 8-byte big-endian)`, ties by `n`; `order[i]` is the arrival number at
/// the place `range.after + 1 + i`. A uniformly random permutation as long as the seed is
/// unpredictable when the range is fixed, and a pure function of the two, so every instance
/// computes the same one and anyone can recompute it.
pub fn drawn_order(seed: &DrawSeed, range: DrawRange) -> Vec<Seq> {
    let first = range.after.saturating_add(1);
    let mut keyed: Vec<([u8; 32], Seq)> = (first..=range.through)
        .map(|seq| (draw_key(seed, seq), seq))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, seq)| seq).collect()
}

/// A short fingerprint of a drawn order, to compare two computations of it: SHA-256 of the
/// arrival numbers in order, each as 8 bytes big-endian, in hex.
pub fn order_digest(order: &[Seq]) -> String {
    let mut hasher = Sha256::new();
    for seq in order {
        hasher.update(seq.to_be_bytes());
    }
    hex(&hasher.finalize())
}

/// A line's draw as anyone may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Not `#[non_exhaustive]`: the public draw has exactly these two stages.
pub enum PublishedDraw {
    /// An opening is scheduled: only the commitment to its seed is public.
    Committed {
        /// SHA-256 of the seed to come.
        commitment: DrawCommitment,
    },
    /// The last opening's draw is made: its seed and range are public.
    Drawn {
        /// The seed the order was computed from.
        seed: DrawSeed,
        /// The places drawn.
        range: DrawRange,
    },
}

/// A line's draw seeds as its store keeps them (reported with every step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineDraw {
    /// The seed of the scheduled opening's draw, secret until it is made; `None` when no
    /// opening is scheduled, or one was scheduled without a seed (its draw then takes one at
    /// the opening and publishes no commitment before).
    pub pending: Option<DrawSeed>,
    /// The last draw made, with the seed its order was computed from.
    pub last: Option<(DrawRange, DrawSeed)>,
}

impl LineDraw {
    /// What may be published: the commitment while an opening is pending, else the last draw.
    pub fn published(&self) -> Option<PublishedDraw> {
        match (self.pending, self.last) {
            (Some(seed), _) => Some(PublishedDraw::Committed {
                commitment: seed.commitment(),
            }),
            (None, Some((range, seed))) => Some(PublishedDraw::Drawn { seed, range }),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> DrawSeed {
        let mut bytes = [0u8; SEED_LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = i as u8;
        }
        DrawSeed::from_bytes(bytes)
    }

    fn range(after: Seq, through: Seq) -> DrawRange {
        DrawRange { after, through }
    }

    #[test]
    fn the_commitment_is_sha256_of_the_seed_bytes() {
        // python3 -c "import hashlib; print(hashlib.sha256(bytes(range(32))).hexdigest())"
        assert_eq!(
            seed().commitment().to_hex(),
            "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
        );
        assert!(seed().commitment().opens_to(&seed()));
        assert!(!seed()
            .commitment()
            .opens_to(&DrawSeed::from_bytes([0; SEED_LEN])));
    }

    #[test]
    fn the_order_matches_an_independent_computation() {
        // python3: seed = bytes(range(32)); sorted(range(101, 111), key=lambda n:
        //   (hashlib.sha256(seed + n.to_bytes(8, "big")).digest(), n))
        assert_eq!(
            drawn_order(&seed(), range(100, 110)),
            PYTHON_ORDER_101_TO_110.to_vec()
        );
        // python3: hashlib.sha256(b"".join(n.to_bytes(8, "big") for n in order)).hexdigest()
        assert_eq!(
            order_digest(&drawn_order(&seed(), range(100, 110))),
            PYTHON_DIGEST_101_TO_110
        );
    }

    const PYTHON_ORDER_101_TO_110: [Seq; 10] = [104, 106, 103, 105, 102, 107, 110, 101, 109, 108];
    const PYTHON_DIGEST_101_TO_110: &str =
        "83e31ad0f27ee1bf31d42f3a920e500b1ed9f3ca9cf34bc82e2dfe8c3b585ec2";

    #[test]
    fn the_order_is_a_deterministic_permutation_of_the_range() {
        let drawn = drawn_order(&seed(), range(1000, 1500));
        assert_eq!(drawn, drawn_order(&seed(), range(1000, 1500)));
        let mut sorted = drawn.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1001..=1500).collect::<Vec<_>>());
        assert_ne!(drawn, sorted, "shuffled");
        let other = drawn_order(&DrawSeed::from_bytes([7; SEED_LEN]), range(1000, 1500));
        assert_ne!(drawn, other, "another seed, another order");
        assert!(drawn_order(&seed(), range(5, 5)).is_empty());
    }

    #[test]
    fn seeds_and_commitments_read_back_from_hex() {
        let text = seed().to_hex();
        assert_eq!(
            text,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        );
        assert_eq!(DrawSeed::from_hex(&text.to_uppercase()), Ok(seed()));
        let commitment = seed().commitment();
        assert_eq!(
            DrawCommitment::from_hex(&commitment.to_hex()),
            Ok(commitment)
        );
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"é".repeat(32)] {
            assert!(DrawSeed::from_hex(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{:?}", seed()), "DrawSeed(..)");
    }

    #[test]
    fn the_commitment_is_published_before_the_draw_and_the_seed_after() {
        let drawn = range(3, 9);
        let pending = LineDraw {
            pending: Some(seed()),
            last: Some((drawn, DrawSeed::from_bytes([1; SEED_LEN]))),
        };
        assert_eq!(
            pending.published(),
            Some(PublishedDraw::Committed {
                commitment: seed().commitment()
            })
        );
        let done = LineDraw {
            pending: None,
            last: Some((drawn, seed())),
        };
        assert_eq!(
            done.published(),
            Some(PublishedDraw::Drawn {
                seed: seed(),
                range: drawn
            })
        );
        assert_eq!(LineDraw::default().published(), None);
    }
}
