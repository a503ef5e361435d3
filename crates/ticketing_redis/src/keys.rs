//! Key names: one prefix per stack, hash-tagged so a script's keys share a cluster slot.

/// Builds every key of one stack from its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
    tagged_prefix: String,
}

impl KeySpace {
    /// Keys under `prefix` (`APP__REDIS__KEY_PREFIX`); braces in it are dropped so the hash tag
    /// stays well-formed.
    pub fn new(prefix: &str) -> Self {
        let clean: String = prefix.chars().filter(|c| *c != '{' && *c != '}').collect();
        Self {
            prefix: prefix.to_string(),
            tagged_prefix: format!("{{{clean}}}"),
        }
    }

    /// The key `name` under the prefix exactly as configured, without the hash tag, such as
    /// `ticketing:events`: for a key the contract names, which no script uses with others.
    pub fn untagged_key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// The key `name` of this stack, such as `{ticketing}:queue:waiting`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.tagged_prefix)
    }

    /// A pattern matching every key of this stack, for clean-up.
    pub fn pattern(&self) -> String {
        format!("{}:*", self.tagged_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = KeySpace::new("ticketing");
        assert_eq!(keys.key("queue:waiting"), "{ticketing}:queue:waiting");
        assert_eq!(keys.pattern(), "{ticketing}:*");
    }

    #[test]
    fn an_untagged_key_keeps_the_prefix_as_configured() {
        assert_eq!(
            KeySpace::new("ticketing").untagged_key("events"),
            "ticketing:events"
        );
    }

    #[test]
    fn braces_in_the_prefix_cannot_break_the_hash_tag() {
        assert_eq!(KeySpace::new("a{b}").key("k"), "{ab}:k");
    }
}
