//! The `guestvault` command line: init, serve, demo, token, policy check, audit.
#![expect(clippy::print_stdout, reason = "a command line prints its results")]

pub mod audit;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::crypto::Keyring;
use crate::policy::Policies;

/// Demo data lives here, relative to the working directory.
pub const DEMO_DATA_DIR: &str = "demo-data";
const DEMO_LISTEN: &str = "127.0.0.1:8080";
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Parser)]
#[command(
    name = "guestvault",
    version,
    about = "A privacy vault for hotel guest data (PIPL / GDPR)"
)]
pub struct Cli {
    /// Config file (default: ./guestvault.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data dir: keyring (mode 0600), HS256 dev secret, and an empty database.
    Init {
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Seal the keyring with a passphrase (from keys.passphrase_file, else asked).
        #[arg(long)]
        seal: bool,
    },
    /// Run the vault server.
    Serve,
    /// Run on a local demo data dir (created if missing) and print a token per role.
    Demo,
    /// Mint a development token signed with the configured HS256 secret.
    Token {
        #[arg(long)]
        role: String,
        #[arg(long)]
        sub: String,
        /// Lifetime such as 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Privacy notices: render the processing rules from the policy files.
    Notice {
        #[command(subcommand)]
        command: NoticeCommand,
    },
    /// Export, verify and purge the audit trail.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Key management: rotate the KEK, retire old versions, show status.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Take a consistent snapshot of the database (safe while the server runs; no keys in it).
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Install a snapshot (server stopped): re-applies later erasures, verifies the audit chain.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Restore a snapshot that has no manifest beside it (unchecked).
        #[arg(long)]
        force: bool,
    },
    /// Retention: purge what the schedule says has expired.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The erasure ledger: re-apply it after a database restore done by other tools.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Re-apply every erasure and consent withdrawal in the ledger(s) to the configured
    /// database (after `pg_restore` or a point-in-time recovery; safe to repeat). With several
    /// nodes, give every node's ledger file.
    Replay {
        /// A ledger file (repeatable; default: this data dir's `erasure-ledger.jsonl`).
        #[arg(long = "ledger", value_name = "FILE")]
        ledgers: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a KEK version, make it active and rewrap every DEK under it (resumes an unfinished
    /// rotation instead). Safe while the server runs.
    Rotate,
    /// Remove an old KEK version once no DEK uses it.
    Retire {
        #[arg(long)]
        version: u32,
    },
    /// KEK versions, DEKs per version, sealed or not.
    Status,
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// One sweep now (safe while the server runs); prints counts per class as JSON.
    Run {
        /// Report what would be purged without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum NoticeCommand {
    /// Write the processing-rules notice (PIPL Art. 17) to stdout, generated from the policy
    /// files: purposes, fields, legal basis, retention, recipients and the guest's rights.
    Render {
        /// `zh-CN` or `en`.
        #[arg(long, value_name = "LANG")]
        lang: String,
        /// Policy directory (default: policies.dir from config, else the embedded defaults).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate the policy files (fields, access, retention, holidays, notices); names file and
    /// key for every problem, including a latest notice that discloses less than the policy.
    Check {
        /// Policy directory (default: policies.dir from config, else ./policies).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30m, 1h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    if secs == 0 || secs > 30 * 86400 {
        return Err("ttl must be between 1s and 30d".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Verification is offline: it needs no config, keyring or database.
    if let Command::Audit {
        command: audit::AuditCommand::Verify { file, public_key },
    } = &cli.command
    {
        return Ok(audit::verify(file, public_key));
    }
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Init { data_dir, seal } => {
            if let Some(d) = data_dir {
                config.storage.data_dir = d;
            }
            let seal = if seal {
                Some(new_seal_key(&config)?)
            } else {
                None
            };
            init_sealed(&config, seal)?;
            println!("initialized {}", config.storage.data_dir.display());
            println!(
                "  keyring:      {} (mode 0600; back it up apart from the database)",
                config.keyring_file().display()
            );
            println!("  token secret: {}", config.hs256_secret_file().display());
            println!(
                "  database:     {}",
                crate::store::Location::from_config(&config)?.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            init_tracing(&config);
            runtime()?.block_on(serve(config, false))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            if std::env::var_os("GUESTVAULT_STORAGE_DATA_DIR").is_none()
                && cli.config.is_none()
                && !Path::new(crate::config::DEFAULT_CONFIG_FILE).exists()
            {
                config.storage.data_dir = PathBuf::from(DEMO_DATA_DIR);
                config.server.listen = DEMO_LISTEN.into();
            }
            if !config.keyring_file().exists() {
                init(&config)?;
                println!(
                    "created demo data dir {}",
                    config.storage.data_dir.display()
                );
            }
            init_tracing(&config);
            runtime()?.block_on(serve(config, true))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { role, sub, ttl } => {
            // A token for a role the policy does not define would be refused on every request.
            let policies = Policies::load(config.policies.dir.as_deref())?;
            if !policies.access.roles.contains_key(&role) {
                anyhow::bail!(
                    "unknown role `{role}`: access.toml defines {}",
                    policies
                        .access
                        .roles
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // The server refuses a token living longer than the role's cap; say so now.
            let cap = config.auth.max_ttl_for(&role);
            if ttl.as_secs() > cap {
                anyhow::bail!(
                    "--ttl is longer than the {cap} s a `{role}` token may live (config key `auth.max_token_ttl_secs`, or `auth.max_token_ttl_secs_by_role.{role}`)"
                );
            }
            if !crate::auth::is_valid_sub(&sub) {
                anyhow::bail!(
                    "--sub must be an opaque id of letters, digits and `._:-` (at most 128, no e-mail address): it stays in the audit trail"
                );
            }
            let token = crate::auth::mint_with_config(&config, &role, &sub, ttl)
                .context("cannot mint a token (is the data dir initialized?)")?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention {
            command: RetentionCommand::Run { dry_run },
        } => retention_run(&config, dry_run),
        Command::Keys { command } => keys(&config, command),
        Command::Backup { out } => {
            let m = crate::ops::backup(&config, &out)?;
            println!(
                "backup written to {} (audit head seq {}, erasure ledger seq {})",
                out.display(),
                m.audit_head_seq,
                m.erasure_ledger_seq
            );
            println!(
                "manifest: {}.manifest.json; the keyring is not in the backup: keep it apart",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { file, force } => {
            let report = runtime()?.block_on(crate::ops::restore(&config, &file, force))?;
            println!(
                "restored {}: {} erasure(s) or consent withdrawal(s) from the ledger re-applied (made after the snapshot), {} newer audit event(s) carried over, {} guest(s) swept, audit chain verified ({} events)",
                file.display(),
                report.erasures_replayed,
                report.audit_events_carried,
                report.guests_swept,
                report.audit_events_verified
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger {
            command: LedgerCommand::Replay { ledgers },
        } => {
            let r = runtime()?.block_on(crate::ops::ledger_replay(&config, &ledgers))?;
            for (file, n) in &r.ledgers {
                println!("ledger {}: {n} entries", file.display());
            }
            println!(
                "re-applied {} erasure(s) and {} consent withdrawal(s); {} entries already in force; {} guest(s) swept; audit trail verified ({} events)",
                r.counts.erasures,
                r.counts.withdrawals,
                r.counts.unchanged,
                r.guests_swept,
                r.audit_events_verified
            );
            if r.deks_under_missing_keks > 0 {
                eprintln!(
                    "warning: {} guest key(s) are wrapped under KEK versions this keyring no longer holds (retired after the restore point): those guests cannot be read until the keyring from before the retirement is back",
                    r.deks_under_missing_keks
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            command: PolicyCommand::Check { dir },
        } => {
            let dir = dir
                .or(config.policies.dir.clone())
                .unwrap_or_else(|| PathBuf::from("policies"));
            let report = crate::policy::check(Some(&dir));
            match report.summary() {
                Some(line) => {
                    println!("{line}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    let errors = report.result.err().unwrap_or_default();
                    eprint!("{}", crate::policy::PolicyErrors(errors));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Notice {
            command: NoticeCommand::Render { lang, dir },
        } => {
            let dir = dir.or(config.policies.dir.clone());
            let policies = match Policies::load(dir.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            match crate::policy::notices::render(&policies, &lang) {
                Some(text) => {
                    print!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("unknown language `{lang}`: expected zh-CN or en");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit { command } => audit::run(&config, command),
    }
}

fn retention_run(config: &Config, dry_run: bool) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let clock = std::sync::Arc::new(crate::clock::SystemClock);
        let (vault, writer_thread) = crate::startup::open_vault(config, clock)?;
        let run_id = format!("cli-retention-{}", uuid::Uuid::new_v4());
        let report = vault
            .retention_run(&run_id, dry_run, |n| eprint!("\rchecked {n} guests"))
            .await?;
        eprintln!();
        println!("{}", serde_json::to_string_pretty(&report)?);
        drop(vault);
        let _ = writer_thread.join();
        Ok(ExitCode::SUCCESS)
    })
}

/// The operator running a CLI command, as the audit trail names it.
fn cli_caller(action: &str) -> crate::service::Caller {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| crate::policy::is_identifier(u))
        .unwrap_or_else(|| "operator".into());
    crate::service::Caller {
        request_id: format!("cli-{action}-{}", uuid::Uuid::new_v4()),
        actor: format!("cli:{user}"),
        role: "admin".into(),
        purpose: None,
    }
}

fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let (vault, writer_thread) =
            crate::startup::open_vault(config, std::sync::Arc::new(crate::clock::SystemClock))?;
        let caller = cli_caller("keys");
        match command {
            KeysCommand::Rotate => {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "rewrapping {bar:40} {pos}/{len} DEKs ({per_sec}, eta {eta})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let report = vault
                    .rotate_keys(&caller, None, |done, total| {
                        bar.set_length(total);
                        bar.set_position(done);
                    })
                    .await?;
                bar.finish_and_clear();
                println!(
                    "KEK v{} is active; {} DEK(s) rewrapped{}",
                    report.target_version,
                    report.rewrapped,
                    if report.resumed {
                        " (resumed an unfinished rotation)"
                    } else {
                        ""
                    }
                );
            }
            KeysCommand::Retire { version } => {
                vault
                    .retire_kek_settled(&caller, version, crate::service::KEYRING_SETTLE, |wait| {
                        eprintln!(
                            "waiting {}s until a running server has reloaded the changed keyring",
                            wait.as_secs_f32().ceil()
                        );
                    })
                    .await?;
                println!("KEK v{version} retired");
            }
            KeysCommand::Status => println!(
                "{}",
                serde_json::to_string_pretty(&vault.key_status(&caller).await?)?
            ),
        }
        drop(vault);
        let _ = writer_thread.join();
        Ok(ExitCode::SUCCESS)
    })
}

/// A passphrase for a new sealed keyring: from keys.passphrase_file, else asked twice.
fn new_seal_key(config: &Config) -> anyhow::Result<crate::crypto::seal::SealKey> {
    let pass = match &config.keys.passphrase_file {
        Some(f) => crate::config::read_private_secret_file("keys.passphrase_file", f)?,
        None => {
            let a =
                zeroize::Zeroizing::new(rpassword::prompt_password("new keyring passphrase: ")?);
            let b = zeroize::Zeroizing::new(rpassword::prompt_password("again: ")?);
            if a != b {
                anyhow::bail!("the passphrases differ");
            }
            zeroize::Zeroizing::new(a.as_bytes().to_vec())
        }
    };
    if pass.len() < 12 {
        anyhow::bail!("the passphrase must be at least 12 characters");
    }
    Ok(crate::crypto::seal::SealKey::new(
        &pass,
        crate::crypto::seal::DEFAULT_ITERATIONS,
    )?)
}

/// Creates the data dir, keyring, token secret and database. Refuses to overwrite a keyring.
pub fn init(config: &Config) -> anyhow::Result<()> {
    init_sealed(config, None)
}

/// [`init`] with an optionally sealed keyring.
pub fn init_sealed(
    config: &Config,
    seal: Option<crate::crypto::seal::SealKey>,
) -> anyhow::Result<()> {
    let dir = &config.storage.data_dir;
    // Refused before anything is written: a new keyring cannot open an existing database,
    // and one left behind would stand in for the real one (issue 13).
    let db = config.database_file();
    if db.exists() {
        anyhow::bail!(
            "`{}` already holds a vault; `init` changes nothing here and wrote nothing. If its \
             keyring is missing, restore `keyring.json` from its backup into `{}`",
            db.display(),
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir `{}`", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let keyring = Keyring::create_sealed(&config.keyring_file(), seal)?;
    let secret = config.hs256_secret_file();
    if !secret.exists() {
        crate::auth::write_new_secret(&secret)?;
    }
    crate::store::Location::from_config(config)?.open_direct(keyring.fingerprint())?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let app = crate::startup::App::build(config.clone()).await?;
    let addr = format!("http://127.0.0.1:{}", app.port());
    if demo {
        print_demo(&config, &addr, app.state().vault.policies())?;
    }
    tracing::info!(listen = %config.server.listen, port = app.port(), "guestvault listening");
    app.run_until_stopped().await
}

fn print_demo(config: &Config, addr: &str, policies: &Policies) -> anyhow::Result<()> {
    println!(
        "GuestVault demo on {addr} (data dir {}). Tokens valid 8h:\n",
        config.storage.data_dir.display()
    );
    let mut pms = String::new();
    let mut front_desk = String::new();
    // A self-only role (the guest) needs a guest id as `sub`: mint it with `guestvault token`.
    for role in policies
        .access
        .roles
        .values()
        .filter(|r| !r.self_only)
        .map(|r| &r.name)
    {
        let token =
            crate::auth::mint_with_config(config, role, &format!("demo-{role}"), DEMO_TOKEN_TTL)?;
        let var = role.to_uppercase();
        println!("export {var}_TOKEN={token}");
        match role.as_str() {
            "pms" => pms = token,
            "front_desk" => front_desk = token,
            _ => {}
        }
    }
    // The sample carries its tokens inline, so it works pasted alone into any shell.
    println!("\n# create a guest as the PMS, then read it back masked as the front desk:");
    println!(
        "ID=$(curl -s -X POST {addr}/v1/guests -H \"Authorization: Bearer {pms}\" -H 'X-Purpose: check_in' -H 'Content-Type: application/json' \\\n  -d '{{\"fields\":{{\"full_name\":\"张三丰\",\"mobile\":\"138 1234 5678\",\"id_type\":\"cn_resident_id\",\"id_number\":\"11010519491231002X\",\"gender\":\"F\"}}}}' | sed 's/.*\"guest_id\":\"\\([^\"]*\\)\".*/\\1/')"
    );
    println!("curl -s {addr}/v1/guests/$ID -H \"Authorization: Bearer {front_desk}\" -H 'X-Purpose: check_in'\n");
    if config.console.enabled {
        println!(
            "# compliance console: open {addr}/console/ and paste $COMPLIANCE_OFFICER_TOKEN (or $ADMIN_TOKEN for operations)\n"
        );
    }
    Ok(())
}

/// Logs go to stderr; the level comes from `log.level` (or `RUST_LOG`).
pub fn init_tracing(config: &Config) {
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = log_subscriber(config, std::io::stderr).try_init();
}

/// The log subscriber for `config`: the `log.level` filter (or `RUST_LOG`), and with
/// `log.format = "json"` one flat JSON object per line (`timestamp`, `level`, `target`,
/// `message`, then the event's fields: for the access log `request_id`, `method`, `route`,
/// `status`, `latency_us`, `role`, `purpose`).
pub fn log_subscriber<W>(config: &Config, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if config.log.format == "json" {
        Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        )
    } else {
        Box::new(builder.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parses_common_spellings() {
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("1y").is_err());
    }
}
