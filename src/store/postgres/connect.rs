//! Connecting to PostgreSQL from the `storage.postgres_*` keys.

use super::conn::{classify, PgConn};
use crate::store::StoreError;

/// How this node reaches its database.
#[derive(Debug, Clone)]
pub struct PgSettings {
    config: tokio_postgres::Config,
}

impl PgSettings {
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Self> {
        let url = config.storage.postgres_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!("storage.postgres_url: required when storage.backend = \"postgres\"")
        })?;
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| anyhow::anyhow!("storage.postgres_url: not a PostgreSQL URL ({e})"))?;
        pg.application_name("guestvault");
        pg.options("-c synchronous_commit=on");
        Ok(Self { config: pg })
    }

    /// Host, port, database and user, for messages (never a password).
    pub fn describe(&self) -> String {
        format!(
            "{:?}/{}",
            self.config.get_hosts(),
            self.config.get_dbname().unwrap_or("")
        )
    }

    /// A new connection on a runtime of its own.
    pub fn open(&self) -> Result<PgConn, StoreError> {
        let rt = PgConn::runtime()?;
        let client = rt.block_on(async {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(classify)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<_, StoreError>(client)
        })?;
        Ok(PgConn::from_parts(rt, client))
    }

    /// The `tokio_postgres` configuration (migration at start).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}
