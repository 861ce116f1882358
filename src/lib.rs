//! GuestVault: a privacy vault for hotel, resort and travel guest data.
//!
//! # Layout
//! - [`config`]: typed configuration (file + `GUESTVAULT_*` env + `*_file` secrets).
//! - [`startup`]: `App::build` → `port()` / `run_until_stopped()`.
//! - [`serve`]: the accept loop: header-read, idle and connection limits, TLS handshakes.
//! - [`tls`]: HTTPS with rustls, certificate reload on SIGHUP, client certificates.
//! - [`http`]: routes, extractors, problem+json errors, `/metrics`, and the OpenAPI document
//!   generated from the handlers (`/openapi.json`); never touches storage.
//! - [`auth`]: JWT verification, `Principal`.
//! - [`policy`]: field catalog and access policy, validation, decisions, `Permit`.
//! - [`service`]: the use cases, the single choke point for personal data.
//! - [`crypto`]: keyring, DEK envelopes, field AEAD, blind index.
//! - [`domain`]: ids, `Pii`, validators and masking (pure).
//! - [`store`]: the storage seam (units of work on a writer or reader handle, domain-level
//!   operations); the SQLite backend under `store::sqlite` (migrations, group-commit writer,
//!   reader pool, WAL checkpointer), the only place SQL runs. See `docs/storage.md`.
//! - [`audit`]: events, the hash chain, signed checkpoints, query, the signed export format
//!   and its offline verifier, and retention of the trail.
//! - [`ledger`]: the erasure ledger kept apart from the database (survives restores).
//! - [`metrics`]: Prometheus metric names, the recorder, what is recorded where.
//! - [`ops`]: backup and restore.
//! - [`cli`]: the `guestvault` command (`audit export|verify|purge|public-key` in `cli::audit`).
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod ops;
pub mod policy;
pub mod serve;
pub mod service;
pub mod startup;
pub mod store;
pub mod tls;
