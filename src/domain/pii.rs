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
    /// A valid phone number that is not a mobile (a landline, toll-free, premium...).
    NotMobile,
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
            Self::NotMobile => "not_mobile",
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
    NotAllowed, NotMobile, Required, TooLong,
};

/// The GB/T 2260 region codes of all years (province, prefecture and county level), generated
/// by `tools/gen_region_codes.py` from python-stdnum's `stdnum/cn/loc.dat`. A code retired or
/// assigned in any year is valid: an ID keeps the code of its first registration, so a code
/// assigned after the birth year is still right (§(d.1) step 3, issue 15).
const REGION_CODES_TXT: &str = include_str!("data/gbt2260_codes.txt");

/// The codes of [`REGION_CODES_TXT`], sorted, parsed once.
fn region_codes() -> &'static [u32] {
    static CODES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    CODES.get_or_init(|| {
        let mut v: Vec<u32> = REGION_CODES_TXT
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        v.sort_unstable();
        v
    })
}

/// Whether the first six digits of a resident ID name a region: a listed GB/T 2260 code, or
/// any `83xxxx` (residence permits of Taiwan residents; 810000 and 820000, those of Hong Kong
/// and Macau residents, are listed). 91 ("foreign") is not a resident's code.
pub fn is_known_region(code: u32) -> bool {
    code / 10_000 == 83 || region_codes().binary_search(&code).is_ok()
}

/// Every listed region code (for tests and generators).
pub fn known_region_codes() -> impl Iterator<Item = u32> {
    region_codes().iter().copied()
}

/// NFKC (Unicode compatibility composition): full-width digits and letters (`１３８`, `Ｘ`),
/// the full-width plus `＋` and the ideographic space become their ASCII forms. The first
/// step of every identifier-like input, and so of every search term (issue 15).
pub fn nfkc(input: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    input.nfkc().collect()
}

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
/// in GB 11643 numbers (§(d.1) step 1); anything else is an invalid date. A
/// real date before 1900-01-01 is `DateTooEarly`, the same rule as for
/// `birth_date` ([`validate_birth_date`]), so an ID and its birth date are
/// always accepted or refused together.
fn id_birth_date(body: &[u8]) -> Result<Date, ValidationCode> {
    if body.len() < 14 || !matches!(&body[6..8], b"18" | b"19" | b"20") {
        return Err(InvalidDate);
    }
    let date = calendar_date(&body[6..10], &body[10..12], &body[12..14])?;
    if date < earliest_birth_date() {
        return Err(DateTooEarly);
    }
    Ok(date)
}

/// The earliest accepted date of birth, for `birth_date` and resident IDs alike.
fn earliest_birth_date() -> Date {
    time::macros::date!(1900 - 01 - 01)
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
/// The input is NFKC-normalized first (full-width digits and `Ｘ`). Checks run
/// in the order format → region (a GB/T 2260 code of any year, see
/// [`is_known_region`]) → date (1900-01-01 or later) → checksum, so each
/// vector in §(d.1) yields its own code. A birth date after `today` is a
/// `FutureDate`: the age derived from it drives the under-14 rules (REQ-10).
pub fn normalize_resident_id(input: &str, today: Date) -> Result<String, ValidationCode> {
    let s = nfkc(input);
    let s = s.trim();
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
    let region = digits_value(&body[..6]).ok_or(InvalidFormat)?;
    if !is_known_region(region) {
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
/// for the warning-level cross-check of step 8 (a data-quality flag), which
/// rejects only when the catalog's `[validation] gender_id_check` is `strict`.
pub fn resident_id_gender(normalized: &str) -> Option<char> {
    let b = resident_id_shape(normalized)?;
    Some(if (b[16] - b'0') % 2 == 1 { 'M' } else { 'F' })
}

/// Normalizes a mobile number to E.164 (§(d.2), REQ-44) so the blind index
/// (REQ-12) matches however staff typed it. Validity comes from Google's
/// libphonenumber metadata (the `phonenumber` crate; its version is
/// [`PHONE_METADATA_VERSION`]), not from hand-written prefix rules.
///
/// 1. NFKC: full-width digits and `＋` become ASCII.
/// 2. Spaces, hyphens and parentheses are removed; a leading `00` is read as `+`.
/// 3. Without `+`, the number is a mainland one: 11 digits starting with `1`,
///    optionally preceded by `86`.
/// 4. The number must be valid for its region (allocated ranges and lengths);
///    a trunk `0` after the country code is dropped (`+886 0923…` is
///    `+886923…`; Italy's leading 0 is part of the number and stays).
/// 5. It must be a mobile (`MOBILE`, or `FIXED_LINE_OR_MOBILE` where the
///    numbering plan cannot tell, as in North America): landlines, toll-free
///    and premium numbers are `NotMobile`. Types are matched against the whole
///    national number, as libphonenumber does ([`matches_whole`]).
/// 6. The E.164 result has 8 to 15 digits.
pub fn normalize_mobile(input: &str) -> Result<String, ValidationCode> {
    let s: String = nfkc(input)
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if s.is_empty() {
        return Err(Required);
    }
    let (plus, digits) = match (s.strip_prefix('+'), s.strip_prefix("00")) {
        (Some(d), _) | (None, Some(d)) => (true, d),
        (None, None) => (false, s.as_str()),
    };
    // E.164 has at most 15 digits; a trunk 0 may add one.
    if digits.is_empty() || digits.len() > 16 || !all_digits(digits.as_bytes()) {
        return Err(InvalidFormat);
    }
    let international = if plus {
        format!("+{digits}")
    } else {
        let national = match digits.strip_prefix("86") {
            Some(n) if n.len() == 11 => n,
            _ => digits,
        };
        if national.len() != 11 || !national.starts_with('1') {
            return Err(InvalidFormat);
        }
        format!("+86{national}")
    };
    let number = phonenumber::parse(None, &international).map_err(|_| InvalidFormat)?;
    if number.extension().is_some() {
        return Err(InvalidFormat);
    }
    let code = number.code().value();
    let national = format!(
        "{}{}",
        "0".repeat(usize::from(number.national().zeros())),
        number.national().value()
    );
    let (national, kind) = match phone_kind(code, &national) {
        Some(kind) => (national, kind),
        // A trunk prefix the parser left in place (`+1 1 506…`): drop it and try again.
        None => phonenumber::metadata::DATABASE
            .by_code(&code)
            .and_then(|m| {
                m.first()
                    .and_then(|m| m.national_prefix())
                    .map(str::to_string)
            })
            .and_then(|p| national.strip_prefix(p.as_str()).map(str::to_string))
            .and_then(|n| phone_kind(code, &n).map(|k| (n, k)))
            .ok_or(InvalidFormat)?,
    };
    if kind != PhoneKind::Mobile {
        return Err(NotMobile);
    }
    let e164 = format!("+{code}{national}");
    // INVARIANT (fuzzed): E.164 is `+` and 8 to 15 digits.
    if !(9..=16).contains(&e164.len()) {
        return Err(InvalidFormat);
    }
    Ok(e164)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhoneKind {
    /// `MOBILE` or `FIXED_LINE_OR_MOBILE`.
    Mobile,
    /// Any other valid type: fixed line, toll-free, premium, VoIP, pager...
    Other,
}

/// Whether `national` (a national significant number) fully matches `pattern`. The
/// `phonenumber` crate matches type patterns only at the start of a number (a longer number
/// whose first digits fit passes), where libphonenumber requires the whole number to match:
/// the vault checks whole matches itself, with the crate's metadata (whose patterns,
/// like the crate's own, are read with whitespace ignored).
fn matches_whole(pattern: &str, national: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| {
            regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .ignore_whitespace(true)
                .build()
                .ok()
        })
        .as_ref()
        .is_some_and(|re| re.is_match(national))
}

/// libphonenumber's number type in the region of country code `code` that the number belongs
/// to (`getRegionCodeForNumber`: the first region whose leading digits match, or else whose
/// types include the number), or `None` when it is not a valid number.
fn phone_kind(code: u16, national: &str) -> Option<PhoneKind> {
    use phonenumber::metadata::{Descriptor, Metadata};
    let fits = |d: Option<&Descriptor>| {
        d.is_some_and(|d| {
            (d.possible_length().is_empty()
                || d.possible_length()
                    .contains(&u16::try_from(national.len()).unwrap_or(0)))
                && matches_whole(d.national_number().as_str(), national)
        })
    };
    let kind_in = |m: &Metadata| -> Option<PhoneKind> {
        let d = m.descriptors();
        if !fits(Some(d.general())) {
            return None;
        }
        let special = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ];
        if special.into_iter().any(fits) {
            return Some(PhoneKind::Other);
        }
        if fits(d.mobile()) {
            Some(PhoneKind::Mobile)
        } else if fits(d.fixed_line()) {
            Some(PhoneKind::Other)
        } else {
            None
        }
    };
    let regions = phonenumber::metadata::DATABASE.by_code(&code)?;
    for m in regions.iter().copied() {
        if let Some(leading) = m.leading_digits() {
            if leading.find(national).is_some_and(|x| x.start() == 0) {
                return kind_in(m);
            }
        } else if let Some(kind) = kind_in(m) {
            return Some(kind);
        }
    }
    None
}

/// The libphonenumber metadata release that [`normalize_mobile`] uses (the
/// build metadata of the `phonenumber` crate's version).
pub const PHONE_METADATA_VERSION: &str = "9.0.33";

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

/// Look-alikes of the middle dot that input methods and fonts produce, all
/// stored as `·`: `•` bullet, `・` katakana middle dot (and its half-width
/// form, which NFKC turns into it), `‧` hyphenation point, `∙` bullet
/// operator, `⋅` dot operator, `⸱` word-separator middle dot, `ꞏ` Latin
/// middle dot. A full stop (`.`, full-width `．`) counts only between two Han
/// characters (`麦麦提.艾力`); elsewhere it is refused.
const DOT_LOOKALIKES: [char; 7] = [
    '\u{2022}', '\u{30FB}', '\u{2027}', '\u{2219}', '\u{22C5}', '\u{2E31}', '\u{A78F}',
];

/// Latin letters of names: ASCII, Latin-1 Supplement (`é`, `ü`, `ø`, `ß`,
/// not `×` `÷`), Latin Extended-A and -B (`ő`, `ł`, `ș`) and Latin Extended
/// Additional (Vietnamese `ễ`, `ạ`).
fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
        || (matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}')
            && !matches!(c, '\u{00D7}' | '\u{00F7}')
            && c.is_alphabetic())
}

/// NFKC everywhere except on Han characters, which are kept exactly as typed:
/// NFC and NFKC would turn CJK compatibility ideographs (U+F900–U+FAFF) into
/// unified ones and so change names already stored and blind-indexed.
fn nfkc_outside_han(input: &str) -> Vec<char> {
    use unicode_normalization::UnicodeNormalization;
    let mut out = Vec::with_capacity(input.len());
    let mut run = String::new();
    for c in input.chars() {
        if is_han(c) {
            out.extend(run.nfkc());
            run.clear();
            out.push(c);
        } else {
            run.push(c);
        }
    }
    out.extend(run.nfkc());
    out
}

/// A name in the ICAO 9303 MRZ form (`ALVAREZ<<JOSE<MARIA<<<<`): primary
/// identifier, `<<`, secondary identifier, name parts joined by `<`, filler
/// `<` at the end. Returns the words in order, surname first, joined by
/// spaces (`ALVAREZ JOSE MARIA`); `None` when `s` has no `<`; `Err` when it
/// has one but is not that form.
fn mrz_name(s: &str) -> Option<Result<String, ValidationCode>> {
    if !s.contains('<') {
        return None;
    }
    let shape = s.bytes().all(|b| b.is_ascii_uppercase() || b == b'<');
    let body = s.trim_end_matches('<');
    let mut parts = body.splitn(2, "<<");
    let words: Vec<&str> = parts
        .next()
        .into_iter()
        .chain(parts.next())
        .flat_map(|p| p.split('<'))
        .collect();
    if !shape || body.is_empty() || words.iter().any(|w| w.is_empty()) {
        return Some(Err(InvalidFormat));
    }
    Some(Ok(words.join(" ")))
}

/// Normalizes a personal name (§(d.4), REQ-44), 1–30 characters:
///
/// - Han characters (kept exactly as typed), Latin letters with their
///   diacritics (`José Álvarez`, `Zoë Müller`, `Nguyễn Văn An`,
///   `Søren Ångström`), spaces, apostrophes (`O'Brien`; `’` and `ʼ` become
///   `'`), hyphens (`Jean-Luc`; `‐` becomes `-`) and the middle dot `·`.
/// - Everything but Han is NFKC-normalized first: full-width letters become
///   ASCII, a decomposed `é` (e + U+0301) becomes the single `é`, the
///   ideographic space becomes a space.
/// - Middle-dot look-alikes ([`DOT_LOOKALIKES`], and `.` between Han
///   characters) become `·`.
/// - The ICAO 9303 MRZ form (`MUELLER<<ZOE`) is accepted and stored as its
///   words, surname first (`MUELLER ZOE`).
/// - Runs of spaces collapse to one. Digits and other symbols are rejected,
///   and at least one letter is required so `"--"` is not a name. Length
///   counts characters, not bytes.
pub fn normalize_name(input: &str) -> Result<String, ValidationCode> {
    let chars = nfkc_outside_han(input);
    let text: String = chars.iter().collect();
    let trimmed = text.trim();
    if let Some(mrz) = mrz_name(trimmed) {
        return normalize_name(&mrz?);
    }
    let chars: Vec<char> = trimmed.chars().collect();
    let mut out = String::with_capacity(trimmed.len());
    let mut pending_space = false;
    let mut count = 0usize;
    let mut has_letter = false;
    for (i, &c) in chars.iter().enumerate() {
        let between_han = || {
            i > 0
                && chars.get(i - 1).copied().is_some_and(is_han)
                && chars.get(i + 1).copied().is_some_and(is_han)
        };
        let c = match c {
            c if DOT_LOOKALIKES.contains(&c) => MIDDLE_DOT,
            '.' if between_han() => MIDDLE_DOT,
            '\u{2019}' | '\u{02BC}' => '\'',
            '\u{2010}' => '-',
            other => other,
        };
        if c == ' ' {
            pending_space = count > 0;
            continue;
        }
        let letter = is_han(c) || is_latin_letter(c);
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

/// The blind-index form of a normalized name (REQ-12): Latin letters without
/// their diacritics (`Müller` → `Muller`, `Søren Ångström` → `Soren
/// Angstrom`, `Nguyễn` → `Nguyen`; `ß` → `ss`, `æ` → `ae`, `œ` → `oe`,
/// `ø` → `o`, `ł` → `l`, `đ`/`ð` → `d`, `þ` → `th`, `ı` → `i`), so a search
/// for `Muller` finds `Müller` and the reverse. Nothing else changes: case is
/// kept and Han characters, spaces, `·`, `'` and `-` stay, so the form of
/// every name that was valid before diacritics were accepted (ASCII, Han) is
/// the name itself and stored blind-index entries keep matching.
pub fn name_index_form(name: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::UnicodeNormalization;
    if !name.chars().any(|c| !c.is_ascii() && is_latin_letter(c)) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii() || !is_latin_letter(c) {
            out.push(c);
            continue;
        }
        match c {
            'ß' => out.push_str("ss"),
            'ẞ' => out.push_str("SS"),
            'æ' => out.push_str("ae"),
            'Æ' => out.push_str("AE"),
            'œ' => out.push_str("oe"),
            'Œ' => out.push_str("OE"),
            'þ' => out.push_str("th"),
            'Þ' => out.push_str("TH"),
            'ø' => out.push('o'),
            'Ø' => out.push('O'),
            'ł' => out.push('l'),
            'Ł' => out.push('L'),
            'đ' | 'ð' => out.push('d'),
            'Đ' | 'Ð' => out.push('D'),
            'ı' => out.push('i'),
            _ => {
                let base: String = std::iter::once(c)
                    .nfd()
                    .filter(char::is_ascii_alphabetic)
                    .collect();
                // A letter without an ASCII base (ŋ, ə, ...) stays as it is.
                if base.is_empty() {
                    out.push(c);
                } else {
                    out.push_str(&base);
                }
            }
        }
    }
    std::borrow::Cow::Owned(out)
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
/// The input is NFKC-normalized (full-width letters and digits), then
/// whitespace is removed and ASCII letters upper-cased. Passports use the
/// generic ICAO rule `^[A-Z0-9]{5,9}$` only: every PRC passport pattern in
/// §(d.3) (E/DE/SE/PE/K/H/M…, legacy G/P/S/D + 8 digits) is a 9-character
/// subset of it, so checking them separately could not reject anything more.
/// A passport may also be given as the second line of its TD3 machine-readable
/// zone (44 characters): then every ICAO 9303 check digit must match and only
/// the document number is stored ([`passport_from_mrz`]). The 2017 foreign
/// permanent residence number has its 7-3-1 check digit verified. Unknown
/// `id_type`s are `NotAllowed` (closed list, REQ-03).
pub fn normalize_document(
    id_type: &str,
    input: &str,
    today: Date,
) -> Result<String, ValidationCode> {
    if !DOCUMENT_TYPES.contains(&id_type) {
        return Err(NotAllowed);
    }
    let s: String = nfkc(input)
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
        "passport" if b.len() == 44 => return passport_from_mrz(&s),
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
/// GB 11643 checksum, or the 15-character form of the 2004 and 2017 cards,
/// `^[A-Z]{3}\d{12}$` (§(d.1)): ISO 3166 alpha-3 nationality, 4 digits of the
/// issuing region, the birth date as `YYMMDD` (a real date), one sequence
/// digit, and a check digit: the ICAO 9303 7-3-1 check digit of the first 14
/// characters (letters count 10–35). Source: credentialkit's
/// `ForeignerPermanentResidenceIdNumberProcessor` (its vector `KAZ110090123105`
/// is in the tests); no official NIA specification was found.
fn foreign_permanent_resident(s: &str) -> Result<(), ValidationCode> {
    let b = s.as_bytes();
    if b.len() == 15 && b[..3].iter().all(u8::is_ascii_uppercase) && all_digits(&b[3..]) {
        let (yy, mm, dd) = (&b[7..9], &b[9..11], &b[11..13]);
        let real = |century: &[u8]| calendar_date(&[century, yy].concat(), mm, dd).is_ok();
        if !real(b"19") && !real(b"20") {
            return Err(InvalidDate);
        }
        return match icao_check_digit(&s[..14]) {
            Some(d) if b[14] == b'0' + d => Ok(()),
            _ => Err(InvalidChecksum),
        };
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

/// The document number of a passport given as the second MRZ line of an ICAO
/// 9303 TD3 document (44 characters of `A–Z 0–9 <`): document number (1–9),
/// its check digit (10), nationality (11–13), birth date `YYMMDD` (14–19) and
/// check digit (20), sex (21), expiry date (22–27) and check digit (28),
/// optional data (29–42) and its check digit (43, `<` or 0 when the field is
/// empty), and the composite check digit (44) over characters 1–10, 14–20
/// and 22–43. Any wrong check digit is `InvalidChecksum`; the stored value is
/// the document number without its `<` filler, checked like any passport
/// number.
pub fn passport_from_mrz(line: &str) -> Result<String, ValidationCode> {
    let b = line.as_bytes();
    if b.len() != 44
        || !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'<')
    {
        return Err(InvalidFormat);
    }
    let digit = |i: usize| char::from(b[i]).to_digit(10);
    let check = |field: &str, at: usize| -> Result<(), ValidationCode> {
        let want = icao_check_digit(field).ok_or(InvalidFormat)?;
        match digit(at) {
            Some(d) if d == u32::from(want) => Ok(()),
            // An empty optional-data field may carry `<` as its check digit.
            None if at == 42 && b[at] == b'<' && want == 0 => Ok(()),
            _ => Err(InvalidChecksum),
        }
    };
    if !b[13..19].iter().chain(&b[21..27]).all(u8::is_ascii_digit) {
        return Err(InvalidFormat);
    }
    check(&line[..9], 9)?;
    check(&line[13..19], 19)?;
    check(&line[21..27], 27)?;
    check(&line[28..42], 42)?;
    let composite = [&line[..10], &line[13..20], &line[21..43]].concat();
    check(&composite, 43)?;
    let number = line[..9].trim_end_matches('<');
    if (5..=9).contains(&number.len()) && number.bytes().all(|c| c.is_ascii_alphanumeric()) {
        Ok(number.to_string())
    } else {
        Err(InvalidFormat)
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
    if date < earliest_birth_date() {
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
            // The §(d.1) vector of the GB 11643 standard, born 1880: refused like a
            // `birth_date` before 1900 (one rule for both, issue 15).
            ("440524188001010014", DateTooEarly),
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
    fn full_width_resident_ids_are_nfkc_normalized() {
        for input in [
            "１１０１０５１９４９１２３１００２Ｘ",
            "１１０１０５１９４９１２３１００２ｘ",
            "1101051949123100２X",
            "\u{3000}11010519491231002X\u{3000}",
        ] {
            assert_eq!(
                normalize_resident_id(input, TODAY).as_deref(),
                Ok("11010519491231002X"),
                "{input}"
            );
            assert_eq!(
                normalize_document("cn_resident_id", input, TODAY).as_deref(),
                Ok("11010519491231002X")
            );
        }
    }

    #[test]
    fn region_codes_are_checked_to_the_county_against_gbt_2260_of_all_years() {
        let ok = [
            "110101", // 东城区
            "110103", // 崇文区, merged in 2010: an ID keeps its first code
            "110118", // 密云区, assigned in 2015: valid for someone born before it
            "500101", "110000", "110100", "810000", "820000", "830000", "831234", "710000",
        ];
        for code in ok {
            let id = with_check(&format!("{code}19900101123"));
            assert_eq!(normalize_resident_id(&id, TODAY), Ok(id.clone()), "{code}");
        }
        for code in [
            "110199", "119900", "440599", "810001", "710100", "910000", "000000",
        ] {
            let id = with_check(&format!("{code}19900101123"));
            assert!(
                matches!(
                    normalize_resident_id(&id, TODAY),
                    Err(InvalidRegion | InvalidFormat)
                ),
                "{code}"
            );
        }
        assert!(known_region_codes().count() > 6000);
        assert!(known_region_codes().all(|c| (110_000..=829_999).contains(&c)));
    }

    #[test]
    fn resident_ids_and_birth_dates_share_the_1900_floor() {
        let id_1899 = with_check("11010518991231123");
        let id_1900 = with_check("11010519000101123");
        assert_eq!(normalize_resident_id(&id_1899, TODAY), Err(DateTooEarly));
        assert_eq!(validate_birth_date("1899-12-31", TODAY), Err(DateTooEarly));
        assert!(normalize_resident_id(&id_1900, TODAY).is_ok());
        assert!(validate_birth_date("1900-01-01", TODAY).is_ok());
        // The legacy 15-digit form always means 19xx.
        assert!(normalize_resident_id("110105000101002", TODAY).is_ok());
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
            ("138-1234-5678", "+8613812345678"),
            ("+86 138-1234-5678", "+8613812345678"),
            ("8613812345678", "+8613812345678"),
            ("0086 (138) 1234 5678", "+8613812345678"),
            ("0086 138 1234 5678", "+8613812345678"),
            ("(+86) 138 1234 5678", "+8613812345678"),
            ("(+86)13812345678", "+8613812345678"),
            // Full-width digits and ＋ as Chinese input methods type them (NFKC).
            ("１３８１２３４５６７８", "+8613812345678"),
            ("＋８６ １３８ １２３４ ５６７８", "+8613812345678"),
            ("＋８６－１３８－１２３４－５６７８", "+8613812345678"),
            ("\u{3000}13812345678\u{3000}", "+8613812345678"),
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
    fn unallocated_mainland_prefixes_are_rejected() {
        // The prefixes the outside test found accepted; none has an allocated mobile range
        // in libphonenumber's metadata.
        for prefix in [
            140, 141, 142, 143, 144, 146, 148, 149, 154, 160, 161, 163, 164, 168, 169, 174, 179,
            194,
        ] {
            // (1740 0000 0000 is not here: 1740[0-5] is an allocated satellite range.)
            for tail in ["12345678", "99999999", "55501234", "80000000"] {
                let n = format!("{prefix}{tail}");
                assert_eq!(normalize_mobile(&n), Err(InvalidFormat), "{n}");
                assert_eq!(
                    normalize_mobile(&format!("+86{n}")),
                    Err(InvalidFormat),
                    "{n}"
                );
            }
        }
        for ok in [
            "13012345678",
            "14512345678",
            "15012345678",
            "16612345678",
            "17012345678",
            "18012345678",
            "19912345678",
        ] {
            assert!(normalize_mobile(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn foreign_trunk_zeros_are_dropped() {
        let cases = [
            ("+886 0923 003 451", "+886923003451"),
            ("+886 923 003 451", "+886923003451"),
            ("00886 0923-003-451", "+886923003451"),
            ("+82 010 1234 5678", "+821012345678"),
            ("+82 10 1234 5678", "+821012345678"),
            ("+61 0412 345 678", "+61412345678"),
            ("+44 07911 123456", "+447911123456"),
            // Italy's leading 0 belongs to the number; its mobiles have none.
            ("+39 312 345 6789", "+393123456789"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_mobile(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn invalid_foreign_numbers_and_landlines_are_rejected() {
        for bad in [
            "+999 1234 5678",
            "+99912345678",
            "+44 123456",
            "+1 415 555 26712",
            "+1 (415) 555-267122",
            "+1234567",
            "+0123456789",
            "+1234567890123456",
            "4420794609",
            "+447700900123", // Ofcom's range reserved for drama: not allocated
        ] {
            assert_eq!(normalize_mobile(bad), Err(InvalidFormat), "{bad}");
        }
        // Valid numbers that are not mobiles stay out of `mobile`.
        for landline in [
            "+44 20 7946 0958",
            "+86 10 6552 9988",
            "+33 1 42 68 53 00",
            "+39 06 1234 5678",
        ] {
            assert_eq!(normalize_mobile(landline), Err(NotMobile), "{landline}");
        }
    }

    #[test]
    fn international_mobiles_are_accepted_in_e164() {
        assert_eq!(
            normalize_mobile("+44 7911 123456").as_deref(),
            Ok("+447911123456")
        );
        assert_eq!(
            normalize_mobile("0044 7911 123456").as_deref(),
            Ok("+447911123456")
        );
        // North America cannot tell mobiles from landlines: both are accepted.
        assert_eq!(
            normalize_mobile("+1 (415) 555-2671").as_deref(),
            Ok("+14155552671")
        );
        assert_eq!(
            normalize_mobile("＋８５２ ６１２３ ４５６７").as_deref(),
            Ok("+85261234567")
        );
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
    fn a_passport_given_as_its_mrz_line_has_every_check_digit_verified() {
        // The ICAO 9303 TD3 specimen (Utopia, L898902C3).
        let line = "L898902C36UTO7408122F1204159ZE184226B<<<<<10";
        assert_eq!(passport_from_mrz(line).as_deref(), Ok("L898902C3"));
        assert_eq!(
            normalize_document("passport", line, TODAY).as_deref(),
            Ok("L898902C3")
        );
        assert_eq!(
            normalize_document("passport", &line.to_lowercase(), TODAY).as_deref(),
            Ok("L898902C3")
        );
        // Each check digit in turn: document (10), birth (20), expiry (28), optional (43),
        // composite (44), and a changed data character that the composite catches.
        for (at, by) in [
            (9, '7'),
            (19, '3'),
            (27, '0'),
            (42, '2'),
            (43, '1'),
            (14, '5'),
        ] {
            let mut bad: Vec<char> = line.chars().collect();
            bad[at] = by;
            let bad: String = bad.into_iter().collect();
            assert_eq!(
                passport_from_mrz(&bad),
                Err(InvalidChecksum),
                "position {at}"
            );
        }
        assert_eq!(passport_from_mrz(&line[..43]), Err(InvalidFormat));
        assert_eq!(
            passport_from_mrz(&line.replace('F', "é")),
            Err(InvalidFormat)
        );
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
        // The 2004/2017 form: credentialkit's vector, then the same with a wrong check digit,
        // a wrong birth date, lower case and full width.
        assert_eq!(doc("KAZ110090123105").as_deref(), Ok("KAZ110090123105"));
        assert_eq!(doc("kaz110090123105").as_deref(), Ok("KAZ110090123105"));
        assert_eq!(
            doc("ＫＡＺ１１００９０１２３１０５").as_deref(),
            Ok("KAZ110090123105")
        );
        for wrong in 0..10 {
            if wrong != 5 {
                assert_eq!(doc(&format!("KAZ11009012310{wrong}")), Err(InvalidChecksum));
            }
        }
        assert_eq!(doc("KAZ110090133105"), Err(InvalidDate));
        assert_eq!(doc("USA310619800101"), Err(InvalidDate)); // month 80
        assert_eq!(doc("USA310690010111"), Err(InvalidChecksum));
        assert_eq!(doc("USA310690010110").as_deref(), Ok("USA310690010110"));
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
    fn foreign_names_in_their_passport_spelling_are_accepted() {
        let cases = [
            ("José Álvarez", "José Álvarez"),
            ("Zoë Müller", "Zoë Müller"),
            ("Nguyễn Văn An", "Nguyễn Văn An"),
            ("François Dupont", "François Dupont"),
            ("Søren Ångström", "Søren Ångström"),
            ("O'Brien", "O'Brien"),
            ("O’Brien", "O'Brien"),
            ("Jean-Luc Picard", "Jean-Luc Picard"),
            ("Jean‐Luc", "Jean-Luc"),
            ("Łukasz Żółć", "Łukasz Żółć"),
            ("Ștefan Ğürsel", "Ștefan Ğürsel"),
            ("Straße", "Straße"),
            // Decomposed input (e + combining acute, as macOS sends it) is composed.
            ("Jose\u{301} A\u{301}lvarez", "José Álvarez"),
            // Full-width Latin letters become ASCII.
            ("Ｊｏｈｎ　Ｓｍｉｔｈ", "John Smith"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_name(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn names_in_the_icao_mrz_form_are_stored_as_words_surname_first() {
        let cases = [
            ("ALVAREZ<<JOSE", "ALVAREZ JOSE"),
            ("MUELLER<<ZOE<<<<<<<<<<<<<<<<<<", "MUELLER ZOE"),
            ("NGUYEN<<VAN<AN", "NGUYEN VAN AN"),
            ("OBRIEN<<MARY<JANE", "OBRIEN MARY JANE"),
            ("ERIKSSON<<ANNA<MARIA", "ERIKSSON ANNA MARIA"),
            ("DUPONT<JEAN<<FRANCOIS", "DUPONT JEAN FRANCOIS"),
            ("MADONNA<<", "MADONNA"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_name(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "<<JOSE",
            "ALVAREZ<<<JOSE",
            "alvarez<<jose",
            "ALVAREZ<<JOSE1",
            "<",
            "A<B<<C<<D",
        ] {
            assert_eq!(normalize_name(bad), Err(InvalidFormat), "{bad}");
        }
    }

    #[test]
    fn middle_dot_look_alikes_become_the_middle_dot() {
        for dot in ['・', '･', '•', '‧', '∙', '⋅', '⸱', 'ꞏ', '·'] {
            let input = format!("麦麦提{dot}艾力");
            assert_eq!(
                normalize_name(&input).as_deref(),
                Ok("麦麦提·艾力"),
                "{dot:?}"
            );
        }
        // A full stop only between Han characters; in a Latin name it stays refused.
        assert_eq!(normalize_name("麦麦提.艾力").as_deref(), Ok("麦麦提·艾力"));
        assert_eq!(normalize_name("麦麦提．艾力").as_deref(), Ok("麦麦提·艾力"));
        assert_eq!(normalize_name("John F. Kennedy"), Err(InvalidFormat));
        assert_eq!(normalize_name(".艾力"), Err(InvalidFormat));
    }

    #[test]
    fn the_name_index_form_drops_latin_diacritics_only() {
        let cases = [
            ("Müller", "Muller"),
            ("Zoë Müller", "Zoe Muller"),
            ("Søren Ångström", "Soren Angstrom"),
            ("Nguyễn Văn An", "Nguyen Van An"),
            ("José Álvarez", "Jose Alvarez"),
            ("François Dupont", "Francois Dupont"),
            ("Łukasz Żółć", "Lukasz Zolc"),
            ("Straße", "Strasse"),
            ("Æsa Œrsted", "AEsa OErsted"),
        ];
        for (name, want) in cases {
            assert_eq!(name_index_form(name), want, "{name}");
            // The folded form is itself a valid name with the same form.
            let folded = normalize_name(want).unwrap();
            assert_eq!(name_index_form(&folded), want);
        }
        // Names valid before diacritics were accepted keep their form: stored blind-index
        // entries still match.
        for name in [
            "张三",
            "麦麦提·艾力",
            "John Smith",
            "Mary-Jane O'Brien",
            "𠀀丽",
            "﨑本",
        ] {
            assert!(matches!(name_index_form(name), std::borrow::Cow::Borrowed(n) if n == name));
        }
        // Case is kept: `MUELLER` (the MRZ transliteration) is not `Müller`.
        assert_ne!(name_index_form("Müller"), name_index_form("MULLER"));
    }

    #[test]
    fn names_with_digits_symbols_or_no_letters_are_rejected() {
        for bad in [
            "张3",
            "John5",
            "J@ne",
            "张\t三",
            "--",
            "·",
            "Jo×n",
            "Иван",
            "Γιάννης",
            "q\u{301}",
        ] {
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

    /// A random valid resident ID: a listed GB/T 2260 region (or 83xxxx), a
    /// real date in 1900..=2020, any sequence, and the right check character.
    fn valid_resident_id() -> impl Strategy<Value = String> {
        let mut regions: Vec<u32> = known_region_codes().collect();
        regions.extend([830000, 831234]);
        (
            prop::sample::select(regions),
            1900i32..=2020,
            1u16..=365,
            0u32..1000,
        )
            .prop_map(|(region, year, ordinal, seq)| {
                let dob = Date::from_ordinal_date(year, ordinal).unwrap();
                let body = format!(
                    "{region:06}{year:04}{:02}{:02}{seq:03}",
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

        /// Full-width spellings (as IMEs type them) of a valid resident ID normalize alike.
        #[test]
        fn full_width_resident_ids_normalize_like_ascii(id in valid_resident_id()) {
            let wide: String = id
                .chars()
                .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
                .collect();
            prop_assert_eq!(normalize_resident_id(&wide, TODAY), Ok(id));
        }

        /// Any Latin name with diacritics, apostrophes and hyphens is accepted, stays
        /// NFC/NFKC-stable (idempotent), and its index form is the ASCII-folded name.
        #[test]
        fn latin_names_are_accepted_and_fold_to_ascii(
            words in prop::collection::vec("[A-Z][a-zéèëêáàäâåãóòöôøõúùüûíìïîçñýÿßæœłđąęśźżčšžřőű'-]{1,6}", 1..4),
        ) {
            let name = words.join(" ");
            prop_assume!(name.chars().count() <= 30);
            prop_assume!(name.chars().any(|c| c.is_alphabetic()));
            let n = normalize_name(&name);
            prop_assert_eq!(n.as_deref(), Ok(name.as_str()));
            let folded = name_index_form(&name);
            prop_assert!(folded.is_ascii());
            prop_assert_eq!(name_index_form(&folded), folded.clone());
            // Decomposed input (NFD) normalizes to the same name.
            use unicode_normalization::UnicodeNormalization;
            let nfd: String = name.nfd().collect();
            let from_nfd = normalize_name(&nfd);
            prop_assert_eq!(from_nfd.as_deref(), Ok(name.as_str()));
        }

        /// Every mainland mobile spelling of the same number gives the same E.164 value.
        #[test]
        fn mainland_spellings_agree(national in "1[3-9][0-9]{9}") {
            let canonical = normalize_mobile(&national);
            let wide: String = national
                .chars()
                .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
                .collect();
            let spellings = [
                format!("+86{national}"),
                format!("0086 {national}"),
                format!("(+86) {} {} {}", &national[..3], &national[3..7], &national[7..]),
                format!("{}-{}-{}", &national[..3], &national[3..7], &national[7..]),
                format!("＋８６{wide}"),
                wide,
            ];
            for spelling in spellings {
                prop_assert_eq!(normalize_mobile(&spelling), canonical.clone());
            }
            if let Ok(e164) = canonical {
                prop_assert_eq!(normalize_mobile(&e164), Ok(e164.clone()));
            }
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
