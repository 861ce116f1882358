//! The console's page frame (header, navigation, language switch, sign-out) and its shared
//! pages: sign-in, home, and the message page every refusal renders.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};

use super::{i18n::Lang, Msg, Signed, PAGES};
use crate::http::AppState;

/// A whole document around `body`. `nav` is the signed-in user's frame (pages, sign-out);
/// `switch` the CSRF token the language switch posts with and the page to come back to.
fn document(
    lang: Lang,
    title: &str,
    nav: Option<(&AppState, &Signed, &str)>,
    switch: Option<(&str, &str)>,
    body: Markup,
) -> Html<String> {
    let t = |m| lang.t(m);
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t(Msg::AppName)) }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { (t(Msg::Skip)) }
                header.top {
                    span.brand { (t(Msg::AppName)) }
                    @if let Some((state, signed, current)) = nav {
                        nav aria-label=(t(Msg::YourPages)) {
                            ul {
                                li { a href="/console/" aria-current=[(current == "/console/").then_some("page")] { (t(Msg::Home)) } }
                                @for p in PAGES.iter().filter(|p| signed.may(state, p)) {
                                    li { a href=(p.path) aria-current=[(current == p.path).then_some("page")] { (t(p.title)) } }
                                }
                            }
                        }
                        div.who {
                            span { (t(Msg::Role)) ": " strong { (signed.session.role) } }
                            span.ends { (t(Msg::SessionEnds)) ": " (unix_china_time(signed.session.expires_at)) }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(signed.session.csrf);
                                button type="submit" { (t(Msg::SignOut)) }
                            }
                        }
                    }
                    @if let Some((csrf, back)) = switch {
                        form.lang method="post" action="/console/lang" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="back" value=(back);
                            input type="hidden" name="lang" value=(lang.other().tag());
                            button type="submit" lang=(lang.other().tag()) aria-label=(t(Msg::Language)) {
                                (lang.other().name())
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

/// A signed-in page at `path`.
pub(crate) fn signed_page(
    state: &AppState,
    signed: &Signed,
    path: &str,
    title: &str,
    body: Markup,
) -> Html<String> {
    let back = if super::BACK_PATHS.contains(&path) {
        path
    } else {
        "/console/"
    };
    document(
        signed.lang,
        title,
        Some((state, signed, path)),
        Some((&signed.session.csrf, back)),
        body,
    )
}

pub(crate) fn sign_in(lang: Lang, csrf: &str, error: Option<Msg>) -> Html<String> {
    let t = |m| lang.t(m);
    let body = html! {
        p { (t(Msg::SignInIntro)) }
        @if let Some(e) = error {
            p.error role="alert" { (t(e)) }
        }
        form.signin method="post" action="/console/sign-in" autocomplete="off" {
            input type="hidden" name="csrf" value=(csrf);
            label for="token" { (t(Msg::TokenLabel)) }
            textarea id="token" name="token" rows="5" required aria-describedby="token-help" spellcheck="false" {}
            p.help id="token-help" { (t(Msg::TokenHelp)) }
            button type="submit" { (t(Msg::SignIn)) }
        }
    };
    document(
        lang,
        t(Msg::SignIn),
        None,
        Some((csrf, "/console/sign-in")),
        body,
    )
}

pub(crate) fn home(state: &AppState, signed: &Signed) -> Html<String> {
    let t = |m| signed.lang.t(m);
    let pages: Vec<_> = PAGES.iter().filter(|p| signed.may(state, p)).collect();
    let body = html! {
        p { (t(Msg::SignedInAs)) " " strong { (signed.session.role) } }
        h2 { (t(Msg::YourPages)) }
        @if pages.is_empty() {
            p { (t(Msg::NoPagesYet)) }
        } @else {
            ul.cards {
                @for p in &pages {
                    li { a href=(p.path) { (t(p.title)) } }
                }
            }
        }
    };
    signed_page(state, signed, "/console/", t(Msg::Home), body)
}

/// A refusal or failure, in the frame when signed in.
pub(crate) fn message_page(
    state: &AppState,
    signed: Option<&Signed>,
    lang: Lang,
    msg: Msg,
    fields: &[(String, &'static str)],
) -> Html<String> {
    let t = |m| lang.t(m);
    let body = html! {
        p.error role="alert" { (t(msg)) }
        @if !fields.is_empty() {
            table {
                thead { tr { th scope="col" { (t(Msg::Field)) } th scope="col" { (t(Msg::Problem)) } } }
                tbody {
                    @for (f, code) in fields {
                        tr { td { code { (f) } } td { code { (code) } } }
                    }
                }
            }
        }
        p { a href="/console/" { (t(Msg::Home)) } }
    };
    match signed {
        Some(s) => signed_page(state, s, "", t(msg), body),
        None => document(lang, t(msg), None, None, body),
    }
}

/// A message with no frame (CSRF refusal, rate limit, unknown page).
pub(crate) fn bare_message(lang: Lang, msg: Msg) -> Html<String> {
    let body = html! {
        p.error role="alert" { (lang.t(msg)) }
        p { a href="/console/" { (lang.t(Msg::Home)) } }
    };
    document(lang, lang.t(msg), None, None, body)
}

const CHINA: time::UtcOffset = time::macros::offset!(+8);

/// A stored UTC timestamp (RFC 3339) shown in China time, `YYYY-MM-DD HH:MM:SS`; the input as
/// is if it does not parse.
pub(crate) fn china_time(ts: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(ts, &Rfc3339)
        .ok()
        .and_then(|t| {
            t.to_offset(CHINA)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

fn unix_china_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| china_time(&crate::clock::timestamp(t)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_show_in_china_time() {
        assert_eq!(
            china_time("2026-11-30T17:30:00.000000Z"),
            "2026-12-01 01:30:00"
        );
        assert_eq!(china_time("garbage"), "garbage");
        assert_eq!(unix_china_time(0), "1970-01-01 08:00:00");
    }
}
