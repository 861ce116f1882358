//! Validators and normalizers for guest personal information.
//!
//! Spec: `pipl-requirements.md` §(d). Every value is turned into one canonical
//! form before it is encrypted or blind-indexed. The HMAC blind index (REQ-12)
//! only finds a guest again if the same person always gives the same bytes,
//! and PIPL Art. 8 asks for accurate data (REQ-44).
//!
//! Errors are bare [`ValidationCode`]s. They never carry the rejected value, so
//! an error body or log line cannot leak it (REQ-15).

use std::fmt;

use time::{Date, Month};

/// Stable snake_case validation codes; never carry the input value.
///
/// The codes are part of the API contract: clients map them to messages, and
/// they are safe to log because they hold no personal data (REQ-15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationCode {
    Required,
    InvalidFormat,
    InvalidChecksum,
    InvalidDate,
    FutureDate,
    DateTooEarly,
    InvalidRegion,
    TooLong,
    NotAllowed,
}

impl ValidationCode {
    /// The wire form of the code, e.g. `"invalid_checksum"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::InvalidFormat => "invalid_format",
            Self::InvalidChecksum => "invalid_checksum",
            Self::InvalidDate => "invalid_date",
            Self::FutureDate => "future_date",
            Self::DateTooEarly => "date_too_early",
            Self::InvalidRegion => "invalid_region",
            Self::TooLong => "too_long",
            Self::NotAllowed => "not_allowed",
        }
    }
}

impl fmt::Display for ValidationCode {
    /// Prints only the code, so `?` into an error type cannot echo input (REQ-15).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ValidationCode {}

use ValidationCode::{
    DateTooEarly, FutureDate, InvalidChecksum, InvalidDate, InvalidFormat, InvalidRegion,
    NotAllowed, Required, TooLong,
};

/// Province codes (first two digits) accepted for resident IDs, §(d.1) step 3
/// (Hutool list). 91 ("foreign") is deliberately absent: it is not issued to
/// residents.
const PROVINCES: [u8; 35] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
];

/// ISO 7064 MOD 11-2 weights `2^(18−i) mod 11`, §(d.1) step 5.
const GB11643_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Value of a run of ASCII digits; `None` if any byte is not a digit.
fn digits_value(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_digit)
}

/// GB 11643-1999 check character for the first 17 digits, §(d.1) steps 5–7:
/// `(12 − S mod 11) mod 11`, with 10 written as `X`.
fn gb11643_check(body: &[u8]) -> Option<u8> {
    if body.len() != 17 || !all_digits(body) {
        return None;
    }
    let sum: u32 = body
        .iter()
        .zip(GB11643_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    match (12 - sum % 11) % 11 {
        10 => Some(b'X'),
        // `v` is 0..=9 here, so the narrowing cannot fail.
        v => u8::try_from(v).ok().map(|d| b'0' + d),
    }
}

/// 18 bytes: 17 digits then a digit or upper-case `X`.
fn resident_id_shape(s: &str) -> Option<&[u8]> {
    let b = s.as_bytes();
    (b.len() == 18 && all_digits(&b[..17]) && (b[17].is_ascii_digit() || b[17] == b'X'))
        .then_some(b)
}

/// Date of birth in positions 7–14. Only the 18xx/19xx/20xx centuries exist
/// in GB 11643 numbers (§(d.1) step 1); anything else is an invalid date.
fn id_birth_date(body: &[u8]) -> Result<Date, ValidationCode> {
    if body.len() < 14 || !matches!(&body[6..8], b"18" | b"19" | b"20") {
        return Err(InvalidDate);
    }
    calendar_date(&body[6..10], &body[10..12], &body[12..14])
}

/// Builds a real calendar date from digit slices; rejects `02-30` etc.
fn calendar_date(year: &[u8], month: &[u8], day: &[u8]) -> Result<Date, ValidationCode> {
    let y = digits_value(year).ok_or(InvalidFormat)?;
    let m = digits_value(month).ok_or(InvalidFormat)?;
    let d = digits_value(day).ok_or(InvalidFormat)?;
    let y = i32::try_from(y).map_err(|_| InvalidDate)?;
    let m = u8::try_from(m).ok().and_then(|m| Month::try_from(m).ok());
    let d = u8::try_from(d).map_err(|_| InvalidDate)?;
    Date::from_calendar_date(y, m.ok_or(InvalidDate)?, d).map_err(|_| InvalidDate)
}

/// Validates a mainland resident identity number (§(d.1), REQ-44) and returns
/// the 18-character form with an upper-case `X`.
///
/// Legacy 15-digit numbers are accepted only to convert them: `19` is
/// inserted before the year and the check character computed (Hutool
/// `convert15To18`), so only the 18-character form is ever stored.
/// Checks run in the order format → region → date → checksum, so each vector
/// in §(d.1) yields its own code. A birth date after `today` is a
/// `FutureDate`: the age derived from it drives the under-14 rules (REQ-10).
pub fn normalize_resident_id(input: &str, today: Date) -> Result<String, ValidationCode> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Required);
    }
    let b = s.as_bytes();
    let (body, given): (Vec<u8>, Option<u8>) = match b.len() {
        15 if all_digits(b) => ([&b[..6], b"19", &b[6..]].concat(), None),
        18 if all_digits(&b[..17]) && matches!(b[17], b'0'..=b'9' | b'X' | b'x') => {
            (b[..17].to_vec(), Some(b[17].to_ascii_uppercase()))
        }
        _ => return Err(InvalidFormat),
    };
    if body[0] == b'0' {
        return Err(InvalidFormat);
    }
    let province = digits_value(&body[..2]).ok_or(InvalidFormat)?;
    if !PROVINCES.iter().any(|&p| u32::from(p) == province) {
        return Err(InvalidRegion);
    }
    if id_birth_date(&body)? > today {
        return Err(FutureDate);
    }
    let check = gb11643_check(&body).ok_or(InvalidFormat)?;
    if given.is_some_and(|g| g != check) {
        return Err(InvalidChecksum);
    }
    Ok(body
        .iter()
        .chain(std::iter::once(&check))
        .map(|&c| char::from(c))
        .collect())
}

/// Date of birth from an already normalized 18-character resident ID; used to
/// derive age for the under-14 rules (REQ-10) and to cross-check a separately
/// entered birth date (§(d.4)). `None` if the shape or date is wrong.
pub fn resident_id_birth_date(normalized: &str) -> Option<Date> {
    resident_id_shape(normalized).and_then(|b| id_birth_date(b).ok())
}

/// Gender encoded by the 17th digit (odd = `'M'`, even = `'F'`), §(d.1). Only
/// for the warning-level cross-check of step 8; never a reason to reject.
pub fn resident_id_gender(normalized: &str) -> Option<char> {
    let b = resident_id_shape(normalized)?;
    Some(if (b[16] - b'0') % 2 == 1 { 'M' } else { 'F' })
}

/// Mainland mobile: 11 digits, `1[3-9]` then 9 digits (§(d.2)).
fn is_cn_mobile(national: &[u8]) -> bool {
    national.len() == 11
        && national[0] == b'1'
        && (b'3'..=b'9').contains(&national[1])
        && all_digits(national)
}

/// Normalizes a mobile number to E.164 (§(d.2), REQ-44) so the blind index
/// (REQ-12) matches however staff typed it.
///
/// Spaces, hyphens and parentheses are removed and a leading `00` read as `+`.
/// Mainland numbers (`^(?:\+?86)?1[3-9]\d{9}$`) become `+861XXXXXXXXXX`. Any
/// other number needs a `+` and must match `^\+[1-9]\d{1,14}$` with at least 8
/// digits. A `+86` number that is not a valid mainland mobile is rejected, so
/// the generic rule cannot let through what the mainland rule refuses.
pub fn normalize_mobile(input: &str) -> Result<String, ValidationCode> {
    let mut s: String = input
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if s.is_empty() {
        return Err(Required);
    }
    if let Some(rest) = s.strip_prefix("00") {
        s = format!("+{rest}");
    }
    let (plus, digits) = match s.strip_prefix('+') {
        Some(d) => (true, d.as_bytes()),
        None => (false, s.as_bytes()),
    };
    if digits.is_empty() || !all_digits(digits) {
        return Err(InvalidFormat);
    }
    let national = match digits.strip_prefix(b"86") {
        Some(n) if plus || is_cn_mobile(n) => Some(n),
        _ if !plus => Some(digits),
        _ => None,
    };
    if let Some(n) = national {
        return if is_cn_mobile(n) {
            Ok(format!("+86{}", String::from_utf8_lossy(n)))
        } else {
            Err(InvalidFormat)
        };
    }
    if digits[0] == b'0' || !(8..=15).contains(&digits.len()) {
        return Err(InvalidFormat);
    }
    Ok(s)
}

/// RFC 5322 `atext` characters allowed in the local part, besides letters
/// and digits.
const ATEXT_SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";

/// Normalizes an e-mail address (§(d.4), REQ-44) with a pragmatic RFC 5322
/// subset: no quoted local parts, no IP-literal domains, ASCII only
/// (internationalized domains must be given in punycode, `xn--…`). The whole
/// address is lower-cased so the blind index (REQ-12) is case-insensitive;
/// real mail systems treat local parts case-insensitively in practice.
pub fn normalize_email(input: &str) -> Result<String, ValidationCode> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Required);
    }
    if s.chars().count() > 254 {
        return Err(TooLong);
    }
    let (local, domain) = s.split_once('@').ok_or(InvalidFormat)?;
    if local.len() > 64 {
        return Err(TooLong);
    }
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || ATEXT_SPECIALS.contains(&b));
    if !local_ok {
        return Err(InvalidFormat);
    }
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let tld_ok = labels
        .last()
        .is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_lowercase()));
    if !labels_ok || !tld_ok {
        return Err(InvalidFormat);
    }
    Ok(s.to_ascii_lowercase())
}

/// `\p{Han}` for names: CJK Unified Ideographs, Extension A, compatibility
/// ideographs, and the supplementary planes U+20000–U+2FA1F (Ext B–F, I and
/// compatibility supplement) plus U+30000–U+323AF (Ext G–H), which hold rare
/// characters that do occur in real names.
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

/// Middle dot used in transliterated and minority names (麦麦提·艾力).
const MIDDLE_DOT: char = '\u{00B7}';

/// Normalizes a personal name (§(d.4), REQ-44): Han characters, the middle
/// dot, ASCII letters, spaces, apostrophes and hyphens, 1–30 characters.
///
/// `•` (U+2022) is a common typing substitute for `·` and becomes `·`; a
/// full-width space becomes an ASCII space; runs of spaces collapse to one.
/// Digits and other symbols are rejected, and at least one letter is
/// required so `"--"` is not a name. Length counts characters, not bytes,
/// because a Han character is 3–4 bytes of UTF-8.
pub fn normalize_name(input: &str) -> Result<String, ValidationCode> {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    let mut count = 0usize;
    let mut has_letter = false;
    for c in input.trim().chars() {
        let c = match c {
            '\u{3000}' => ' ',
            '\u{2022}' => MIDDLE_DOT,
            other => other,
        };
        if c == ' ' {
            pending_space = count > 0;
            continue;
        }
        let letter = is_han(c) || c.is_ascii_alphabetic();
        if !(letter || matches!(c, MIDDLE_DOT | '\'' | '-')) {
            return Err(InvalidFormat);
        }
        has_letter |= letter;
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
        if count > 30 {
            return Err(TooLong);
        }
    }
    if count == 0 {
        return Err(Required);
    }
    if !has_letter {
        return Err(InvalidFormat);
    }
    Ok(out)
}

/// Document types accepted by [`normalize_document`].
const DOCUMENT_TYPES: [&str; 5] = [
    "cn_resident_id",
    "passport",
    "hk_macau_permit",
    "taiwan_permit",
    "foreign_permanent_resident",
];

/// Validates an identity document number by type (§(d.1), §(d.3), REQ-44).
///
/// Whitespace is removed and ASCII letters upper-cased first. Passports use
/// the generic ICAO rule `^[A-Z0-9]{5,9}$` only: every PRC passport pattern in
/// §(d.3) (E/DE/SE/PE/K/H/M…, legacy G/P/S/D + 8 digits) is a 9-character
/// subset of it, so checking them separately could not reject anything more.
/// The 2017 foreign permanent residence number is shape-checked only, because
/// its 7-3-1 check-digit layout has no verified source. Unknown `id_type`s
/// are `NotAllowed` (closed list, REQ-03).
pub fn normalize_document(
    id_type: &str,
    input: &str,
    today: Date,
) -> Result<String, ValidationCode> {
    if !DOCUMENT_TYPES.contains(&id_type) {
        return Err(NotAllowed);
    }
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if s.is_empty() {
        return Err(Required);
    }
    let b = s.as_bytes();
    let ok = match id_type {
        "cn_resident_id" => return normalize_resident_id(&s, today),
        "passport" => (5..=9).contains(&b.len()) && b.iter().all(u8::is_ascii_alphanumeric),
        "hk_macau_permit" => {
            matches!(b.first(), Some(b'H' | b'M'))
                && matches!(b.len(), 9 | 11)
                && all_digits(&b[1..])
        }
        "taiwan_permit" => matches!(b.len(), 8 | 10) && all_digits(b),
        _ => return foreign_permanent_resident(&s).map(|()| s),
    };
    ok.then_some(s).ok_or(InvalidFormat)
}

/// Foreigner's Permanent Residence ID: 2023 form `^9\d{16}[0-9X]$` with the
/// GB 11643 checksum, or 2017 form `^[A-Z]{3}\d{12}$` (§(d.1)).
fn foreign_permanent_resident(s: &str) -> Result<(), ValidationCode> {
    let b = s.as_bytes();
    if b.len() == 15 && b[..3].iter().all(u8::is_ascii_uppercase) && all_digits(&b[3..]) {
        return Ok(());
    }
    let body = resident_id_shape(s)
        .filter(|id| id[0] == b'9')
        .ok_or(InvalidFormat)?;
    if gb11643_check(&body[..17]) == Some(body[17]) {
        Ok(())
    } else {
        Err(InvalidChecksum)
    }
}

/// ICAO 9303 check digit for one MRZ field (§(d.3)): weights 7, 3, 1 repeating;
/// `0–9` → 0–9, `A–Z` → 10–35, `<` → 0; result is the sum mod 10.
///
/// MRZ text is upper-case only, so lower-case letters and any other character
/// give `None`, as does an empty field (it has no meaningful check digit).
pub fn icao_check_digit(field: &str) -> Option<u8> {
    if field.is_empty() {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in field.chars().zip([7u32, 3, 1].into_iter().cycle()) {
        let v = match c {
            '0'..='9' | 'A'..='Z' => c.to_digit(36)?,
            '<' => 0,
            _ => return None,
        };
        sum = (sum + v * w) % 10;
    }
    u8::try_from(sum).ok()
}

/// Parses a strict `YYYY-MM-DD` date (surrounding whitespace ignored).
/// A wrong shape is `InvalidFormat`; a well-formed but impossible date such
/// as `2023-02-30` is `InvalidDate`.
pub fn parse_date(input: &str) -> Result<Date, ValidationCode> {
    let b = input.trim().as_bytes();
    if b.is_empty() {
        return Err(Required);
    }
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(InvalidFormat);
    }
    calendar_date(&b[..4], &b[5..7], &b[8..10])
}

/// Parses a date of birth: on or after 1900-01-01 (`DateTooEarly`) and not
/// after `today` (`FutureDate`), §(d.4). Age drives the under-14 rules
/// (REQ-10), so an implausible DOB must not slip through.
pub fn validate_birth_date(input: &str, today: Date) -> Result<Date, ValidationCode> {
    let date = parse_date(input)?;
    let earliest = Date::from_calendar_date(1900, Month::January, 1).map_err(|_| InvalidDate)?;
    if date < earliest {
        Err(DateTooEarly)
    } else if date > today {
        Err(FutureDate)
    } else {
        Ok(date)
    }
}

/// Trims and checks that `input` is exactly `n` ASCII letters; upper-cases.
fn ascii_letters_upper(input: &str, n: usize) -> Result<String, ValidationCode> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Required);
    }
    if s.len() == n && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(InvalidFormat)
    }
}

/// ISO 3166-1 alpha-2 country code. **Shape check only** (two ASCII letters,
/// upper-cased): it does not verify that the code is assigned, so the list
/// of countries never has to be kept in step here.
pub fn normalize_country(input: &str) -> Result<String, ValidationCode> {
    ascii_letters_upper(input, 2)
}

/// ISO 4217 currency code (§(d.4)). Shape check only: three ASCII letters,
/// upper-cased.
pub fn normalize_currency(input: &str) -> Result<String, ValidationCode> {
    ascii_letters_upper(input, 3)
}

/// Normalizes a non-negative money amount for `decimal(14,2)` (§(d.4)).
///
/// Accepts digits with an optional `.` and 1–2 decimals; no sign, no
/// exponent, no thousands separators. Returns the canonical form with
/// exactly 2 decimals and no leading zeros (`"007.5"` → `"7.50"`), so equal
/// amounts compare equal as strings. More than 12 integer digits is `TooLong`.
pub fn normalize_amount(input: &str) -> Result<String, ValidationCode> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Required);
    }
    let (int_part, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let frac_ok = !s.contains('.') || (1..=2).contains(&frac.len());
    if int_part.is_empty() || !all_digits(int_part.as_bytes()) || !frac_ok {
        return Err(InvalidFormat);
    }
    if !all_digits(frac.as_bytes()) {
        return Err(InvalidFormat);
    }
    let int_part = match int_part.trim_start_matches('0') {
        "" => "0",
        rest => rest,
    };
    if int_part.len() > 12 {
        return Err(TooLong);
    }
    Ok(format!("{int_part}.{frac:0<2}"))
}

/// Machine codes (property codes, room types…): 1–32 of `[A-Za-z0-9_-]`,
/// returned unchanged apart from trimming; case is kept because codes come
/// from other systems that may be case-sensitive.
pub fn normalize_code(input: &str) -> Result<String, ValidationCode> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Required);
    }
    if s.chars().count() > 32 {
        return Err(TooLong);
    }
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s.to_owned())
    } else {
        Err(InvalidFormat)
    }
}

/// Free text (notes, feedback; REQ-46): trimmed, 1..=`max_chars` characters.
/// Every control character is rejected, line breaks and tabs included, so
/// the text cannot forge extra lines in logs or exports.
pub fn normalize_text(input: &str, max_chars: usize) -> Result<String, ValidationCode> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Required);
    }
    if s.chars().count() > max_chars {
        return Err(TooLong);
    }
    if s.chars().any(char::is_control) {
        return Err(InvalidFormat);
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    const TODAY: Date = date!(2025 - 06 - 01);

    /// Independent MOD 11-2 check character, so the tests do not just
    /// replay the production code.
    fn check_char(body: &str) -> char {
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = body
            .chars()
            .zip(weights)
            .map(|(c, w)| c.to_digit(10).unwrap() * w)
            .sum();
        ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize]
    }

    fn with_check(body: &str) -> String {
        format!("{body}{}", check_char(body))
    }

    #[test]
    fn the_valid_resident_id_vectors_from_d1_are_accepted_unchanged() {
        for id in [
            "11010519491231002X",
            "440524188001010014",
            "51343620000320711X",
            "110101199003074477",
        ] {
            assert_eq!(normalize_resident_id(id, TODAY).as_deref(), Ok(id));
        }
    }

    #[test]
    fn the_invalid_resident_id_vectors_from_d1_give_their_own_codes() {
        let cases = [
            ("110101199003074478", InvalidChecksum),
            ("11010519491331002X", InvalidDate),
            ("91010519491231002X", InvalidRegion),
        ];
        for (id, code) in cases {
            assert_eq!(normalize_resident_id(id, TODAY), Err(code), "{id}");
        }
    }

    #[test]
    fn a_lower_case_x_and_surrounding_spaces_are_normalized() {
        assert_eq!(
            normalize_resident_id("  11010519491231002x ", TODAY).as_deref(),
            Ok("11010519491231002X")
        );
    }

    #[test]
    fn a_resident_id_born_after_today_is_a_future_date() {
        let id = with_check("11010120300101123");
        assert_eq!(normalize_resident_id(&id, TODAY), Err(FutureDate));
        let tomorrow = with_check("11010120250602123");
        assert_eq!(normalize_resident_id(&tomorrow, TODAY), Err(FutureDate));
        let today = with_check("11010120250601123");
        assert!(normalize_resident_id(&today, TODAY).is_ok());
    }

    #[test]
    fn a_resident_id_outside_the_18xx_to_20xx_centuries_is_an_invalid_date() {
        let id = with_check("11010117900101123");
        assert_eq!(normalize_resident_id(&id, TODAY), Err(InvalidDate));
        let feb30 = with_check("11010119900230123");
        assert_eq!(normalize_resident_id(&feb30, TODAY), Err(InvalidDate));
    }

    #[test]
    fn a_legacy_15_digit_number_is_converted_to_18_characters() {
        assert_eq!(
            normalize_resident_id("110105491231002", TODAY).as_deref(),
            Ok("11010519491231002X")
        );
    }

    #[test]
    fn malformed_resident_ids_are_invalid_format_or_required() {
        assert_eq!(normalize_resident_id("  ", TODAY), Err(Required));
        for bad in [
            "1101051949123100",
            "11010519491231002Y",
            "01010519491231002X",
            "1101051949123100２X",
            "11010519491231002XX",
            "11010549123100A",
        ] {
            assert_eq!(
                normalize_resident_id(bad, TODAY),
                Err(InvalidFormat),
                "{bad}"
            );
        }
    }

    #[test]
    fn birth_date_and_gender_are_read_from_a_normalized_resident_id() {
        assert_eq!(
            resident_id_birth_date("11010519491231002X"),
            Some(date!(1949 - 12 - 31))
        );
        assert_eq!(resident_id_gender("11010519491231002X"), Some('F'));
        assert_eq!(resident_id_gender("110101199003074477"), Some('M'));
        assert_eq!(resident_id_birth_date("11010519491231002x"), None);
        assert_eq!(resident_id_birth_date("11010519491331002X"), None);
        assert_eq!(resident_id_gender("1101"), None);
    }

    #[test]
    fn mainland_mobiles_in_every_accepted_spelling_become_plus_86() {
        let cases = [
            ("13812345678", "+8613812345678"),
            ("+8619912345678", "+8619912345678"),
            ("138 1234 5678", "+8613812345678"),
            ("+86 138-1234-5678", "+8613812345678"),
            ("8613812345678", "+8613812345678"),
            ("0086 (138) 1234 5678", "+8613812345678"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_mobile(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn invalid_mainland_mobiles_are_rejected() {
        for bad in [
            "12812345678",
            "1381234567",
            "+8612812345678",
            "138123456789",
            "138abc45678",
        ] {
            assert_eq!(normalize_mobile(bad), Err(InvalidFormat), "{bad}");
        }
        assert_eq!(normalize_mobile(" - "), Err(Required));
    }

    #[test]
    fn international_numbers_are_accepted_in_e164() {
        assert_eq!(
            normalize_mobile("+44 20 7946 0958").as_deref(),
            Ok("+442079460958")
        );
        assert_eq!(
            normalize_mobile("0044 7700 900123").as_deref(),
            Ok("+447700900123")
        );
        assert_eq!(
            normalize_mobile("+1 (415) 555-2671").as_deref(),
            Ok("+14155552671")
        );
        for bad in ["+1234567", "+0123456789", "+1234567890123456", "4420794609"] {
            assert_eq!(normalize_mobile(bad), Err(InvalidFormat), "{bad}");
        }
    }

    #[test]
    fn icao_check_digits_match_the_specimen_vectors() {
        assert_eq!(icao_check_digit("L898902C3"), Some(6));
        assert_eq!(icao_check_digit("740812"), Some(2));
        assert_eq!(icao_check_digit("120415"), Some(9));
        assert_eq!(icao_check_digit("<<<<"), Some(0));
        assert_eq!(icao_check_digit("l898902c3"), None);
        assert_eq!(icao_check_digit(""), None);
    }

    #[test]
    fn passports_are_cleaned_and_checked_against_the_generic_icao_shape() {
        let ok = [
            ("E12345678", "E12345678"),
            ("ea1234567", "EA1234567"),
            ("DE 1234567", "DE1234567"),
            ("G12345678", "G12345678"),
            ("K1234567 8", "K12345678"),
            ("X1234", "X1234"),
        ];
        for (input, want) in ok {
            assert_eq!(
                normalize_document("passport", input, TODAY).as_deref(),
                Ok(want)
            );
        }
        for bad in ["E123", "E123456789", "E1234-567", "É12345678"] {
            assert_eq!(
                normalize_document("passport", bad, TODAY),
                Err(InvalidFormat),
                "{bad}"
            );
        }
        assert_eq!(normalize_document("passport", "   ", TODAY), Err(Required));
    }

    #[test]
    fn permits_follow_their_d3_patterns() {
        let doc = |t: &str, v: &str| normalize_document(t, v, TODAY);
        assert_eq!(
            doc("hk_macau_permit", "h12345678").as_deref(),
            Ok("H12345678")
        );
        assert_eq!(
            doc("hk_macau_permit", "M1234567890").as_deref(),
            Ok("M1234567890")
        );
        assert_eq!(doc("hk_macau_permit", "H123456789"), Err(InvalidFormat));
        assert_eq!(doc("hk_macau_permit", "C12345678"), Err(InvalidFormat));
        assert_eq!(doc("taiwan_permit", "12345678").as_deref(), Ok("12345678"));
        assert_eq!(
            doc("taiwan_permit", "1234567890").as_deref(),
            Ok("1234567890")
        );
        assert_eq!(doc("taiwan_permit", "123456789"), Err(InvalidFormat));
    }

    #[test]
    fn foreign_permanent_resident_numbers_of_both_versions_are_accepted() {
        let doc = |v: &str| normalize_document("foreign_permanent_resident", v, TODAY);
        let v2023 = with_check("93311519900101001");
        assert_eq!(doc(&v2023).as_deref(), Ok(v2023.as_str()));
        let mut wrong = v2023[..17].to_string();
        wrong.push(if v2023.ends_with('0') { '1' } else { '0' });
        assert_eq!(doc(&wrong), Err(InvalidChecksum));
        assert_eq!(doc("usa310619800101").as_deref(), Ok("USA310619800101"));
        assert_eq!(doc(&with_check("11010519491231002")), Err(InvalidFormat));
        assert_eq!(doc("US3106198001011"), Err(InvalidFormat));
    }

    #[test]
    fn resident_ids_go_through_the_resident_id_rules_and_unknown_types_are_not_allowed() {
        assert_eq!(
            normalize_document("cn_resident_id", "110105 19491231 002x", TODAY).as_deref(),
            Ok("11010519491231002X")
        );
        assert_eq!(
            normalize_document("cn_resident_id", "110101199003074478", TODAY),
            Err(InvalidChecksum)
        );
        assert_eq!(
            normalize_document("drivers_licence", "X1234", TODAY),
            Err(NotAllowed)
        );
        assert_eq!(normalize_document("", "", TODAY), Err(NotAllowed));
    }

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            normalize_email("  David@Example.COM ").as_deref(),
            Ok("david@example.com")
        );
        assert_eq!(
            normalize_email("first.last+tag@mail.xn--fiqs8s.co.uk").as_deref(),
            Ok("first.last+tag@mail.xn--fiqs8s.co.uk")
        );
        for bad in [
            "david",
            "a@b",
            "a@@example.com",
            "a@b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a b@example.com",
            "a@-example.com",
            "a@example-.com",
            "a@example..com",
            "a@example.c",
            "a@example.c0m",
            "张@example.com",
            "@example.com",
        ] {
            assert_eq!(normalize_email(bad), Err(InvalidFormat), "{bad}");
        }
        assert_eq!(normalize_email(""), Err(Required));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(normalize_email(&long_local), Err(TooLong));
        let long_total = format!("a@{}.com", "b".repeat(251));
        assert_eq!(normalize_email(&long_total), Err(TooLong));
    }

    #[test]
    fn han_dotted_and_latin_names_are_accepted_and_normalized() {
        let cases = [
            ("张三", "张三"),
            ("麦麦提·艾力", "麦麦提·艾力"),
            ("麦麦提•艾力", "麦麦提·艾力"),
            ("John Smith", "John Smith"),
            ("  John   Smith ", "John Smith"),
            ("张\u{3000}三", "张 三"),
            ("Mary-Jane O'Brien", "Mary-Jane O'Brien"),
            ("𠀀丽", "𠀀丽"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_name(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn names_with_digits_symbols_or_no_letters_are_rejected() {
        for bad in ["张3", "John5", "J@ne", "张\t三", "--", "·"] {
            assert_eq!(normalize_name(bad), Err(InvalidFormat), "{bad}");
        }
        assert_eq!(normalize_name(" \u{3000} "), Err(Required));
    }

    #[test]
    fn names_are_limited_to_30_characters_not_bytes() {
        assert!(normalize_name(&"张".repeat(30)).is_ok());
        assert_eq!(normalize_name(&"张".repeat(31)), Err(TooLong));
        assert_eq!(normalize_name(&"a".repeat(31)), Err(TooLong));
    }

    #[test]
    fn dates_are_strict_yyyy_mm_dd_and_must_exist() {
        assert_eq!(parse_date("2024-02-29"), Ok(date!(2024 - 02 - 29)));
        assert_eq!(parse_date(" 2023-02-28 "), Ok(date!(2023 - 02 - 28)));
        assert_eq!(parse_date("2023-02-30"), Err(InvalidDate));
        assert_eq!(parse_date("2023-13-01"), Err(InvalidDate));
        assert_eq!(parse_date("2023-00-10"), Err(InvalidDate));
        for bad in [
            "2023-2-3",
            "2023/02/01",
            "20230201",
            "2023-02-01T00",
            "２023-02-01",
        ] {
            assert_eq!(parse_date(bad), Err(InvalidFormat), "{bad}");
        }
        assert_eq!(parse_date(""), Err(Required));
    }

    #[test]
    fn birth_dates_must_lie_between_1900_and_today() {
        assert_eq!(validate_birth_date("1899-12-31", TODAY), Err(DateTooEarly));
        assert_eq!(
            validate_birth_date("1900-01-01", TODAY),
            Ok(date!(1900 - 01 - 01))
        );
        assert_eq!(validate_birth_date("2025-06-01", TODAY), Ok(TODAY));
        assert_eq!(validate_birth_date("2025-06-02", TODAY), Err(FutureDate));
    }

    #[test]
    fn amounts_are_canonical_with_two_decimals() {
        let cases = [
            ("1280", "1280.00"),
            ("0.5", "0.50"),
            ("007.5", "7.50"),
            ("0", "0.00"),
            ("00.05", "0.05"),
            (" 12.34 ", "12.34"),
            ("999999999999.99", "999999999999.99"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_amount(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "-1", "+1", "1.", ".5", "1.234", "1,000", "1e3", "1.2.3", "١٢",
        ] {
            assert_eq!(normalize_amount(bad), Err(InvalidFormat), "{bad}");
        }
        assert_eq!(normalize_amount("1000000000000"), Err(TooLong));
        assert_eq!(normalize_amount(""), Err(Required));
    }

    #[test]
    fn country_and_currency_codes_are_upper_cased_shapes() {
        assert_eq!(normalize_country(" cn ").as_deref(), Ok("CN"));
        assert_eq!(normalize_country("CHN"), Err(InvalidFormat));
        assert_eq!(normalize_country("C1"), Err(InvalidFormat));
        assert_eq!(normalize_currency("usd").as_deref(), Ok("USD"));
        assert_eq!(normalize_currency("US"), Err(InvalidFormat));
        assert_eq!(normalize_currency(""), Err(Required));
    }

    #[test]
    fn codes_keep_their_case_and_allow_only_safe_characters() {
        assert_eq!(
            normalize_code("SHA-01_pudong").as_deref(),
            Ok("SHA-01_pudong")
        );
        assert_eq!(
            normalize_code(&"a".repeat(32)).as_deref(),
            Ok("a".repeat(32).as_str())
        );
        assert_eq!(normalize_code(&"a".repeat(33)), Err(TooLong));
        assert_eq!(normalize_code("a b"), Err(InvalidFormat));
        assert_eq!(normalize_code("a.b"), Err(InvalidFormat));
        assert_eq!(normalize_code(""), Err(Required));
    }

    #[test]
    fn free_text_is_trimmed_limited_by_characters_and_free_of_control_characters() {
        assert_eq!(normalize_text("  房间很好  ", 4).as_deref(), Ok("房间很好"));
        assert_eq!(normalize_text("房间很好!", 4), Err(TooLong));
        assert_eq!(normalize_text("line\nbreak", 100), Err(InvalidFormat));
        assert_eq!(normalize_text("esc\u{1b}[31m", 100), Err(InvalidFormat));
        assert_eq!(normalize_text(" \t ", 100), Err(Required));
    }

    #[test]
    fn codes_have_stable_snake_case_names_that_never_echo_the_input() {
        let all = [
            (Required, "required"),
            (InvalidFormat, "invalid_format"),
            (InvalidChecksum, "invalid_checksum"),
            (InvalidDate, "invalid_date"),
            (FutureDate, "future_date"),
            (DateTooEarly, "date_too_early"),
            (InvalidRegion, "invalid_region"),
            (TooLong, "too_long"),
            (NotAllowed, "not_allowed"),
        ];
        for (code, name) in all {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.to_string(), name);
        }
        let err = normalize_resident_id("110101199003074478", TODAY).unwrap_err();
        assert!(!format!("{err:?}{err}").contains("1101"));
    }

    /// A random valid resident ID: a listed province, any 4 area digits, a
    /// real date in 1900..=2020, any sequence, and the right check character.
    fn valid_resident_id() -> impl Strategy<Value = String> {
        (
            prop::sample::select(PROVINCES.to_vec()),
            0u32..10_000,
            1900i32..=2020,
            1u16..=365,
            0u32..1000,
        )
            .prop_map(|(province, area, year, ordinal, seq)| {
                let dob = Date::from_ordinal_date(year, ordinal).unwrap();
                let body = format!(
                    "{province:02}{area:04}{year:04}{:02}{:02}{seq:03}",
                    u8::from(dob.month()),
                    dob.day()
                );
                with_check(&body)
            })
    }

    proptest! {
        #[test]
        fn every_generated_valid_resident_id_is_accepted(id in valid_resident_id()) {
            prop_assert_eq!(normalize_resident_id(&id, TODAY), Ok(id.clone()));
            prop_assert!(resident_id_birth_date(&id).is_some());
            prop_assert!(resident_id_gender(&id).is_some());
        }

        #[test]
        fn changing_any_single_digit_of_the_first_17_is_rejected(
            id in valid_resident_id(),
            pos in 0usize..17,
            delta in 1u8..10,
        ) {
            let mut bytes = id.clone().into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(normalize_resident_id(&changed, TODAY).is_err());
        }

        #[test]
        fn validators_never_panic_on_arbitrary_strings(s in any::<String>()) {
            let _ = normalize_resident_id(&s, TODAY);
            let _ = normalize_mobile(&s);
            let _ = normalize_email(&s);
            let _ = normalize_name(&s);
            for t in DOCUMENT_TYPES {
                let _ = normalize_document(t, &s, TODAY);
            }
            let _ = icao_check_digit(&s);
            let _ = parse_date(&s);
            let _ = normalize_amount(&s);
            let _ = normalize_text(&s, 10);
            let _ = resident_id_birth_date(&s);
            let _ = resident_id_gender(&s);
        }
    }
}
