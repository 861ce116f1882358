//! The overview page (compliance officer): three charts drawn on the server as SVG, no script
//! and no chart library. Each chart has a `<title>` and a `<desc>` (read by screen readers),
//! a legend in words, and a table of the same numbers, so no information is in colour alone.
//! The data comes from [`crate::service::Vault::console_charts`] (an audited `audit.read`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::layout::signed_page;
use super::words::W;
use super::{error_page, Lang, Msg, Signed};
use crate::http::AppState;
use crate::service::{ChartData, DayOutcomes, RoleReveals, WeekRequests};

pub(super) const PATH: &str = "/console/overview";
const PURPOSE: &str = "audit";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(PATH, get(overview))
}

async fn overview(State(state): State<AppState>, signed: Signed) -> Response {
    let caller = signed.caller(PURPOSE);
    let data = match state.vault.console_charts(&caller).await {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&signed), signed.lang, e),
    };
    let lang = signed.lang;
    let body = html! {
        p.help { (lang.t(Msg::ChinaTime)) " · " (lang.w(W::ChartsAudited)) }
        (outcomes_chart(lang, &data.days))
        (reveals_chart(lang, &data.reveals))
        (requests_chart(lang, &data))
    };
    signed_page(&state, &signed, PATH, lang.t(Msg::Overview), body).into_response()
}

// Colours with at least 4.5:1 contrast on white (the text beside them says the same).
const GREEN: &str = "#2f7d4a";
const RED: &str = "#c0282d";
const AMBER: &str = "#9a5b00";
const BLUE: &str = "#0b5cad";
const INK: &str = "#1b1f24";
const GRID: &str = "#c9d0d8";

/// The days whose denials stand out: at least 5, and at least three times the period's median
/// (a quiet trail has a median of 0, so 5 denials in a day is a spike).
pub(crate) fn spike_days(days: &[DayOutcomes]) -> Vec<usize> {
    let mut denied: Vec<u64> = days.iter().map(|d| d.denied).collect();
    denied.sort_unstable();
    let median = denied.get(denied.len() / 2).copied().unwrap_or(0);
    let threshold = (median.saturating_mul(3)).max(5);
    days.iter()
        .enumerate()
        .filter(|(_, d)| d.denied >= threshold)
        .map(|(i, _)| i)
        .collect()
}

fn legend(items: &[(&str, &str)]) -> Markup {
    html! {
        ul.legend {
            @for (colour, label) in items {
                li {
                    svg.swatch width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false" {
                        rect width="14" height="14" fill=(colour) {}
                    }
                    " " (label)
                }
            }
        }
    }
}

/// Vertical scale labels: 0, half and the top.
fn y_axis(max: u64, left: f64, top: f64, height: f64, right: f64) -> Markup {
    let ticks = [0, max / 2, max];
    html! {
        @for v in ticks {
            @let y = top + height - (v as f64) / (max.max(1) as f64) * height;
            line x1=(fmt(left)) x2=(fmt(right)) y1=(fmt(y)) y2=(fmt(y)) stroke=(GRID) stroke-width="1" {}
            text x=(fmt(left - 6.0)) y=(fmt(y + 4.0)) text-anchor="end" font-size="11" fill=(INK) { (v) }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

fn outcomes_chart(lang: Lang, days: &[DayOutcomes]) -> Markup {
    let spikes = spike_days(days);
    let (w, h, left, top, bottom) = (760.0, 250.0, 44.0, 22.0, 34.0);
    let plot_h = h - top - bottom;
    let slot = (w - left - 10.0) / days.len().max(1) as f64;
    let max = days
        .iter()
        .map(|d| d.allowed + d.denied + d.error)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |v: u64| v as f64 / max as f64 * plot_h;
    let spike_names: Vec<&str> = spikes.iter().map(|i| days[*i].day.as_str()).collect();
    let total = |f: fn(&DayOutcomes) -> u64| days.iter().map(f).sum::<u64>();
    let summary = format!(
        "{}: {} {}, {} {}, {} {}. {}",
        lang.w(W::Total),
        total(|d| d.allowed),
        lang.t(Msg::Allowed),
        total(|d| d.denied),
        lang.t(Msg::Denied),
        total(|d| d.error),
        lang.t(Msg::Error),
        if spike_names.is_empty() {
            lang.w(W::NoSpike).to_string()
        } else {
            format!("{}: {}.", lang.w(W::SpikeDays), spike_names.join(", "))
        }
    );
    html! {
        section.card id="chart-outcomes" {
            h2 id="chart-outcomes-title" { (lang.w(W::EventsPerDay)) }
            (legend(&[(GREEN, lang.t(Msg::Allowed)), (RED, lang.t(Msg::Denied)), (AMBER, lang.t(Msg::Error))]))
            @if !spike_names.is_empty() {
                p.spike role="note" data-spikes=(spike_names.join(" ")) { "▲ " (lang.w(W::SpikeDays)) ": " (spike_names.join(", ")) }
            }
            svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="oc-t oc-d" {
                title id="oc-t" { (lang.w(W::EventsPerDay)) }
                desc id="oc-d" { (lang.w(W::EventsPerDayDesc)) " " (summary) }
                (y_axis(max, left, top, plot_h, w - 10.0))
                @for (i, d) in days.iter().enumerate() {
                    @let x = left + i as f64 * slot + slot * 0.15;
                    @let bw = slot * 0.7;
                    @let base = top + plot_h;
                    @let ya = base - scale(d.allowed);
                    @let yd = ya - scale(d.denied);
                    @let ye = yd - scale(d.error);
                    @let spike = spikes.contains(&i);
                    g data-day=(d.day) data-spike=[spike.then_some("true")] {
                        title { (d.day) ": " (d.allowed) " " (lang.t(Msg::Allowed)) ", " (d.denied) " " (lang.t(Msg::Denied)) ", " (d.error) " " (lang.t(Msg::Error)) }
                        @if d.allowed > 0 { rect x=(fmt(x)) y=(fmt(ya)) width=(fmt(bw)) height=(fmt(scale(d.allowed))) fill=(GREEN) {} }
                        @if d.denied > 0 { rect x=(fmt(x)) y=(fmt(yd)) width=(fmt(bw)) height=(fmt(scale(d.denied))) fill=(RED) stroke=[spike.then_some("#5c0a0d")] stroke-width=[spike.then_some("2")] {} }
                        @if d.error > 0 { rect x=(fmt(x)) y=(fmt(ye)) width=(fmt(bw)) height=(fmt(scale(d.error))) fill=(AMBER) {} }
                        @if spike {
                            text x=(fmt(x + bw / 2.0)) y=(fmt((ye - 4.0).max(10.0))) text-anchor="middle" font-size="11" font-weight="700" fill=(RED) { "▲ " (lang.w(W::Spike)) }
                        }
                        @if i % 5 == 0 || i + 1 == days.len() {
                            text x=(fmt(x + bw / 2.0)) y=(fmt(h - bottom + 16.0)) text-anchor="middle" font-size="11" fill=(INK) { (d.day.get(5..).unwrap_or(&d.day)) }
                        }
                    }
                }
            }
            details {
                summary { (lang.w(W::DataTable)) }
                div.scroll {
                    table id="outcomes-table" {
                        thead { tr {
                            th scope="col" { (lang.w(W::Day)) }
                            th scope="col" { (lang.t(Msg::Allowed)) }
                            th scope="col" { (lang.t(Msg::Denied)) }
                            th scope="col" { (lang.t(Msg::Error)) }
                        } }
                        tbody {
                            @for (i, d) in days.iter().enumerate() {
                                tr data-day=(d.day) data-allowed=(d.allowed) data-denied=(d.denied) data-error=(d.error) {
                                    th scope="row" { (d.day) @if spikes.contains(&i) { " ▲ " (lang.w(W::Spike)) } }
                                    td { (d.allowed) } td { (d.denied) } td { (d.error) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn reveals_chart(lang: Lang, reveals: &[RoleReveals]) -> Markup {
    let (w, left, row) = (760.0, 150.0, 30.0);
    let h = 16.0 + row * reveals.len().max(1) as f64;
    let max = reveals
        .iter()
        .map(|r| r.allowed + r.denied)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |v: u64| v as f64 / max as f64 * (w - left - 60.0);
    html! {
        section.card id="chart-reveals" {
            h2 { (lang.w(W::RevealsPerRole)) }
            @if reveals.is_empty() {
                p { (lang.w(W::NoReveals)) }
            } @else {
                (legend(&[(BLUE, lang.t(Msg::Allowed)), (RED, lang.w(W::Refused))]))
                svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="rv-t rv-d" {
                    title id="rv-t" { (lang.w(W::RevealsPerRole)) }
                    desc id="rv-d" {
                        (lang.w(W::RevealsPerRoleDesc))
                        @for r in reveals { " " (r.role) ": " (r.allowed) " " (lang.t(Msg::Allowed)) ", " (r.denied) " " (lang.w(W::Refused)) "." }
                    }
                    @for (i, r) in reveals.iter().enumerate() {
                        @let y = 8.0 + i as f64 * row;
                        g data-role=(r.role) {
                            text x=(fmt(left - 8.0)) y=(fmt(y + 15.0)) text-anchor="end" font-size="12" fill=(INK) { (r.role) }
                            rect x=(fmt(left)) y=(fmt(y)) width=(fmt(scale(r.allowed))) height="20" fill=(BLUE) {}
                            rect x=(fmt(left + scale(r.allowed))) y=(fmt(y)) width=(fmt(scale(r.denied))) height="20" fill=(RED) {}
                            text x=(fmt(left + scale(r.allowed + r.denied) + 6.0)) y=(fmt(y + 15.0)) font-size="12" fill=(INK) { (r.allowed) " / " (r.denied) }
                        }
                    }
                }
                details {
                    summary { (lang.w(W::DataTable)) }
                    table id="reveals-table" {
                        thead { tr { th scope="col" { (lang.t(Msg::Role)) } th scope="col" { (lang.t(Msg::Allowed)) } th scope="col" { (lang.w(W::Refused)) } } }
                        tbody {
                            @for r in reveals {
                                tr data-role=(r.role) data-allowed=(r.allowed) data-denied=(r.denied) {
                                    th scope="row" { (r.role) } td { (r.allowed) } td { (r.denied) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The segments of a stacked bar from `base` upwards: (top y, height, colour), empty ones left out.
fn stack<'a>(
    base: f64,
    parts: &[(u64, &'a str)],
    scale: &dyn Fn(u64) -> f64,
) -> Vec<(f64, f64, &'a str)> {
    let mut y = base;
    let mut out = Vec::new();
    for (v, colour) in parts {
        if *v > 0 {
            let height = scale(*v);
            y -= height;
            out.push((y, height, *colour));
        }
    }
    out
}

fn requests_chart(lang: Lang, data: &ChartData) -> Markup {
    let weeks: &[WeekRequests] = &data.weeks;
    let (w, h, left, top, bottom) = (760.0, 230.0, 44.0, 14.0, 34.0);
    let plot_h = h - top - bottom;
    let slot = (w - left - 10.0) / weeks.len().max(1) as f64;
    let max = weeks.iter().map(|x| x.received).max().unwrap_or(0).max(1);
    let scale = |v: u64| v as f64 / max as f64 * plot_h;
    let sum = |f: fn(&WeekRequests) -> u64| weeks.iter().map(f).sum::<u64>();
    html! {
        section.card id="chart-requests" {
            h2 { (lang.w(W::RequestsPerWeek)) }
            (legend(&[(GREEN, lang.w(W::OnTime)), (AMBER, lang.w(W::Late)), (BLUE, lang.w(W::Open)), (RED, lang.w(W::Overdue))]))
            @if data.requests_truncated { p.help { (lang.w(W::Truncated)) } }
            svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="rq-t rq-d" {
                title id="rq-t" { (lang.w(W::RequestsPerWeek)) }
                desc id="rq-d" {
                    (lang.w(W::RequestsPerWeekDesc)) " " (lang.w(W::Total)) ": "
                    (sum(|x| x.received)) " " (lang.w(W::Received)) ", " (sum(|x| x.on_time)) " " (lang.w(W::OnTime)) ", "
                    (sum(|x| x.late)) " " (lang.w(W::Late)) ", " (sum(|x| x.open)) " " (lang.w(W::Open)) ", "
                    (sum(|x| x.overdue)) " " (lang.w(W::Overdue)) "."
                }
                (y_axis(max, left, top, plot_h, w - 10.0))
                @for (i, wk) in weeks.iter().enumerate() {
                    @let x = left + i as f64 * slot + slot * 0.2;
                    @let bw = slot * 0.6;
                    @let base = top + plot_h;
                    g data-week=(wk.week) {
                        title { (lang.w(W::Week)) " " (wk.week) ": " (wk.received) " " (lang.w(W::Received)) }
                        @for (y, height, colour) in stack(base, &[(wk.on_time, GREEN), (wk.late, AMBER), (wk.open, BLUE), (wk.overdue, RED)], &scale) {
                            rect x=(fmt(x)) y=(fmt(y)) width=(fmt(bw)) height=(fmt(height)) fill=(colour) {}
                        }
                        text x=(fmt(x + bw / 2.0)) y=(fmt(h - bottom + 16.0)) text-anchor="middle" font-size="11" fill=(INK) { (wk.week.get(5..).unwrap_or(&wk.week)) }
                    }
                }
            }
            details {
                summary { (lang.w(W::DataTable)) }
                table id="requests-table" {
                    thead { tr {
                        th scope="col" { (lang.w(W::Week)) }
                        th scope="col" { (lang.w(W::Received)) }
                        th scope="col" { (lang.w(W::OnTime)) }
                        th scope="col" { (lang.w(W::Late)) }
                        th scope="col" { (lang.w(W::Open)) }
                        th scope="col" { (lang.w(W::Overdue)) }
                    } }
                    tbody {
                        @for wk in weeks {
                            tr data-week=(wk.week) data-received=(wk.received) data-on-time=(wk.on_time) data-late=(wk.late) data-open=(wk.open) data-overdue=(wk.overdue) {
                                th scope="row" { (wk.week) }
                                td { (wk.received) } td { (wk.on_time) } td { (wk.late) } td { (wk.open) } td { (wk.overdue) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(denied: u64) -> DayOutcomes {
        DayOutcomes {
            day: "2026-12-01".into(),
            allowed: 10,
            denied,
            error: 0,
        }
    }

    #[test]
    fn a_spike_of_denials_stands_out_and_steady_denials_do_not() {
        let mut days: Vec<_> = (0..30).map(|_| day(0)).collect();
        assert!(spike_days(&days).is_empty());
        days[7] = day(4);
        assert!(spike_days(&days).is_empty(), "fewer than 5 is no spike");
        days[12] = day(20);
        assert_eq!(spike_days(&days), [12]);
        // A trail that always has denials: 3× its median is the bar.
        let steady: Vec<_> = (0..30).map(|i| day(if i == 3 { 29 } else { 10 })).collect();
        assert!(spike_days(&steady).is_empty());
        let mut spiky = steady.clone();
        spiky[4] = day(30);
        assert_eq!(spike_days(&spiky), [4]);
    }
}
