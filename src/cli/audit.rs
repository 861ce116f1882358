//! `guestvault audit export|verify|purge|public-key`: the compliance officer's tools that work
//! on the data dir directly (beside a running server: WAL lets them read, and writes queue
//! behind the server's writer). `verify` is fully offline: it needs the file and the key only.
//!
//! Whoever can run these holds the database and the keyring, so they act as an operator, not
//! under the access policy; every export and purge is still appended to the trail.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::audit::checkpoint;
use crate::audit::export::{Export, PAGE_EVENTS};
use crate::audit::purge::run_purge;
use crate::audit::query::{parse_export_pairs, ExportParams};
use crate::audit::verify::{verify_export, PublicKey};
use crate::audit::{NewEvent, Outcome};
use crate::clock::{timestamp, Clock, SystemClock};
use crate::config::Config;
use crate::crypto::Keyring;
use crate::store;

/// Exit status of `audit verify` when the file or key cannot be read (1 means "not intact").
const EXIT_CANNOT_VERIFY: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Export the trail (or part of it) as signed JSON Lines or CSV, read from the database.
    Export {
        /// Events at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
        #[arg(long)]
        since: Option<String>,
        /// Events before this time (exclusive).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        guest_id: Option<String>,
        /// An action such as guest.read or guest.reveal.
        #[arg(long)]
        action: Option<String>,
        /// allowed, denied or error.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify an export offline, with nothing but the file and the audit public key.
    Verify {
        file: PathBuf,
        /// Base64 as `GET /v1/audit/public-key` returns it (or that whole answer), or PEM.
        #[arg(long, value_name = "KEYFILE")]
        public_key: PathBuf,
    },
    /// Remove events older than `audit.retention_days` (3 years at least), leaving a signed
    /// checkpoint as the new anchor of the chain.
    Purge {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the audit public key to hand to an auditor (base64, or PEM with --pem).
    PublicKey {
        #[arg(long)]
        pem: bool,
    },
}

pub fn run(config: &Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Export {
            since,
            until,
            actor,
            guest_id,
            action,
            outcome,
            format,
            out,
        } => {
            let pairs: Vec<(String, String)> = [
                ("since", since),
                ("until", until),
                ("actor", actor),
                ("guest_id", guest_id),
                ("action", action),
                ("outcome", outcome),
                ("format", Some(format)),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            let params = parse_export_pairs(&pairs).map_err(|errors| {
                let names: Vec<String> = errors
                    .iter()
                    .map(|e| format!("--{} ({})", e.field.replace('_', "-"), e.code))
                    .collect();
                anyhow::anyhow!("invalid option(s): {}", names.join(", "))
            })?;
            let summary = export_file(config, &params, &out, true)?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { file, public_key } => Ok(verify(&file, &public_key)),
        AuditCommand::Purge { dry_run } => {
            let keyring = load_keyring(config)?;
            let mut conn = open_write(config, &keyring)?;
            let days = config.audit.retention_days;
            let plan = run_purge(&mut conn, &keyring, &SystemClock, days, dry_run)?;
            match (plan.through_seq, dry_run) {
                (None, _) => println!(
                    "nothing to purge: no event before {} (retention {days} days)",
                    plan.cutoff
                ),
                (Some(seq), true) => println!(
                    "dry run: would purge {} events (seq ..={seq}) before {} (retention {days} days)",
                    plan.events, plan.cutoff
                ),
                (Some(seq), false) => println!(
                    "purged {} events (seq ..={seq}) before {}; the signed checkpoint at seq {seq} is the new anchor",
                    plan.events, plan.cutoff
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::PublicKey { pem } => {
            let keyring = load_keyring(config)?;
            let key = PublicKey::from_raw(keyring.audit_public_key())
                .context("the keyring's audit key is not an Ed25519 key")?;
            if pem {
                print!("{}", key.to_pem());
            } else {
                use base64::Engine;
                println!(
                    "{}",
                    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `guestvault audit verify`: one line on stdout when intact (exit 0); the first problem on
/// stderr otherwise (exit 1), or exit 2 when the file or key cannot be read.
pub fn verify(file: &Path, key_file: &Path) -> ExitCode {
    let key = std::fs::read_to_string(key_file)
        .map_err(|e| e.to_string())
        .and_then(|text| PublicKey::parse(&text).map_err(|e| e.to_string()));
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: public key `{}`: {e}", key_file.display());
            return ExitCode::from(EXIT_CANNOT_VERIFY);
        }
    };
    let input = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open `{}`: {e}", file.display());
            return ExitCode::from(EXIT_CANNOT_VERIFY);
        }
    };
    match verify_export(input, &key) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("NOT INTACT: {}: {failure}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes an export of `params` to `out`, appending an `audit.export` event for it first and
/// recording the final checkpoint; returns a one-line summary.
pub fn export_file(
    config: &Config,
    params: &ExportParams,
    out: &Path,
    progress: bool,
) -> anyhow::Result<String> {
    let keyring = load_keyring(config)?;
    let mut write = open_write(config, &keyring)?;
    let now = timestamp(SystemClock.now());
    let event = NewEvent {
        ts: now.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        actor: cli_actor(),
        role: "operator".into(),
        purpose: Some("audit".into()),
        action: crate::policy::Action::AuditExport.as_str().into(),
        guest_id: params.filter.guest_id.clone(),
        fields: params.filter.names(),
        outcome: Outcome::Allowed,
        reason: Some("cli".into()),
        rules: vec![],
        justification: None,
        value_hashes: Vec::new(),
    };
    store::audit::append_alone(&mut write, event)?;

    let location = store::Location::from_config(config)?;
    let read = location
        .open_read()
        .with_context(|| format!("cannot open database `{}`", location.describe()))?;
    let read = read.conn();
    let mut export = Export::plan(&read, params, keyring.audit_public_key())?;
    let bar = if progress {
        indicatif::ProgressBar::with_draw_target(
            Some(export.total()),
            indicatif::ProgressDrawTarget::stderr(),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} events  {per_sec}  eta {eta}",
        )
        .context("progress bar template")?,
    );
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let mut w = BufWriter::new(file);
    w.write_all(&export.header()?)?;
    while let Some(page) = export.next_page(&read, PAGE_EVENTS)? {
        w.write_all(&page)?;
        let (events, stubs) = export.counts();
        bar.set_position(events + stubs);
    }
    let cp = export.checkpoint(&keyring, now);
    checkpoint::store(&write.conn(), &cp)?;
    w.write_all(&export.finish(&keyring, &cp)?)?;
    w.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    bar.finish_and_clear();
    let (events, stubs) = export.counts();
    let range = export.range();
    Ok(format!(
        "exported seq {}..={} ({events} events, {stubs} stubs) to {}; checkpoint at seq {} signed by key {}",
        range.first,
        range.last,
        out.display(),
        range.last,
        keyring.audit_key_id()
    ))
}

/// The keyring the way the server loads it: a sealed file is opened with the passphrase from
/// `keys.passphrase_file` (or the terminal), and a group-readable file is refused.
fn load_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let path = config.keyring_file();
    let source = crate::service::KeySource {
        passphrase: crate::startup::passphrase_for(config, &path)?,
        path: path.clone(),
    };
    source.load().with_context(|| {
        format!(
            "cannot load the keyring `{}` (it signs the checkpoint)",
            path.display()
        )
    })
}

/// A direct write connection; refuses a keyring that does not belong to the database.
fn open_write(config: &Config, keyring: &Keyring) -> anyhow::Result<store::Db> {
    let location = store::Location::from_config(config)?;
    if let store::Location::Sqlite { path, .. } = &location {
        anyhow::ensure!(path.exists(), "no database at `{}`", path.display());
    }
    location
        .open_direct(keyring.fingerprint())
        .with_context(|| format!("cannot open database `{}`", location.describe()))
}

/// `cli:<login>` with the login reduced to safe characters, so the trail says who ran it.
pub(crate) fn cli_actor() -> String {
    let user: String = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    format!("cli:{}", if user.is_empty() { "unknown" } else { &user })
}
