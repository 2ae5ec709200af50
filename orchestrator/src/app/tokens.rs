//! API tokens: created here (the secret shown once), listed, revoked, and
//! checked for every request that needs one.

use super::App;
use crate::exit::{ExitStatus, HasExitStatus};
use crate::store::{Holder, Role, StoreError, Token};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token name `{0}`: use 1 to 64 letters, digits, `.`, `_` or `-`")]
    BadName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HasExitStatus for TokenError {
    /// A bad, taken or unknown name is bad input.
    fn exit_status(&self) -> ExitStatus {
        match self {
            TokenError::BadName(_) => ExitStatus::BadInput,
            TokenError::Store(e) => e.exit_status(),
        }
    }
}

impl App {
    /// Creates an API token; returns the secret, which is not stored.
    pub async fn create_token(&self, name: &str, role: Role) -> Result<String, TokenError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(TokenError::BadName(name.to_string()));
        }
        Ok(self.store.create_token(name, role).await?)
    }

    /// Tokens' names and dates (never secrets).
    pub async fn list_tokens(&self) -> Result<Vec<Token>, TokenError> {
        Ok(self.store.list_tokens().await?)
    }

    pub async fn revoke_token(&self, name: &str) -> Result<(), TokenError> {
        Ok(self.store.revoke_token(name).await?)
    }

    /// The live token with this secret (its name and role), if any.
    pub async fn check_token(&self, secret: &str) -> Result<Option<Holder>, StoreError> {
        self.store.check_token(secret).await
    }
}
