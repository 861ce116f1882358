//! The consent operations run side by side on SQLite (the reference) and PostgreSQL, in units
//! with savepoints as the writer runs them: the same answers, the same rows afterwards.
//! Skipped with a message when `GUESTVAULT_TEST_POSTGRES_URL` is unset.

use crate::policy::ConsentFacts;
use crate::store::postgres::erasure::tests::{same, Pair};
use crate::store::rows::ConsentChange;

/// Calls the consent operation of that name on both backends, each in a unit of its own;
/// checks they answered alike and returns SQLite's answer.
macro_rules! both {
    ($p:expr, $f:ident($($a:expr),* $(,)?)) => {{
        let lite = $p.unit_lite(|c| crate::store::sqlite::consents::$f(c, $($a),*));
        let pg = $p.unit_pg(|c| super::$f(c, $($a),*));
        same(stringify!($f($($a),*)), lite, pg)
    }};
}

fn change(purpose: &str, grant: bool, separate: bool, notice: Option<&str>) -> ConsentChange {
    ConsentChange {
        purpose: purpose.to_string(),
        grant,
        separate,
        notice_version: notice.map(str::to_string),
        channel: notice.map(|_| "web".to_string()),
        // A guardian's grant for one purpose, so both backends round-trip the giver (REQ-10).
        giver: grant.then(|| crate::store::rows::ConsentGiver {
            given_by: if purpose == "b_x" {
                "guardian"
            } else {
                "guest"
            }
            .into(),
            relationship: (purpose == "b_x").then(|| "parent".into()),
            guardian_guest_id: None,
            guardian_ticket: (purpose == "b_x").then(|| "FORM-7".into()),
        }),
        notice_sha256: notice.map(|_| "ab".repeat(32)),
        initiated_by: notice.map(|_| "hotel".to_string()),
        refused: false,
    }
}

fn pair() -> Option<Pair> {
    let p = Pair::new()?;
    p.seed(
        "INSERT INTO guests (guest_id, created_at, status, last_activity_at) VALUES
           ('g1', 't0', 'active', 't0'), ('g2', 't0', 'active', 't0');",
    );
    Some(p)
}

const PURPOSES: [&str; 5] = ["marketing", "Marketing", "analytics", "b_x", "never"];

fn check_views(p: &Pair) {
    for gid in ["g1", "g2", "missing"] {
        both!(p, ledger(gid)).unwrap();
        both!(p, current(gid)).unwrap();
        both!(p, history(gid)).unwrap();
        for purpose in PURPOSES {
            both!(p, consent_state(gid, purpose)).unwrap();
        }
    }
    p.assert_same_rows("after consent changes");
}

#[test]
fn grants_and_withdrawals_are_recorded_alike() {
    let Some(p) = pair() else { return };
    let steps = [
        (
            "g1",
            change("marketing", true, true, Some("v1")),
            "2024-01-01T00:00:00.000000Z",
        ),
        (
            "g1",
            change("analytics", true, false, None),
            "2024-01-01T00:00:01.000000Z",
        ),
        (
            "g1",
            change("Marketing", true, false, Some("v1")),
            "2024-01-01T00:00:02.000000Z",
        ),
        (
            "g1",
            change("b_x", true, true, Some("v2")),
            "2024-01-01T00:00:03.000000Z",
        ),
        (
            "g1",
            change("marketing", false, false, None),
            "2024-01-02T00:00:00.000000Z",
        ),
        // Withdrawing again, or what was never granted, records nothing.
        (
            "g1",
            change("marketing", false, false, None),
            "2024-01-03T00:00:00.000000Z",
        ),
        (
            "g1",
            change("never", false, true, None),
            "2024-01-03T00:00:00.000000Z",
        ),
        (
            "g2",
            change("marketing", false, true, None),
            "2024-01-03T00:00:00.000000Z",
        ),
        // A new grant replaces the withdrawn one and its notice.
        (
            "g1",
            change("marketing", true, false, Some("v3")),
            "2024-01-04T00:00:00.000000Z",
        ),
        (
            "g2",
            change("analytics", true, true, Some("v1")),
            "2024-01-04T00:00:00.000000Z",
        ),
        (
            "g2",
            change("analytics", true, false, Some("v2")),
            "2024-01-05T00:00:00.000000Z",
        ),
    ];
    for (gid, ch, now) in &steps {
        both!(p, apply(gid, ch, "staff:7", now)).unwrap();
        check_views(&p);
    }
    // The giver of the grant in force (REQ-10): a guardian's, the guest's, none once withdrawn.
    let giver = both!(p, consent_giver("g1", "b_x")).unwrap();
    assert_eq!(giver.map(|g| g.given_by).as_deref(), Some("guardian"));
    let giver = both!(p, consent_giver("g1", "analytics")).unwrap();
    assert_eq!(giver.map(|g| g.given_by).as_deref(), Some("guest"));
    assert_eq!(both!(p, consent_giver("g1", "never")).unwrap(), None);
    let (current, history) = both!(p, ledger("g1")).unwrap();
    let purposes: Vec<&str> = current.iter().map(|c| c.purpose.as_str()).collect();
    assert_eq!(purposes, ["Marketing", "analytics", "b_x", "marketing"]);
    let m = &current[3];
    assert_eq!(
        (m.status.as_str(), m.separate, m.notice_version.as_deref()),
        ("granted", false, Some("v3"))
    );
    assert_eq!(m.granted_at.as_deref(), Some("2024-01-04T00:00:00.000000Z"));
    assert_eq!(m.withdrawn_at, None);
    let events: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|e| (e.purpose.as_str(), e.status.as_str(), e.at.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("marketing", "granted", "2024-01-01T00:00:00.000000Z"),
            ("analytics", "granted", "2024-01-01T00:00:01.000000Z"),
            ("Marketing", "granted", "2024-01-01T00:00:02.000000Z"),
            ("b_x", "granted", "2024-01-01T00:00:03.000000Z"),
            ("marketing", "withdrawn", "2024-01-02T00:00:00.000000Z"),
            ("marketing", "granted", "2024-01-04T00:00:00.000000Z"),
        ]
    );
    assert!(history.iter().all(|e| e.actor == "staff:7"));
    assert_eq!(
        both!(p, consent_state("g1", "b_x")).unwrap(),
        ConsentFacts::Granted { separate: true }
    );
    assert_eq!(
        both!(p, consent_state("g1", "analytics")).unwrap(),
        ConsentFacts::Granted { separate: false }
    );
    assert_eq!(
        both!(p, consent_state("g2", "marketing")).unwrap(),
        ConsentFacts::None
    );
    assert_eq!(
        both!(p, consent_state("g2", "analytics")).unwrap(),
        ConsentFacts::Granted { separate: false }
    );
    both!(
        p,
        apply("g1", &change("b_x", false, true, None), "staff:7", "t9")
    )
    .unwrap();
    assert_eq!(
        both!(p, consent_state("g1", "b_x")).unwrap(),
        ConsentFacts::Withdrawn
    );
}

/// Refusals (issue 16 §4, REQ-05): recorded, read back as the latest answer, and the latest
/// refusal's time, alike on both backends.
#[test]
fn refusals_are_recorded_and_read_alike() {
    let Some(p) = pair() else { return };
    let refusal = |purpose: &str, by: &str| ConsentChange {
        grant: false,
        refused: true,
        initiated_by: Some(by.to_string()),
        ..change(purpose, true, false, Some("v1"))
    };
    assert_eq!(both!(p, latest_refusal("g1", "marketing")).unwrap(), None);
    both!(
        p,
        record_refusal(
            "g1",
            &refusal("marketing", "hotel"),
            "staff:7",
            "2024-01-01T00:00:00.000000Z"
        )
    )
    .unwrap();
    both!(
        p,
        record_refusal(
            "g1",
            &refusal("marketing", "guest"),
            "staff:7",
            "2024-01-03T00:00:00.000000Z"
        )
    )
    .unwrap();
    both!(
        p,
        record_refusal(
            "g2",
            &refusal("Marketing", "hotel"),
            "staff:7",
            "2024-01-02T00:00:00.000000Z"
        )
    )
    .unwrap();
    check_views(&p);
    assert_eq!(
        both!(p, latest_refusal("g1", "marketing"))
            .unwrap()
            .as_deref(),
        Some("2024-01-03T00:00:00.000000Z")
    );
    assert_eq!(both!(p, latest_refusal("g1", "Marketing")).unwrap(), None);
    // A later grant is the current answer; the refusals stay in the history.
    both!(
        p,
        apply(
            "g1",
            &change("marketing", true, false, Some("v2")),
            "staff:7",
            "2024-01-04T00:00:00.000000Z"
        )
    )
    .unwrap();
    let (current, history) = both!(p, ledger("g1")).unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].status, "granted");
    assert_eq!(current[0].refused_at, None);
    let statuses: Vec<&str> = history.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["refused", "refused", "granted"]);
    assert_eq!(history[1].initiated_by.as_deref(), Some("guest"));
    let g2 = both!(p, current("g2")).unwrap();
    assert_eq!(g2[0].status, "refused");
    assert_eq!(
        g2[0].refused_at.as_deref(),
        Some("2024-01-02T00:00:00.000000Z")
    );
    assert_eq!(
        both!(p, consent_notice("g1", "marketing"))
            .unwrap()
            .as_deref(),
        Some("v2")
    );
    assert_eq!(both!(p, consent_notice("g2", "marketing")).unwrap(), None);
    check_views(&p);
}

#[test]
fn a_grant_for_a_guest_that_does_not_exist_fails_and_leaves_nothing() {
    let Some(p) = pair() else { return };
    let before = p.assert_same_rows("before");
    let grant = change("marketing", true, true, Some("v1"));
    both!(p, apply("missing", &grant, "staff:7", "t1")).unwrap_err();
    assert_eq!(p.assert_same_rows("after the failed grant"), before);
    // The transaction goes on: the next unit works on both.
    both!(p, apply("g1", &grant, "staff:7", "t2")).unwrap();
    assert_eq!(both!(p, history("g1")).unwrap().len(), 1);
    assert!(both!(p, history("missing")).unwrap().is_empty());
}

#[test]
fn a_withdrawal_is_replayed_only_on_a_consent_granted_before_it() {
    let Some(p) = pair() else { return };
    for (gid, ch, now) in [
        (
            "g1",
            change("marketing", true, true, Some("v1")),
            "2024-01-01T00:00:00.000000Z",
        ),
        (
            "g1",
            change("analytics", true, false, Some("v1")),
            "2024-03-01T00:00:00.000000Z",
        ),
        (
            "g2",
            change("marketing", true, true, Some("v1")),
            "2024-01-01T00:00:00.000000Z",
        ),
        (
            "g2",
            change("marketing", false, true, None),
            "2024-01-02T00:00:00.000000Z",
        ),
    ] {
        both!(p, apply(gid, &ch, "staff:7", now)).unwrap();
    }
    let cases = [
        // Granted before: withdrawn again, once.
        ("g1", "marketing", "2024-02-01T00:00:00.000000Z", true),
        ("g1", "marketing", "2024-02-02T00:00:00.000000Z", false),
        // Granted after the withdrawal being replayed: kept.
        ("g1", "analytics", "2024-02-01T00:00:00.000000Z", false),
        // Granted at the very instant: withdrawn (granted_at <= at).
        ("g1", "analytics", "2024-03-01T00:00:00.000000Z", true),
        // Already withdrawn, never granted, no such guest.
        ("g2", "marketing", "2024-02-01T00:00:00.000000Z", false),
        ("g2", "analytics", "2024-02-01T00:00:00.000000Z", false),
        ("missing", "marketing", "2024-02-01T00:00:00.000000Z", false),
    ];
    for (gid, purpose, at, replayed) in cases {
        assert_eq!(
            both!(p, replay_withdrawal(gid, purpose, at)).unwrap(),
            replayed,
            "{gid} {purpose} {at}"
        );
        check_views(&p);
    }
    let history = both!(p, history("g1")).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (
            last.status.as_str(),
            last.separate,
            last.actor.as_str(),
            last.notice_version.as_deref()
        ),
        ("withdrawn", false, "system:restore", None)
    );
    assert_eq!(
        both!(p, consent_state("g1", "marketing")).unwrap(),
        ConsentFacts::Withdrawn
    );
}
