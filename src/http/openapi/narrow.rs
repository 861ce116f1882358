//! What the document learns from the loaded policy and the published export schema: the
//! purposes `X-Purpose` accepts, the consent-based purposes of the consent routes, the guest
//! and stay fields of the catalog (request and response shapes, with their views), and
//! `docs/export.schema.json` for the access and portability package. Works on the JSON form of
//! the generated document; every place it changes must exist, or it says which did not.

use serde_json::{json, Map, Value};

use crate::policy::{Action, Basis, FieldScope, FieldType, Policies};
use crate::service::CHANNELS;

/// The published schema of `GET /v1/guests/{id}/export` (JSON Schema 2020-12, which OpenAPI
/// 3.1 uses as is).
const EXPORT_SCHEMA: &str = include_str!("../../../docs/export.schema.json");

/// Adds the policy's knowledge to `doc`; returns the places it expected and did not find.
pub fn narrow(doc: &mut Value, policies: &Policies) -> Vec<String> {
    let mut missing = Vec::new();
    let access = &policies.access;
    let purposes: Vec<&str> = access.purposes.keys().map(String::as_str).collect();
    let consent_purposes: Vec<&str> = access
        .purposes
        .values()
        .filter(|p| p.basis == Basis::Consent)
        .map(|p| p.name.as_str())
        .collect();
    let actions: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
    let reasons: Vec<&str> = access.reasons.keys().map(String::as_str).collect();
    let hold_reasons: Vec<&str> = access.hold_reasons.keys().map(String::as_str).collect();

    let mut purpose_headers = 0;
    for_each_operation(doc, |path, op| {
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let name = param["name"].as_str().unwrap_or_default().to_string();
            let place = param["in"].as_str().unwrap_or_default().to_string();
            let values = match (place.as_str(), name.as_str()) {
                ("header", "X-Purpose") => {
                    purpose_headers += 1;
                    &purposes
                }
                ("path", "purpose") => &consent_purposes,
                ("query", "action") => &actions,
                ("query", "reason") if path == "/v1/guests/{id}/export" => &reasons,
                _ => continue,
            };
            param["schema"] = json!({ "type": "string", "enum": values });
        }
        for resp in op
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|r| r.values_mut())
        {
            resp["headers"]["X-Request-Id"] = json!({
                "description": "The request's id (the client's, if it sent a UUID); also in problem bodies and the access log.",
                "schema": { "type": "string" }
            });
        }
        if path == "/v1/guests/{id}/export" {
            op["responses"]["200"]["content"]["application/json"]["schema"] =
                json!({ "$ref": "#/components/schemas/GuestExport" });
        }
    });
    if purpose_headers == 0 {
        missing.push("no `X-Purpose` header parameter".to_string());
    }

    let schemas = &mut doc["components"]["schemas"];
    let catalog = &policies.catalog;
    schemas["GuestFieldsInput"] = fields_schema(
        policies,
        FieldScope::Guest,
        Shape::Input,
        "Guest fields of the catalog (`policies/fields.toml`); see the README for formats.",
    );
    schemas["GuestFieldChanges"] = fields_schema(
        policies,
        FieldScope::Guest,
        Shape::Change,
        "New values of guest fields; `null` removes a field.",
    );
    schemas["StayFieldsInput"] = fields_schema(
        policies,
        FieldScope::Stay,
        Shape::Input,
        "Stay fields of the catalog.",
    );
    schemas["GuestFieldValues"] = fields_schema(
        policies,
        FieldScope::Guest,
        Shape::Output,
        "Visible guest fields, plain or masked as `views` says.",
    );
    schemas["StayFieldValues"] = fields_schema(
        policies,
        FieldScope::Stay,
        Shape::Output,
        "Visible stay fields, plain or masked as `views` says.",
    );
    for (name, scope) in [
        ("GuestFieldViews", FieldScope::Guest),
        ("StayFieldViews", FieldScope::Stay),
    ] {
        // A guest field in a retention stage (issue 16 §3) shows its stage and no value:
        // `restricted` (storage only for this purpose), `pseudonymized` (value deleted).
        let views = match scope {
            FieldScope::Guest => json!(["plain", "masked", "restricted", "pseudonymized"]),
            FieldScope::Stay => json!(["plain", "masked"]),
        };
        let properties: Map<String, Value> = catalog
            .fields(scope)
            .map(|f| {
                (
                    f.name.clone(),
                    json!({ "type": "string", "enum": views.clone() }),
                )
            })
            .collect();
        schemas[name] = json!({
            "type": "object",
            "description": "How each visible field is shown. A guest field in a retention stage \
                            shows `restricted` (storage only under this purpose) or \
                            `pseudonymized` (its value deleted, its blind index kept) and has \
                            no value in `fields`.",
            "properties": properties,
            "additionalProperties": false,
        });
    }
    schemas["GuestExport"] = export_schema();

    let guest_fields: Vec<&str> = catalog
        .fields(FieldScope::Guest)
        .map(|f| f.name.as_str())
        .collect();
    let searchable: Vec<&str> = catalog
        .fields(FieldScope::Guest)
        .filter(|f| f.searchable)
        .map(|f| f.name.as_str())
        .collect();
    for (schema, pointer, value) in [
        ("ConsentInput", "/properties/channel/enum", json!(CHANNELS)),
        ("SearchBody", "/properties/field/enum", json!(searchable)),
        ("SearchBody", "/properties/reason/enum", json!(reasons)),
        ("RevealBody", "/properties/reason/enum", json!(reasons)),
        ("HoldInput", "/properties/reason/enum", json!(hold_reasons)),
        (
            "RevealBody",
            "/properties/fields/items/enum",
            json!(guest_fields),
        ),
    ] {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or_default();
        match schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(parent))
            .and_then(Value::as_object_mut)
        {
            Some(o) => {
                o.insert(key.to_string(), value);
            }
            None => missing.push(format!("schema `{schema}` has no `{parent}`")),
        }
    }

    for (schema, property, target) in [
        ("CreateGuestBody", "fields", "GuestFieldsInput"),
        ("UpdateGuestBody", "fields", "GuestFieldChanges"),
        ("StayBody", "fields", "StayFieldsInput"),
        ("GuestView", "fields", "GuestFieldValues"),
        ("GuestView", "views", "GuestFieldViews"),
        ("RevealView", "fields", "GuestFieldValues"),
        ("StayView", "fields", "StayFieldValues"),
        ("StayView", "views", "StayFieldViews"),
    ] {
        match schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(property))
        {
            Some(p) => *p = json!({ "$ref": format!("#/components/schemas/{target}") }),
            None => missing.push(format!("schema `{schema}` has no property `{property}`")),
        }
    }
    missing
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A submitted value: a string, or an object for `json` fields.
    Input,
    /// Like `Input`, or `null` to remove the field.
    Change,
    /// As shown: a JSON field in plain is an object, masked a string.
    Output,
}

fn fields_schema(policies: &Policies, scope: FieldScope, shape: Shape, about: &str) -> Value {
    let properties: Map<String, Value> = policies
        .catalog
        .fields(scope)
        .map(|f| {
            let mut types = match (f.field_type, shape) {
                (FieldType::Json, Shape::Output) => vec!["object", "string"],
                (FieldType::Json, _) => vec!["object"],
                (FieldType::Jurisdictions, Shape::Output) => vec!["array", "string"],
                (FieldType::Jurisdictions, _) => vec!["array"],
                _ => vec!["string"],
            };
            if shape == Shape::Change {
                types.push("null");
            }
            let mut s = json!({ "type": types });
            if f.field_type == FieldType::Enum && shape != Shape::Output {
                let mut values: Vec<Value> = f.values.iter().map(|v| json!(v)).collect();
                if shape == Shape::Change {
                    values.push(Value::Null);
                }
                s["enum"] = Value::Array(values);
            }
            if f.field_type == FieldType::Jurisdictions && shape != Shape::Output {
                s["items"] = json!({ "type": "string", "enum": ["cn", "eu"] });
                s["uniqueItems"] = json!(true);
                s["contains"] = json!({ "const": "cn" });
            }
            let sensitivity = if f.is_sensitive() {
                "sensitive"
            } else {
                "personal"
            };
            s["description"] = json!(format!(
                "{} data, retention category `{}`{}",
                sensitivity,
                f.category,
                if f.searchable { ", searchable" } else { "" }
            ));
            (f.name.clone(), s)
        })
        .collect();
    json!({
        "type": "object",
        "description": about,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// `docs/export.schema.json` without the keys that only make sense at a document root.
fn export_schema() -> Value {
    let mut schema: Value = serde_json::from_str(EXPORT_SCHEMA).unwrap_or_else(|e| {
        tracing::error!(error = %e, "docs/export.schema.json does not parse");
        json!({ "type": "object" })
    });
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
        o.remove("$id");
    }
    schema
}

/// Calls `f(path, operation)` for every operation of the document.
fn for_each_operation(doc: &mut Value, mut f: impl FnMut(&str, &mut Value)) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
            ) {
                f(path, op);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_the_policy_narrows_exists_in_the_generated_document() {
        let policies = Policies::load(None).unwrap();
        let mut doc =
            serde_json::to_value(<super::super::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        assert_eq!(narrow(&mut doc, &policies), Vec::<String>::new());
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["GuestFieldsInput"]["properties"]["gender"]["enum"],
            json!(["M", "F", "U"])
        );
        assert_eq!(
            schemas["GuestFieldChanges"]["properties"]["preferences"]["type"],
            json!(["object", "null"])
        );
        assert_eq!(schemas["GuestExport"].get("$schema"), None);
    }
}
