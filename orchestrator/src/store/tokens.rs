//! API tokens. Only a token's SHA-256 is stored: a leaked database does not
//! leak working credentials, and the token is shown once, when created.

use sha2::{Digest, Sha256};

use super::{now_micros, row_get, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 244 random bits from the OS (two v4 UUIDs), with a recognisable prefix.
fn new_secret() -> String {
    format!(
        "fto_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Store {
    /// Creates a token called `name`; returns the secret (shown once).
    pub async fn create_token(&self, name: &str) -> Result<String, StoreError> {
        let secret = new_secret();
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM api_tokens WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&mut *tx.tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "a token named `{name}` exists already (revoke it first)"
            )));
        }
        sqlx::query("INSERT INTO api_tokens (name, sha256, created_at) VALUES ($1, $2, $3)")
            .bind(name.to_string())
            .bind(hash_token(&secret))
            .bind(now_micros())
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        Ok(secret)
    }

    pub async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at, revoked_at FROM api_tokens ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Token {
                    name: row_get(r, "name")?,
                    created_at: row_get(r, "created_at")?,
                    revoked_at: row_get(r, "revoked_at")?,
                })
            })
            .collect()
    }

    /// Deletes the token called `name`, so that name can be reused.
    pub async fn revoke_token(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM api_tokens WHERE name = $1")
            .bind(name.to_string())
            .execute(&mut *tx.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "token",
                name: name.to_string(),
            });
        }
        tx.commit().await
    }

    /// The name of the live token whose secret is `secret`, if any.
    pub async fn check_token(&self, secret: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT name FROM api_tokens WHERE sha256 = $1 AND revoked_at IS NULL")
                .bind(hash_token(secret))
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| row_get(&r, "name")).transpose()
    }
}
