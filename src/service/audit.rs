//! The compliance officer's use cases: query, export and verify the audit trail, and the
//! checkpoints the server makes on its own. Each query, export and verification is authorized
//! by the policy (`audit.read`, `audit.export`, `audit.verify`; no `X-Purpose` needed) and is
//! itself audited, with the *names* of the filter's parameters and the opaque guest id it
//! targets, before anything is returned (PIPL Art. 54–56, REQ-20). If that event cannot be
//! written, nothing is returned.

use serde::Serialize;
use tokio::sync::mpsc;

use super::{Caller, Vault, VaultError};
use crate::audit::checkpoint;
use crate::audit::checkpoint::RangeVerification;
use crate::audit::export::{Export, ExportError, PAGE_EVENTS};
use crate::audit::query::{self, ExportFormat};
use crate::audit::{ChainedEvent, Event, Outcome};
use crate::crypto::hex;
use crate::policy::Action;
use crate::store::audit_since as since;

/// Pages of an export in flight between the reader and the client: bounds its memory.
const CHANNEL_PAGES: usize = 4;

/// One page of `GET /v1/audit/events`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<EventOut>,
    /// Pass as `after_seq` for the next page; `null` when this page was the last.
    pub next_after_seq: Option<u64>,
}

/// An event as the API shows it: the canonical keys, then `prev_hash` and `hash` in hex (the
/// same shape as an export line).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    #[serde(flatten)]
    pub event: Event,
    pub prev_hash: String,
    pub hash: String,
}

impl From<ChainedEvent> for EventOut {
    fn from(e: ChainedEvent) -> Self {
        Self {
            prev_hash: hex(&e.prev_hash),
            hash: hex(&e.hash),
            event: e.event,
        }
    }
}

/// `GET /v1/audit/public-key`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicKeyInfo {
    pub key_id: String,
    pub algorithm: &'static str,
    /// Base64 of the 32 raw bytes.
    pub public_key: String,
}

impl Vault {
    pub fn audit_public_key(&self) -> PublicKeyInfo {
        use base64::Engine;
        PublicKeyInfo {
            key_id: self.keys().audit_key_id(),
            algorithm: "Ed25519",
            public_key: base64::engine::general_purpose::STANDARD
                .encode(self.keys().audit_public_key()),
        }
    }

    /// Authorizes `action`, parses the query with `parse`, and records the access; a refusal
    /// or a bad parameter is recorded too.
    async fn audited<T>(
        &self,
        caller: &Caller,
        action: Action,
        raw_query: Option<&str>,
        parse: impl FnOnce(Option<&str>) -> Result<T, Vec<crate::domain::FieldError>>,
        filter: impl FnOnce(&T) -> Option<&query::Filter>,
    ) -> Result<T, VaultError> {
        let grant = self.authorize(caller, action, None).await?;
        let rules = grant.rules().to_vec();
        let params = match parse(raw_query) {
            Ok(p) => p,
            Err(errors) => {
                let e = VaultError::Validation(errors);
                return Err(self.refuse(caller, action, None, vec![], e, rules).await);
            }
        };
        let (guest, names) = filter(&params)
            .map(|f| (f.guest_id.clone(), f.names()))
            .unwrap_or_default();
        let event = self.event(
            caller,
            action,
            guest.as_deref(),
            names,
            Outcome::Allowed,
            None,
            rules,
        );
        self.record(event).await?;
        Ok(params)
    }

    pub async fn query_audit(
        &self,
        caller: &Caller,
        raw_query: Option<&str>,
    ) -> Result<AuditPage, VaultError> {
        let params = self
            .audited(
                caller,
                Action::AuditRead,
                raw_query,
                query::parse_query,
                |p| Some(&p.filter),
            )
            .await?;
        let limit = params.limit;
        let rows = self
            .readers
            .run(move |c| query::query(c, &params.filter, params.after_seq, params.limit))
            .await?;
        let next_after_seq = if rows.len() == limit {
            rows.last().map(|e| e.event.seq)
        } else {
            None
        };
        Ok(AuditPage {
            events: rows.into_iter().map(EventOut::from).collect(),
            next_after_seq,
        })
    }

    /// Authorizes, audits and plans an export; the caller streams it with
    /// [`AuditExport::stream`].
    pub async fn start_audit_export(
        &self,
        caller: &Caller,
        raw_query: Option<&str>,
    ) -> Result<AuditExport, VaultError> {
        let params = self
            .audited(
                caller,
                Action::AuditExport,
                raw_query,
                query::parse_export,
                |p| Some(&p.filter),
            )
            .await?;
        let format = params.format;
        let keyring = self.keys();
        let export = self
            .readers
            .run(move |c| Export::plan(c, &params, keyring.audit_public_key()))
            .await?;
        Ok(AuditExport {
            vault: self.clone(),
            export,
            format,
        })
    }

    /// Verifies the trail on a connection of its own (never a pooled reader, so a long check
    /// stalls no read), one verification at a time: a second call while one runs answers
    /// `VerifyInProgress`. By default from the newest signed checkpoint to the head;
    /// `full=true` checks everything.
    pub async fn verify_audit(
        &self,
        caller: &Caller,
        raw_query: Option<&str>,
    ) -> Result<RangeVerification, VaultError> {
        let full = self
            .audited(caller, Action::AuditVerify, raw_query, parse_verify, |_| {
                None
            })
            .await?;
        let Some(slot) = VerifySlot::take(&self.verifying) else {
            return Err(VaultError::VerifyInProgress);
        };
        let db = self
            .verify_db
            .clone()
            .ok_or_else(|| VaultError::Internal("no database path for verification".into()))?;
        let keyring = self.keys();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let conn = db.open_read()?;
            let key = keyring.audit_public_key();
            if full {
                since::full(&conn.conn(), key)
            } else {
                since::since_checkpoint(&conn.conn(), key)
            }
        })
        .await
        .map_err(|e| VaultError::Internal(e.to_string()))?
        .map_err(VaultError::from)
    }

    /// Signs the head of the chain if any event came after the newest checkpoint (the periodic
    /// timer and shutdown); returns the seq signed. On PostgreSQL one node signs at a time:
    /// while another node's checkpoint transaction holds the lock this one skips (`None`), and
    /// that node's checkpoint, or the next turn, signs the head.
    pub async fn checkpoint_now(&self) -> Result<Option<u64>, VaultError> {
        let keyring = self.keys();
        let now = self.now_ts();
        let cp = self
            .writer
            .execute(move |c| {
                if !crate::store::coordination::try_xact_lock(
                    c,
                    crate::store::coordination::Job::Checkpoint,
                )? {
                    tracing::debug!("another node is signing a checkpoint: skipped");
                    return Ok(None);
                }
                checkpoint::checkpoint_head(c, &keyring, now, 1)
            })
            .await?;
        Ok(cp.map(|c| c.seq))
    }
}

/// `full=true|false`, nothing else; absent means `false`.
fn parse_verify(raw: Option<&str>) -> Result<bool, Vec<crate::domain::FieldError>> {
    let bad = || vec![crate::domain::FieldError::new("full", "invalid_format")];
    let mut full = None;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("full", v)) if full.is_none() => {
                full = Some(match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad()),
                })
            }
            Some(("full", _)) => return Err(bad()),
            _ => {
                return Err(vec![crate::domain::FieldError::new(
                    "query",
                    "unknown_parameter",
                )])
            }
        }
    }
    Ok(full.unwrap_or(false))
}

/// Held while a verification runs.
#[derive(Debug)]
struct VerifySlot(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl VerifySlot {
    fn take(flag: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> Option<Self> {
        use std::sync::atomic::Ordering;
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Self(flag.clone()))
    }
}

impl Drop for VerifySlot {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// A planned export, ready to stream.
#[derive(Debug)]
pub struct AuditExport {
    vault: Vault,
    export: Export,
    format: ExportFormat,
}

impl AuditExport {
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// Streams the export from a background task through a bounded channel, page by page, so
    /// memory stays flat for any range. If the chain turns out broken or storage fails, the
    /// stream ends with an error and without the signed checkpoint.
    pub fn stream(self) -> mpsc::Receiver<Result<Vec<u8>, std::io::Error>> {
        let (tx, rx) = mpsc::channel(CHANNEL_PAGES);
        tokio::spawn(async move {
            if let Err(e) = self.run(&tx).await {
                tracing::error!(error = %e, "audit export stopped before its checkpoint");
                let _ = tx
                    .send(Err(std::io::Error::other("audit export stopped")))
                    .await;
            }
        });
        rx
    }

    async fn run(
        self,
        tx: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    ) -> Result<(), ExportError> {
        let Self {
            vault, mut export, ..
        } = self;
        if tx.send(Ok(export.header()?)).await.is_err() {
            return Ok(()); // the client went away
        }
        while !export.is_done() {
            let (back, page) = vault
                .readers
                .run(move |c| {
                    let page = export.next_page(c, PAGE_EVENTS);
                    Ok((export, page))
                })
                .await?;
            export = back;
            if let Some(page) = page? {
                if tx.send(Ok(page)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let cp = export.checkpoint(&vault.keys(), vault.now_ts());
        let stored = cp.clone();
        if let Err(e) = vault
            .writer
            .execute(move |c| checkpoint::store(c, &stored))
            .await
        {
            // The signature in the file is valid either way; only the record of it is missing.
            tracing::warn!(error = %e, "could not record the export checkpoint");
        }
        let _ = tx.send(Ok(export.finish(&vault.keys(), &cp)?)).await;
        Ok(())
    }
}
