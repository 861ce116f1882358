//! What a compliance officer may ask of the trail: a filter (time window, actor, guest, action,
//! outcome), parsed strictly from a query string (an unknown, repeated or malformed parameter
//! is refused with the parameter's *name*, never its value), the SQL that runs it, and the seq
//! range an export of a time window covers.
//!
//! Time bounds accept RFC 3339 (`2026-11-01T08:00:00+08:00`) or a date (`2026-11-01`, midnight
//! UTC). The window is half-open: `since <= ts < until`.

use std::collections::BTreeSet;

use super::{Event, Outcome};
use crate::domain::{FieldError, GuestId};
use crate::policy::Action;
// The query and the range lookup run in the storage seam ([`crate::store::audit`]).
pub use crate::store::audit::{query_events as query, resolve_range};

/// Events per page of `GET /v1/audit/events` unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
const MAX_ACTOR_CHARS: usize = 256;
const MAX_QUERY_BYTES: usize = 4096;

const FILTER_KEYS: [&str; 6] = ["since", "until", "actor", "guest_id", "action", "outcome"];

/// A conjunction of conditions on events; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Inclusive lower bound, in the stored timestamp format.
    pub since: Option<String>,
    /// Exclusive upper bound, in the stored timestamp format.
    pub until: Option<String>,
    pub actor: Option<String>,
    pub guest_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        self.since.as_ref().is_none_or(|s| e.ts >= *s)
            && self.until.as_ref().is_none_or(|u| e.ts < *u)
            && self.actor.as_ref().is_none_or(|a| e.actor == *a)
            && self
                .guest_id
                .as_ref()
                .is_none_or(|g| e.guest_id.as_ref() == Some(g))
            && self.action.as_ref().is_none_or(|a| e.action == *a)
            && self.outcome.is_none_or(|o| e.outcome == o)
    }

    /// The names of the conditions in use, for the audit event (never their values).
    pub fn names(&self) -> Vec<String> {
        let used = [
            self.since.is_some(),
            self.until.is_some(),
            self.actor.is_some(),
            self.guest_id.is_some(),
            self.action.is_some(),
            self.outcome.is_some(),
        ];
        FILTER_KEYS
            .iter()
            .zip(used)
            .filter(|(_, u)| *u)
            .map(|(k, _)| (*k).to_string())
            .collect()
    }
}

/// The two export encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }
}

/// `GET /v1/audit/events` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParams {
    pub filter: Filter,
    pub after_seq: u64,
    pub limit: usize,
}

/// `GET /v1/audit/export` (and `guestvault audit export`) parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportParams {
    pub filter: Filter,
    pub format: ExportFormat,
}

/// Parses the raw query string of `GET /v1/audit/events`.
pub fn parse_query(raw: Option<&str>) -> Result<QueryParams, Vec<FieldError>> {
    let pairs = decode_pairs(raw)?;
    let mut errors = Vec::new();
    let mut after_seq = 0;
    let mut limit = DEFAULT_LIMIT;
    let filter = parse_filter(&pairs, &["after_seq", "limit"], &mut errors);
    for (k, v) in &pairs {
        match k.as_str() {
            // Seqs are SQLite integers: a value past i64::MAX would wrap to a negative bound
            // and page from the start of the trail.
            "after_seq" => match v.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok()) {
                Some(n) => after_seq = n,
                None => errors.push(FieldError::new("after_seq", "invalid_number")),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => errors.push(FieldError::new("limit", "out_of_range")),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(QueryParams {
            filter,
            after_seq,
            limit,
        })
    } else {
        Err(errors)
    }
}

/// Parses the raw query string of `GET /v1/audit/export`; `format` defaults to `jsonl`.
pub fn parse_export(raw: Option<&str>) -> Result<ExportParams, Vec<FieldError>> {
    parse_export_pairs(&decode_pairs(raw)?)
}

/// Parses already decoded export parameters (the CLI builds them from its flags).
pub fn parse_export_pairs(pairs: &[(String, String)]) -> Result<ExportParams, Vec<FieldError>> {
    let mut errors = Vec::new();
    let filter = parse_filter(pairs, &["format"], &mut errors);
    let mut format = ExportFormat::Jsonl;
    for (k, v) in pairs {
        if k == "format" {
            match ExportFormat::parse(v) {
                Some(f) => format = f,
                None => errors.push(FieldError::new("format", "unknown_format")),
            }
        }
    }
    if errors.is_empty() {
        Ok(ExportParams { filter, format })
    } else {
        Err(errors)
    }
}

fn parse_filter(
    pairs: &[(String, String)],
    extra_keys: &[&str],
    errors: &mut Vec<FieldError>,
) -> Filter {
    let mut seen = BTreeSet::new();
    let mut f = Filter::default();
    for (k, v) in pairs {
        let known = FILTER_KEYS.contains(&k.as_str()) || extra_keys.contains(&k.as_str());
        if !known {
            errors.push(FieldError::new(k, "unknown_parameter"));
            continue;
        }
        if !seen.insert(k.as_str()) {
            errors.push(FieldError::new(k, "duplicate_parameter"));
            continue;
        }
        match k.as_str() {
            "since" | "until" => match parse_time(v) {
                Some(t) if k == "since" => f.since = Some(t),
                Some(t) => f.until = Some(t),
                None => errors.push(FieldError::new(k, "invalid_timestamp")),
            },
            "actor" => {
                if v.is_empty() || v.chars().count() > MAX_ACTOR_CHARS {
                    errors.push(FieldError::new("actor", "invalid_length"));
                } else {
                    f.actor = Some(v.clone());
                }
            }
            "guest_id" => match GuestId::parse(v) {
                Some(g) => f.guest_id = Some(g.as_str().to_string()),
                None => errors.push(FieldError::new("guest_id", "invalid_guest_id")),
            },
            "action" => match Action::parse(v) {
                Some(a) => f.action = Some(a.as_str().to_string()),
                None => errors.push(FieldError::new("action", "unknown_action")),
            },
            "outcome" => match v.as_str() {
                "allowed" => f.outcome = Some(Outcome::Allowed),
                "denied" => f.outcome = Some(Outcome::Denied),
                "error" => f.outcome = Some(Outcome::Error),
                _ => errors.push(FieldError::new("outcome", "unknown_outcome")),
            },
            _ => {}
        }
    }
    if let (Some(s), Some(u)) = (&f.since, &f.until) {
        if s >= u {
            errors.push(FieldError::new("until", "not_after_since"));
        }
    }
    f
}

/// Parses an RFC 3339 timestamp or a `YYYY-MM-DD` date (midnight UTC) into the fixed-width
/// UTC form the trail stores, so that bounds compare as text.
pub fn parse_time(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(crate::clock::timestamp(t));
    }
    let date =
        time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(crate::clock::timestamp(date.midnight().assume_utc()))
}

/// Splits and percent-decodes `application/x-www-form-urlencoded` pairs.
fn decode_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, Vec<FieldError>> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_QUERY_BYTES {
        return Err(vec![FieldError::new("query", "too_long")]);
    }
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (percent_decode(k), percent_decode(v)) {
            (Some(k), Some(v)) => pairs.push((k, v)),
            _ => return Err(vec![FieldError::new("query", "malformed")]),
        }
    }
    Ok(pairs)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The contiguous run of events an export covers: `first..=last` (empty when
/// `first == last + 1`), and the hash of event `first - 1` that it links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub last: u64,
    pub anchor_hash: [u8; 32],
}
