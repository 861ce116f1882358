//! The policy page (compliance officer, admin): the role × purpose × field matrix as a grid of
//! plain, masked, reveal and none (a colour *and* a letter in each cell, the view's name in its
//! title, a legend in words); the purposes with their legal basis; the retention classes with
//! their periods and statutory flags; and the result of `guestvault policy check` for the
//! loaded files (the same [`crate::policy::check`] the CLI runs, re-reading the files now).
//!
//! Authorized as `policy.read` under the role's own purpose and audited (reason
//! `console policy read`) by [`crate::service::Vault::console_policy_read`].

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::layout::signed_page;
use super::words::W;
use super::{error_page, Lang, Msg, Signed};
use crate::http::AppState;
use crate::policy::{Action, Basis, FieldScope, Policies, View};

pub(super) const PATH: &str = "/console/policy";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(PATH, get(policy_page))
}

/// The purpose a role reads the policy under: its first, as for any operation that touches no
/// personal data ([`crate::policy::AccessPolicy::authorize`] without a purpose).
pub(super) fn own_purpose(state: &AppState, role: &str) -> String {
    state
        .vault
        .policies()
        .access
        .roles
        .get(role)
        .and_then(|r| r.purposes.iter().next().cloned())
        .unwrap_or_default()
}

async fn policy_page(State(state): State<AppState>, signed: Signed) -> Response {
    let caller = signed.caller(&own_purpose(&state, &signed.session.role));
    if let Err(e) = state.vault.console_policy_read(&caller).await {
        return error_page(&state, Some(&signed), signed.lang, e);
    }
    let lang = signed.lang;
    let policies = state.vault.policies();
    let body = html! {
        (check_card(lang, policies))
        (matrix(lang, policies))
        (purposes(lang, policies))
        (retention(lang, policies))
    };
    signed_page(&state, &signed, PATH, lang.t(Msg::Policy), body).into_response()
}

fn check_card(lang: Lang, policies: &Policies) -> Markup {
    let report = crate::policy::check(policies.source.as_deref());
    html! {
        section.card id="policy-check" {
            h2 { (lang.w(W::PolicyCheck)) }
            p { (lang.w(W::CheckedFiles)) ": " code { (report.source) } }
            @match &report.result {
                Ok(c) => {
                    p { span.badge.ok data-check="ok" { (lang.w(W::PolicyValid)) } }
                    dl.detail {
                        dt { (lang.w(W::GuestFields)) } dd { (c.guest_fields) }
                        dt { (lang.w(W::StayFields)) } dd { (c.stay_fields) }
                        dt { (lang.w(W::Purposes)) } dd { (c.purposes) }
                        dt { (lang.w(W::Roles)) } dd { (c.roles) }
                    }
                    @if let Some(line) = report.summary() { p.help { code { (line) } } }
                }
                Err(errors) => {
                    p { span.badge.denied data-check="invalid" { (lang.w(W::PolicyInvalid)) } }
                    table {
                        thead { tr { th scope="col" { (lang.w(W::File)) } th scope="col" { (lang.w(W::Key)) } th scope="col" { (lang.w(W::Message)) } } }
                        tbody {
                            @for e in errors {
                                tr { td { code { (e.file) } } td { code { (e.key) } } td { (e.message) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn view_letter(v: View) -> (&'static str, &'static str) {
    match v {
        View::Plain => ("P", "v-plain"),
        View::Masked => ("M", "v-masked"),
        View::Reveal => ("R", "v-reveal"),
        View::None => ("–", "v-none"),
    }
}

fn view_word(lang: Lang, v: View) -> &'static str {
    lang.w(match v {
        View::Plain => W::ViewPlain,
        View::Masked => W::ViewMasked,
        View::Reveal => W::ViewReveal,
        View::None => W::ViewNone,
    })
}

/// The view of every field for `role` under `purpose`, as `GET /v1/policy` computes it: the
/// role's view where the purpose touches the field, else none (and none for a role that may
/// read neither guests nor stays).
pub(crate) fn cell_views(
    policies: &Policies,
    role: &str,
    purpose: &str,
) -> Vec<(FieldScope, String, View, bool)> {
    let access = &policies.access;
    let grant = access
        .authorize(role, Some(purpose), Action::GuestRead)
        .or_else(|_| access.authorize(role, Some(purpose), Action::StayRead))
        .ok();
    let consent = access
        .purposes
        .get(purpose)
        .is_some_and(|p| p.basis == Basis::Consent);
    let mut out = Vec::new();
    for scope in [FieldScope::Guest, FieldScope::Stay] {
        for f in policies.catalog.fields(scope) {
            let view = grant
                .as_ref()
                .map_or(View::None, |g| g.view(scope, &f.name).0);
            let separate = consent && view != View::None && f.is_sensitive();
            out.push((scope, f.name.clone(), view, separate));
        }
    }
    out
}

fn scope_key(scope: FieldScope) -> &'static str {
    match scope {
        FieldScope::Guest => "guest",
        FieldScope::Stay => "stay",
    }
}

fn matrix(lang: Lang, policies: &Policies) -> Markup {
    let guest: Vec<_> = policies.catalog.fields(FieldScope::Guest).collect();
    let stay: Vec<_> = policies.catalog.fields(FieldScope::Stay).collect();
    let legend = [View::Plain, View::Masked, View::Reveal, View::None];
    html! {
        section.card id="matrix" {
            h2 { (lang.w(W::Matrix)) }
            p.help { (lang.w(W::MatrixHelp)) }
            ul.legend aria-label=(lang.w(W::Legend)) {
                @for v in legend {
                    @let (letter, class) = view_letter(v);
                    li { span class=(format!("cell {class}")) aria-hidden="true" { (letter) } " " (view_word(lang, v)) }
                }
                li { span.cell.v-masked aria-hidden="true" { "M*" } " " (lang.w(W::SeparateConsent)) }
            }
            div.scroll {
                table.matrix {
                    thead {
                        tr {
                            th scope="col" rowspan="2" { (lang.w(W::RolePurpose)) }
                            th scope="colgroup" colspan=(guest.len()) { (lang.w(W::GuestFields)) }
                            th scope="colgroup" colspan=(stay.len()) { (lang.w(W::StayFields)) }
                        }
                        tr {
                            @for f in guest.iter().chain(stay.iter()) {
                                th scope="col" { span.vertical { (f.name) } }
                            }
                        }
                    }
                    tbody {
                        @for role in policies.access.roles.values() {
                            @for purpose in &role.purposes {
                                tr data-role=(role.name) data-purpose=(purpose) {
                                    th scope="row" {
                                        (role.name) " / " (purpose)
                                        @if role.self_only { br; small { "(" (lang.w(W::SelfOnly)) ")" } }
                                    }
                                    @for (scope, field, view, separate) in cell_views(policies, &role.name, purpose) {
                                        @let (letter, class) = view_letter(view);
                                        @let label = format!("{} / {} / {}: {}{}", role.name, purpose, field, view_word(lang, view), if separate { format!(" ({})", lang.w(W::SeparateConsent)) } else { String::new() });
                                        td class=(format!("cell {class}")) data-field=(format!("{}.{}", scope_key(scope), field)) data-view=(view.as_str()) title=(label) aria-label=(label) {
                                            (letter) @if separate { "*" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn basis_word(lang: Lang, b: Basis) -> &'static str {
    lang.w(match b {
        Basis::Consent => W::BasisConsent,
        Basis::Contract => W::BasisContract,
        Basis::LegalObligation => W::BasisLegalObligation,
        Basis::VitalInterest => W::BasisVitalInterest,
    })
}

fn purposes(lang: Lang, policies: &Policies) -> Markup {
    let yes_no = |b: bool| lang.t(if b { Msg::Yes } else { Msg::No });
    html! {
        section.card id="purposes" {
            h2 { (lang.w(W::PurposesTitle)) }
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { (lang.t(Msg::Purpose)) }
                        th scope="col" { (lang.w(W::Basis)) }
                        th scope="col" { (lang.w(W::RestrictedAccess)) }
                        th scope="col" { (lang.w(W::FieldsTouched)) }
                    } }
                    tbody {
                        @for p in policies.access.purposes.values() {
                            tr data-purpose=(p.name) data-basis=(p.basis.as_str()) {
                                th scope="row" { code { (p.name) } }
                                td { (basis_word(lang, p.basis)) " " small { code { (p.basis.as_str()) } } }
                                td { (yes_no(p.restricted_access)) }
                                td {
                                    @if p.fields.is_empty() && p.stay_fields.is_empty() { "—" }
                                    @for f in &p.fields { code { (f) } " " }
                                    @for f in &p.stay_fields { code { "stay." (f) } " " }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn retention(lang: Lang, policies: &Policies) -> Markup {
    let yes_no = |b: bool| lang.t(if b { Msg::Yes } else { Msg::No });
    html! {
        section.card id="retention" {
            h2 { (lang.w(W::RetentionClasses)) }
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { (lang.w(W::Class)) }
                        th scope="col" { (lang.w(W::Retain)) }
                        th scope="col" { (lang.w(W::After)) }
                        th scope="col" { (lang.w(W::Statutory)) }
                        th scope="col" { (lang.w(W::WithdrawalPurposes)) }
                        th scope="col" { (lang.w(W::LegalBasis)) }
                    } }
                    tbody {
                        @for c in policies.retention.classes.values() {
                            tr data-class=(c.name) data-retain=(c.retain_text) data-statutory=(c.statutory) {
                                th scope="row" { code { (c.name) } }
                                td { (c.retain_text) }
                                td { code { (c.after.as_str()) } }
                                td { @if c.statutory { strong { (yes_no(true)) } } @else { (yes_no(false)) } }
                                td { @if c.withdrawal_purposes.is_empty() { "—" } @for p in &c.withdrawal_purposes { code { (p) } " " } }
                                td { (c.basis) }
                            }
                        }
                    }
                }
            }
        }
    }
}
