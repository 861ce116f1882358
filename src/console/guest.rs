//! Guest lookup (DSR officer, purpose `data_subject_request`): search as the policy allows (a
//! POST form: the value never sits in a URL), the record in the officer's masked view, reveal
//! with a reason code, the consent ledger and its history, stays, this guest's requests and
//! its audit events, and the desk's actions for it (export, access, correction, erasure).
//!
//! Every read is the API's own service call (`search`, `read_guest`, `reveal`,
//! `list_consents`, `list_stays`) or the desk's (`guest_requests`, `guest_audit_events`), as
//! the signed-in role under `data_subject_request`, authorized and audited the same way. The
//! guest's audit events are paged with a cursor (`after_seq`, an event number) and authorized
//! as `guest.history`. The only things in a URL are the opaque guest id and that cursor.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::dsr::{
    deadline, export_form, intake_forms, kind_label, reason_select, status_label, ticket_input,
};
use super::layout::{china_time, signed_page};
use super::{error_page, Msg, Signed};
use crate::http::AppState;
use crate::policy::{Action, FieldScope, View};
use crate::service::{AuditPage, RevealView, VaultError, DSR_PURPOSE};

pub(super) const PATH: &str = "/console/guest";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(lookup).post(search))
        .route("/console/guests/{id}", get(record))
        .route("/console/guests/{id}/reveal", post(reveal))
        .route("/console/guests/{id}/events", get(events_page))
}

/// A page of a guest's audit events, with the cursor link to the next page (the last event's
/// `seq`: a number, never a value) and back to the first.
fn events_table(signed: &Signed, gid: &str, page: &AuditPage, after_seq: u64) -> Markup {
    let t = |m| signed.lang.t(m);
    let events_path = format!("/console/guests/{gid}/events");
    html! {
        @if page.events.is_empty() { p id="no-events" { "—" } } @else {
            div.scroll { table id="events" {
                thead { tr {
                    th scope="col" { (t(Msg::Seq)) } th scope="col" { (t(Msg::Time)) } th scope="col" { (t(Msg::Actor)) }
                    th scope="col" { (t(Msg::Role)) } th scope="col" { (t(Msg::Purpose)) } th scope="col" { (t(Msg::Action)) }
                    th scope="col" { (t(Msg::Outcome)) } th scope="col" { (t(Msg::Fields)) } th scope="col" { (t(Msg::Reason)) }
                } }
                tbody { @for e in &page.events {
                    @let ev = &e.event;
                    tr data-outcome=(ev.outcome.as_str()) data-seq=(ev.seq) {
                        td { "#" (ev.seq) } td { (china_time(&ev.ts)) } td { (ev.actor) } td { (ev.role) }
                        td { (ev.purpose.as_deref().unwrap_or("—")) } td { code { (ev.action) } }
                        td { (ev.outcome.as_str()) } td { (ev.fields.join(", ")) }
                        td { (ev.reason.as_deref().unwrap_or("—")) }
                    }
                } }
            } }
        }
        p.actions {
            @if after_seq > 0 { a href=(events_path) id="events-first" { (t(Msg::FirstEvents)) } " " }
            @if let Some(next) = page.next_after_seq {
                span.help { (t(Msg::MoreEvents)) } " "
                a.button href=(format!("{events_path}?after_seq={next}")) id="events-next" rel="next" { (t(Msg::NextPage)) }
            }
        }
    }
}

/// `after_seq=N` (or nothing: the first page); anything else is refused.
fn parse_cursor(query: Option<&str>) -> Result<u64, VaultError> {
    let bad =
        || VaultError::Validation(vec![crate::domain::FieldError::new("after_seq", "invalid")]);
    match query.filter(|q| !q.is_empty()) {
        None => Ok(0),
        Some(q) => q
            .strip_prefix("after_seq=")
            .filter(|n| !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad),
    }
}

/// A guest's audit events, one page after the cursor (`guest.history`, audited).
async fn events_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let after_seq = match parse_cursor(query.as_deref()) {
        Ok(n) => n,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let caller = signed.caller(DSR_PURPOSE);
    let page = match state
        .vault
        .guest_audit_events(&caller, &id, after_seq)
        .await
    {
        Ok(p) => p,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let t = |m| signed.lang.t(m);
    let body = html! {
        p { (t(Msg::GuestId)) ": " code id="guest-id" { (id) } }
        section.card id="guest-events" {
            (events_table(&signed, &id, &page, after_seq))
        }
        p { a href=(format!("/console/guests/{id}")) { (t(Msg::BackToGuest)) } }
    };
    signed_page(&state, &signed, PATH, t(Msg::GuestAuditEvents), body).into_response()
}

/// Fields the role may search under the purpose (searchable, and seen in plain or by reveal):
/// the form offers only these; the service decides.
fn searchable(state: &AppState, signed: &Signed) -> Vec<(String, bool)> {
    let p = state.vault.policies();
    let Ok(grant) =
        p.access
            .authorize(&signed.session.role, Some(DSR_PURPOSE), Action::GuestSearch)
    else {
        return vec![];
    };
    let justified = p
        .access
        .roles
        .get(&signed.session.role)
        .map(|r| r.search_requires_justification.clone())
        .unwrap_or_default();
    p.catalog
        .fields(FieldScope::Guest)
        .filter(|f| f.searchable && grant.view(FieldScope::Guest, &f.name).0 >= View::Reveal)
        .map(|f| (f.name.clone(), justified.contains(&f.name)))
        .collect()
}

/// Fields the role may reveal under the purpose.
fn revealable(state: &AppState, signed: &Signed) -> Vec<String> {
    let p = state.vault.policies();
    let Ok(grant) =
        p.access
            .authorize(&signed.session.role, Some(DSR_PURPOSE), Action::GuestReveal)
    else {
        return vec![];
    };
    p.catalog
        .fields(FieldScope::Guest)
        .filter(|f| grant.view(FieldScope::Guest, &f.name).0 == View::Reveal)
        .map(|f| f.name.clone())
        .collect()
}

fn search_form(state: &AppState, signed: &Signed) -> Markup {
    let t = |m| signed.lang.t(m);
    let fields = searchable(state, signed);
    html! {
        section.card {
            h2 { (t(Msg::SearchGuest)) }
            form method="post" action=(PATH) id="lookup" autocomplete="off" {
                input type="hidden" name="csrf" value=(signed.session.csrf);
                div.grid {
                    div {
                        label for="s-field" { (t(Msg::SearchField)) }
                        select id="s-field" name="field" required {
                            @for (f, justified) in &fields {
                                option value=(f) { (f) @if *justified { " (" (t(Msg::ReasonNeeded)) ")" } }
                            }
                        }
                    }
                    div {
                        label for="s-value" { (t(Msg::SearchValue)) }
                        input id="s-value" type="text" name="value" required maxlength="256" autocomplete="off" spellcheck="false";
                    }
                    div { (reason_select(state, signed, "s-reason", "", false)) }
                    div { (ticket_input(signed, "s-ticket")) }
                }
                button type="submit" id="search" { (t(Msg::Search)) }
                p.help { (t(Msg::SearchHelp)) }
            }
        }
    }
}

async fn lookup(State(state): State<AppState>, signed: Signed) -> Response {
    let t = |m| signed.lang.t(m);
    // The form alone reads nothing; the role must still be one the page is for.
    let page = super::PAGES.iter().find(|p| p.path == PATH);
    if !page.is_some_and(|p| signed.may(&state, p)) {
        let caller = signed.caller(DSR_PURPOSE);
        let e = match state
            .vault
            .authorize_operation(&caller, Action::GuestSearch)
            .await
        {
            Ok(()) => VaultError::Denied(crate::policy::DenyReason::ActionNotAllowed),
            Err(e) => e,
        };
        return error_page(&state, Some(&signed), signed.lang, e);
    }
    signed_page(
        &state,
        &signed,
        PATH,
        t(Msg::GuestLookup),
        search_form(&state, &signed),
    )
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SearchForm {
    csrf: String,
    field: String,
    value: String,
    reason: String,
    ticket: String,
}

fn opt(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// `POST /v1/guests/search`: the guests found, by opaque id. The searched value is never
/// shown back, never put in a link.
async fn search(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<SearchForm>, FormRejection>,
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
    let found = match state
        .vault
        .search(&caller, form.field.trim(), &form.value, why)
        .await
    {
        Ok(f) => f,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let t = |m| signed.lang.t(m);
    let body = html! {
        (search_form(&state, &signed))
        section.card id="results" aria-live="polite" {
            h2 { (t(Msg::GuestsFound)) }
            @if found.is_empty() {
                p id="no-guest" { (t(Msg::NoGuestFound)) }
            } @else {
                ul.plain { @for g in &found {
                    li { a href=(format!("/console/guests/{g}")) data-guest=(g) { code { (g) } } }
                } }
            }
        }
    };
    signed_page(&state, &signed, PATH, t(Msg::GuestLookup), body).into_response()
}

async fn record(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> Response {
    render(&state, &signed, &id, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RevealForm {
    csrf: String,
    field: String,
    reason: String,
    ticket: String,
}

/// `POST /v1/guests/{id}/reveal`: one field in plain, with a reason code (and a ticket),
/// shown on the record page.
async fn reveal(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: Result<Form<RevealForm>, FormRejection>,
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
    let revealed = match state
        .vault
        .reveal(&caller, &id, vec![form.field.trim().to_string()], why)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    render(&state, &signed, &id, Some(revealed)).await
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn unavailable(signed: &Signed, e: &VaultError) -> Markup {
    let msg = match e {
        VaultError::Denied(_) | VaultError::Restricted => Msg::Forbidden,
        VaultError::NotFound => Msg::NotFound,
        _ => Msg::InternalError,
    };
    html! { p.error { (signed.lang.t(msg)) } }
}

/// The record page: the masked view (and a revealed field), then each section from its own
/// audited service call; a section the role may not read says so, the rest still shows.
async fn render(
    state: &AppState,
    signed: &Signed,
    raw_id: &str,
    revealed: Option<RevealView>,
) -> Response {
    let caller = signed.caller(DSR_PURPOSE);
    let view = match state.vault.read_guest(&caller, raw_id).await {
        Ok(v) => v,
        Err(e) => return error_page(state, Some(signed), signed.lang, e),
    };
    let gid = view.guest_id.clone();
    let consents = state.vault.list_consents(&caller, &gid).await;
    let stays = state.vault.list_stays(&caller, &gid).await;
    let requests = state.vault.guest_requests(&caller, &gid).await;
    let events = state.vault.guest_audit_events(&caller, &gid, 0).await;
    let t = |m| signed.lang.t(m);
    let can_reveal = revealable(state, signed);
    let shown = |name: &str| {
        revealed
            .as_ref()
            .and_then(|r| r.fields.get(name))
            .map(value_text)
    };
    let body = html! {
        p { (t(Msg::GuestId)) ": " code id="guest-id" { (gid) } }
        section.card id="record" {
            h2 { (t(Msg::GuestRecord)) }
            div.scroll { table {
                thead { tr { th scope="col" { (t(Msg::Field)) } th scope="col" { (t(Msg::Value)) } th scope="col" { (t(Msg::View)) } } }
                tbody { @for (name, value) in &view.fields {
                    @let plain = shown(name);
                    tr data-field=(name) {
                        th scope="row" { code { (name) } }
                        td { @if let Some(p) = &plain { strong data-revealed=(name) { (p) } } @else { (value_text(value)) } }
                        td { @if plain.is_some() { span.badge.denied { (t(Msg::Revealed)) } } @else { (view.views.get(name).copied().unwrap_or("")) } }
                    }
                } }
            } }
            @if !can_reveal.is_empty() {
                h3 { (t(Msg::Reveal)) }
                form method="post" action=(format!("/console/guests/{gid}/reveal")) id="reveal" {
                    input type="hidden" name="csrf" value=(signed.session.csrf);
                    div.grid {
                        div {
                            label for="r-field" { (t(Msg::Field)) }
                            select id="r-field" name="field" required {
                                @for f in &can_reveal { option value=(f) { (f) } }
                            }
                        }
                        div { (reason_select(state, signed, "r-reason", "", true)) }
                        div { (ticket_input(signed, "r-ticket")) }
                    }
                    button type="submit" id="reveal-button" { (t(Msg::Reveal)) }
                    p.help { (t(Msg::RevealHelp)) }
                }
            }
        }
        section.card id="consents" {
            h2 { (t(Msg::Consents)) }
            @match &consents {
                Ok(c) => {
                    @if c.consents.is_empty() { p { (t(Msg::NoConsents)) } } @else {
                        div.scroll { table {
                            thead { tr {
                                th scope="col" { (t(Msg::Purpose)) } th scope="col" { (t(Msg::Status)) }
                                th scope="col" { (t(Msg::Notice)) } th scope="col" { (t(Msg::Channel)) }
                                th scope="col" { (t(Msg::GrantedAt)) } th scope="col" { (t(Msg::WithdrawnAt)) }
                            } }
                            tbody { @for r in &c.consents { tr {
                                td { code { (r.purpose) } } td { (r.status) @if r.separate { " (" (t(Msg::Separate)) ")" } }
                                td { (r.notice_version.as_deref().unwrap_or("—")) } td { (r.channel.as_deref().unwrap_or("—")) }
                                td { (r.granted_at.as_deref().map(china_time).unwrap_or_else(|| "—".into())) }
                                td { (r.withdrawn_at.as_deref().map(china_time).unwrap_or_else(|| "—".into())) }
                            } } }
                        } }
                    }
                    h3 { (t(Msg::ConsentHistory)) }
                    @if c.history.is_empty() { p { "—" } } @else {
                        div.scroll { table {
                            thead { tr {
                                th scope="col" { (t(Msg::Time)) } th scope="col" { (t(Msg::Purpose)) } th scope="col" { (t(Msg::Status)) }
                                th scope="col" { (t(Msg::Notice)) } th scope="col" { (t(Msg::Channel)) } th scope="col" { (t(Msg::Actor)) }
                            } }
                            tbody { @for h in &c.history { tr {
                                td { (china_time(&h.at)) } td { code { (h.purpose) } } td { (h.status) }
                                td { (h.notice_version.as_deref().unwrap_or("—")) } td { (h.channel.as_deref().unwrap_or("—")) } td { (h.actor) }
                            } } }
                        } }
                    }
                }
                Err(e) => { (unavailable(signed, e)) }
            }
        }
        section.card id="stays" {
            h2 { (t(Msg::Stays)) }
            @match &stays {
                Ok(s) if s.is_empty() => { p { (t(Msg::NoStays)) } }
                Ok(s) => {
                    @for stay in s {
                        h3 { (t(Msg::Stay)) " " code { (stay.stay_id) } }
                        dl.detail { @for (k, v) in &stay.fields { dt { code { (k) } } dd { (value_text(v)) } } }
                    }
                }
                Err(e) => { (unavailable(signed, e)) }
            }
        }
        section.card id="guest-requests" {
            h2 { (t(Msg::GuestRequests)) }
            @match &requests {
                Ok(r) if r.is_empty() => { p { "—" } }
                Ok(r) => {
                    div.scroll { table {
                        thead { tr {
                            th scope="col" { (t(Msg::RequestId)) } th scope="col" { (t(Msg::Kind)) } th scope="col" { (t(Msg::Status)) }
                            th scope="col" { (t(Msg::Received)) } th scope="col" { (t(Msg::DueAt)) }
                        } }
                        tbody { @for q in r { tr {
                            td { @if q.kind == "erasure" { a href=(format!("/console/dsr/requests/{}", q.request_id)) { code { (q.request_id) } } } @else { code { (q.request_id) } } }
                            td { (kind_label(signed, &q.kind)) } td { (status_label(signed, &q.status)) }
                            td { (china_time(&q.received_at)) }
                            td { @if q.completed_at.is_none() { (deadline(state, signed, &q.due_at)) } @else { (q.due_at) } }
                        } } }
                    } }
                }
                Err(e) => { (unavailable(signed, e)) }
            }
        }
        section.card id="actions" {
            h2 { (t(Msg::AccessExport)) }
            (export_form(state, signed, Some(&gid)))
            h2 { (t(Msg::NewRequest)) }
            (intake_forms(state, signed, Some(&gid)))
        }
        section.card id="guest-events" {
            h2 { (t(Msg::GuestAuditEvents)) }
            @match &events {
                Ok(page) => { (events_table(signed, &gid, page, 0)) }
                Err(e) => { (unavailable(signed, e)) }
            }
        }
    };
    signed_page(state, signed, PATH, t(Msg::GuestRecord), body).into_response()
}
