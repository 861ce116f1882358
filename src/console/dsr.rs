//! The data-subject requests page (DSR officer, purpose `data_subject_request`): open and
//! overdue requests with their due date (15 Chinese working days) and the working days left,
//! correction requests waiting for verification (review, then approve or reject with a reason
//! code), erasure receipts, the access package to hand to the guest, and requests taken in at
//! the desk or by phone (erasure, access, correction).
//!
//! Every read and action goes through the same service calls as the API
//! (`pending_corrections`, `correction_detail`, `decide_correction` as
//! `/v1/dsr-requests/*`; `erase_guest`, `erasure_receipt`, `export_guest` as
//! `/v1/guests/{id}/erasure|export`), plus the desk's own (`open_requests`,
//! `erasure_receipts`, `record_access_request`, `take_correction_request`), as the signed-in
//! role under `data_subject_request`, so each is authorized and audited like the API's. Guest
//! ids and request ids are opaque and may sit in a URL; every value travels in a POST body.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{china_time, signed_page};
use super::{error_page, Msg, Signed};
use crate::http::AppState;
use crate::policy::FieldScope;
use crate::service::{CorrectionSummary, Deadline, Decision, DeskRequest, VaultError, DSR_PURPOSE};

pub(super) const PATH: &str = "/console/dsr";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(requests_page))
        .route("/console/dsr/corrections/{id}", get(review))
        .route("/console/dsr/corrections/{id}/decide", post(decide))
        .route("/console/dsr/requests/{id}", get(receipt_page))
        .route("/console/dsr/intake", post(intake))
        .route("/console/dsr/export", post(export))
}

fn opt(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// Which clock set a request's due date, each regime's due date, and an extension of the
/// GDPR clock (REQ-32, REQ-48). Shown under the due date; the winning clock is marked.
pub(super) fn clock_note(signed: &Signed, c: &crate::service::DsrClock) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        span.clock data-clock=(c.clock) {
            @if c.clock == "eu" { (t(Msg::ClockEu)) } @else { (t(Msg::ClockCn)) }
        }
        small.due-dates {
            " (CN " time datetime=(c.due_dates.cn) { (c.due_dates.cn) }
            @if let Some(eu) = &c.due_dates.eu { " · EU " time datetime=(eu) { (eu) } }
            ")"
        }
        @if let Some(x) = &c.extension {
            " "
            span.badge data-extension=(x.months) {
                (t(Msg::ExtendedBy)) " " (x.months) " " (t(Msg::Months)) " · " code { (x.reason) }
                @if let Some(ticket) = &x.ticket { " · " code { (ticket) } }
            }
        }
    }
}

/// A due date with what is left: working days (weekends and `holidays.toml` off), due today,
/// or overdue by calendar days. The rule is the service's ([`crate::service::Deadline`],
/// measured on today's China date), the same as the API's overdue list.
pub(super) fn deadline(state: &AppState, signed: &Signed, due: &str) -> Markup {
    html! {
        time datetime=(due) { (due) }
        " "
        @if let Some(d) = state.vault.deadline_of(due) { (deadline_badge(signed, d)) }
    }
}

/// The badge of a deadline: `data-deadline` is its code (`open`, `due_today`, `overdue`).
pub(super) fn deadline_badge(signed: &Signed, d: Deadline) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        @match d {
            Deadline::Overdue { days } => {
                span.badge.denied data-deadline="overdue" data-days=(days) { (t(Msg::Overdue)) " " (days) " " (t(Msg::Days)) }
            }
            Deadline::DueToday => {
                span.badge.error data-deadline="due_today" { (t(Msg::DueToday)) }
            }
            Deadline::Open { working_days_left } => {
                span.badge.ok data-deadline="open" data-days=(working_days_left) { (working_days_left) " " (t(Msg::WorkingDaysLeft)) }
            }
        }
    }
}

pub(super) fn kind_label(signed: &Signed, kind: &str) -> Markup {
    let m = match kind {
        "erasure" => Some(Msg::KindErasure),
        "access" => Some(Msg::KindAccess),
        "correction" => Some(Msg::KindCorrection),
        _ => None,
    };
    html! { @if let Some(m) = m { (signed.lang.t(m)) } @else { code { (kind) } } }
}

pub(super) fn status_label(signed: &Signed, status: &str) -> Markup {
    let m = match status {
        "received" => Some(Msg::StatusReceived),
        "pending_verification" => Some(Msg::StatusPending),
        "completed" => Some(Msg::StatusCompleted),
        "partially_completed" => Some(Msg::StatusPartial),
        "rejected" => Some(Msg::StatusRejected),
        _ => None,
    };
    html! { span data-status=(status) { @if let Some(m) = m { (signed.lang.t(m)) } @else { code { (status) } } } }
}

/// A `<select>` of the reason codes of `access.toml` (a decision, reveal or export reason).
pub(super) fn reason_select(
    state: &AppState,
    signed: &Signed,
    id: &str,
    pick: &str,
    required: bool,
) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        label for=(id) { (t(Msg::Reason)) }
        select id=(id) name="reason" required[required] {
            option value="" { "—" }
            @for (code, r) in &state.vault.policies().access.reasons {
                option value=(code) selected[code == pick] { (code) " — " (r.description) }
            }
        }
    }
}

pub(super) fn ticket_input(signed: &Signed, id: &str) -> Markup {
    let t = |m| signed.lang.t(m);
    let help = format!("{id}-help");
    html! {
        label for=(id) { (t(Msg::Ticket)) }
        input id=(id) type="text" name="ticket" maxlength="40" pattern="[A-Za-z0-9._\\-]{1,40}" autocomplete="off" spellcheck="false" aria-describedby=(help);
        p.help id=(help) { (t(Msg::TicketHelp)) }
    }
}

/// The three intake forms (erasure, access, correction) for `guest` (a fixed guest on its
/// page, or a guest id to type in on the requests page).
pub(super) fn intake_forms(state: &AppState, signed: &Signed, guest: Option<&str>) -> Markup {
    let t = |m| signed.lang.t(m);
    let csrf = &signed.session.csrf;
    let gid_input = |prefix: &str| {
        let id = format!("{prefix}-guest");
        html! {
            @if let Some(g) = guest {
                input type="hidden" name="guest_id" value=(g);
            } @else {
                label for=(id) { (t(Msg::GuestId)) }
                input id=(id) type="text" name="guest_id" required maxlength="64" autocomplete="off" spellcheck="false";
            }
        }
    };
    let fields: Vec<&str> = state
        .vault
        .policies()
        .catalog
        .fields(FieldScope::Guest)
        .map(|f| f.name.as_str())
        .collect();
    html! {
        div.grid {
            form.card method="post" action="/console/dsr/intake" id="intake-erasure" {
                h3 { (t(Msg::Erase)) }
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="kind" value="erasure";
                (gid_input("ie"))
                label for="ie-reason" { (t(Msg::ErasureReason)) }
                select id="ie-reason" name="reason" {
                    @for r in crate::service::ERASURE_REASONS { option value=(r) { (r) } }
                }
                label { input type="checkbox" name="confirm" value="yes" required id="ie-confirm"; " " (t(Msg::EraseConfirm)) }
                button type="submit" id="erase" { (t(Msg::Erase)) }
                p.help { (t(Msg::EraseHelp)) }
            }
            form.card method="post" action="/console/dsr/intake" id="intake-access" {
                h3 { (t(Msg::RecordAccess)) }
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="kind" value="access";
                (gid_input("ia"))
                button type="submit" id="record-access" { (t(Msg::RecordAccess)) }
                p.help { (t(Msg::RecordAccessHelp)) }
            }
            form.card method="post" action="/console/dsr/intake" id="intake-correction" {
                h3 { (t(Msg::RecordCorrection)) }
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="kind" value="correction";
                (gid_input("ic"))
                label for="ic-field" { (t(Msg::Field)) }
                select id="ic-field" name="field" required {
                    @for f in &fields { option value=(f) { (f) } }
                }
                label for="ic-value" { (t(Msg::NewValue)) }
                input id="ic-value" type="text" name="value" required maxlength="1000" autocomplete="off";
                button type="submit" id="record-correction" { (t(Msg::RecordCorrection)) }
                p.help { (t(Msg::RecordCorrectionHelp)) }
            }
        }
    }
}

/// The access-package export form for `guest` (fixed, or typed in).
pub(super) fn export_form(state: &AppState, signed: &Signed, guest: Option<&str>) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        form method="post" action="/console/dsr/export" id="export-form" {
            input type="hidden" name="csrf" value=(signed.session.csrf);
            div.grid {
                @if let Some(g) = guest {
                    input type="hidden" name="guest_id" value=(g);
                } @else {
                    div {
                        label for="ex-guest" { (t(Msg::GuestId)) }
                        input id="ex-guest" type="text" name="guest_id" required maxlength="64" autocomplete="off" spellcheck="false";
                    }
                }
                div { (reason_select(state, signed, "ex-reason", "data_subject_request", true)) }
                div { (ticket_input(signed, "ex-ticket")) }
            }
            button type="submit" id="export-package" { (t(Msg::DownloadPackage)) }
            p.help { (t(Msg::AccessExportHelp)) }
        }
    }
}

/// An erasure receipt (from the erasure's answer or a stored request): what was erased, what
/// is kept (storage only) with its basis and end date.
pub(super) fn receipt_card(signed: &Signed, r: &Value) -> Markup {
    let t = |m| signed.lang.t(m);
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let erased: Vec<&str> = r
        .get("erased")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let retained: Vec<&Value> = r
        .get("retained")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let completed = s("completed_at");
    html! {
        section.card id="receipt" aria-live="polite" {
            h2 { (t(Msg::Receipt)) }
            dl.detail {
                dt { (t(Msg::RequestId)) } dd { code id="receipt-id" { (s("request_id")) } }
                @if r.get("kind").is_some() { dt { (t(Msg::Kind)) } dd { (kind_label(signed, &s("kind"))) } }
                dt { (t(Msg::Status)) } dd { (status_label(signed, &s("status"))) }
                dt { (t(Msg::Received)) } dd { (china_time(&s("received_at"))) }
                dt { (t(Msg::CompletedAt)) } dd { @if completed.is_empty() { "—" } @else { (china_time(&completed)) } }
                dt { (t(Msg::DueAt)) } dd { (s("due_at")) }
                @if r.get("erased").is_some() {
                    dt { (t(Msg::Erased)) } dd {
                        @if erased.is_empty() { "—" } @else { ul.plain { @for f in &erased { li { code { (f) } } } } }
                    }
                }
                @if let Some(reason) = r.get("reason").and_then(Value::as_str) {
                    dt { (t(Msg::Reason)) } dd { code { (reason) } }
                }
            }
            @if !retained.is_empty() {
                h3 { (t(Msg::Retained)) }
                div.scroll { table {
                    thead { tr {
                        th scope="col" { (t(Msg::Field)) }
                        th scope="col" { (t(Msg::Class)) }
                        th scope="col" { (t(Msg::Basis)) }
                        th scope="col" { (t(Msg::KeptUntil)) }
                    } }
                    tbody { @for k in &retained {
                        tr {
                            td { code { (k.get("field").and_then(Value::as_str).unwrap_or("")) }
                                 @if let Some(n) = k.get("count").and_then(Value::as_u64) { " (" (n) ")" } }
                            td { code { (k.get("class").and_then(Value::as_str).unwrap_or("")) } }
                            td { (k.get("basis").and_then(Value::as_str).unwrap_or("")) }
                            td { (k.get("until").and_then(Value::as_str).unwrap_or("")) }
                        }
                    } }
                } }
            }
            p { a href=(PATH) { (t(Msg::BackToRequests)) } }
        }
    }
}

fn open_table(state: &AppState, signed: &Signed, open: &[DeskRequest]) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        section.card id="open-requests" {
            h2 { (t(Msg::OpenRequests)) }
            p.help { (t(Msg::OpenRequestsHelp)) }
            @if open.is_empty() {
                p id="no-open" { (t(Msg::NoOpenRequests)) }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th scope="col" { (t(Msg::RequestId)) }
                        th scope="col" { (t(Msg::Kind)) }
                        th scope="col" { (t(Msg::Status)) }
                        th scope="col" { (t(Msg::Received)) }
                        th scope="col" { (t(Msg::DueAt)) }
                    } }
                    tbody { @for r in open {
                        tr data-request=(r.request_id) {
                            td { @if r.kind == "correction" {
                                a href=(format!("/console/dsr/corrections/{}", r.request_id)) { code { (r.request_id) } }
                            } @else { code { (r.request_id) } } }
                            td { (kind_label(signed, &r.kind)) }
                            td { (status_label(signed, &r.status)) }
                            td { time datetime=(r.received_at) { (china_time(&r.received_at)) } }
                            td { (deadline(state, signed, &r.due_at)) br; (clock_note(signed, &r.deadlines)) }
                        }
                    } }
                } }
            }
        }
    }
}

fn corrections_table(state: &AppState, signed: &Signed, pending: &[CorrectionSummary]) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        section.card id="corrections" {
            h2 { (t(Msg::PendingCorrections)) }
            @if pending.is_empty() {
                p id="no-corrections" { (t(Msg::NoPendingCorrections)) }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th scope="col" { (t(Msg::RequestId)) }
                        th scope="col" { (t(Msg::GuestId)) }
                        th scope="col" { (t(Msg::Fields)) }
                        th scope="col" { (t(Msg::Received)) }
                        th scope="col" { (t(Msg::DueAt)) }
                        th scope="col" { (t(Msg::Review)) }
                    } }
                    tbody { @for c in pending {
                        tr data-correction=(c.request_id) {
                            td { code { (c.request_id) } }
                            td { a href=(format!("/console/guests/{}", c.guest_id)) { code { (c.guest_id) } } }
                            td { @for (i, f) in c.fields.iter().enumerate() { @if i > 0 { ", " } code { (f) } } }
                            td { time datetime=(c.received_at) { (china_time(&c.received_at)) } }
                            td { (deadline(state, signed, &c.due_at)) br; (clock_note(signed, &c.deadlines)) }
                            td { a.button href=(format!("/console/dsr/corrections/{}", c.request_id)) aria-label=(format!("{} {}", t(Msg::Review), c.request_id)) { (t(Msg::Review)) } }
                        }
                    } }
                } }
            }
        }
    }
}

fn receipts_table(signed: &Signed, receipts: &[DeskRequest]) -> Markup {
    let t = |m| signed.lang.t(m);
    let count = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    html! {
        section.card id="receipts" {
            h2 { (t(Msg::ErasureReceipts)) }
            @if receipts.is_empty() {
                p { (t(Msg::NoErasureReceipts)) }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th scope="col" { (t(Msg::RequestId)) }
                        th scope="col" { (t(Msg::Status)) }
                        th scope="col" { (t(Msg::Received)) }
                        th scope="col" { (t(Msg::CompletedAt)) }
                        th scope="col" { (t(Msg::Erased)) }
                        th scope="col" { (t(Msg::Retained)) }
                    } }
                    tbody { @for r in receipts {
                        tr {
                            td { a href=(format!("/console/dsr/requests/{}", r.request_id)) { code { (r.request_id) } } }
                            td { (status_label(signed, &r.status)) }
                            td { (china_time(&r.received_at)) }
                            td { (r.completed_at.as_deref().map(china_time).unwrap_or_else(|| "—".into())) }
                            td { (count(&r.receipt, "erased")) }
                            td { (count(&r.receipt, "retained")) }
                        }
                    } }
                } }
            }
        }
    }
}

/// The requests page, with an optional notice on top (after a decision).
async fn render_requests(state: &AppState, signed: &Signed, notice: Option<Markup>) -> Response {
    let caller = signed.caller(DSR_PURPOSE);
    let open = match state.vault.open_requests(&caller).await {
        Ok(o) => o,
        Err(e) => return error_page(state, Some(signed), signed.lang, e),
    };
    let pending = match state.vault.pending_corrections(&caller).await {
        Ok(p) => p,
        Err(e) => return error_page(state, Some(signed), signed.lang, e),
    };
    let receipts = match state.vault.erasure_receipts(&caller).await {
        Ok(r) => r,
        Err(e) => return error_page(state, Some(signed), signed.lang, e),
    };
    let t = |m| signed.lang.t(m);
    let body = html! {
        @if let Some(n) = notice { (n) }
        p.help { (t(Msg::ChinaTime)) ". " (t(Msg::DeadlineHelp)) }
        (open_table(state, signed, &open))
        (corrections_table(state, signed, &pending))
        section.card id="new-request" {
            h2 { (t(Msg::NewRequest)) }
            p.help { (t(Msg::NewRequestHelp)) }
            (intake_forms(state, signed, None))
        }
        section.card id="access-export" {
            h2 { (t(Msg::AccessExport)) }
            (export_form(state, signed, None))
        }
        (receipts_table(signed, &receipts))
    };
    signed_page(state, signed, PATH, t(Msg::DsrRequests), body).into_response()
}

async fn requests_page(State(state): State<AppState>, signed: Signed) -> Response {
    render_requests(&state, &signed, None).await
}

/// One correction request: the proposed values (audited, as `GET /v1/dsr-requests/{id}`)
/// and the decision forms.
async fn review(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> Response {
    let caller = signed.caller(DSR_PURPOSE);
    let detail = match state.vault.correction_detail(&caller, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let t = |m| signed.lang.t(m);
    let s = &detail.summary;
    let action = format!("/console/dsr/corrections/{}/decide", s.request_id);
    let body = html! {
        section.card {
            dl.detail {
                dt { (t(Msg::RequestId)) } dd { code { (s.request_id) } }
                dt { (t(Msg::GuestId)) } dd { a href=(format!("/console/guests/{}", s.guest_id)) { code { (s.guest_id) } } }
                dt { (t(Msg::Received)) } dd { (china_time(&s.received_at)) }
                dt { (t(Msg::DueAt)) } dd { (deadline(&state, &signed, &s.due_at)) br; (clock_note(&signed, &s.deadlines)) }
            }
            h2 { (t(Msg::ProposedValues)) }
            table id="proposed" {
                thead { tr { th scope="col" { (t(Msg::Field)) } th scope="col" { (t(Msg::NewValue)) } } }
                tbody { @for (k, v) in &detail.proposed {
                    tr { td { code { (k) } } td { @match v { Value::String(s) => { (s) }, Value::Null => { "—" }, other => { code { (other.to_string()) } } } } }
                } }
            }
        }
        section.card {
            h2 { (t(Msg::Decision)) }
            p.help { (t(Msg::DecisionHelp)) }
            form method="post" action=(action) id="decide" {
                input type="hidden" name="csrf" value=(signed.session.csrf);
                div.grid {
                    div { (reason_select(&state, &signed, "d-reason", "", true)) }
                    div { (ticket_input(&signed, "d-ticket")) }
                }
                div.actions {
                    button type="submit" name="decision" value="apply" id="approve" { (t(Msg::Approve)) }
                    button type="submit" name="decision" value="reject" id="reject" { (t(Msg::Reject)) }
                }
            }
        }
        p { a href=(PATH) { (t(Msg::BackToRequests)) } }
    };
    signed_page(&state, &signed, PATH, t(Msg::CorrectionReview), body).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DecideForm {
    csrf: String,
    decision: String,
    reason: String,
    ticket: String,
}

/// Approve or reject (`POST /v1/dsr-requests/{id}/apply|reject`), then the queue again.
async fn decide(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: Result<Form<DecideForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return super::csrf_refused(signed.lang);
    };
    if !signed.csrf_ok(&form.csrf) {
        return signed.csrf_refused();
    }
    let decision = match form.decision.as_str() {
        "apply" => Decision::Apply,
        "reject" => Decision::Reject,
        _ => {
            let e =
                VaultError::Validation(vec![crate::domain::FieldError::new("decision", "invalid")]);
            return error_page(&state, Some(&signed), signed.lang, e);
        }
    };
    let caller = signed.caller(DSR_PURPOSE);
    let done = match state
        .vault
        .decide_correction(
            &caller,
            &id,
            decision,
            form.reason.trim(),
            opt(&form.ticket),
        )
        .await
    {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let msg = match decision {
        Decision::Apply => Msg::CorrectionApplied,
        Decision::Reject => Msg::CorrectionRejected,
    };
    let notice = html! {
        p.help role="status" id="notice" data-decided=(done.request_id) {
            (signed.lang.t(msg)) " " code { (done.request_id) }
        }
    };
    render_requests(&state, &signed, Some(notice)).await
}

/// A stored request's receipt (`GET /v1/erasure-requests/{id}`).
async fn receipt_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let caller = signed.caller(DSR_PURPOSE);
    let r = match state.vault.erasure_receipt(&caller, &id).await {
        Ok(r) => r,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let t = |m| signed.lang.t(m);
    signed_page(
        &state,
        &signed,
        PATH,
        t(Msg::Receipt),
        receipt_card(&signed, &r),
    )
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct IntakeForm {
    csrf: String,
    kind: String,
    guest_id: String,
    reason: String,
    confirm: String,
    field: String,
    value: String,
}

fn invalid(field: &str, code: &'static str) -> VaultError {
    VaultError::Validation(vec![crate::domain::FieldError::new(field, code)])
}

/// A request taken in at the desk or by phone: erasure (answered at once, the receipt shown),
/// access (recorded, answered by the next export), correction (recorded for verification).
async fn intake(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<IntakeForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return super::csrf_refused(signed.lang);
    };
    if !signed.csrf_ok(&form.csrf) {
        return signed.csrf_refused();
    }
    let caller = signed.caller(DSR_PURPOSE);
    let gid = form.guest_id.trim();
    let t = |m| signed.lang.t(m);
    let body = match form.kind.as_str() {
        "erasure" => {
            if form.confirm != "yes" {
                return error_page(
                    &state,
                    Some(&signed),
                    signed.lang,
                    invalid("confirm", "required"),
                );
            }
            match state
                .vault
                .erase_guest(&caller, gid, opt(&form.reason))
                .await
            {
                Ok(r) => {
                    let v = serde_json::to_value(&r).unwrap_or(Value::Null);
                    receipt_card(&signed, &v)
                }
                Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
            }
        }
        "access" => match state.vault.record_access_request(&caller, gid).await {
            Ok(a) => html! {
                section.card id="recorded" aria-live="polite" {
                    p { (t(Msg::AccessRecorded)) }
                    dl.detail {
                        dt { (t(Msg::RequestId)) } dd { code id="recorded-id" { (a.request_id) } }
                        dt { (t(Msg::Received)) } dd { (china_time(&a.received_at)) }
                        dt { (t(Msg::DueAt)) } dd { (deadline(&state, &signed, &a.due_at)) br; (clock_note(&signed, &a.deadlines)) }
                    }
                    p { a href=(format!("/console/guests/{gid}")) { (t(Msg::OpenGuest)) } " · " a href=(PATH) { (t(Msg::BackToRequests)) } }
                }
            },
            Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
        },
        "correction" => {
            if form.value.trim().is_empty() {
                return error_page(
                    &state,
                    Some(&signed),
                    signed.lang,
                    invalid("value", "required"),
                );
            }
            let mut patch = serde_json::Map::new();
            patch.insert(
                form.field.clone(),
                Value::String(form.value.trim().to_string()),
            );
            match state
                .vault
                .take_correction_request(&caller, gid, patch)
                .await
            {
                Ok(r) => html! {
                    section.card id="recorded" aria-live="polite" {
                        p { (t(Msg::CorrectionRecorded)) }
                        dl.detail {
                            dt { (t(Msg::RequestId)) } dd { code id="recorded-id" { (r.request_id) } }
                            dt { (t(Msg::Fields)) } dd { @for f in &r.fields { code { (f) } " " } }
                            dt { (t(Msg::Received)) } dd { (china_time(&r.received_at)) }
                            dt { (t(Msg::DueAt)) } dd { (deadline(&state, &signed, &r.due_at)) br; (clock_note(&signed, &r.deadlines)) }
                        }
                        p { a href=(format!("/console/dsr/corrections/{}", r.request_id)) { (t(Msg::Review)) } " · " a href=(PATH) { (t(Msg::BackToRequests)) } }
                    }
                },
                Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
            }
        }
        _ => {
            return error_page(
                &state,
                Some(&signed),
                signed.lang,
                invalid("kind", "invalid"),
            )
        }
    };
    signed_page(&state, &signed, PATH, t(Msg::NewRequest), body).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ExportForm {
    csrf: String,
    guest_id: String,
    reason: String,
    ticket: String,
}

/// The access package as a download (`GET /v1/guests/{id}/export` with the officer's reason
/// code): recorded as an access request and audited by the service; it also answers any
/// access request taken in at the desk for this guest.
async fn export(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<ExportForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return super::csrf_refused(signed.lang);
    };
    if !signed.csrf_ok(&form.csrf) {
        return signed.csrf_refused();
    }
    let caller = signed.caller(DSR_PURPOSE);
    let why = crate::policy::JustificationInput {
        reason: opt(&form.reason),
        ticket: opt(&form.ticket),
        note: None,
    };
    let package = match state
        .vault
        .export_guest(&caller, form.guest_id.trim(), why)
        .await
    {
        Ok(p) => p,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let bytes = match serde_json::to_vec_pretty(&package) {
        Ok(b) => b,
        Err(e) => {
            return error_page(
                &state,
                Some(&signed),
                signed.lang,
                VaultError::Internal(e.to_string()),
            )
        }
    };
    let mut resp = (StatusCode::OK, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"guestvault-access-package.json\""),
    );
    resp
}
