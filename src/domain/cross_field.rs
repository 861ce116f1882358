//! No validation oracles (issue 12 point 2): a correction's cross-field rules may compare only
//! values in the request and stored values the caller already sees in plain. Where a rule would
//! consult a stored value the caller cannot see (front desk sees the resident ID masked, so a
//! `birth_date` checked against it would answer 200 for the right year only), that value must
//! come with the request instead. Whether it is required depends only on the request and the
//! caller's views, never on what is stored, so every answer is the same whatever the stored
//! value is.
//!
//! The rules it guards are those of [`super::validate_fields`]:
//! - `id_number` is validated for the `id_type` (sent, or stored);
//! - a changed `id_type` must fit the stored `id_number`;
//! - with a resident ID, `birth_date` and `gender` must agree with its digits 7–14 and 17 (the
//!   gender only under `[validation] gender_vs_id_number = "strict"`; by default a mismatch is
//!   the data-quality flag `gender_mismatch_id_number`, computed from the same values).
//!
//! `nationality` takes part in no cross-field rule.

use serde_json::{Map, Value};

use super::FieldError;

/// The code of a counterpart a correction must carry because the caller cannot see it in plain.
pub const REQUIRED_FOR_CROSS_CHECK: &str = "required_for_cross_check";

/// The fields that take part in a cross-field rule on a guest record.
pub const CROSS_CHECKED: [&str; 4] = ["id_type", "id_number", "birth_date", "gender"];

/// The errors for the counterparts `patch` must carry. `plain(field)` says whether the caller's
/// view of the stored `field` is `plain` (it must not look at the stored value itself). Only
/// stored values with `plain(field)` may then be handed to the cross-field rules.
pub fn cross_field_requirements(
    patch: &Map<String, Value>,
    plain: impl Fn(&str) -> bool,
    stored_plain_id_type: Option<&str>,
) -> Vec<FieldError> {
    let sent = |n: &str| patch.contains_key(n);
    let set = |n: &str| patch.get(n).is_some_and(|v| !v.is_null());
    // A counterpart is known to the rule if the request carries it (a `null` removes it: no
    // rule applies to a removed value) or the caller sees the stored one in plain.
    let known = |n: &str| sent(n) || plain(n);
    let id_type = match patch.get("id_type") {
        Some(v) => v.as_str(),
        None if plain("id_type") => stored_plain_id_type,
        None => None,
    };
    let resident = id_type == Some("cn_resident_id");
    let mut errors = Vec::new();
    let mut require = |n: &str| {
        if !errors.iter().any(|e: &FieldError| e.field == n) {
            errors.push(FieldError::new(n, REQUIRED_FOR_CROSS_CHECK));
        }
    };
    if set("birth_date") || set("gender") {
        if !known("id_type") {
            require("id_type");
        }
        // The document decides whether the rule applies: an unknown type might be a resident ID.
        if (resident || !known("id_type")) && !known("id_number") {
            require("id_number");
        }
    }
    if set("id_type") && !sent("id_number") && !plain("id_number") {
        require("id_number");
    }
    if (set("id_number") || set("id_type")) && resident {
        for n in ["birth_date", "gender"] {
            if !known(n) {
                require(n);
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(patch: Value, plain: &[&str], id_type: Option<&str>) -> Vec<(String, &'static str)> {
        cross_field_requirements(patch.as_object().unwrap(), |n| plain.contains(&n), id_type)
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    const FRONT_DESK: [&str; 3] = ["id_type", "gender", "nationality"];

    #[test]
    fn a_birth_date_needs_the_resident_id_when_the_caller_sees_it_masked() {
        assert_eq!(
            req(
                json!({"birth_date":"1950-01-01"}),
                &FRONT_DESK,
                Some("cn_resident_id")
            ),
            vec![("id_number".into(), REQUIRED_FOR_CROSS_CHECK)]
        );
        // With the number in the request, nothing stored is consulted.
        assert!(req(
            json!({"birth_date":"1950-01-01","id_number":"x"}),
            &FRONT_DESK,
            Some("cn_resident_id")
        )
        .is_empty());
        // A caller that sees the number in plain may rely on it.
        assert!(req(
            json!({"gender":"M"}),
            &["id_type", "id_number"],
            Some("cn_resident_id")
        )
        .is_empty());
        // A passport holder's birth date has no cross-field rule.
        assert!(req(
            json!({"birth_date":"1950-01-01"}),
            &FRONT_DESK,
            Some("passport")
        )
        .is_empty());
    }

    #[test]
    fn a_hidden_id_type_is_required_too() {
        assert_eq!(
            req(json!({"gender":"M"}), &[], None),
            vec![
                ("id_type".into(), REQUIRED_FOR_CROSS_CHECK),
                ("id_number".into(), REQUIRED_FOR_CROSS_CHECK)
            ]
        );
        // The stored id_type is ignored when the caller cannot see it.
        assert_eq!(
            req(json!({"gender":"M"}), &["id_number"], Some("passport")),
            vec![("id_type".into(), REQUIRED_FOR_CROSS_CHECK)]
        );
    }

    #[test]
    fn a_new_resident_id_needs_the_hidden_birth_date_and_gender() {
        assert_eq!(
            req(
                json!({"id_number":"x"}),
                &["id_type", "gender"],
                Some("cn_resident_id")
            ),
            vec![("birth_date".into(), REQUIRED_FOR_CROSS_CHECK)]
        );
        assert_eq!(
            req(
                json!({"id_type":"cn_resident_id"}),
                &["gender", "birth_date"],
                None
            ),
            vec![("id_number".into(), REQUIRED_FOR_CROSS_CHECK)]
        );
        // Removing a value needs nothing: no rule compares a removed value.
        assert!(req(json!({"birth_date":null}), &[], None).is_empty());
        assert!(req(
            json!({"id_number":"x","birth_date":null,"gender":null}),
            &["id_type"],
            Some("cn_resident_id")
        )
        .is_empty());
    }

    proptest::proptest! {
        /// What is required never depends on the stored id_type unless the caller sees it.
        #[test]
        fn requirements_ignore_hidden_stored_values(
            fields in proptest::sample::subsequence(CROSS_CHECKED.to_vec(), 0..=4),
            plain in proptest::sample::subsequence(CROSS_CHECKED.to_vec(), 0..=4),
        ) {
            let patch: Map<String, Value> =
                fields.iter().map(|f| (f.to_string(), json!("v"))).collect();
            if !plain.contains(&"id_type") {
                let a = cross_field_requirements(&patch, |n| plain.contains(&n), Some("cn_resident_id"));
                let b = cross_field_requirements(&patch, |n| plain.contains(&n), Some("passport"));
                let c = cross_field_requirements(&patch, |n| plain.contains(&n), None);
                proptest::prop_assert_eq!(&a, &b);
                proptest::prop_assert_eq!(&a, &c);
            }
        }
    }
}
