//! Data-subject request deadlines for the compliance officer (issue 17, read-only): every
//! request not yet answered, overdue first, with its kind, status, date of receipt, due date
//! (15 Chinese working days) and the working days left or the days it is overdue by.
//!
//! Read through the service ([`crate::service::Vault::dsr_tracking`]) as the signed-in role
//! under `audit`: authorized as `audit.read`, audited (reason `dsr deadlines read`), 403 for a
//! role the policy does not allow (the DSR officer works its own queue at `/console/dsr`). The
//! rows name no guest (`dsr_requests` holds only a keyed hash of the guest id) and the page has
//! no action and no link into a request: tracking is not handling.
//!
//! The table's columns are [`COLUMNS`]: one entry each (a later `clock` column, say, is one
//! more entry).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::dsr::{deadline_badge, kind_label, status_label};
use super::layout::{china_time, signed_page};
use super::{error_page, Msg, Signed};
use crate::http::AppState;
use crate::service::{Deadline, TrackedRequest};

pub(super) const PATH: &str = "/console/deadlines";
/// The purpose the page reads under.
pub(super) const PURPOSE: &str = "audit";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(PATH, get(page))
}

/// A column of the table: its heading and its cell.
struct Column {
    head: Msg,
    cell: fn(&Signed, &TrackedRequest) -> Markup,
}

fn request_cell(_: &Signed, r: &TrackedRequest) -> Markup {
    html! { code { (r.request_id) } }
}

fn kind_cell(s: &Signed, r: &TrackedRequest) -> Markup {
    kind_label(s, &r.kind)
}

fn status_cell(s: &Signed, r: &TrackedRequest) -> Markup {
    status_label(s, &r.status)
}

fn received_cell(_: &Signed, r: &TrackedRequest) -> Markup {
    html! { time datetime=(r.received_at) { (china_time(&r.received_at)) } }
}

fn due_cell(_: &Signed, r: &TrackedRequest) -> Markup {
    html! { time datetime=(r.due_at) { (r.due_at) } }
}

fn left_cell(s: &Signed, r: &TrackedRequest) -> Markup {
    html! { @if let Some(d) = r.deadline { (deadline_badge(s, d)) } @else { "—" } }
}

/// The table's columns, in order.
const COLUMNS: [Column; 6] = [
    Column {
        head: Msg::RequestId,
        cell: request_cell,
    },
    Column {
        head: Msg::Kind,
        cell: kind_cell,
    },
    Column {
        head: Msg::Status,
        cell: status_cell,
    },
    Column {
        head: Msg::Received,
        cell: received_cell,
    },
    Column {
        head: Msg::DueAt,
        cell: due_cell,
    },
    Column {
        head: Msg::DaysLeftOrOverdue,
        cell: left_cell,
    },
];

fn table(signed: &Signed, id: &str, heading: Msg, empty: Msg, rows: &[&TrackedRequest]) -> Markup {
    let t = |m| signed.lang.t(m);
    html! {
        section.card id=(id) {
            h2 { (t(heading)) " (" span data-count=(rows.len()) { (rows.len()) } ")" }
            @if rows.is_empty() {
                p data-empty=(id) { (t(empty)) }
            } @else {
                div.scroll { table {
                    thead { tr { @for c in &COLUMNS { th scope="col" { (t(c.head)) } } } }
                    tbody { @for r in rows {
                        tr data-request=(r.request_id) data-kind=(r.kind) data-deadline=(r.deadline.map_or("", Deadline::code)) {
                            @for c in &COLUMNS { td { ((c.cell)(signed, r)) } }
                        }
                    } }
                } }
            }
        }
    }
}

async fn page(State(state): State<AppState>, signed: Signed) -> Response {
    let caller = signed.caller(PURPOSE);
    let tracking = match state.vault.dsr_tracking(&caller).await {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let t = |m| signed.lang.t(m);
    let (overdue, upcoming): (Vec<&TrackedRequest>, Vec<&TrackedRequest>) = tracking
        .requests
        .iter()
        .partition(|r| r.deadline.is_some_and(Deadline::is_overdue));
    let body = html! {
        p.help { (t(Msg::DsrDeadlinesHelp)) }
        p.help { (t(Msg::ChinaTime)) ". " (t(Msg::DeadlineHelp)) }
        dl.detail id="tracking-summary" {
            dt { (t(Msg::TodayInChina)) } dd { time id="today" datetime=(tracking.today) { (tracking.today) } }
            dt { (t(Msg::NotYetAnswered)) } dd id="open-count" { (tracking.requests.len()) }
            dt { (t(Msg::OverdueRequests)) } dd id="overdue-count" { (overdue.len()) }
        }
        @if tracking.truncated {
            p.error id="truncated" role="status" { (t(Msg::TrackingTruncated)) }
        }
        (table(&signed, "overdue", Msg::OverdueRequests, Msg::NoOverdueRequests, &overdue))
        (table(&signed, "upcoming", Msg::UpcomingRequests, Msg::NoUpcomingRequests, &upcoming))
    };
    signed_page(&state, &signed, PATH, t(Msg::DsrDeadlines), body).into_response()
}
