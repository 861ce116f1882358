//! Registered privacy notices (`notices.toml`, issue 16 §4; PIPL Art. 14, 17; REQ-05, REQ-06,
//! REQ-08). Each version names its text per language with the SHA-256 of that text file, the
//! date it takes effect, and what it discloses: per purpose the fields, stay fields and
//! recipients, and the retention period per class.
//!
//! - A consent names a registered version; the ledger stores the hash of the text shown.
//! - The latest version (by effective date) must disclose at least what the policy processes:
//!   every purpose with its fields, stay fields and recipients, and every retention class with
//!   its period. Otherwise the policy is invalid (`guestvault policy check`, server start).
//! - A consent to a version that does not disclose the purpose's current fields or recipients
//!   is `stale`: it counts as absent until the guest consents to a version that does.
//! - [`render`] writes the processing rules (PIPL Art. 17) from the policy files.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{AccessPolicy, Basis, Catalog, FieldScope, PolicyError, Schedule};
use crate::domain::retention::Period;

/// The languages a notice text may be written in (and `notice render` writes).
pub const LANGUAGES: [&str; 2] = ["zh-CN", "en"];

/// The language of a consent that names none.
pub const DEFAULT_LANGUAGE: &str = "zh-CN";

/// Who the notice says processes the data (PIPL Art. 17(1)).
#[derive(Debug, Clone, Default)]
pub struct Handler {
    pub name: String,
    pub contact: String,
    pub pipo_contact: Option<String>,
}

/// One registered text of a notice version.
#[derive(Debug, Clone)]
pub struct NoticeText {
    /// The file, relative to the policy directory.
    pub file: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// What a notice version discloses for one purpose.
#[derive(Debug, Clone, Default)]
pub struct Disclosure {
    pub fields: BTreeSet<String>,
    pub stay_fields: BTreeSet<String>,
    pub recipients: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Notice {
    pub version: String,
    pub effective: time::Date,
    pub texts: BTreeMap<String, NoticeText>,
    pub purposes: BTreeMap<String, Disclosure>,
    /// Retention class → period as written (`"3y"`).
    pub retention: BTreeMap<String, String>,
    /// Retention class → the stages inside its period it disclosed (issue 16 §3).
    pub stages: BTreeMap<String, Vec<DisclosedStage>>,
    /// The legal-hold reasons it disclosed (`[hold_reasons]` codes, REQ-23).
    pub holds: BTreeSet<String>,
}

/// A retention stage as a notice discloses it: from when, what, and which fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosedStage {
    pub after: Option<Period>,
    pub action: String,
    pub fields: BTreeSet<String>,
}

impl DisclosedStage {
    fn of(stage: &super::stages::Stage) -> Self {
        Self {
            after: Some(stage.after),
            action: stage.action.as_str().to_string(),
            fields: stage.fields.iter().cloned().collect(),
        }
    }
}

impl Notice {
    /// Whether this version discloses everything `purpose` processes now (fields, stay fields,
    /// recipients): a consent to it still covers the purpose (PIPL Art. 14(2)).
    pub fn covers(&self, purpose: &super::Purpose) -> bool {
        self.purposes.get(&purpose.name).is_some_and(|d| {
            purpose.fields.is_subset(&d.fields)
                && purpose.stay_fields.is_subset(&d.stay_fields)
                && purpose.recipients.is_subset(&d.recipients)
        })
    }
}

/// The registry: every version, the handler, and per purpose the versions whose consents
/// still cover it.
#[derive(Debug, Clone, Default)]
pub struct Notices {
    pub handler: Handler,
    pub versions: BTreeMap<String, Notice>,
    covering: BTreeMap<String, BTreeSet<String>>,
}

impl Notices {
    pub fn get(&self, version: &str) -> Option<&Notice> {
        self.versions.get(version)
    }

    /// The version in force for new consents and for the rendered notice: the latest
    /// effective date (ties: the greater version id).
    pub fn latest(&self) -> Option<&Notice> {
        self.versions
            .values()
            .max_by(|a, b| (a.effective, &a.version).cmp(&(b.effective, &b.version)))
    }

    /// Whether a consent to `version` (`None`: recorded without one) still covers `purpose`;
    /// an unregistered version covers nothing (fail closed).
    pub fn consent_covers(&self, purpose: &str, version: Option<&str>) -> bool {
        version.is_some_and(|v| self.covering.get(purpose).is_some_and(|s| s.contains(v)))
    }

    /// The hash of `version`'s text in `language`, when both are registered.
    pub fn text_hash(&self, version: &str, language: &str) -> Option<&str> {
        self.get(version)?
            .texts
            .get(language)
            .map(|t| t.sha256.as_str())
    }

    /// The files the registry names (relative to the policy directory), to read them.
    pub fn files_named_in(text: &str) -> Vec<String> {
        let Ok(table) = toml::from_str::<toml::Table>(text) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let versions = table.get("notices").and_then(|v| v.as_table());
        for notice in versions.into_iter().flat_map(|t| t.values()) {
            let texts = notice.get("texts").and_then(|t| t.as_table());
            for t in texts.into_iter().flat_map(|t| t.values()) {
                if let Some(f) = t.get("file").and_then(|f| f.as_str()) {
                    out.push(f.to_string());
                }
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    handler: RawHandler,
    #[serde(default)]
    notices: BTreeMap<String, RawNotice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    name: String,
    contact: String,
    #[serde(default)]
    pipo_contact: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    effective: String,
    #[serde(default)]
    texts: BTreeMap<String, RawText>,
    #[serde(default)]
    purposes: BTreeMap<String, RawDisclosure>,
    #[serde(default)]
    retention: BTreeMap<String, String>,
    #[serde(default)]
    stages: BTreeMap<String, Vec<RawStage>>,
    #[serde(default)]
    holds: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    after: String,
    action: String,
    #[serde(default)]
    fields: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    file: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisclosure {
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    stay_fields: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A version id, as a consent names it: letters, digits, `.`, `-`, `_`, 1 to 64 characters.
pub fn is_version_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn safe_relative(path: &str) -> bool {
    let p = std::path::Path::new(path);
    !path.is_empty()
        && p.is_relative()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Parses and validates `notices.toml` against the other policy files. `texts` holds each file
/// the registry names, read relative to the policy directory (`Err`: why it could not be).
/// `disclosure`: whether the latest version must disclose what the policy enforces.
#[allow(
    clippy::too_many_arguments,
    reason = "the policy files it is checked against, each named"
)]
pub fn parse(
    file: &str,
    text: &str,
    texts: &BTreeMap<String, Result<Vec<u8>, String>>,
    disclosure: bool,
    catalog: &Catalog,
    access: &AccessPolicy,
    schedule: &Schedule,
    errors: &mut Vec<PolicyError>,
) -> Notices {
    let Some(raw) = super::parse_toml::<RawFile>(file, text, errors) else {
        return Notices::default();
    };
    let mut out = Notices {
        handler: Handler {
            name: raw.handler.name.trim().to_string(),
            contact: raw.handler.contact.trim().to_string(),
            pipo_contact: raw.handler.pipo_contact.map(|s| s.trim().to_string()),
        },
        ..Notices::default()
    };
    if out.handler.name.is_empty() {
        errors.push(PolicyError::new(file, "handler.name", "must not be empty"));
    }
    if out.handler.contact.is_empty() {
        errors.push(PolicyError::new(
            file,
            "handler.contact",
            "must not be empty",
        ));
    }
    if raw.notices.is_empty() {
        errors.push(PolicyError::new(
            file,
            "notices",
            "register at least one notice version",
        ));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    for (version, n) in raw.notices {
        let key = format!("notices.\"{version}\"");
        if !is_version_id(&version) {
            errors.push(PolicyError::new(
                file,
                &key,
                "a version id has letters, digits, `.`, `-` or `_` (at most 64)",
            ));
        }
        let effective = time::Date::parse(&n.effective, &date_format);
        if effective.is_err() {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.effective"),
                "must be a date YYYY-MM-DD",
            ));
        }
        if n.texts.is_empty() {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.texts"),
                "a version needs at least one text",
            ));
        }
        let mut notice_texts = BTreeMap::new();
        for (lang, t) in n.texts {
            let tkey = format!("{key}.texts.{lang}");
            if !LANGUAGES.contains(&lang.as_str()) {
                errors.push(PolicyError::new(
                    file,
                    &tkey,
                    "unknown language (expected zh-CN or en)",
                ));
            }
            if !safe_relative(&t.file) {
                errors.push(PolicyError::new(
                    file,
                    &format!("{tkey}.file"),
                    "must be a path relative to the policy directory, without `..`",
                ));
            }
            let hash_ok = t.sha256.len() == 64
                && t.sha256.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            if !hash_ok {
                errors.push(PolicyError::new(
                    file,
                    &format!("{tkey}.sha256"),
                    "must be 64 lower-case hex digits (the SHA-256 of the text file)",
                ));
            }
            match texts.get(&t.file) {
                None => errors.push(PolicyError::new(
                    file,
                    &format!("{tkey}.file"),
                    "the text file was not read",
                )),
                Some(Err(why)) => errors.push(PolicyError::new(
                    file,
                    &format!("{tkey}.file"),
                    &format!("cannot read the text file: {why}"),
                )),
                Some(Ok(bytes)) if hash_ok && sha256_hex(bytes) != t.sha256 => {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{tkey}.sha256"),
                        "does not match the SHA-256 of the text file (a changed notice needs a new version)",
                    ))
                }
                Some(Ok(_)) => {}
            }
            notice_texts.insert(
                lang,
                NoticeText {
                    file: t.file,
                    sha256: t.sha256,
                },
            );
        }
        let mut purposes = BTreeMap::new();
        for (purpose, d) in n.purposes {
            let pkey = format!("{key}.purposes.{purpose}");
            if !access.purposes.contains_key(&purpose) {
                errors.push(PolicyError::new(
                    file,
                    &pkey,
                    &format!("unknown purpose `{purpose}`"),
                ));
            }
            for (scope, list, what) in [
                (FieldScope::Guest, &d.fields, "fields"),
                (FieldScope::Stay, &d.stay_fields, "stay_fields"),
            ] {
                for f in list {
                    if catalog.get(scope, f).is_none() {
                        errors.push(PolicyError::new(
                            file,
                            &format!("{pkey}.{what}"),
                            &format!("unknown {} field `{f}`", scope.table()),
                        ));
                    }
                }
            }
            if let Some(r) = d.recipients.iter().find(|r| !super::is_identifier(r)) {
                errors.push(PolicyError::new(
                    file,
                    &format!("{pkey}.recipients"),
                    &format!("`{r}` is not a recipient name (lower-case letters, digits, `_`)"),
                ));
            }
            purposes.insert(
                purpose,
                Disclosure {
                    fields: d.fields.into_iter().collect(),
                    stay_fields: d.stay_fields.into_iter().collect(),
                    recipients: d.recipients.into_iter().collect(),
                },
            );
        }
        for (class, period) in &n.retention {
            let rkey = format!("{key}.retention.{class}");
            if schedule.class(class).is_none() {
                errors.push(PolicyError::new(
                    file,
                    &rkey,
                    &format!("unknown retention class `{class}`"),
                ));
            }
            if Period::parse(period).is_none() {
                errors.push(PolicyError::new(
                    file,
                    &rkey,
                    "must be a period such as \"30d\", \"6m\" or \"3y\"",
                ));
            }
        }
        let mut stages = BTreeMap::new();
        for (class, list) in n.stages {
            let skey = format!("{key}.stages.{class}");
            if schedule.class(&class).is_none() {
                errors.push(PolicyError::new(
                    file,
                    &skey,
                    &format!("unknown retention class `{class}`"),
                ));
            }
            let mut disclosed = Vec::new();
            for (i, st) in list.into_iter().enumerate() {
                let ikey = format!("{skey}[{i}]");
                let after = Period::parse(&st.after);
                if after.is_none() {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{ikey}.after"),
                        "must be a period such as \"30d\", \"6m\" or \"1y\"",
                    ));
                }
                if !["restrict", "pseudonymize"].contains(&st.action.as_str()) {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{ikey}.action"),
                        "must be `restrict` or `pseudonymize`",
                    ));
                }
                if let Some(f) = st
                    .fields
                    .iter()
                    .find(|f| catalog.get(FieldScope::Guest, f).is_none())
                {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{ikey}.fields"),
                        &format!("unknown guest field `{f}`"),
                    ));
                }
                disclosed.push(DisclosedStage {
                    after,
                    action: st.action,
                    fields: st.fields.into_iter().collect(),
                });
            }
            stages.insert(class, disclosed);
        }
        if let Some(h) = n
            .holds
            .iter()
            .find(|h| !access.hold_reasons.contains_key(*h))
        {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.holds"),
                &format!("unknown hold reason `{h}` (access.toml `[hold_reasons]`)"),
            ));
        }
        out.versions.insert(
            version.clone(),
            Notice {
                version,
                effective: effective.unwrap_or(time::Date::MIN),
                texts: notice_texts,
                purposes,
                retention: n.retention,
                stages,
                holds: n.holds.into_iter().collect(),
            },
        );
    }
    if let Some(latest) = out.latest().filter(|_| disclosure) {
        disclosure_gaps(file, latest, access, schedule, errors);
    }
    for p in access.purposes.values() {
        let covering = out
            .versions
            .values()
            .filter(|n| n.covers(p))
            .map(|n| n.version.clone())
            .collect();
        out.covering.insert(p.name.clone(), covering);
    }
    out
}

/// The latest version must disclose what the policy processes (PIPL Art. 17): every purpose
/// that touches data, with its fields, stay fields and recipients, and every retention class
/// with the period the sweeper applies (REQ-08).
fn disclosure_gaps(
    file: &str,
    latest: &Notice,
    access: &AccessPolicy,
    schedule: &Schedule,
    errors: &mut Vec<PolicyError>,
) {
    let key = format!("notices.\"{}\"", latest.version);
    let why = "the latest notice discloses less than the policy processes: register a new \
               version that discloses";
    for p in access.purposes.values() {
        if p.fields.is_empty() && p.stay_fields.is_empty() && p.recipients.is_empty() {
            continue;
        }
        let pkey = format!("{key}.purposes.{}", p.name);
        let Some(d) = latest.purposes.get(&p.name) else {
            errors.push(PolicyError::new(
                file,
                &pkey,
                &format!("{why} purpose `{}`", p.name),
            ));
            continue;
        };
        for (what, policy, disclosed) in [
            ("fields", &p.fields, &d.fields),
            ("stay_fields", &p.stay_fields, &d.stay_fields),
            ("recipients", &p.recipients, &d.recipients),
        ] {
            let missing: Vec<&str> = policy.difference(disclosed).map(String::as_str).collect();
            if !missing.is_empty() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{pkey}.{what}"),
                    &format!(
                        "{why} {} (access.toml `purposes.{}.{what}`)",
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        p.name
                    ),
                ));
            }
        }
    }
    for class in schedule.classes.values() {
        let rkey = format!("{key}.retention.{}", class.name);
        match latest.retention.get(&class.name) {
            Some(p) if Period::parse(p) == Some(class.retain) => {}
            Some(_) => errors.push(PolicyError::new(
                file,
                &rkey,
                &format!(
                    "{why} the period retention.toml sets (`classes.{}.retain` = \"{}\")",
                    class.name, class.retain_text
                ),
            )),
            None => errors.push(PolicyError::new(
                file,
                &rkey,
                &format!("{why} retention class `{}`", class.name),
            )),
        }
        // The stages inside the period (restricting, pseudonymizing), exactly as enforced.
        let enforced: Vec<DisclosedStage> = class.stages.iter().map(DisclosedStage::of).collect();
        let disclosed = latest.stages.get(&class.name).cloned().unwrap_or_default();
        if enforced != disclosed {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.stages.{}", class.name),
                &format!(
                    "{why} the stages retention.toml sets (`classes.{}.stages`: {})",
                    class.name,
                    if class.stages.is_empty() {
                        "none".to_string()
                    } else {
                        class
                            .stages
                            .iter()
                            .map(|s| format!("{} after {}", s.action.as_str(), s.after_text))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        }
    }
    // Why data may be kept past its period or an erasure (REQ-23): every hold reason.
    let missing: Vec<String> = access
        .hold_reasons
        .keys()
        .filter(|h| !latest.holds.contains(*h))
        .map(|h| format!("`{h}`"))
        .collect();
    if !missing.is_empty() {
        errors.push(PolicyError::new(
            file,
            &format!("{key}.holds"),
            &format!(
                "{why} the legal-hold reasons {} (access.toml `[hold_reasons]`)",
                missing.join(", ")
            ),
        ));
    }
}

// --- the rendered notice (PIPL Art. 17) ---------------------------------------------------------

/// Words of the rendered notice, per language.
struct Words {
    title: &'static str,
    version: &'static str,
    effective: &'static str,
    generated: &'static str,
    who: &'static str,
    contact: &'static str,
    pipo: &'static str,
    purposes: &'static str,
    basis: &'static str,
    data: &'static str,
    stay_data: &'static str,
    sensitive_mark: &'static str,
    recipients: &'static str,
    no_recipients: &'static str,
    consent_note: &'static str,
    no_consent_note: &'static str,
    retention: &'static str,
    retention_head: &'static str,
    sensitive: &'static str,
    sensitive_text: &'static str,
    rights: &'static str,
    rights_list: &'static [&'static str],
    changes: &'static str,
    stages: &'static str,
    stage_restrict: &'static str,
    stage_pseudonymize: &'static str,
    stage_end: &'static str,
    holds: &'static str,
    holds_text: &'static str,
    minors: &'static str,
    minors_age: &'static str,
    minors_sensitive: &'static str,
    minors_consent: &'static str,
    minors_marketing_refused: &'static str,
    minors_marketing_allowed: &'static str,
    minors_registration: &'static str,
    minors_fourteen: &'static str,
}

const ZH: Words = Words {
    title: "个人信息处理规则",
    version: "版本",
    effective: "生效日期",
    generated: "本规则由 `guestvault notice render --lang zh-CN` 根据系统实际执行的策略文件生成（《个人信息保护法》第十七条），所述目的、字段、接收方与保存期限即系统执行的内容。",
    who: "个人信息处理者",
    contact: "联系方式",
    pipo: "个人信息保护负责人",
    purposes: "处理目的、法律依据与个人信息种类",
    basis: "法律依据",
    data: "个人信息",
    stay_data: "入住信息",
    sensitive_mark: "敏感",
    recipients: "接收方",
    no_recipients: "无（不向酒店以外的任何人提供）",
    consent_note: "您可以拒绝或随时撤回此项同意，撤回不影响撤回前的处理；拒绝或撤回不影响入住登记、服务与结账（第十五、十六条）。敏感个人信息需您单独同意（第二十九条）。",
    no_consent_note: "此项处理不需要您的同意（第十三条）。",
    retention: "保存期限",
    retention_head: "| 类别 | 期限 | 起算 | 依据 |\n|---|---|---|---|",
    sensitive: "敏感个人信息（第二十八至三十条）",
    sensitive_text: "以下个人信息属于敏感个人信息，一旦泄露或被非法使用，可能导致您的人格尊严受到侵害或人身、财产安全受到危害。系统对其逐字段加密，默认以遮蔽方式显示，查看明文需要权限与理由并记入审计日志：",
    rights: "您的权利及行使方式（第四十四至四十八条）",
    rights_list: &[
        "查阅、复制与转移：在前台或酒店应用提出，酒店通过 `GET /v1/guests/{id}/export` 提供完整副本。",
        "更正与补充：联系方式可由您直接更正；身份信息的更正经核验证件后处理（`PATCH /v1/guests/{id}`）。",
        "删除：`POST /v1/guests/{id}/erasure`；法律要求保存的登记信息在保存期内仅作存储，不再处理（第四十七条）。",
        "撤回同意：一步完成，与给予同意同样便捷（`DELETE /v1/guests/{id}/consents/{purpose}`），即时生效。",
        "拒绝：您拒绝后，酒店在配置的期间内不会就同一目的再次征求您的同意（《网络数据安全管理条例》第二十二条）。",
        "请求解释处理规则；上述请求在 15 个工作日内（最长 30 日）答复。",
    ],
    changes: "处理目的、处理方式或个人信息种类发生变更时，酒店将发布新版本并重新取得您的同意（第十四条）。",
    stages: "保存期限内的分阶段处理：",
    stage_restrict: "起仅作存储，仅可为以下目的读取：",
    stage_pseudonymize: "起假名化（删除原值，仅保留密钥化检索索引，公安机关仍可按该号码精确查询）：",
    stage_end: "期满后全部删除",
    holds: "法律保全（第四十七条第二款）",
    holds_text: "在下列情形下，酒店可对您的记录设置法律保全（记录原因代码与案件编号，不记录其他内容）。保全期间，即使保存期限届满或您请求删除，记录也不被删除，仅作存储、不再用于其他处理；保全解除或到期后照常删除。保全原因：",
    minors: "未成年人个人信息的处理规则（第二十八、三十一条；《未成年人保护法》第五十七条）",
    minors_age: "年龄按中国日期，根据 `birth_date` 或居民身份证号计算。",
    minors_sensitive: "不满十四周岁的未成年人的全部个人信息均作为敏感个人信息处理。",
    minors_consent: "对不满十四周岁的未成年人，需要同意的处理须取得其父母或者其他监护人的单独同意（`given_by = guardian`）；记录监护人与其关系及监护人的参考编号，不记录监护人的姓名或联系方式。",
    minors_marketing_refused: "不满十四周岁的未成年人，即使监护人同意，也不用于以下营销目的：",
    minors_marketing_allowed: "不满十四周岁的未成年人，仅在监护人单独同意后用于以下营销目的：",
    minors_registration: "不满十八周岁的未成年人入住登记，须提供监护人的姓名与手机号，或同行成年人的登记编号：",
    minors_fourteen: "年满十四周岁后，监护人给予的同意继续有效，直至本人确认或撤回。",
};

const EN: Words = Words {
    title: "Privacy notice: rules for processing personal information",
    version: "Version",
    effective: "Effective",
    generated: "Generated by `guestvault notice render --lang en` from the policy files the vault enforces (PIPL Art. 17): the purposes, fields, recipients and retention periods below are the ones it applies.",
    who: "Who processes your data",
    contact: "Contact",
    pipo: "Personal information protection officer",
    purposes: "Purposes, legal basis and data",
    basis: "Legal basis",
    data: "Personal data",
    stay_data: "Stay data",
    sensitive_mark: "sensitive",
    recipients: "Recipients",
    no_recipients: "none (not provided to anyone outside the hotel)",
    consent_note: "You may refuse this consent or withdraw it at any time; a withdrawal does not affect processing before it, and refusing or withdrawing never affects check-in, service or billing (Art. 15, 16). Sensitive data needs your separate consent (Art. 29).",
    no_consent_note: "This processing does not need your consent (Art. 13).",
    retention: "How long data is kept",
    retention_head: "| class | period | from | basis |\n|---|---|---|---|",
    sensitive: "Sensitive personal information (Art. 28-30)",
    sensitive_text: "The following data is sensitive: if leaked or misused it may harm your dignity, your safety or your property. Each field is encrypted on its own, shown masked by default, and seeing it in plain needs a right and a reason, both audited:",
    rights: "Your rights and how to exercise them (Art. 44-48)",
    rights_list: &[
        "Access, copy and portability: ask at the front desk or in the hotel's app; the hotel gives you the complete copy (`GET /v1/guests/{id}/export`).",
        "Correction: you correct your contact details yourself; identity data is corrected after the document is checked (`PATCH /v1/guests/{id}`).",
        "Deletion: `POST /v1/guests/{id}/erasure`; registration data the law requires is only stored, no longer processed, until its period ends (Art. 47).",
        "Withdrawing consent: one step, as easy as giving it (`DELETE /v1/guests/{id}/consents/{purpose}`), effective at once.",
        "Refusal: after you refuse, the hotel does not ask you again for the same purpose within the configured period (Network Data Security Regulation Art. 22).",
        "An explanation of these rules; requests are answered within 15 working days (30 days at most).",
    ],
    changes: "When a purpose, the means of processing or the kinds of data change, the hotel publishes a new version and asks for your consent again (Art. 14).",
    stages: "Stages inside the period:",
    stage_restrict: "on: storage only, read only for",
    stage_pseudonymize: "on: pseudonymized (the value is deleted and only a keyed search index is kept, so the police can still find the record by the exact number):",
    stage_end: "deleted when the period ends",
    holds: "Legal holds (Art. 47(2))",
    holds_text: "For the reasons below the hotel may place a legal hold on your records (a reason code and a case number, nothing else). While a hold stands nothing of your records is deleted, even when the period ends or you ask for erasure: they are only stored and not otherwise processed; once the hold is lifted or lapses they are deleted as usual. Reasons:",
    minors: "Processing rules for minors (Art. 28, 31; Minors Protection Law Art. 57)",
    minors_age: "A guest's age is counted on the date in China, from `birth_date` or the resident ID number.",
    minors_sensitive: "All personal data of a guest under 14 is treated as sensitive personal information.",
    minors_consent: "For a guest under 14, processing that needs consent needs the separate consent of a parent or other guardian (`given_by = guardian`); the vault records the guardian's relationship and a reference, never the guardian's name or contact.",
    minors_marketing_refused: "A guest under 14 is never used for these marketing purposes, even with a guardian's consent:",
    minors_marketing_allowed: "A guest under 14 is used for these marketing purposes only with a guardian's separate consent:",
    minors_registration: "Registering a guest under 18 needs the guardian's name and mobile number, or the registration of the adult who checks in with the minor:",
    minors_fourteen: "From the 14th birthday a guardian's consent stays valid until the guest confirms or withdraws it.",
};

fn basis_text(basis: Basis, zh: bool) -> &'static str {
    match (basis, zh) {
        (Basis::Consent, true) => "个人同意（第十三条第一款第一项）",
        (Basis::Contract, true) => "订立、履行合同所必需（第十三条第一款第二项）",
        (Basis::LegalObligation, true) => "履行法定职责或者法定义务所必需（第十三条第一款第三项）",
        (Basis::VitalInterest, true) => {
            "紧急情况下保护生命健康和财产安全所必需（第十三条第一款第四项）"
        }
        (Basis::Consent, false) => "consent (PIPL Art. 13(1)(1))",
        (Basis::Contract, false) => "necessary for the contract with you (Art. 13(1)(2))",
        (Basis::LegalObligation, false) => "a legal obligation (Art. 13(1)(3))",
        (Basis::VitalInterest, false) => {
            "protecting life, health or property in an emergency (Art. 13(1)(4))"
        }
    }
}

fn period_text(p: Period, zh: bool) -> String {
    match (p, zh) {
        (Period::Days(n), true) => format!("{n} 天"),
        (Period::Months(n), true) => format!("{n} 个月"),
        (Period::Years(n), true) => format!("{n} 年"),
        (Period::Days(n), false) => format!("{n} days"),
        (Period::Months(n), false) => format!("{n} months"),
        (Period::Years(n), false) => format!("{n} years"),
    }
}

fn anchor_text(a: super::Anchor, zh: bool) -> &'static str {
    use super::Anchor::*;
    match (a, zh) {
        (Created, true) => "收集之日",
        (LastCheckout, true) => "最后一次退房",
        (LastActivity, true) => "最后一次活动",
        (ConsentWithdrawn, true) => "撤回同意",
        (Created, false) => "collection",
        (LastCheckout, false) => "the last check-out",
        (LastActivity, false) => "the last activity",
        (ConsentWithdrawn, false) => "the withdrawal of consent",
    }
}

/// Renders the processing rules (PIPL Art. 17) in `lang` (`zh-CN` or `en`) from the policy:
/// the handler, every purpose that processes data with its basis, fields (sensitive ones
/// marked), stay fields and recipients, the retention schedule, the sensitive fields, and the
/// rights with how to exercise them. The header names the latest registered version.
pub fn render(policies: &super::Policies, lang: &str) -> Option<String> {
    let zh = match lang {
        "zh-CN" => true,
        "en" => false,
        _ => return None,
    };
    let w = if zh { &ZH } else { &EN };
    let notices = &policies.notices;
    let mut o = String::new();
    let line = |o: &mut String, s: &str| {
        o.push_str(s);
        o.push('\n');
    };
    line(&mut o, &format!("# {}", w.title));
    line(&mut o, "");
    if let Some(n) = notices.latest() {
        line(
            &mut o,
            &format!(
                "{}: {} · {}: {}",
                w.version, n.version, w.effective, n.effective
            ),
        );
        line(&mut o, "");
    }
    line(&mut o, w.generated);
    line(&mut o, "");
    line(&mut o, &format!("## {}", w.who));
    line(&mut o, "");
    line(&mut o, &format!("- {}", notices.handler.name));
    line(
        &mut o,
        &format!("- {}: {}", w.contact, notices.handler.contact),
    );
    if let Some(p) = &notices.handler.pipo_contact {
        line(&mut o, &format!("- {}: {p}", w.pipo));
    }
    line(&mut o, "");
    line(&mut o, &format!("## {}", w.purposes));
    let field_list = |scope: FieldScope, names: &BTreeSet<String>| -> String {
        names
            .iter()
            .map(|f| {
                let sensitive = policies
                    .catalog
                    .get(scope, f)
                    .is_some_and(|s| s.is_sensitive());
                if sensitive {
                    format!("`{f}` ({})", w.sensitive_mark)
                } else {
                    format!("`{f}`")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for p in policies.access.purposes.values() {
        if p.fields.is_empty() && p.stay_fields.is_empty() {
            continue;
        }
        line(&mut o, "");
        line(&mut o, &format!("### `{}`", p.name));
        line(&mut o, "");
        line(
            &mut o,
            &format!("- {}: {}", w.basis, basis_text(p.basis, zh)),
        );
        if !p.fields.is_empty() {
            line(
                &mut o,
                &format!("- {}: {}", w.data, field_list(FieldScope::Guest, &p.fields)),
            );
        }
        if !p.stay_fields.is_empty() {
            line(
                &mut o,
                &format!(
                    "- {}: {}",
                    w.stay_data,
                    field_list(FieldScope::Stay, &p.stay_fields)
                ),
            );
        }
        let recipients = if p.recipients.is_empty() {
            w.no_recipients.to_string()
        } else {
            p.recipients
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        line(&mut o, &format!("- {}: {recipients}", w.recipients));
        line(
            &mut o,
            &format!(
                "- {}",
                if p.basis == Basis::Consent {
                    w.consent_note
                } else {
                    w.no_consent_note
                }
            ),
        );
    }
    line(&mut o, "");
    line(&mut o, &format!("## {}", w.retention));
    line(&mut o, "");
    line(&mut o, w.retention_head);
    for c in policies.retention.classes.values() {
        let fields: Vec<String> = policies
            .catalog
            .fields(FieldScope::Guest)
            .filter(|f| f.category == c.name)
            .map(|f| format!("`{}`", f.name))
            .collect();
        let what = if c.name == policies.retention.stay_class {
            format!("`{}` ({})", c.name, w.stay_data)
        } else if fields.is_empty() {
            format!("`{}`", c.name)
        } else {
            format!("`{}`: {}", c.name, fields.join(", "))
        };
        line(
            &mut o,
            &format!(
                "| {what} | {} | {} | {} |",
                period_text(c.retain, zh),
                anchor_text(c.after, zh),
                c.basis.replace('|', "/")
            ),
        );
    }
    let restricted: Vec<String> = policies
        .access
        .purposes
        .values()
        .filter(|p| p.restricted_access)
        .map(|p| format!("`{}`", p.name))
        .collect();
    let staged: Vec<_> = policies
        .retention
        .classes
        .values()
        .filter(|c| !c.stages.is_empty())
        .collect();
    if !staged.is_empty() {
        line(&mut o, "");
        line(&mut o, w.stages);
        line(&mut o, "");
        for c in staged {
            let mut steps = Vec::new();
            for st in &c.stages {
                let from = format!(
                    "{} + {}",
                    anchor_text(c.after, zh),
                    period_text(st.after, zh)
                );
                steps.push(match st.action {
                    super::stages::StageAction::Restrict => {
                        format!("{from} {} {}", w.stage_restrict, restricted.join(", "))
                    }
                    super::stages::StageAction::Pseudonymize => format!(
                        "{from} {} {}",
                        w.stage_pseudonymize,
                        st.fields
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            steps.push(format!(
                "{} + {}: {}",
                anchor_text(c.after, zh),
                period_text(c.retain, zh),
                w.stage_end
            ));
            line(&mut o, &format!("- `{}`: {}", c.name, steps.join("; ")));
        }
    }
    if !policies.access.hold_reasons.is_empty() {
        line(&mut o, "");
        line(&mut o, &format!("## {}", w.holds));
        line(&mut o, "");
        line(&mut o, w.holds_text);
        line(&mut o, "");
        for r in policies.access.hold_reasons.values() {
            line(&mut o, &format!("- `{}`: {}", r.code, r.description));
        }
    }
    render_minors(policies, w, &mut o);
    line(&mut o, "");
    line(&mut o, &format!("## {}", w.sensitive));
    line(&mut o, "");
    let sensitive: Vec<String> = [FieldScope::Guest, FieldScope::Stay]
        .into_iter()
        .flat_map(|scope| {
            policies
                .catalog
                .fields(scope)
                .filter(|f| f.is_sensitive())
                .map(move |f| format!("`{}.{}`", scope.table(), f.name))
        })
        .collect();
    line(
        &mut o,
        &format!("{} {}.", w.sensitive_text, sensitive.join(", ")),
    );
    line(&mut o, "");
    line(&mut o, &format!("## {}", w.rights));
    line(&mut o, "");
    for r in w.rights_list {
        line(&mut o, &format!("- {r}"));
    }
    line(&mut o, "");
    line(&mut o, w.changes);
    Some(o)
}

/// The minors' section (PIPL Art. 28, 31; REQ-10): the vault applies these rules to every
/// guest whose age it derives, so the section is written whenever the catalog holds a field
/// the age comes from; what it says about marketing follows `[minors]`.
fn render_minors(policies: &super::Policies, w: &Words, o: &mut String) {
    let catalog = &policies.catalog;
    let has = |f: &str| catalog.get(FieldScope::Guest, f).is_some();
    if !has("birth_date") && !has("id_number") {
        return;
    }
    let mut line = |s: &str| {
        o.push_str(s);
        o.push('\n');
    };
    line("");
    line(&format!("## {}", w.minors));
    line("");
    line(&format!("- {}", w.minors_age));
    line(&format!("- {}", w.minors_sensitive));
    line(&format!("- {}", w.minors_consent));
    let minors = &policies.access.minors;
    let marketing: Vec<String> = minors
        .marketing_purposes
        .iter()
        .filter(|p| policies.access.purposes.contains_key(*p))
        .map(|p| format!("`{p}`"))
        .collect();
    if !marketing.is_empty() {
        let head = if minors.allow_marketing_under_14 {
            w.minors_marketing_allowed
        } else {
            w.minors_marketing_refused
        };
        line(&format!("- {head} {}", marketing.join(", ")));
    }
    let guardian: Vec<String> = ["guardian_name", "guardian_mobile", "accompanied_by"]
        .into_iter()
        .filter(|f| has(f))
        .map(|f| format!("`{f}`"))
        .collect();
    if !guardian.is_empty() {
        line(&format!(
            "- {} {}",
            w.minors_registration,
            guardian.join(", ")
        ));
    }
    line(&format!("- {}", w.minors_fourteen));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policies, Sources};

    /// `notices.toml` with `edit` applied to the latest version's part only (2026-12, last).
    fn in_latest(notices: &str, edit: impl FnOnce(&str) -> String) -> String {
        let start = notices
            .find("[notices.\"2026-12\"]")
            .expect("2026-12 registered");
        format!("{}{}", &notices[..start], edit(&notices[start..]))
    }

    /// REQ-08, REQ-23, REQ-10: the rendered notice describes the identity stages, every
    /// legal-hold reason, and the minors' rules (guardian consent, under-14 sensitivity,
    /// marketing as `[minors]` says, the under-18 registration fields), in both languages.
    #[test]
    fn req08_the_rendered_notice_has_the_stages_the_holds_and_a_minors_section() {
        let p = Policies::load(None).unwrap();
        for (lang, minors_head, guardian, sensitive, refused) in [
            (
                "en",
                "## Processing rules for minors",
                "separate consent of a parent or other guardian",
                "All personal data of a guest under 14 is treated as sensitive",
                "never used for these marketing purposes, even with a guardian's consent: `marketing`",
            ),
            (
                "zh-CN",
                "## 未成年人个人信息的处理规则",
                "须取得其父母或者其他监护人的单独同意",
                "不满十四周岁的未成年人的全部个人信息均作为敏感个人信息处理",
                "即使监护人同意，也不用于以下营销目的： `marketing`",
            ),
        ] {
            let text = render(&p, lang).unwrap();
            let start = text.find(minors_head).unwrap_or_else(|| panic!("{lang}: no minors section"));
            let rest = &text[start + 3..];
            let minors = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
            for want in [guardian, sensitive, refused, "`guardian_name`", "`guardian_mobile`", "`accompanied_by`"] {
                assert!(minors.contains(want), "{lang}: `{want}` missing:\n{minors}");
            }
            for h in p.access.hold_reasons.keys() {
                assert!(text.contains(&format!("- `{h}`: ")), "{lang}: hold `{h}`");
            }
            let stages = text
                .lines()
                .find(|l| l.starts_with("- `identity`: "))
                .unwrap_or_else(|| panic!("{lang}: no stages line"));
            assert!(stages.contains("`id_number`") && stages.contains("`police_report`"), "{stages}");
            assert!(stages.contains(&period_text(Period::Days(30), lang == "zh-CN")), "{stages}");
        }
        // Allowing marketing to children changes what the section says.
        let allowed = load_with(|s| {
            s.access.1 = s.access.1.replacen(
                "allow_marketing_under_14 = false",
                "allow_marketing_under_14 = true",
                1,
            )
        });
        // The shipped notice then no longer renders as registered, but the policy loads.
        let allowed = allowed.unwrap();
        let text = render(&allowed, "en").unwrap();
        assert!(
            text.contains("only with a guardian's separate consent: `marketing`"),
            "{text}"
        );
        assert!(!text.contains("never used for these marketing purposes"));
    }

    /// REQ-08, REQ-23: the latest notice must disclose every legal-hold reason and the stages
    /// of each class exactly as retention.toml sets them; the problem names file and key.
    #[test]
    fn req08_a_notice_without_the_holds_or_the_stages_is_refused_by_key() {
        let errs = load_with(|s| {
            s.notices.1 = in_latest(&s.notices.1, |l| l.replacen("\"litigation\", ", "", 1))
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("`notices.\"2026-12\".holds`") && e.contains("`litigation`")),
            "{errs:?}"
        );
        let errs = load_with(|s| {
            s.notices.1 = in_latest(&s.notices.1, |l| {
                l.replacen(
                    ", { after = \"1y\", action = \"pseudonymize\", fields = [\"id_number\"] }",
                    "",
                    1,
                )
            })
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("`notices.\"2026-12\".stages.identity`")
                    && e.contains("pseudonymize after 1y")),
            "{errs:?}"
        );
        // A stage moved in retention.toml needs a new notice too.
        let errs = load_with(|s| {
            s.retention.1 = s
                .retention
                .1
                .replacen("after = \"30d\"", "after = \"60d\"", 1)
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("`notices.\"2026-12\".stages.identity`")),
            "{errs:?}"
        );
        let errs = load_with(|s| {
            s.notices.1 = in_latest(&s.notices.1, |l| {
                l.replacen("\"regulator_inquiry\"", "\"gossip\"", 1)
            })
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("unknown hold reason `gossip`")),
            "{errs:?}"
        );
        // The older version is not held to the current policy: 2026-11 names no stages.
        assert!(Policies::load(None)
            .unwrap()
            .notices
            .get("2026-11")
            .unwrap()
            .stages
            .is_empty());
    }

    fn load_with(edit: impl FnOnce(&mut Sources)) -> Result<Policies, Vec<String>> {
        let mut s = Sources::embedded();
        edit(&mut s);
        Policies::from_sources(&s).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    /// The section of one purpose in a rendered notice: from its heading to the next one.
    fn section<'a>(text: &'a str, purpose: &str) -> &'a str {
        let head = format!("### `{purpose}`\n");
        let start = text
            .find(&head)
            .unwrap_or_else(|| panic!("no section for purpose `{purpose}`"));
        let rest = &text[start + head.len()..];
        let end = rest.find("\n#").unwrap_or(rest.len());
        &rest[..end]
    }

    /// REQ-08: the rendered notice names every purpose that processes data with each of its
    /// fields, stay fields and recipients, and every retention class with its period; it fails
    /// when any is missing, in both languages.
    #[test]
    fn req08_the_rendered_notice_names_every_purpose_field_recipient_and_period() {
        let p = Policies::load(None).unwrap();
        for lang in LANGUAGES {
            let text = render(&p, lang).unwrap();
            let mut checked = 0;
            for purpose in p.access.purposes.values() {
                if purpose.fields.is_empty() && purpose.stay_fields.is_empty() {
                    continue;
                }
                let s = section(&text, &purpose.name);
                for f in purpose
                    .fields
                    .iter()
                    .chain(&purpose.stay_fields)
                    .chain(&purpose.recipients)
                {
                    assert!(
                        s.contains(&format!("`{f}`")),
                        "{lang}: `{f}` missing from `{}`:\n{s}",
                        purpose.name
                    );
                    checked += 1;
                }
                let basis = basis_text(purpose.basis, lang == "zh-CN");
                assert!(s.contains(basis), "{lang}: basis of `{}`", purpose.name);
            }
            assert!(checked > 40, "{checked}");
            assert!(p.access.purposes["police_report"]
                .recipients
                .contains("public_security_bureau"));
            for class in p.retention.classes.values() {
                let row = text
                    .lines()
                    .find(|l| l.starts_with(&format!("| `{}`", class.name)))
                    .unwrap_or_else(|| panic!("{lang}: no row for class `{}`", class.name));
                assert!(
                    row.contains(&period_text(class.retain, lang == "zh-CN")),
                    "{lang}: {row}"
                );
            }
            assert!(text.contains(&p.notices.handler.contact), "{lang}");
        }
        assert!(render(&p, "fr").is_none());
    }

    /// REQ-08: the shipped texts of the latest version are what `notice render` writes from the
    /// shipped policy. A policy change without a new rendered notice fails here.
    #[test]
    fn req08_the_shipped_notice_texts_are_the_rendered_policy() {
        let p = Policies::load(None).unwrap();
        let latest = p.notices.latest().unwrap();
        assert_eq!(latest.texts.len(), LANGUAGES.len());
        for (lang, t) in &latest.texts {
            let shipped = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("policies")
                    .join(&t.file),
            )
            .unwrap();
            assert_eq!(
                shipped,
                render(&p, lang).unwrap(),
                "{}: re-render it and register a new version",
                t.file
            );
        }
    }

    /// REQ-06: widening a purpose's fields or recipients leaves the older version not covering
    /// it; an unregistered version covers nothing.
    #[test]
    fn req06_a_version_covers_a_purpose_only_while_it_discloses_its_fields_and_recipients() {
        let p = Policies::load(None).unwrap();
        assert!(p.notices.consent_covers("marketing", Some("2026-11")));
        assert!(!p.notices.consent_covers("marketing", Some("2025-01")));
        assert!(!p.notices.consent_covers("marketing", None));
        let mut m = p.access.purposes["marketing"].clone();
        let n = p.notices.get("2026-11").unwrap();
        assert!(n.covers(&m));
        m.recipients.insert("partner_airline".into());
        assert!(!n.covers(&m), "a new recipient needs a new notice");
        let mut m = p.access.purposes["marketing"].clone();
        m.stay_fields.insert("room_type".into());
        assert!(!n.covers(&m), "a new stay field needs a new notice");
    }

    /// REQ-08: the latest notice must disclose what the policy enforces; the problem names
    /// file and key. A text whose hash does not match, or an unknown field, is refused too.
    #[test]
    fn req08_a_notice_that_discloses_less_than_the_policy_is_refused_by_key() {
        let errs = load_with(|s| {
            s.notices.1 = in_latest(&s.notices.1, |l| {
                l.replacen(
                    "fields = [\"full_name\", \"email\", \"mobile\", \"birth_date\", \"membership_level\"]",
                    "fields = [\"full_name\", \"email\", \"mobile\", \"membership_level\"]",
                    1,
                )
            })
        })
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e
                .contains("notices.toml: `notices.\"2026-12\".purposes.marketing.fields`")
                && e.contains("`birth_date`")),
            "{errs:?}"
        );
        let errs = load_with(|s| {
            s.retention.1 = s
                .retention
                .1
                .replacen("retain = \"1y\"", "retain = \"2y\"", 1)
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("`notices.\"2026-12\".retention.contact`")),
            "{errs:?}"
        );
        let errs = load_with(|s| {
            s.access.1 = s.access.1.replacen(
                "recipients = [\"public_security_bureau\"]",
                "recipients = [\"public_security_bureau\", \"tour_operator\"]",
                1,
            )
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("purposes.police_report.recipients")
                    && e.contains("`tour_operator`")),
            "{errs:?}"
        );
        let errs = load_with(|s| {
            if let Some(Ok(t)) = s.notice_texts.get_mut("notices/2026-11.en.md") {
                t.push(b'\n');
            }
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("`notices.\"2026-11\".texts.en.sha256` does not match")),
            "{errs:?}"
        );
        let errs = load_with(|s| {
            s.notices.1 = s.notices.1.replacen(
                "stay_fields = [\"room_type\"]",
                "stay_fields = [\"room_type\", \"religion\"]",
                1,
            )
        })
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("unknown stay field `religion`")),
            "{errs:?}"
        );
        let errs = load_with(|s| s.notice_texts.clear()).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("texts.zh-CN.file")),
            "{errs:?}"
        );
    }
}
