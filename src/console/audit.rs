//! The audit trail pages (compliance officer): filters, cursor pagination, event detail,
//! chain status, verify now, streamed signed exports and the audit public key. Every read goes
//! through the same service calls as `GET /v1/audit/*` (`query_audit`, `verify_audit`,
//! `start_audit_export`), as the signed-in role under the purpose `audit`, so each is
//! authorized and audited exactly like the API's. Filters travel in POST bodies, never in a URL.

use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{china_time, signed_page};
use super::{error_page, query_string, Msg, Signed};
use crate::audit::checkpoint::RangeVerification;
use crate::audit::query::ExportFormat;
use crate::audit::Outcome;
use crate::http::AppState;
use crate::policy::Action;
use crate::service::{AuditPage, ChainStatus, EventOut};

const PURPOSE: &str = "audit";
const PATH: &str = "/console/audit";
/// Events per page.
const PAGE_SIZE: &str = "50";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(trail).post(search))
        .route("/console/audit/events/{seq}", get(event_detail))
        .route("/console/audit/verify", post(verify_now))
        .route("/console/audit/export", post(export))
        .route("/console/audit/public-key.json", get(public_key_json))
        .route("/console/audit/public-key.pem", get(public_key_pem))
}

/// The filter form (also the export form and the next-page form).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FilterForm {
    csrf: String,
    since: String,
    until: String,
    actor: String,
    action: String,
    outcome: String,
    guest_id: String,
    after_seq: String,
    format: String,
}

impl FilterForm {
    /// The service's filter parameters. Dates are days in China time: `since` from its
    /// midnight, `until` through its end (the next day's midnight, exclusive).
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let date = |s: &str| {
            time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
        };
        let since = self.since.trim();
        if !since.is_empty() {
            out.push((
                "since",
                date(since).map_or(since.to_string(), |d| format!("{d}T00:00:00+08:00")),
            ));
        }
        let until = self.until.trim();
        if !until.is_empty() {
            let end = date(until)
                .and_then(|d| d.next_day())
                .map(|d| format!("{d}T00:00:00+08:00"));
            out.push(("until", end.unwrap_or_else(|| until.to_string())));
        }
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("guest_id", &self.guest_id),
        ] {
            let v = v.trim();
            if !v.is_empty() {
                out.push((k, v.to_string()));
            }
        }
        out
    }

    fn query(&self) -> String {
        let mut pairs = self.pairs();
        let after = self.after_seq.trim();
        if !after.is_empty() {
            pairs.push(("after_seq", after.to_string()));
        }
        pairs.push(("limit", PAGE_SIZE.to_string()));
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query_string(&refs)
    }

    fn export_query(&self, format: ExportFormat) -> String {
        let mut pairs = self.pairs();
        pairs.push(("format", format.as_str().to_string()));
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query_string(&refs)
    }
}

/// The trail's first page with no filter, and the chain status.
async fn trail(State(state): State<AppState>, signed: Signed) -> Response {
    let caller = signed.caller(PURPOSE);
    let status = match state.vault.audit_chain_status(&caller).await {
        Ok(s) => s,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let form = FilterForm::default();
    match state.vault.query_audit(&caller, Some(&form.query())).await {
        Ok(page) => render(&state, &signed, &form, Some(&status), None, &page),
        Err(e) => error_page(&state, Some(&signed), signed.lang, e),
    }
}

/// A filtered page (or the next page of one).
async fn search(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<FilterForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return super::csrf_refused(signed.lang);
    };
    if !signed.csrf_ok(&form.csrf) {
        return signed.csrf_refused();
    }
    let caller = signed.caller(PURPOSE);
    match state.vault.query_audit(&caller, Some(&form.query())).await {
        Ok(page) => render(&state, &signed, &form, None, None, &page),
        Err(e) => error_page(&state, Some(&signed), signed.lang, e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct VerifyForm {
    csrf: String,
    full: String,
}

async fn verify_now(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<VerifyForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return super::csrf_refused(signed.lang);
    };
    if !signed.csrf_ok(&form.csrf) {
        return signed.csrf_refused();
    }
    let caller = signed.caller(PURPOSE);
    let query = (form.full == "true").then_some("full=true");
    let result = match state.vault.verify_audit(&caller, query).await {
        Ok(r) => r,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let t = |m| signed.lang.t(m);
    let body = html! {
        (verification(&signed, &result))
        p { a href=(PATH) { (t(Msg::BackToTrail)) } }
    };
    signed_page(
        &state,
        &signed,
        "/console/audit/verify",
        t(Msg::VerifyResult),
        body,
    )
    .into_response()
}

/// Streams a signed export of the filtered trail as a download.
async fn export(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<FilterForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return super::csrf_refused(signed.lang);
    };
    if !signed.csrf_ok(&form.csrf) {
        return signed.csrf_refused();
    }
    let format = ExportFormat::parse(&form.format).unwrap_or(ExportFormat::Jsonl);
    let caller = signed.caller(PURPOSE);
    let export = match state
        .vault
        .start_audit_export(&caller, Some(&form.export_query(format)))
        .await
    {
        Ok(e) => e,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let (content_type, disposition) = match export.format() {
        ExportFormat::Jsonl => (
            "application/x-ndjson",
            "attachment; filename=\"guestvault-audit.jsonl\"",
        ),
        ExportFormat::Csv => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"guestvault-audit.csv\"",
        ),
    };
    let pages = export.stream();
    let stream = futures_util::stream::unfold(pages, |mut pages| async move {
        pages.recv().await.map(|page| (page, pages))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(disposition),
    );
    resp
}

/// One event, found by its seq (not personal data) through the same audited query.
async fn event_detail(
    State(state): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
) -> Response {
    let not_found = || {
        error_page(
            &state,
            Some(&signed),
            signed.lang,
            crate::service::VaultError::NotFound,
        )
    };
    let Some(seq) = raw
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=i64::MAX as u64).contains(s))
    else {
        return not_found();
    };
    let caller = signed.caller(PURPOSE);
    let query = query_string(&[("after_seq", &(seq - 1).to_string()), ("limit", "1")]);
    let page = match state.vault.query_audit(&caller, Some(&query)).await {
        Ok(p) => p,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let Some(e) = page.events.into_iter().find(|e| e.event.seq == seq) else {
        return not_found();
    };
    let t = |m| signed.lang.t(m);
    let ev = &e.event;
    let list = |items: &[String]| {
        html! {
            @if items.is_empty() { "—" } @else {
                ul.plain { @for i in items { li { code { (i) } } } }
            }
        }
    };
    let body = html! {
        dl.detail {
            dt { (t(Msg::Seq)) } dd { (ev.seq) }
            dt { (t(Msg::Time)) } dd { time datetime=(ev.ts) { (china_time(&ev.ts)) } }
            dt { (t(Msg::RequestId)) } dd { code { (ev.request_id) } }
            dt { (t(Msg::Actor)) } dd { (ev.actor) }
            dt { (t(Msg::Role)) } dd { (ev.role) }
            dt { (t(Msg::Purpose)) } dd { (ev.purpose.as_deref().unwrap_or("—")) }
            dt { (t(Msg::Action)) } dd { code { (ev.action) } }
            dt { (t(Msg::Outcome)) } dd { (outcome_badge(&signed, ev.outcome)) }
            dt { (t(Msg::Reason)) } dd { (ev.reason.as_deref().unwrap_or("—")) }
            dt { (t(Msg::GuestId)) } dd { code { (ev.guest_id.as_deref().unwrap_or("—")) } }
            dt { (t(Msg::Fields)) } dd { (list(&ev.fields)) }
            dt { (t(Msg::Rules)) } dd { (list(&ev.rules)) }
            dt { (t(Msg::Justification)) } dd { (ev.justification.as_deref().unwrap_or("—")) }
            dt { (t(Msg::ValueHashes)) } dd {
                @if ev.value_hashes.is_empty() { "—" } @else {
                    ul.plain { @for v in &ev.value_hashes {
                        li { code { (v.field) } ": " code.hash { (v.before_hash.as_deref().unwrap_or("—")) } " → " code.hash { (v.after_hash.as_deref().unwrap_or("—")) } }
                    } }
                }
            }
            dt { (t(Msg::PrevHash)) } dd { code.hash { (e.prev_hash) } }
            dt { (t(Msg::Hash)) } dd { code.hash { (e.hash) } }
        }
        p { a href=(PATH) { (t(Msg::BackToTrail)) } }
    };
    let title = format!("{} #{}", t(Msg::EventDetail), ev.seq);
    signed_page(&state, &signed, "/console/audit/event", &title, body).into_response()
}

/// The key is not secret: any signed-in user may download it, as any authenticated API caller
/// may (`GET /v1/audit/public-key`).
async fn public_key_json(State(state): State<AppState>, _signed: Signed) -> Response {
    let info = state.vault.audit_public_key();
    let mut resp = axum::Json(info).into_response();
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"guestvault-audit-key.json\""),
    );
    resp
}

async fn public_key_pem(State(state): State<AppState>, _signed: Signed) -> Response {
    let raw = state.vault.keys().audit_public_key().to_vec();
    let Some(key) = crate::audit::verify::PublicKey::from_raw(&raw) else {
        return error_page(
            &state,
            None,
            super::Lang::En,
            crate::service::VaultError::Internal("audit key is not 32 bytes".into()),
        );
    };
    (
        [
            (header::CONTENT_TYPE, "application/x-pem-file"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"guestvault-audit-key.pem\"",
            ),
        ],
        key.to_pem(),
    )
        .into_response()
}

fn outcome_badge(signed: &Signed, o: Outcome) -> Markup {
    let (class, msg) = match o {
        Outcome::Allowed => ("badge ok", Msg::Allowed),
        Outcome::Denied => ("badge denied", Msg::Denied),
        Outcome::Error => ("badge error", Msg::Error),
    };
    html! { span class=(class) { (signed.lang.t(msg)) } }
}

fn verification(signed: &Signed, r: &RangeVerification) -> Markup {
    let t = |m| signed.lang.t(m);
    let range = match (r.from_seq, r.to_seq) {
        (Some(a), Some(b)) => format!("{a} – {b}"),
        _ => "—".into(),
    };
    html! {
        section.card aria-live="polite" {
            h2 { (t(Msg::VerifyResult)) }
            p.verdict {
                @if r.result.intact {
                    span.badge.ok data-verdict="intact" { (t(Msg::Intact)) }
                } @else {
                    span.badge.denied data-verdict="broken" { (t(Msg::Broken)) }
                }
            }
            dl.detail {
                dt { (t(Msg::Mode)) } dd { code { (r.mode) } }
                dt { (t(Msg::EventsChecked)) } dd { (r.result.events) }
                dt { (t(Msg::CheckpointsChecked)) } dd { (r.result.checkpoints) }
                dt { (t(Msg::RangeChecked)) } dd { (range) }
                @if let Some(cp) = r.checkpoint_seq {
                    dt { (t(Msg::LastCheckpoint)) } dd { "#" (cp) }
                }
                @if let Some(bad) = r.result.first_bad_seq {
                    dt { (t(Msg::FirstBadSeq)) } dd { "#" (bad) }
                }
            }
        }
    }
}

fn chain_card(signed: &Signed, s: &ChainStatus) -> Markup {
    let t = |m| signed.lang.t(m);
    let csrf = &signed.session.csrf;
    html! {
        section.card id="chain" {
            h2 { (t(Msg::ChainStatus)) }
            dl.detail {
                dt { (t(Msg::EventsStored)) } dd { (s.events) }
                dt { (t(Msg::HeadSeq)) } dd { @if let Some(h) = s.head_seq { "#" (h) } @else { "—" } }
                dt { (t(Msg::LastCheckpoint)) } dd {
                    @match (s.checkpoint_seq, &s.checkpoint_signed_at) {
                        (Some(seq), Some(at)) => { "#" (seq) ", " (t(Msg::SignedAt)) " " time datetime=(at) { (china_time(at)) } }
                        _ => { (t(Msg::NoCheckpoint)) }
                    }
                }
            }
            div.actions {
                form method="post" action="/console/audit/verify" data-busy {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" id="verify-now" { (t(Msg::VerifyNow)) }
                }
                form method="post" action="/console/audit/verify" data-busy {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="full" value="true";
                    button type="submit" { (t(Msg::VerifyFull)) }
                }
            }
        }
    }
}

fn filters(signed: &Signed, f: &FilterForm) -> Markup {
    let t = |m| signed.lang.t(m);
    let outcomes = [
        ("allowed", Msg::Allowed),
        ("denied", Msg::Denied),
        ("error", Msg::Error),
    ];
    html! {
        section.card {
            h2 { (t(Msg::Filters)) }
            form.filters method="post" action=(PATH) id="filters" {
                input type="hidden" name="csrf" value=(signed.session.csrf);
                div.grid {
                    div { label for="f-since" { (t(Msg::Since)) } input id="f-since" type="date" name="since" value=(f.since); }
                    div { label for="f-until" { (t(Msg::Until)) } input id="f-until" type="date" name="until" value=(f.until); }
                    div { label for="f-actor" { (t(Msg::Actor)) } input id="f-actor" type="text" name="actor" maxlength="256" value=(f.actor) autocomplete="off"; }
                    div {
                        label for="f-action" { (t(Msg::Action)) }
                        select id="f-action" name="action" {
                            option value="" { (t(Msg::Any)) }
                            @for a in Action::ALL {
                                option value=(a.as_str()) selected[f.action == a.as_str()] { (a.as_str()) }
                            }
                        }
                    }
                    div {
                        label for="f-outcome" { (t(Msg::Outcome)) }
                        select id="f-outcome" name="outcome" {
                            option value="" { (t(Msg::Any)) }
                            @for (v, m) in outcomes {
                                option value=(v) selected[f.outcome == v] { (t(m)) }
                            }
                        }
                    }
                    div { label for="f-guest" { (t(Msg::GuestId)) } input id="f-guest" type="text" name="guest_id" maxlength="64" value=(f.guest_id) autocomplete="off" spellcheck="false"; }
                }
                div.actions {
                    button type="submit" id="search" { (t(Msg::Search)) }
                    button type="submit" id="export-jsonl" formaction="/console/audit/export" name="format" value="jsonl" { (t(Msg::ExportJsonl)) }
                    button type="submit" id="export-csv" formaction="/console/audit/export" name="format" value="csv" { (t(Msg::ExportCsv)) }
                }
                p.help { (t(Msg::ExportHelp)) }
            }
        }
    }
}

fn results(signed: &Signed, f: &FilterForm, page: &AuditPage) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        section.card {
            @if page.events.is_empty() {
                p id="no-events" { (t(Msg::NoEvents)) }
            } @else {
                div.scroll {
                    table.events id="events" {
                        thead { tr {
                            th scope="col" { (t(Msg::Seq)) }
                            th scope="col" { (t(Msg::Time)) }
                            th scope="col" { (t(Msg::Actor)) }
                            th scope="col" { (t(Msg::Role)) }
                            th scope="col" { (t(Msg::Purpose)) }
                            th scope="col" { (t(Msg::Action)) }
                            th scope="col" { (t(Msg::Outcome)) }
                            th scope="col" { (t(Msg::Reason)) }
                            th scope="col" { (t(Msg::GuestId)) }
                        } }
                        tbody {
                            @for e in &page.events { (row(signed, e)) }
                        }
                    }
                }
            }
            @if let Some(next) = page.next_after_seq {
                form method="post" action=(PATH) {
                    input type="hidden" name="csrf" value=(signed.session.csrf);
                    @for (k, v) in [("since", &f.since), ("until", &f.until), ("actor", &f.actor), ("action", &f.action), ("outcome", &f.outcome), ("guest_id", &f.guest_id)] {
                        input type="hidden" name=(k) value=(v);
                    }
                    input type="hidden" name="after_seq" value=(next);
                    button type="submit" id="next-page" { (t(Msg::NextPage)) }
                }
            }
        }
    }
}

fn row(signed: &Signed, e: &EventOut) -> Markup {
    let ev = &e.event;
    html! {
        tr data-outcome=(ev.outcome.as_str()) {
            td { a href=(format!("/console/audit/events/{}", ev.seq)) aria-label=(format!("{} #{}", signed.lang.t(Msg::Details), ev.seq)) { "#" (ev.seq) } }
            td { time datetime=(ev.ts) { (china_time(&ev.ts)) } }
            td { (ev.actor) }
            td { (ev.role) }
            td { (ev.purpose.as_deref().unwrap_or("—")) }
            td { code { (ev.action) } }
            td { (outcome_badge(signed, ev.outcome)) }
            td { (ev.reason.as_deref().unwrap_or("—")) }
            td { code { (ev.guest_id.as_deref().unwrap_or("—")) } }
        }
    }
}

fn key_card(state: &AppState, signed: &Signed) -> Markup {
    let t = |m| signed.lang.t(m);
    let info = state.vault.audit_public_key();
    html! {
        section.card {
            h2 { (t(Msg::PublicKey)) }
            p { (t(Msg::KeyId)) ": " code { (info.key_id) } " (" (info.algorithm) ")" }
            p {
                a.button href="/console/audit/public-key.json" download { (t(Msg::PublicKeyJson)) }
                " "
                a.button href="/console/audit/public-key.pem" download { (t(Msg::PublicKeyPem)) }
            }
            p.help { (t(Msg::PublicKeyHelp)) }
        }
    }
}

fn render(
    state: &AppState,
    signed: &Signed,
    form: &FilterForm,
    status: Option<&ChainStatus>,
    verified: Option<&RangeVerification>,
    page: &AuditPage,
) -> Response {
    let t = |m| signed.lang.t(m);
    let body = html! {
        p.help { (t(Msg::ChinaTime)) }
        @if let Some(s) = status { (chain_card(signed, s)) }
        @if let Some(v) = verified { (verification(signed, v)) }
        (filters(signed, form))
        (results(signed, form, page))
        @if status.is_some() { (key_card(state, signed)) }
    };
    signed_page(state, signed, PATH, t(Msg::AuditTrail), body).into_response()
}
