//! Display masking (脱敏) for guest personal information.
//!
//! Spec: `pipl-requirements.md` §4 ("Vault default" column). API responses
//! are masked by default and plaintext needs an audited `:reveal` (REQ-13);
//! masks also follow the minimization rules of REQ-14 (a resident ID never
//! shows its birth date, a 3-character Han name never shows all 3).
//!
//! Every function is total: it works on `char`s, never on byte offsets of
//! unvalidated text, so no input can make it panic. Input that does not have
//! the expected shape is masked *more*, never less. Empty (or all-whitespace)
//! input gives an empty string: there is nothing to hide.
//!
//! This module does not depend on the validators; it is meant for values
//! that were normalized on the way in, but stays safe if they were not.

use std::str::FromStr;

/// Fixed mask used where even the length of the value should stay hidden.
const STARS: &str = "****";

/// Fixed 8-star tail for addresses: hides how long the detail part was
/// (Hutool `address(str, 8)` style, §4).
const ADDRESS_TAIL: &str = "********";

/// Middle dot of transliterated and minority names (麦麦提·艾力).
const MIDDLE_DOT: char = '\u{00B7}';

/// Separators of dotted names, all shown as [`MIDDLE_DOT`]: the middle dot, the bullet, the
/// katakana and half-width katakana middle dots, the hyphenation point.
const NAME_DOTS: [char; 5] = [MIDDLE_DOT, '\u{2022}', '\u{30FB}', '\u{FF65}', '\u{2027}'];

/// Common two-character (compound) surnames, simplified and traditional: kept whole in a
/// mask so staff can still address the guest (欧阳女士), issue 12 point 8.
const COMPOUND_SURNAMES: [&str; 72] = [
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "令狐", "端木", "独孤", "南宫", "西门", "轩辕", "百里", "呼延", "澹台", "公冶", "太史",
    "申屠", "钟离", "闻人", "赫连", "拓跋", "万俟", "濮阳", "淳于", "单于", "东郭", "司空", "宗政",
    "仲孙", "鲜于", "闾丘", "子车", "亓官", "司寇", "巫马", "公西", "颛孙", "壤驷", "公良", "漆雕",
    "乐正", "宰父", "谷梁", "段干", "左丘", "东门", "梁丘", "羊舌", "微生", "第五", "歐陽", "司馬",
    "諸葛", "東方", "長孫", "獨孤", "南宮", "西門", "軒轅", "鍾離", "聞人", "赫連", "萬俟", "單于",
];

/// How many leading characters of a Han name are its surname: 2 for a known compound
/// surname when the name has at least 3 characters (欧阳 alone is more likely 欧 + 阳), else 1.
fn surname_len(chars: &[char]) -> usize {
    if chars.len() >= 3 {
        let head: String = chars[..2].iter().collect();
        if COMPOUND_SURNAMES.contains(&head.as_str()) {
            return 2;
        }
    }
    1
}

/// How a field is shown by default (its `mask_policy` in the schema, REQ-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    Mobile,
    IdNumber,
    Name,
    Email,
    Address,
    Document,
    BirthDate,
    Redact,
    None,
}

impl FromStr for MaskKind {
    type Err = ();

    /// Parses the schema spelling (`"id_number"` etc.). Unknown names are an
    /// error so a typo in the schema cannot silently mean "no mask".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "mobile" => Self::Mobile,
            "id_number" => Self::IdNumber,
            "name" => Self::Name,
            "email" => Self::Email,
            "address" => Self::Address,
            "document" => Self::Document,
            "birth_date" => Self::BirthDate,
            "redact" => Self::Redact,
            "none" => Self::None,
            _ => return Err(()),
        })
    }
}

impl MaskKind {
    /// Masks `value` according to this policy.
    ///
    /// `IdNumber` covers every identity document: a value shaped like an
    /// 18-character resident ID (17 digits, then a digit or `X`) gets the
    /// resident-ID mask that hides the birth date (REQ-14); anything else
    /// gets the document mask.
    pub fn apply(self, value: &str) -> String {
        match self {
            Self::Mobile => mask_mobile(value),
            Self::IdNumber if looks_like_resident_id(value) => mask_resident_id(value),
            Self::IdNumber | Self::Document => mask_document(value),
            Self::Name => mask_name(value),
            Self::Email => mask_email(value),
            Self::Address => mask_address(value),
            Self::BirthDate => mask_birth_date(value),
            Self::Redact => STARS.to_owned(),
            Self::None => value.to_owned(),
        }
    }

    /// The schema spelling, inverse of [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::IdNumber => "id_number",
            Self::Name => "name",
            Self::Email => "email",
            Self::Address => "address",
            Self::Document => "document",
            Self::BirthDate => "birth_date",
            Self::Redact => "redact",
            Self::None => "none",
        }
    }
}

fn looks_like_resident_id(value: &str) -> bool {
    let b = value.trim().as_bytes();
    b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && matches!(b[17], b'0'..=b'9' | b'X' | b'x')
}

/// Han ideographs (same ranges as the name validator): CJK Unified
/// Ideographs, Ext A, compatibility ideographs, U+20000–U+2FA1F and
/// U+30000–U+323AF.
fn is_han(c: char) -> bool {
    matches!(
        c,
        '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{2FA1F}'
            | '\u{30000}'..='\u{323AF}'
    )
}

/// `first` kept characters, then stars, then `last` kept characters, with the
/// total length unchanged. Callers guarantee `first + last < chars.len()`.
fn keep_ends(chars: &[char], first: usize, last: usize) -> String {
    let n = chars.len();
    let stars = n.saturating_sub(first + last);
    let tail = n.saturating_sub(last);
    chars
        .iter()
        .take(first)
        .copied()
        .chain(std::iter::repeat_n('*', stars))
        .chain(chars.iter().skip(tail.max(first)).copied())
        .collect()
}

/// Mobile number in E.164 (§4): `+8613812345678` → `+86 138****5678`, the
/// Alibaba convention of hiding the middle 4 digits with the country code
/// kept. Other countries: `+` + first 2 digits + ` ****` + last 4; with fewer
/// than 7 digits only `****`. A bare 11-digit mainland number (e.g. found in
/// free text, REQ-46) gives `138****5678`. Anything else gives `****`.
pub fn mask_mobile(e164: &str) -> String {
    let s: String = e164
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if s.is_empty() {
        return String::new();
    }
    let (plus, digits) = match s.strip_prefix('+') {
        Some(d) => (true, d),
        None => (false, s.as_str()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return STARS.to_owned();
    }
    // All ASCII digits from here on, so byte offsets are char offsets.
    let cn = |n: &str| n.len() == 11 && n.starts_with('1');
    if let Some(n) = digits.strip_prefix("86").filter(|n| plus && cn(n)) {
        format!("+86 {}****{}", &n[..3], &n[7..])
    } else if plus && digits.len() >= 7 {
        format!("+{} ****{}", &digits[..2], &digits[digits.len() - 4..])
    } else if !plus && cn(digits) {
        format!("{}****{}", &digits[..3], &digits[7..])
    } else {
        STARS.to_owned()
    }
}

/// Resident ID (§4, Hutool `ID_CARD`): first 1 + stars + last 2, same total
/// length, e.g. `1***************7X`. REQ-14: positions 7–14 (the birth
/// date) are never shown. Surrounding whitespace is dropped; values of 6
/// characters or fewer are all stars.
pub fn mask_resident_id(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    match chars.len() {
        0..=6 => "*".repeat(chars.len()),
        _ => keep_ends(&chars, 1, 2),
    }
}

/// Passport and permit numbers (§4 business choice): up to 2 leading ASCII
/// letters (the document kind, not identifying) + stars + last 3, same
/// length: `E12345678` → `E*****678`. At most 4 characters: all stars;
/// 5–6 characters: only the last 2 kept, so at least half stays hidden.
pub fn mask_document(doc: &str) -> String {
    let chars: Vec<char> = doc.trim().chars().collect();
    match chars.len() {
        0..=4 => "*".repeat(chars.len()),
        5 | 6 => keep_ends(&chars, 0, 2),
        _ => {
            let prefix = chars
                .iter()
                .take(2)
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            keep_ends(&chars, prefix, 3)
        }
    }
}

/// Han name rule (§4 vault default): `三` → `*`, `张三` → `张*` (surname
/// kept so staff can greet 张先生/张女士), `张三丰` → `张*丰`. A compound
/// surname is kept whole: `欧阳娜娜` → `欧阳**`, `司马相如啊` → `司马**啊`.
/// The last character is shown only while the mask shows at most half the
/// name (rounded up), so never more than the surname plus one character,
/// and never more than ⌈n/2⌉ of n ≥ 3 (REQ-14: at most 2 of 3).
fn mask_han(chars: &[char]) -> String {
    let n = chars.len();
    match n {
        0 | 1 => "*".repeat(n),
        2 => keep_ends(chars, 1, 0),
        _ => {
            let s = surname_len(chars);
            // Surname plus the last character must stay within half the name.
            let last = usize::from(s < n.div_ceil(2));
            keep_ends(chars, s, last)
        }
    }
}

/// A dotted name (`麦麦提·艾力`, `张三丰·A`): only the first character of the
/// first part is shown, every other character is a star and the dots are
/// kept: `麦**·**`. `None` unless at least two parts are non-empty.
fn mask_dotted(name: &str) -> Option<String> {
    let parts: Vec<Vec<char>> = name
        .split(NAME_DOTS)
        .map(|p| p.chars().filter(|c| !c.is_whitespace()).collect())
        .collect();
    if parts.iter().filter(|p| !p.is_empty()).count() < 2 || parts[0].is_empty() {
        return None;
    }
    let masked: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.iter()
                .enumerate()
                .map(|(j, &c)| if i == 0 && j == 0 { c } else { '*' })
                .collect()
        })
        .collect();
    Some(masked.join(&MIDDLE_DOT.to_string()))
}

/// Guest name (§4). Dotted names use [`mask_dotted`]; pure Han names the Han
/// rule above. Other names show the initial of the first and the last word
/// only, each followed by a fixed `***` that hides its length; one-letter
/// words and the words between are `***`: `John Smith` → `J*** S***`,
/// `John Ronald Reuel Tolkien` → `J*** *** *** T***`.
pub fn mask_name(name: &str) -> String {
    let name = name.trim();
    if let Some(masked) = mask_dotted(name) {
        return masked;
    }
    let letters: Vec<char> = name
        .chars()
        .filter(|c| !c.is_whitespace() && !NAME_DOTS.contains(c))
        .collect();
    if letters.iter().all(|&c| is_han(c)) {
        return mask_han(&letters);
    }
    let words: Vec<&str> = name
        .split(|c: char| c.is_whitespace() || NAME_DOTS.contains(&c))
        .filter(|w| !w.is_empty())
        .collect();
    let last = words.len().saturating_sub(1);
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut chars = w.chars();
            match (chars.next(), chars.next()) {
                (Some(c), Some(_)) if i == 0 || i == last => format!("{c}***"),
                _ => "***".to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// E-mail (§4): first character of the local part + fixed `****` + `@domain`:
/// `david@example.com` → `d****@example.com`. The mask has a fixed length so
/// the local part's length is hidden. Without an `@domain`: `****`.
pub fn mask_email(email: &str) -> String {
    let email = email.trim();
    if email.is_empty() {
        return String::new();
    }
    match email.rsplit_once('@') {
        Some((local, domain)) if !domain.is_empty() => {
            let first: String = local.chars().take(1).collect();
            format!("{first}****@{domain}")
        }
        _ => STARS.to_owned(),
    }
}

/// End (exclusive, in chars) of the administrative prefix of a Chinese
/// address, if one can be found.
///
/// The first district-level marker (区, 县, 旗) wins; failing that the last
/// 市, failing that the first 省. Only markers before the first digit count
/// (digits start the house number, which is detail). Words that contain a
/// marker but are not administrative units are skipped so the detail is
/// not shown: 自治区 and 特别行政区 (province level), 小区 and 社区
/// (residential compounds), 市场, 超市 and 门市 (shops).
fn chinese_admin_prefix(chars: &[char]) -> Option<usize> {
    let end = chars
        .iter()
        .position(|c| c.is_ascii_digit() || ('０'..='９').contains(c))
        .unwrap_or(chars.len());
    let head = &chars[..end];
    let prev = |i: usize, k: usize| i.checked_sub(k).and_then(|j| head.get(j)).copied();
    let next = |i: usize| head.get(i + 1).copied();
    let district = head.iter().enumerate().position(|(i, &c)| match c {
        '县' | '旗' => true,
        '区' => {
            let two = (prev(i, 2), prev(i, 1));
            !matches!(prev(i, 1), Some('小' | '社'))
                && !matches!(two, (Some('自'), Some('治')) | (Some('行'), Some('政')))
        }
        _ => false,
    });
    let city = || {
        head.iter().enumerate().rposition(|(i, &c)| {
            c == '市' && next(i) != Some('场') && !matches!(prev(i, 1), Some('超' | '门'))
        })
    };
    let province = || head.iter().position(|&c| c == '省');
    district.or_else(city).or_else(province).map(|i| i + 1)
}

/// Address (§4): show province / city / district, then a fixed
/// `********`: `北京市海淀区中关村大街1号` → `北京市海淀区********`. For
/// non-Chinese addresses, only the last comma-separated part (usually the
/// city or country) is kept: `221B Baker Street, London` →
/// `********, London`. Anything else is `********`.
pub fn mask_address(addr: &str) -> String {
    let addr = addr.trim();
    if addr.is_empty() {
        return String::new();
    }
    let chars: Vec<char> = addr.chars().collect();
    if chars.iter().any(|&c| is_han(c)) {
        let keep = chinese_admin_prefix(&chars).unwrap_or(0);
        let mut out: String = chars.iter().take(keep).collect();
        out.push_str(ADDRESS_TAIL);
        return out;
    }
    match addr.rsplit_once(',') {
        Some((_, last)) if !last.trim().is_empty() => {
            format!("{ADDRESS_TAIL}, {}", last.trim())
        }
        _ => ADDRESS_TAIL.to_owned(),
    }
}

/// Date of birth (§4): month and day only, for birthday greetings:
/// `1990-03-07` → `**-03-07`. The year (the age) stays hidden. Anything not
/// shaped `YYYY-MM-DD` is `****`.
pub fn mask_birth_date(date: &str) -> String {
    let d = date.trim();
    if d.is_empty() {
        return String::new();
    }
    let b = d.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    match d.get(5..) {
        Some(month_day) if shaped => format!("**-{month_day}"),
        _ => STARS.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_KINDS: [MaskKind; 9] = [
        MaskKind::Mobile,
        MaskKind::IdNumber,
        MaskKind::Name,
        MaskKind::Email,
        MaskKind::Address,
        MaskKind::Document,
        MaskKind::BirthDate,
        MaskKind::Redact,
        MaskKind::None,
    ];

    #[test]
    fn mask_kinds_round_trip_through_their_schema_names() {
        for kind in ALL_KINDS {
            assert_eq!(kind.as_str().parse::<MaskKind>(), Ok(kind));
        }
        assert_eq!("Mobile".parse::<MaskKind>(), Err(()));
        assert_eq!("".parse::<MaskKind>(), Err(()));
    }

    #[test]
    fn mainland_mobiles_keep_the_first_3_and_last_4_digits() {
        assert_eq!(mask_mobile("+8613812345678"), "+86 138****5678");
        assert_eq!(mask_mobile("13812345678"), "138****5678");
        assert_eq!(mask_mobile("+86 138-1234-5678"), "+86 138****5678");
    }

    #[test]
    fn other_mobiles_keep_2_leading_and_4_trailing_digits_or_nothing() {
        assert_eq!(mask_mobile("+442079460958"), "+44 ****0958");
        assert_eq!(mask_mobile("+1234567"), "+12 ****4567");
        assert_eq!(mask_mobile("+123456"), "****");
        assert_eq!(mask_mobile("not a number"), "****");
        assert_eq!(mask_mobile("+"), "****");
        assert_eq!(mask_mobile(""), "");
    }

    #[test]
    fn resident_ids_keep_only_the_first_and_last_two_characters() {
        assert_eq!(mask_resident_id("11010519491231002X"), "1***************2X");
        assert_eq!(mask_resident_id("110101199003074477"), "1***************77");
        assert_eq!(mask_resident_id("123"), "***");
    }

    #[test]
    fn documents_keep_their_letter_prefix_and_last_three() {
        let cases = [
            ("E12345678", "E*****678"),
            ("DE1234567", "DE****567"),
            ("H12345678", "H*****678"),
            ("ABC123456", "AB****456"),
            ("12345678", "*****678"),
            ("12345", "***45"),
            ("1234", "****"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(mask_document(input), want, "{input}");
        }
    }

    #[test]
    fn han_names_show_the_surname_and_at_most_the_last_character() {
        let cases = [
            ("张", "*"),
            ("张三", "张*"),
            ("张三丰", "张*丰"),
            ("欧阳娜娜", "欧阳**"),
            ("欧阳娜", "欧阳*"),
            ("欧阳娜娜娜", "欧阳**娜"),
            ("司马相如啊呀", "司马***呀"),
            ("諸葛亮", "諸葛*"),
            // Two characters are a surname and a given name, even if they spell a compound.
            ("欧阳", "欧*"),
            ("张三丰四", "张**四"),
            ("麦麦提·艾力", "麦**·**"),
            ("麦麦提•艾力", "麦**·**"),
            ("麦麦提・艾力", "麦**·**"),
            ("张三丰·A", "张**·*"),
            ("阿卜杜·热合曼·买买提", "阿**·***·***"),
            ("张三丰·", "张*丰"),
            ("·艾力", "艾*"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(mask_name(input), want, "{input}");
        }
    }

    #[test]
    fn latin_names_show_only_each_initial() {
        assert_eq!(mask_name("John Smith"), "J*** S***");
        assert_eq!(mask_name("  Mary-Jane   O'Brien "), "M*** O***");
        assert_eq!(mask_name("Иван"), "И***");
        assert_eq!(mask_name("John Ronald Reuel Tolkien"), "J*** *** *** T***");
        // A one-letter word would be shown whole: it is only stars.
        assert_eq!(mask_name("Li A"), "L*** ***");
        assert_eq!(mask_name("A"), "***");
    }

    #[test]
    fn emails_show_the_first_character_and_the_domain() {
        assert_eq!(mask_email("david@example.com"), "d****@example.com");
        assert_eq!(mask_email("d@example.com"), "d****@example.com");
        assert_eq!(mask_email("张伟@例子.中国"), "张****@例子.中国");
        assert_eq!(mask_email("no-at-sign"), "****");
        assert_eq!(mask_email("trailing@"), "****");
    }

    #[test]
    fn chinese_addresses_show_only_the_administrative_prefix() {
        let cases = [
            ("北京市海淀区中关村大街1号", "北京市海淀区********"),
            ("浙江省杭州市西湖区文三路", "浙江省杭州市西湖区********"),
            (
                "云南省丽江市玉龙纳西族自治县白沙镇",
                "云南省丽江市玉龙纳西族自治县********",
            ),
            (
                "广西壮族自治区南宁市青秀区民族大道100号",
                "广西壮族自治区南宁市青秀区********",
            ),
            (
                "香港特别行政区中西区皇后大道中",
                "香港特别行政区中西区********",
            ),
            (
                "江苏省苏州市昆山市前进路市场5号",
                "江苏省苏州市昆山市********",
            ),
            (
                "江苏省苏州市昆山市花园小区5栋",
                "江苏省苏州市昆山市********",
            ),
            ("广东省某镇某村", "广东省********"),
            ("某村某路8号", "********"),
            ("北京市朝阳区酒仙桥路4号798艺术区", "北京市朝阳区********"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_address(input), want, "{input}");
        }
    }

    #[test]
    fn other_addresses_show_only_the_last_comma_part() {
        assert_eq!(
            mask_address("221B Baker Street, London"),
            "********, London"
        );
        assert_eq!(
            mask_address("1 Main St, Springfield, USA "),
            "********, USA"
        );
        assert_eq!(mask_address("Baker Street"), "********");
        assert_eq!(mask_address("Baker Street, "), "********");
        assert_eq!(mask_address("  "), "");
    }

    #[test]
    fn birth_dates_show_month_and_day_only() {
        assert_eq!(mask_birth_date("1990-03-07"), "**-03-07");
        assert_eq!(mask_birth_date("1990/03/07"), "****");
        assert_eq!(mask_birth_date("1990-03-0７"), "****");
    }

    #[test]
    fn apply_routes_each_kind_to_its_mask() {
        assert_eq!(
            MaskKind::IdNumber.apply("11010519491231002X"),
            "1***************2X"
        );
        assert_eq!(
            MaskKind::IdNumber.apply("11010519491231002x"),
            "1***************2x"
        );
        assert_eq!(MaskKind::IdNumber.apply("E12345678"), "E*****678");
        assert_eq!(MaskKind::Document.apply("E12345678"), "E*****678");
        assert_eq!(MaskKind::Mobile.apply("+8613812345678"), "+86 138****5678");
        assert_eq!(MaskKind::Name.apply("张三"), "张*");
        assert_eq!(
            MaskKind::Email.apply("david@example.com"),
            "d****@example.com"
        );
        assert_eq!(MaskKind::BirthDate.apply("1990-03-07"), "**-03-07");
        assert_eq!(MaskKind::Address.apply("Baker Street"), "********");
        assert_eq!(MaskKind::Redact.apply("anything at all"), "****");
        assert_eq!(MaskKind::Redact.apply(""), "****");
        assert_eq!(MaskKind::None.apply("plain"), "plain");
    }

    fn check_char(body: &str) -> char {
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = body
            .chars()
            .zip(weights)
            .map(|(c, w)| c.to_digit(10).unwrap() * w)
            .sum();
        ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize]
    }

    /// Valid-shaped resident IDs: province 11–65, random area, a real date
    /// in 1900..=2020, random sequence, correct check character.
    fn resident_id() -> impl Strategy<Value = String> {
        (
            11u32..=65,
            0u32..10_000,
            1900i32..=2020,
            1u16..=365,
            0u32..1000,
        )
            .prop_map(|(province, area, year, ordinal, seq)| {
                let dob = time::Date::from_ordinal_date(year, ordinal).unwrap();
                let body = format!(
                    "{province:02}{area:04}{year:04}{:02}{:02}{seq:03}",
                    u8::from(dob.month()),
                    dob.day()
                );
                format!("{body}{}", check_char(&body))
            })
    }

    fn han_string(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<char>> {
        prop::collection::vec(0x4E00u32..=0x9FFF, len)
            .prop_map(|v| v.into_iter().filter_map(char::from_u32).collect())
    }

    /// Han names with and without a compound surname, dotted names, and Latin names.
    fn any_name() -> impl Strategy<Value = String> {
        let han = (
            prop::option::of(prop::sample::select(COMPOUND_SURNAMES.to_vec())),
            han_string(0..=6),
        )
            .prop_map(|(surname, rest)| {
                surname.unwrap_or_default().to_string() + &rest.into_iter().collect::<String>()
            });
        let part = prop_oneof![
            han_string(1..=4).prop_map(|v| v.into_iter().collect::<String>()),
            "[A-Za-z]{1,6}",
        ];
        let dotted = (
            prop::collection::vec(part, 2..=4),
            prop::sample::select(NAME_DOTS.to_vec()),
        )
            .prop_map(|(parts, dot)| parts.join(&dot.to_string()));
        let latin = prop::collection::vec("[A-Za-z'-]{1,8}", 1..=5).prop_map(|w| w.join(" "));
        prop_oneof![han, dotted, latin].prop_filter("non-empty", |s| !s.trim().is_empty())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn a_masked_resident_id_never_shows_the_birth_date(id in resident_id()) {
            // REQ-14: positions 7–14 (char indices 6..14) are always stars.
            let masked: Vec<char> = mask_resident_id(&id).chars().collect();
            prop_assert_eq!(masked.len(), id.chars().count());
            prop_assert!(masked[6..14].iter().all(|&c| c == '*'));
            let routed: Vec<char> = MaskKind::IdNumber.apply(&id).chars().collect();
            prop_assert!(routed[6..14].iter().all(|&c| c == '*'));
        }

        #[test]
        fn a_masked_han_name_shows_at_most_two_original_characters(name in han_string(2..=6)) {
            let input: String = name.iter().collect();
            let masked: Vec<char> = mask_name(&input).chars().collect();
            prop_assert_eq!(masked.len(), name.len());
            let shown = masked.iter().zip(&name).filter(|(m, n)| m == n).count();
            prop_assert!(shown <= 2 || surname_len(&name) == 2);
            prop_assert_eq!(masked.iter().filter(|&&c| c != '*').count(), shown);
            if name.len() == 3 && surname_len(&name) == 1 {
                prop_assert_eq!(masked, vec![name[0], '*', name[2]]);
            }
        }

        #[test]
        fn a_masked_name_shows_at_most_the_surname_and_one_more_and_half_of_it(name in any_name()) {
            // Issue 12 point 8: visible characters (neither stars, dots nor spaces) are at most
            // the surname plus one, and at most ⌈n/2⌉ of a name of n ≥ 3 characters.
            let masked = mask_name(&name);
            let letters: Vec<char> = name
                .chars()
                .filter(|c| !c.is_whitespace() && !NAME_DOTS.contains(c))
                .collect();
            let visible: Vec<char> = masked
                .chars()
                .filter(|&c| c != '*' && c != MIDDLE_DOT && c != ' ')
                .collect();
            let han = letters.iter().all(|&c| is_han(c));
            let dotted = mask_dotted(name.trim()).is_some();
            let surname = if han && !dotted { surname_len(&letters) } else { 1 };
            prop_assert!(visible.len() <= surname + 1, "{} -> {}", name, masked);
            let n = letters.len();
            if n >= 3 {
                prop_assert!(visible.len() <= n.div_ceil(2), "{} -> {}", name, masked);
            }
            if dotted {
                prop_assert!(visible.len() == 1, "{} -> {}", name, masked);
            }
            for c in &visible {
                prop_assert!(letters.contains(c), "{} -> {}", name, masked);
            }
            if han && !dotted && n >= 3 {
                // The surname stays whole so staff can address the guest.
                prop_assert!(masked.starts_with(&letters[..surname].iter().collect::<String>()));
            }
        }

        #[test]
        fn a_masked_mainland_mobile_hides_the_middle_four_digits(
            second in 3u8..=9,
            rest in prop::collection::vec(0u8..=9, 9),
        ) {
            let national: String = std::iter::once(1)
                .chain(std::iter::once(second))
                .chain(rest)
                .map(|d| char::from(b'0' + d))
                .collect();
            for input in [format!("+86{national}"), national.clone()] {
                let masked = mask_mobile(&input);
                let shown = masked.strip_prefix("+86 ").unwrap_or(&masked);
                prop_assert_eq!(shown.len(), 11);
                prop_assert_eq!(&shown[..3], &national[..3]);
                prop_assert_eq!(&shown[3..7], "****");
                prop_assert_eq!(&shown[7..], &national[7..]);
                prop_assert!(!masked.contains(&national));
            }
        }

        #[test]
        fn no_mask_panics_on_arbitrary_strings(s in any::<String>()) {
            for kind in ALL_KINDS {
                let _ = kind.apply(&s);
            }
            let _ = mask_resident_id(&s);
            let _ = s.parse::<MaskKind>();
        }

        #[test]
        fn no_mask_panics_on_strings_built_from_the_characters_masks_look_for(
            s in "[0-9０-９+·•@,  \\-()区县旗市省自治行政小社场超门张三Xx*a-z]{0,40}"
        ) {
            for kind in ALL_KINDS {
                let _ = kind.apply(&s);
            }
        }
    }
}
