//! Runs the data-driven policy scenarios in `tests/policy_scenarios/*.toml` through the same
//! functions the vault uses (`authorize`, `consent_gate`, `field_view`).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Action, ConsentFacts, FieldScope, Policies};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenario: Vec<Scenario>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    role: String,
    purpose: Option<String>,
    action: String,
    field: Option<String>,
    #[serde(default)]
    consent: Option<String>,
    expect: String,
    #[serde(default)]
    rules: Vec<String>,
}

/// The decision for one scenario: `(expect, rules)` in the scenario's vocabulary.
fn decide(p: &Policies, s: &Scenario) -> (String, Vec<String>) {
    let action = Action::parse(&s.action).unwrap_or_else(|| panic!("{}: unknown action", s.name));
    let consent = match s.consent.as_deref().unwrap_or("none") {
        "none" => ConsentFacts::None,
        "granted" => ConsentFacts::Granted { separate: false },
        "separate" => ConsentFacts::Granted { separate: true },
        "withdrawn" => ConsentFacts::Withdrawn,
        other => panic!("{}: unknown consent `{other}`", s.name),
    };
    let grant = match p.access.authorize(&s.role, s.purpose.as_deref(), action) {
        Ok(g) => g,
        Err(d) => return (format!("deny:{}", d.reason.as_str()), d.rules),
    };
    let mut rules = grant.rules().to_vec();
    // Guest-specific actions pass the consent gate (search and create have no guest yet).
    if action.touches_personal_data()
        && !matches!(action, Action::GuestSearch | Action::GuestCreate)
    {
        match grant.consent_gate(consent) {
            Ok(rule) => rules.push(rule),
            Err(d) => return (format!("deny:{}", d.reason.as_str()), d.rules),
        }
    }
    let Some(field) = &s.field else {
        return ("allow".into(), rules);
    };
    let (scope, name) = match field.strip_prefix("stay.") {
        Some(n) => (FieldScope::Stay, n),
        None => (FieldScope::Guest, field.as_str()),
    };
    let spec = p
        .catalog
        .get(scope, name)
        .unwrap_or_else(|| panic!("{}: unknown field", s.name));
    let (view, rule) = grant.field_view(scope, name, spec.is_sensitive(), consent);
    rules.push(rule);
    (view.as_str().to_string(), rules)
}

#[test]
fn shipped_policy_makes_every_stated_decision() {
    let policies = Policies::load(None).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_scenarios");
    let mut roles = BTreeSet::new();
    let mut purposes = BTreeSet::new();
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let file: File = toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for s in file.scenario {
            count += 1;
            roles.insert(s.role.clone());
            if let Some(p) = &s.purpose {
                purposes.insert(p.clone());
            }
            let (got, rules) = decide(&policies, &s);
            if got != s.expect {
                failures.push(format!(
                    "{}: expected {}, got {got} (rules {rules:?})",
                    s.name, s.expect
                ));
            }
            for r in &s.rules {
                if !rules.contains(r) {
                    failures.push(format!("{}: rule `{r}` not among {rules:?}", s.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 30, "only {count} scenarios");
    for role in policies.access.roles.keys() {
        assert!(roles.contains(role), "no scenario covers role `{role}`");
    }
    for purpose in policies.access.purposes.keys() {
        assert!(
            purposes.contains(purpose),
            "no scenario covers purpose `{purpose}`"
        );
    }
}
