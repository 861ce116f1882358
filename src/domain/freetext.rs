//! The personal-data check of free text that the audit trail keeps (a reveal's optional
//! `justification` note, where a deployment allows free text at all; issue 12 point 7). On top
//! of [`super::carries_personal_data`] (e-mails, long digit runs, the guest's own values) it
//! refuses dates, addresses and health words: a note such as `guest born 1949-12-31`,
//! `guest lives at 北京市海淀区…` or `guest has peanut allergy` is personal data that would
//! outlive the guest's erasure. Heuristics that fail closed: a refused note is rewritten, a
//! leaked one stays for years.

/// Whether `note` carries personal data: see the module doc. `known` are identifying values of
/// the guest the caller may already see in plain or reveal.
pub fn carries_personal_data(note: &str, known: &[&str]) -> bool {
    let folded = fold_width(note);
    super::carries_personal_data(note, known)
        || has_date(&folded)
        || has_address(&folded)
        || has_health_word(&folded)
}

/// Full-width ASCII forms (as Chinese input methods type them) as ASCII.
fn fold_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DATE_WORDS: [&str; 6] = ["born", "birth", "birthday", "dob", "aged", "age"];
const CJK_DATE_WORDS: [&str; 4] = ["出生", "生日", "岁", "周岁"];

/// A date in any common spelling: `1949-12-31`, `31/12/1949`, `1949.12.31`, `1949年12月`,
/// `12月31日`, `Dec 31` / `31 December`, or a birth or age word (`born`, `出生`, `岁`).
fn has_date(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    // Runs of digits and separators such as 1949-12-31 or 31/12/49.
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || matches!(chars[i], '-' | '/' | '.'))
        {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let groups: Vec<&str> = run
            .trim_end_matches(['-', '/', '.'])
            .split(['-', '/', '.'])
            .collect();
        if groups.len() == 3
            && groups.iter().all(|g| (1..=4).contains(&g.len()))
            && groups.iter().any(|g| g.len() >= 2)
        {
            return true;
        }
        // 1949年, 12月, 31日 (号 is handled with addresses, it also means "number").
        if matches!(chars.get(i), Some('年' | '月' | '日')) {
            return true;
        }
    }
    if CJK_DATE_WORDS.iter().any(|w| s.contains(w)) {
        return true;
    }
    let words = latin_words(s);
    words.iter().enumerate().any(|(k, w)| {
        // `dec`, `decem`, `december`: a prefix of a month name of at least 3 letters.
        let is_month = w.len() >= 3 && MONTHS.iter().any(|m| m.starts_with(w.as_str()));
        let number_near = |j: Option<usize>| {
            j.and_then(|j| words.get(j))
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        };
        DATE_WORDS.contains(&w.as_str())
            || (is_month && (number_near(k.checked_sub(1)) || number_near(Some(k + 1))))
    })
}

/// Lower-cased runs of ASCII letters and digits.
fn latin_words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}

const HAN_DIGITS: &str = "零〇一二三四五六七八九十百";
const ADDRESS_PHRASES: [&str; 9] = [
    "lives at",
    "living at",
    "lives in",
    "address",
    "street",
    "住在",
    "住址",
    "地址",
    "家住",
];

/// An address: an administrative or street marker after a Han name (`海淀区`, `中关村大街`,
/// `长乐路`, `12弄`), a house or room number (`1号`, `302室`), or a phrase such as `lives at`.
fn has_address(s: &str) -> bool {
    let lower = s.to_lowercase();
    if ADDRESS_PHRASES.iter().any(|p| lower.contains(p)) {
        return true;
    }
    let chars: Vec<char> = s.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let after_number = prev.is_some_and(|p| p.is_ascii_digit() || HAN_DIGITS.contains(p));
        match c {
            '省' | '市' | '区' | '县' | '路' | '街' | '弄' => {
                prev.is_some_and(is_han) || after_number
            }
            '号' | '室' | '栋' | '幢' | '楼' => after_number,
            _ => false,
        }
    })
}

/// Stems of English health words (matched at the start of a word, so `archive` is not `hiv`).
const HEALTH_STEMS: [&str; 22] = [
    "allerg",
    "diabet",
    "pregnan",
    "hiv",
    "aids",
    "cancer",
    "tumor",
    "tumour",
    "hepatitis",
    "asthma",
    "epilep",
    "disabilit",
    "disabled",
    "wheelchair",
    "depress",
    "dementia",
    "medicat",
    "illness",
    "disease",
    "insulin",
    "dialysis",
    "psychiatr",
];
const HAN_HEALTH_WORDS: [&str; 20] = [
    "过敏",
    "糖尿病",
    "怀孕",
    "孕",
    "艾滋",
    "癌",
    "肿瘤",
    "肝炎",
    "哮喘",
    "癫痫",
    "残疾",
    "残障",
    "轮椅",
    "抑郁",
    "痴呆",
    "心脏病",
    "高血压",
    "病",
    "药",
    "透析",
];

/// A health word (sensitive personal information, PIPL Art. 28).
fn has_health_word(s: &str) -> bool {
    HAN_HEALTH_WORDS.iter().any(|w| s.contains(w))
        || latin_words(s)
            .iter()
            .any(|w| HEALTH_STEMS.iter().any(|stem| w.starts_with(stem)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_notes_the_issue_found_are_refused() {
        for note in [
            "guest lives at 北京市海淀区中关村大街",
            "guest born 1949-12-31",
            "guest has peanut allergy",
            "客人对花生过敏",
            "checking on 31/12/1949 record",
            "guest is diabetic",
            "客人患有糖尿病",
            "guest pregnant, room change",
            "怀孕的客人",
            "HIV medication in the safe",
            "registered 1949年12月",
            "room 302室 complaint",
            "上海市长宁区 visit",
            "guest's birthday is Dec 31",
        ] {
            assert!(carries_personal_data(note, &[]), "{note}");
        }
    }

    #[test]
    fn ordinary_notes_pass() {
        for note in [
            "identity check at the desk for police registration",
            "archive review requested by compliance",
            "guest called back about the invoice",
            "front desk shift B, ticket INC 42",
            "按公安机关要求核对证件",
        ] {
            assert!(!carries_personal_data(note, &[]), "{note}");
        }
    }

    #[test]
    fn the_older_checks_still_apply() {
        assert!(carries_personal_data("call 138 1234 5678", &[]));
        assert!(carries_personal_data("mail a@b.cn", &[]));
        assert!(carries_personal_data("request from 张三丰", &["张三丰"]));
    }

    proptest! {
        #[test]
        fn every_date_spelling_is_refused(y in 1900u32..=2099, m in 1u32..=12, d in 1u32..=28, sep in "[-/.]") {
            for note in [
                format!("seen {y}{sep}{m:02}{sep}{d:02} ok"),
                format!("seen {d}{sep}{m}{sep}{y} ok"),
                format!("生于{y}年{m}月{d}日"),
            ] {
                prop_assert!(carries_personal_data(&note, &[]), "{}", note);
            }
        }

        #[test]
        fn the_check_never_panics(s in any::<String>()) {
            let _ = carries_personal_data(&s, &["x"]);
        }
    }
}
