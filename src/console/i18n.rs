//! The console's words: one table per language (简体中文 and English), each an exhaustive
//! `match`, so a string missing from either language does not compile. The language comes
//! from the `gv_lang` cookie (set by the switch), else `Accept-Language`, else Chinese.

/// A console language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// The `lang` attribute and the cookie value.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }

    pub fn from_tag(s: &str) -> Option<Self> {
        match s {
            "zh-CN" => Some(Self::Zh),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// The first language of an `Accept-Language` header (by q-value, then order) that the
    /// console speaks; Chinese when none.
    pub fn from_accept_language(header: Option<&str>) -> Self {
        let mut best: Option<(u32, usize, Self)> = None;
        for (i, item) in header.unwrap_or("").split(',').enumerate().take(32) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let q = (q.clamp(0.0, 1.0) * 1000.0) as u32;
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Self::Zh
            } else if tag == "en" || tag.starts_with("en-") {
                Self::En
            } else {
                continue;
            };
            if q == 0 {
                continue;
            }
            if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map_or(Self::Zh, |(_, _, l)| l)
    }

    /// The other language (the switch offers it).
    pub fn other(self) -> Self {
        match self {
            Self::Zh => Self::En,
            Self::En => Self::Zh,
        }
    }

    /// The language's own name, as the switch shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Zh => "简体中文",
            Self::En => "English",
        }
    }

    pub fn t(self, m: Msg) -> &'static str {
        match self {
            Self::Zh => zh(m),
            Self::En => en(m),
        }
    }
}

/// Every label, message and error the console shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    AppName,
    Home,
    AuditTrail,
    SignIn,
    SignOut,
    SignInIntro,
    TokenLabel,
    TokenHelp,
    SignedInAs,
    Role,
    SessionEnds,
    TokenRejected,
    RoleHasNoPages,
    CsrfRefused,
    RateLimited,
    Forbidden,
    NotFound,
    AuditUnavailable,
    VerifyInProgress,
    InternalError,
    InvalidInput,
    Field,
    Problem,
    YourPages,
    NoPagesYet,
    ChainStatus,
    EventsStored,
    HeadSeq,
    LastCheckpoint,
    SignedAt,
    NoCheckpoint,
    VerifyNow,
    VerifyFull,
    VerifyResult,
    Intact,
    Broken,
    EventsChecked,
    CheckpointsChecked,
    RangeChecked,
    FirstBadSeq,
    Mode,
    Filters,
    Since,
    Until,
    Actor,
    Action,
    Outcome,
    GuestId,
    Any,
    Search,
    ExportJsonl,
    ExportCsv,
    ExportHelp,
    NextPage,
    NoEvents,
    Seq,
    Time,
    Purpose,
    Reason,
    Details,
    EventDetail,
    RequestId,
    Fields,
    Rules,
    Justification,
    ValueHashes,
    PrevHash,
    Hash,
    PublicKey,
    PublicKeyJson,
    PublicKeyPem,
    PublicKeyHelp,
    KeyId,
    Allowed,
    Denied,
    Error,
    Yes,
    No,
    Language,
    BackToTrail,
    Skip,
    ChinaTime,
    NotBuiltNote,
    Overview,
    Policy,
    Operations,
}

fn en(m: Msg) -> &'static str {
    use Msg::*;
    match m {
        AppName => "GuestVault console",
        Home => "Home",
        AuditTrail => "Audit trail",
        SignIn => "Sign in",
        SignOut => "Sign out",
        SignInIntro => "Paste the bearer token your identity provider issued you. The console keeps it for no longer than the token is valid.",
        TokenLabel => "Bearer token",
        TokenHelp => "The token is sent once, by POST, and verified exactly as the API verifies it.",
        SignedInAs => "Signed in as",
        Role => "Role",
        SessionEnds => "Session ends",
        TokenRejected => "The token was not accepted (expired, wrong issuer or audience, or not signed by a trusted key).",
        RoleHasNoPages => "This role has no console pages. Use the API or ask an administrator for a role that has.",
        CsrfRefused => "The form expired or did not come from this console. Reload the page and try again.",
        RateLimited => "Too many attempts. Wait a minute and try again.",
        Forbidden => "Your role may not open this page or do this action.",
        NotFound => "Not found.",
        AuditUnavailable => "The audit trail cannot be written right now, so nothing was shown or changed. Try again later.",
        VerifyInProgress => "A verification is already running. Try again when it has finished.",
        InternalError => "Something went wrong on the server. Nothing was changed.",
        InvalidInput => "Some values were not accepted.",
        Field => "Field",
        Problem => "Problem",
        YourPages => "Your pages",
        NoPagesYet => "No page is built yet for this role.",
        ChainStatus => "Chain status",
        EventsStored => "Events stored",
        HeadSeq => "Newest event",
        LastCheckpoint => "Last signed checkpoint",
        SignedAt => "signed at",
        NoCheckpoint => "none yet",
        VerifyNow => "Verify now",
        VerifyFull => "Verify the whole trail",
        VerifyResult => "Verification result",
        Intact => "Intact",
        Broken => "BROKEN",
        EventsChecked => "Events checked",
        CheckpointsChecked => "Checkpoints checked",
        RangeChecked => "Range checked",
        FirstBadSeq => "First bad event",
        Mode => "Mode",
        Filters => "Filters",
        Since => "From (date, China time)",
        Until => "To (date, inclusive)",
        Actor => "Actor",
        Action => "Action",
        Outcome => "Outcome",
        GuestId => "Guest id",
        Any => "any",
        Search => "Search",
        ExportJsonl => "Export JSONL (signed)",
        ExportCsv => "Export CSV (signed)",
        ExportHelp => "Exports cover the filters above and end with a signed checkpoint; check them with `guestvault audit verify`.",
        NextPage => "Next page",
        NoEvents => "No event matches.",
        Seq => "Seq",
        Time => "Time (China)",
        Purpose => "Purpose",
        Reason => "Reason",
        Details => "Details",
        EventDetail => "Audit event",
        RequestId => "Request id",
        Fields => "Fields",
        Rules => "Rules",
        Justification => "Justification",
        ValueHashes => "Value hashes",
        PrevHash => "Previous hash",
        Hash => "Hash",
        PublicKey => "Audit public key",
        PublicKeyJson => "Download (JSON)",
        PublicKeyPem => "Download (PEM)",
        PublicKeyHelp => "Give the key to the auditor by a channel other than the export itself.",
        KeyId => "Key id",
        Allowed => "allowed",
        Denied => "denied",
        Error => "error",
        Yes => "yes",
        No => "no",
        Language => "Language",
        BackToTrail => "Back to the trail",
        Skip => "Skip to content",
        ChinaTime => "China Standard Time (UTC+8)",
        Overview => "Overview",
        Policy => "Policy",
        Operations => "Operations",
        NotBuiltNote => "Data-subject requests and guest lookup are not in the console yet: use the API or the CLI for them.",
    }
}

fn zh(m: Msg) -> &'static str {
    use Msg::*;
    match m {
        AppName => "GuestVault 合规控制台",
        Home => "首页",
        AuditTrail => "审计日志",
        SignIn => "登录",
        SignOut => "退出登录",
        SignInIntro => {
            "请粘贴身份提供方签发给您的 Bearer 令牌。控制台保留会话的时间不超过令牌的有效期。"
        }
        TokenLabel => "Bearer 令牌",
        TokenHelp => "令牌仅以 POST 方式发送一次，并按与 API 完全相同的方式校验。",
        SignedInAs => "当前用户",
        Role => "角色",
        SessionEnds => "会话结束时间",
        TokenRejected => "令牌未被接受（已过期、签发方或受众不符，或未由受信任的密钥签名）。",
        RoleHasNoPages => "该角色没有控制台页面。请使用 API，或请管理员分配具有相应权限的角色。",
        CsrfRefused => "表单已过期或并非来自本控制台。请刷新页面后重试。",
        RateLimited => "尝试次数过多。请稍候一分钟再试。",
        Forbidden => "您的角色无权打开此页面或执行此操作。",
        NotFound => "未找到。",
        AuditUnavailable => "审计日志当前无法写入，因此未显示或更改任何内容。请稍后重试。",
        VerifyInProgress => "已有校验正在进行。请在其完成后重试。",
        InternalError => "服务器出错，未做任何更改。",
        InvalidInput => "部分输入值未被接受。",
        Field => "字段",
        Problem => "问题",
        YourPages => "您的页面",
        NoPagesYet => "该角色的页面尚未建成。",
        ChainStatus => "哈希链状态",
        EventsStored => "已存事件数",
        HeadSeq => "最新事件",
        LastCheckpoint => "最近的签名检查点",
        SignedAt => "签名时间",
        NoCheckpoint => "暂无",
        VerifyNow => "立即校验",
        VerifyFull => "校验整条日志",
        VerifyResult => "校验结果",
        Intact => "完整",
        Broken => "已损坏",
        EventsChecked => "已校验事件数",
        CheckpointsChecked => "已校验检查点数",
        RangeChecked => "校验范围",
        FirstBadSeq => "首个异常事件",
        Mode => "模式",
        Filters => "筛选条件",
        Since => "起始日期（北京时间）",
        Until => "截止日期（含当日）",
        Actor => "操作者",
        Action => "操作",
        Outcome => "结果",
        GuestId => "客人 ID",
        Any => "全部",
        Search => "查询",
        ExportJsonl => "导出 JSONL（已签名）",
        ExportCsv => "导出 CSV（已签名）",
        ExportHelp => {
            "导出内容按上方筛选条件生成，并以签名检查点结尾；可用 `guestvault audit verify` 校验。"
        }
        NextPage => "下一页",
        NoEvents => "没有符合条件的事件。",
        Seq => "序号",
        Time => "时间（北京）",
        Purpose => "目的",
        Reason => "原因",
        Details => "详情",
        EventDetail => "审计事件",
        RequestId => "请求 ID",
        Fields => "字段",
        Rules => "规则",
        Justification => "理由",
        ValueHashes => "值哈希",
        PrevHash => "前一哈希",
        Hash => "哈希",
        PublicKey => "审计公钥",
        PublicKeyJson => "下载（JSON）",
        PublicKeyPem => "下载（PEM）",
        PublicKeyHelp => "请通过与导出文件不同的渠道将公钥交给审计人员。",
        KeyId => "密钥 ID",
        Allowed => "允许",
        Denied => "拒绝",
        Error => "错误",
        Yes => "是",
        No => "否",
        Language => "语言",
        BackToTrail => "返回审计日志",
        Skip => "跳到正文",
        ChinaTime => "中国标准时间（UTC+8）",
        Overview => "概览",
        Policy => "访问策略",
        Operations => "运维",
        NotBuiltNote => "数据主体请求和客人查询尚未加入控制台：请使用 API 或命令行。",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Lang::from_accept_language(None), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::from_accept_language(Some("fr-FR, en;q=0.5, zh-CN;q=0.8")),
            Lang::Zh
        );
        assert_eq!(
            Lang::from_accept_language(Some("de, en-GB;q=0.3")),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language(Some("zh;q=0, en")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("de")), Lang::Zh);
    }

    #[test]
    fn tags_round_trip() {
        for l in [Lang::Zh, Lang::En] {
            assert_eq!(Lang::from_tag(l.tag()), Some(l));
        }
        assert_eq!(Lang::from_tag("fr"), None);
    }
}
