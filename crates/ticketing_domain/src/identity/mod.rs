//! Who the caller is: an account of an identity provider (a JWT's claim, or a subject a trusted
//! gateway vouches for) mapped to a [`UserId`] of this service, and the one rule every use case
//! acting for a user follows with identity on: act for the caller only ([`act_for`]).
//!
//! Off (the default) the service trusts the `userId` a request names, as before identity
//! existed; [`IdentityService::identify`] then answers `None` and [`act_for`] lets everything
//! through.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::ids::UserId;
use crate::InfrastructureError;

/// The longest subject accepted: OpenID Connect's `sub` is at most 255 ASCII characters.
pub const SUBJECT_MAX_LEN: usize = 255;

/// An account's name at the identity provider (the claim's value, or the gateway's header):
/// 1 ..= [`SUBJECT_MAX_LEN`] characters, none of them a control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

/// Why a text cannot be a [`Subject`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSubject {
    /// Empty.
    #[error("the subject is empty")]
    Empty,
    /// Longer than [`SUBJECT_MAX_LEN`] characters.
    #[error("the subject is longer than {SUBJECT_MAX_LEN} characters")]
    TooLong,
    /// It holds a control character (a header or log line could be split by it).
    #[error("the subject holds a control character")]
    ControlCharacter,
}

impl Subject {
    /// `text` as a subject.
    ///
    /// # Errors
    /// [`InvalidSubject`] for an empty, too long or control-character-bearing text.
    pub fn parse(text: &str) -> Result<Self, InvalidSubject> {
        if text.is_empty() {
            return Err(InvalidSubject::Empty);
        }
        if text.chars().count() > SUBJECT_MAX_LEN {
            return Err(InvalidSubject::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(InvalidSubject::ControlCharacter);
        }
        Ok(Self(text.to_string()))
    }

    /// The subject's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who sent a request, once identified: the account and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user this service keeps for the account.
    pub user: UserId,
    /// The account at the identity provider.
    pub subject: Subject,
}

/// What a request carries to say who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`: to be verified.
    Bearer(String),
    /// A subject that a trusted gateway authenticated (its header, from a trusted address):
    /// already vouched for.
    Vouched(String),
}

/// Why a request could not be identified, or may not act for a user.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Identity is on and the request carries no credential.
    #[error("credentials are required")]
    Required,
    /// The credential is not good: bad signature, expired, not yet valid, wrong issuer or
    /// audience, a key the issuer does not have, or not a token at all.
    #[error("the credentials are invalid: {0}")]
    Invalid(String),
    /// The token names a key that is not cached, and the issuer's keys cannot be fetched now
    /// (or were fetched too recently to ask again): retry after the given time.
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable {
        /// When asking again may succeed.
        retry_after: Duration,
    },
    /// The request names a user other than the caller.
    #[error("the caller may act for its own user only")]
    Mismatch,
    /// The accounts cannot be read or written.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Turns a bearer token into the subject it was issued for, verifying it: the port of the
/// JWT/JWKS adapter.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The subject `token` was issued for.
    ///
    /// # Errors
    /// [`IdentityError::Invalid`] for a token that does not verify;
    /// [`IdentityError::KeysUnavailable`] when its key cannot be had now.
    async fn verify(&self, token: &str) -> Result<Subject, IdentityError>;
}

/// The accounts: which user an identity provider's subject is.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Accounts: Send + Sync {
    /// The user of `subject`, created (balance 0) on first sight; two first requests at once
    /// get one user.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    async fn user_of(&self, subject: &Subject) -> Result<UserId, InfrastructureError>;
}

/// How requests say who sent them.
#[derive(Clone)]
pub enum IdentityMode {
    /// Nobody is identified: requests name their `userId` (the default).
    Off,
    /// `Authorization: Bearer <JWT>`, verified by the given verifier.
    Jwt(Arc<dyn TokenVerifier>),
    /// A trusted gateway's header names the subject ([`Credential::Vouched`]).
    TrustedHeader,
}

impl std::fmt::Debug for IdentityMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "Off",
            Self::Jwt(_) => "Jwt",
            Self::TrustedHeader => "TrustedHeader",
        })
    }
}

/// Identifies callers: verifies their credential as the mode says and finds (or creates) their
/// user.
#[derive(Clone)]
pub struct IdentityService {
    mode: IdentityMode,
    accounts: Option<Arc<dyn Accounts>>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl IdentityService {
    /// Identity off: [`IdentityService::identify`] answers `None`.
    pub fn off() -> Self {
        Self {
            mode: IdentityMode::Off,
            accounts: None,
        }
    }

    /// Identity on in `mode`, the users of subjects kept in `accounts`.
    pub fn new(mode: IdentityMode, accounts: Arc<dyn Accounts>) -> Self {
        Self {
            mode,
            accounts: Some(accounts),
        }
    }

    /// Whether requests must say who sent them.
    pub fn is_on(&self) -> bool {
        !matches!(self.mode, IdentityMode::Off) && self.accounts.is_some()
    }

    /// The mode.
    pub fn mode(&self) -> &IdentityMode {
        &self.mode
    }

    /// Who sent a request carrying `credential`: `None` with identity off. A credential of a
    /// kind the mode does not take counts as none.
    ///
    /// # Errors
    /// [`IdentityError::Required`] without a credential the mode takes;
    /// [`IdentityError::Invalid`] / [`IdentityError::KeysUnavailable`] from the verifier, or a
    /// subject that is no [`Subject`]; [`IdentityError::Infrastructure`] when the accounts
    /// cannot answer.
    pub async fn identify(
        &self,
        credential: Option<Credential>,
    ) -> Result<Option<Caller>, IdentityError> {
        let accounts = match (&self.mode, &self.accounts) {
            (IdentityMode::Off, _) | (_, None) => return Ok(None),
            (_, Some(accounts)) => accounts,
        };
        let subject = match (&self.mode, credential) {
            (IdentityMode::Jwt(verifier), Some(Credential::Bearer(token))) => {
                verifier.verify(&token).await?
            }
            (IdentityMode::TrustedHeader, Some(Credential::Vouched(text))) => Subject::parse(&text)
                .map_err(|invalid| IdentityError::Invalid(invalid.to_string()))?,
            _ => return Err(IdentityError::Required),
        };
        let user = accounts.user_of(&subject).await?;
        Ok(Some(Caller { user, subject }))
    }
}

/// The rule, one for every use case that acts for a user: with identity on (`caller` is
/// `Some`), only for the caller's own user. `requested` is the user a request names (path or
/// body), `None` when it names none; the answer is the user to act for (the caller's when the
/// request named none), `None` only with identity off and no user named.
///
/// # Errors
/// [`IdentityError::Mismatch`] when the request names another user than the caller.
pub fn act_for(
    caller: Option<&Caller>,
    requested: Option<UserId>,
) -> Result<Option<UserId>, IdentityError> {
    match (caller, requested) {
        (None, requested) => Ok(requested),
        (Some(caller), None) => Ok(Some(caller.user)),
        (Some(caller), Some(user)) if caller.user == user => Ok(Some(user)),
        (Some(_), Some(_)) => Err(IdentityError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> UserId {
        UserId::new(id).expect("valid")
    }

    fn caller(id: i64) -> Caller {
        Caller {
            user: user(id),
            subject: Subject::parse("alice").expect("valid"),
        }
    }

    fn accounts_giving(id: i64) -> Arc<dyn Accounts> {
        let mut accounts = MockAccounts::new();
        accounts.expect_user_of().returning(move |_| Ok(user(id)));
        Arc::new(accounts)
    }

    #[test]
    fn a_subject_is_non_empty_bounded_and_printable() {
        assert_eq!(Subject::parse(""), Err(InvalidSubject::Empty));
        assert_eq!(
            Subject::parse(&"a".repeat(SUBJECT_MAX_LEN + 1)),
            Err(InvalidSubject::TooLong)
        );
        assert_eq!(
            Subject::parse("a\nb"),
            Err(InvalidSubject::ControlCharacter)
        );
        assert_eq!(
            Subject::parse(&"é".repeat(SUBJECT_MAX_LEN)).map(|s| s.as_str().chars().count()),
            Ok(SUBJECT_MAX_LEN)
        );
    }

    #[test]
    fn with_identity_off_the_named_user_is_acted_for() {
        assert_eq!(act_for(None, Some(user(8))).ok(), Some(Some(user(8))));
        assert_eq!(act_for(None, None).ok(), Some(None));
    }

    #[test]
    fn with_identity_on_only_the_callers_user_is_acted_for() {
        let alice = caller(7);
        assert_eq!(act_for(Some(&alice), None).ok(), Some(Some(user(7))));
        assert_eq!(
            act_for(Some(&alice), Some(user(7))).ok(),
            Some(Some(user(7)))
        );
        assert!(matches!(
            act_for(Some(&alice), Some(user(8))),
            Err(IdentityError::Mismatch)
        ));
    }

    #[tokio::test]
    async fn off_identifies_nobody() {
        let service = IdentityService::off();
        assert!(!service.is_on());
        let caller = service
            .identify(Some(Credential::Vouched("alice".into())))
            .await
            .expect("off never refuses");
        assert_eq!(caller, None);
    }

    #[tokio::test]
    async fn a_trusted_header_names_the_account() {
        let service = IdentityService::new(IdentityMode::TrustedHeader, accounts_giving(7));
        let found = service
            .identify(Some(Credential::Vouched("alice".into())))
            .await
            .expect("identified");
        assert_eq!(found, Some(caller(7)));
        assert!(matches!(
            service.identify(None).await,
            Err(IdentityError::Required)
        ));
        // A bearer token is not what this mode takes: as if nothing were sent.
        assert!(matches!(
            service
                .identify(Some(Credential::Bearer("x.y.z".into())))
                .await,
            Err(IdentityError::Required)
        ));
        assert!(matches!(
            service
                .identify(Some(Credential::Vouched(String::new())))
                .await,
            Err(IdentityError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn a_bearer_token_is_verified_before_any_account_is_made() {
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify()
            .returning(|_| Err(IdentityError::Invalid("bad signature".into())));
        let mut accounts = MockAccounts::new();
        accounts.expect_user_of().never();
        let service =
            IdentityService::new(IdentityMode::Jwt(Arc::new(verifier)), Arc::new(accounts));

        assert!(matches!(
            service
                .identify(Some(Credential::Bearer("forged".into())))
                .await,
            Err(IdentityError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn a_verified_token_names_the_account() {
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify()
            .returning(|_| Ok(Subject::parse("alice").expect("valid")));
        let service =
            IdentityService::new(IdentityMode::Jwt(Arc::new(verifier)), accounts_giving(7));

        assert_eq!(
            service
                .identify(Some(Credential::Bearer("good".into())))
                .await
                .expect("identified"),
            Some(caller(7))
        );
    }
}
