//! The operations page (admin, purpose `administration`): KEK versions and DEK counts (the
//! key status of `GET /v1/admin/keys`), a rotation started by a POST form and followed live
//! (`assets/console.js` polls `progress.json`; without script the page shows where it stood),
//! a retention dry run with counts per class (`POST /v1/admin/retention/run?dry_run=true`),
//! readiness with its reason (as `/readyz`) and a few of the metrics' numbers.
//!
//! Everything goes through the service as the signed-in role: the page is an audited
//! `admin.keys` read, the rotation is authorized and audited as `admin.keys` exactly like
//! `POST /v1/admin/keys/rotate`, the dry run as `admin.retention`. The progress endpoint, like
//! `GET /v1/admin/keys`, is authorized on every poll and audited only when refused (a poll a
//! second would otherwise fill the trail).

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{html, Markup};
use serde::Serialize;

use super::layout::signed_page;
use super::words::W;
use super::{error_page, CsrfOnly, Lang, Msg, Signed};
use crate::http::AppState;
use crate::policy::Action;
use crate::service::{KeyStatus, OperationsView, SweepReport, VaultError};

pub(super) const PATH: &str = "/console/operations";
const PURPOSE: &str = "administration";
const PROGRESS: &str = "/console/operations/progress.json";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(page))
        .route(PROGRESS, get(progress))
        .route("/console/operations/rotate", post(rotate))
        .route("/console/operations/retention-dry-run", post(dry_run))
}

async fn page(State(state): State<AppState>, signed: Signed) -> Response {
    render(&state, &signed, None, None).await
}

async fn render(
    state: &AppState,
    signed: &Signed,
    report: Option<&SweepReport>,
    notice: Option<(StatusCode, W)>,
) -> Response {
    let caller = signed.caller(PURPOSE);
    let view = match state.vault.console_operations(&caller).await {
        Ok(v) => v,
        Err(e) => return error_page(state, Some(signed), signed.lang, e),
    };
    let lang = signed.lang;
    let body = html! {
        @if let Some((_, w)) = notice { p.error role="alert" { (lang.w(w)) } }
        (readiness(lang, view.not_ready))
        (keys(signed, &view.keys))
        (dry_run_card(signed, report))
        (metrics(lang, &view, state.console.session_count()))
    };
    let status = notice.map_or(StatusCode::OK, |(s, _)| s);
    (
        status,
        signed_page(state, signed, PATH, lang.t(Msg::Operations), body),
    )
        .into_response()
}

/// Where the running (or last) rotation stands, for the page and for the script.
#[derive(Debug, Serialize)]
struct Progress {
    /// `running`, `finished`, `failed` or `none` (no rotation since this server started).
    state: &'static str,
    done: u64,
    total: u64,
    /// 0–100; 100 once finished.
    percent: u64,
    target_version: u32,
    active_version: u32,
}

fn progress_of(k: &KeyStatus) -> Progress {
    let r = &k.rotation;
    let state = if r.running {
        "running"
    } else if r.error.is_some() {
        "failed"
    } else if r.target_version == 0 {
        "none"
    } else {
        "finished"
    };
    let percent = match (state, r.total) {
        ("finished", _) => 100,
        (_, 0) => 0,
        (_, t) => (r.done.min(t) * 100) / t,
    };
    Progress {
        state,
        done: r.done,
        total: r.total,
        percent,
        target_version: r.target_version,
        active_version: k.active_version,
    }
}

/// The script's poll: the same key status as `GET /v1/admin/keys` (authorized `admin.keys`).
async fn progress(State(state): State<AppState>, signed: Signed) -> Response {
    let caller = signed.caller(PURPOSE);
    match state.vault.key_status(&caller).await {
        Ok(k) => Json(progress_of(&k)).into_response(),
        Err(e) => error_page(&state, Some(&signed), signed.lang, e),
    }
}

/// Starts a rotation in the background, as `POST /v1/admin/keys/rotate` does, and goes back
/// to the page (which follows it).
async fn rotate(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !signed.csrf_ok(&sent) {
        return signed.csrf_refused();
    }
    let caller = signed.caller(PURPOSE);
    if let Err(e) = state
        .vault
        .authorize_operation(&caller, Action::AdminKeys)
        .await
    {
        return error_page(&state, Some(&signed), signed.lang, e);
    }
    let claim = match state.vault.claim_rotation_everywhere().await {
        Ok(c) => c,
        Err(VaultError::Conflict(_)) => {
            return render(
                &state,
                &signed,
                None,
                Some((StatusCode::CONFLICT, W::RotationAlready)),
            )
            .await
        }
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let vault = state.vault.clone();
    tokio::spawn(async move {
        match vault.rotate_keys_claimed(&caller, claim, |_, _| {}).await {
            Ok(r) => tracing::info!(
                target_version = r.target_version,
                rewrapped = r.rewrapped,
                "key rotation finished (console)"
            ),
            Err(e) => tracing::error!(error = %e, "key rotation failed (console)"),
        }
    });
    Redirect::to(PATH).into_response()
}

async fn dry_run(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !signed.csrf_ok(&sent) {
        return signed.csrf_refused();
    }
    let caller = signed.caller(PURPOSE);
    match state.vault.admin_retention(&caller, true).await {
        Ok(report) => render(&state, &signed, Some(&report), None).await,
        Err(e) => error_page(&state, Some(&signed), signed.lang, e),
    }
}

fn readiness(lang: Lang, not_ready: Option<&'static str>) -> Markup {
    html! {
        section.card id="readiness" {
            h2 { (lang.w(W::Readiness)) }
            @match not_ready {
                None => { p { span.badge.ok data-ready="ready" { (lang.w(W::Ready)) } } }
                Some(reason) => {
                    p { span.badge.denied data-ready="unavailable" { (lang.w(W::NotReady)) } }
                    p { (lang.w(W::ReasonLabel)) ": " code data-reason=(reason) { (reason) } }
                }
            }
        }
    }
}

fn keys(signed: &Signed, k: &KeyStatus) -> Markup {
    let lang = signed.lang;
    let p = progress_of(k);
    let state_word = |s: &str| {
        lang.w(match s {
            "running" => W::RotationRunning,
            "finished" => W::RotationFinished,
            "failed" => W::RotationFailed,
            _ => W::RotationNone,
        })
    };
    html! {
        section.card id="keys" {
            h2 { (lang.w(W::Keys)) }
            dl.detail {
                dt { (lang.w(W::ActiveVersion)) } dd id="active-version" { "v" (k.active_version) }
                dt { (lang.w(W::Sealed)) } dd { (lang.t(if k.sealed { Msg::Yes } else { Msg::No })) }
            }
            table id="kek-versions" {
                thead { tr {
                    th scope="col" { (lang.w(W::KekVersion)) }
                    th scope="col" { (lang.w(W::Active)) }
                    th scope="col" { (lang.w(W::Deks)) }
                } }
                tbody {
                    @for v in &k.versions {
                        tr data-version=(v.version) data-deks=(v.deks) {
                            th scope="row" { "v" (v.version) }
                            td { @if v.active { strong { (lang.t(Msg::Yes)) } } @else { (lang.t(Msg::No)) } }
                            td { (v.deks) }
                        }
                    }
                }
            }
            h3 { (lang.w(W::Rotation)) }
            div id="rotation" data-progress-url=(PROGRESS) data-state=(p.state)
                data-label-running=(state_word("running")) data-label-finished=(state_word("finished"))
                data-label-failed=(state_word("failed")) data-label-none=(state_word("none")) {
                p {
                    (lang.t(Msg::Outcome)) ": " strong data-rotation-state { (state_word(p.state)) }
                    @if p.target_version > 0 { " · " (lang.w(W::TargetVersion)) ": v" span data-rotation-target { (p.target_version) } }
                }
                label for="rotation-progress" { (lang.w(W::Progress)) }
                progress id="rotation-progress" max=(p.total.max(1)) value=(if p.state == "finished" { p.total.max(1) } else { p.done }) { (p.percent) "%" }
                p aria-live="polite" { span data-progress-label { (p.done) " / " (p.total) " (" (p.percent) "%)" } }
            }
            p.help { (lang.w(W::RotationHelp)) }
            form method="post" action="/console/operations/rotate" data-busy {
                input type="hidden" name="csrf" value=(signed.session.csrf);
                button type="submit" id="rotate" { (lang.w(W::StartRotation)) }
            }
        }
    }
}

fn dry_run_card(signed: &Signed, report: Option<&SweepReport>) -> Markup {
    let lang = signed.lang;
    html! {
        section.card id="retention-dry-run" {
            h2 { (lang.w(W::RetentionDryRun)) }
            p.help { (lang.w(W::DryRunHelp)) }
            @if let Some(r) = report {
                dl.detail id="dry-run-result" data-checked=(r.guests_checked) {
                    dt { (lang.w(W::GuestsChecked)) } dd { (r.guests_checked) }
                    dt { (lang.w(W::GuestsAffected)) } dd { (r.guests_affected) }
                    dt { (lang.w(W::GuestsErased)) } dd { (r.guests_erased) }
                }
                @if r.classes.is_empty() {
                    p { (lang.w(W::NothingExpires)) }
                } @else {
                    table id="dry-run-classes" {
                        thead { tr {
                            th scope="col" { (lang.w(W::Class)) }
                            th scope="col" { (lang.w(W::FieldsPurged)) }
                            th scope="col" { (lang.w(W::StaysPurged)) }
                        } }
                        tbody {
                            @for (name, c) in &r.classes {
                                tr data-class=(name) data-fields=(c.fields) data-stays=(c.stays) {
                                    th scope="row" { code { (name) } } td { (c.fields) } td { (c.stays) }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/console/operations/retention-dry-run" data-busy {
                input type="hidden" name="csrf" value=(signed.session.csrf);
                button type="submit" id="dry-run" { (lang.w(W::RunDryRun)) }
            }
        }
    }
}

fn metrics(lang: Lang, v: &OperationsView, sessions: usize) -> Markup {
    html! {
        section.card id="metrics" {
            h2 { (lang.w(W::Metrics)) }
            dl.detail {
                dt { (lang.w(W::GuestsStored)) } dd data-metric="guests_stored" { (v.guests_stored) }
                dt { (lang.w(W::AuditEvents)) } dd data-metric="audit_events" { (v.audit_events) }
                dt { (lang.w(W::ActiveVersion)) } dd data-metric="kek_active_version" { (v.keys.active_version) }
                dt { (lang.w(W::ConsoleSessions)) } dd data-metric="console_sessions" { (sessions) }
            }
            p.help { (lang.w(W::MetricsHelp)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{KekVersionStatus, RotationStatus};

    fn status(running: bool, target: u32, done: u64, total: u64) -> KeyStatus {
        KeyStatus {
            active_version: 2,
            sealed: false,
            versions: vec![KekVersionStatus {
                version: 2,
                active: true,
                deks: total,
            }],
            rotation: RotationStatus {
                running,
                target_version: target,
                done,
                total,
                error: None,
            },
        }
    }

    #[test]
    fn progress_says_where_the_rotation_stands() {
        let p = progress_of(&status(false, 0, 0, 0));
        assert_eq!((p.state, p.percent), ("none", 0));
        let p = progress_of(&status(true, 2, 250, 1000));
        assert_eq!((p.state, p.percent), ("running", 25));
        let p = progress_of(&status(false, 2, 1000, 1000));
        assert_eq!((p.state, p.percent), ("finished", 100));
        // A rotation with nothing to rewrap is finished at 100%.
        let p = progress_of(&status(false, 2, 0, 0));
        assert_eq!((p.state, p.percent), ("finished", 100));
    }
}
