//! API tokens. Only a token's SHA-256 is stored: a leaked database does not
//! leak working credentials, and the token is shown once, when created.

use sha2::{Digest, Sha256};

use super::{now_micros, row_get, Store, StoreError};

/// What a token may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Role {
    /// Reads (when the server asks a token for reads at all).
    Reader,
    /// Also records: results and groups, artifacts, job reports, messages.
    Reporter,
    /// Also steers: cancels jobs, syncs the cache.
    Operator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Reader, Role::Reporter, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Reporter => "reporter",
            Role::Operator => "operator",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live token a secret belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub role: Role,
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

/// A stored role, or an error naming the token and the value.
fn role_of(name: &str, stored: &str) -> Result<Role, StoreError> {
    Role::parse(stored).ok_or_else(|| {
        StoreError::Corrupt(format!("token `{name}`: unknown stored role `{stored}`"))
    })
}

impl Store {
    /// Creates a token called `name` with `role`; returns the secret
    /// (shown once).
    pub async fn create_token(&self, name: &str, role: Role) -> Result<String, StoreError> {
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
        sqlx::query(
            "INSERT INTO api_tokens (name, sha256, created_at, role) VALUES ($1, $2, $3, $4)",
        )
        .bind(name.to_string())
        .bind(hash_token(&secret))
        .bind(now_micros())
        .bind(role.as_str())
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    pub async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows =
            sqlx::query("SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let name: String = row_get(r, "name")?;
                Ok(Token {
                    role: role_of(&name, &row_get::<String>(r, "role")?)?,
                    name,
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

    /// The live token whose secret is `secret`, if any.
    pub async fn check_token(&self, secret: &str) -> Result<Option<Holder>, StoreError> {
        let row = sqlx::query(
            "SELECT name, role FROM api_tokens WHERE sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(hash_token(secret))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let name: String = row_get(&r, "name")?;
        Ok(Some(Holder {
            role: role_of(&name, &row_get::<String>(&r, "role")?)?,
            name,
        }))
    }
}
