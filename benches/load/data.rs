//! Deterministic test guests: guest `i` always has the same name, resident ID, mobile and
//! address, all valid under the vault's validators (the seeder runs them to be sure). Mobiles
//! are unique for `i < 100,000,000`, so a search by guest `i`'s mobile must find guest `i` alone.

use serde_json::{json, Map, Value};

/// SplitMix64: a tiny, good-enough PRNG (no dependency needed for load generation).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform enough in `0..n` for `n` far below 2^64.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The SplitMix64 finalizer: a stateless hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const SURNAMES: [&str; 40] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "田", "董", "袁", "潘", "蒋", "蔡", "欧阳", "司马",
];
const GIVEN: [&str; 32] = [
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "婷", "浩然", "子涵", "欣怡", "梓萱",
    "宇轩", "思远", "一鸣", "雨桐",
];
/// (province code of the resident ID, address prefix)
const CITIES: [(u32, &str); 8] = [
    (11, "北京市海淀区"),
    (31, "上海市浦东新区"),
    (44, "广东省广州市天河区"),
    (33, "浙江省杭州市西湖区"),
    (51, "四川省成都市武侯区"),
    (32, "江苏省南京市鼓楼区"),
    (42, "湖北省武汉市洪山区"),
    (61, "陕西省西安市雁塔区"),
];
const STREETS: [&str; 8] = [
    "中关村大街",
    "人民路",
    "解放路",
    "建设路",
    "和平路",
    "中山路",
    "长江路",
    "文化路",
];
const MOBILE_PREFIXES: [&str; 24] = [
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151", "152",
    "153", "155", "156", "158", "159", "177", "180", "186", "187", "188", "199",
];
/// Odd and not a multiple of 5, so `i * MOBILE_STRIDE mod 10^8` is a bijection on `0..10^8`.
const MOBILE_STRIDE: u64 = 37_987_651;
const MOBILE_SPACE: u64 = 100_000_000;

/// Guest `i`'s mainland mobile, 11 digits.
pub fn mobile(i: u64) -> String {
    let prefix = MOBILE_PREFIXES[(mix(i) % MOBILE_PREFIXES.len() as u64) as usize];
    let suffix = (i % MOBILE_SPACE).wrapping_mul(MOBILE_STRIDE) % MOBILE_SPACE;
    format!("{prefix}{suffix:08}")
}

/// Guest `i`'s mobile as staff might type it: the vault must normalize every spelling.
pub fn mobile_spelled(i: u64, variant: u64) -> String {
    let m = mobile(i);
    let (a, b, c) = (&m[..3], &m[3..7], &m[7..]);
    match variant % 4 {
        0 => m.clone(),
        1 => format!("{a} {b} {c}"),
        2 => format!("+86 {a}-{b}-{c}"),
        _ => format!("86{m}"),
    }
}

/// A county code of `province` from the vault's GB/T 2260 list (the vault checks the region
/// at county level), picked by `h`.
fn county(province: impl std::fmt::Display, h: u64) -> &'static str {
    type ByProvince = std::collections::HashMap<&'static str, Vec<&'static str>>;
    static COUNTIES: std::sync::OnceLock<ByProvince> = std::sync::OnceLock::new();
    let by_province = COUNTIES.get_or_init(|| {
        let mut map = ByProvince::new();
        for code in include_str!("../../src/domain/data/gbt2260_codes.txt")
            .lines()
            .filter(|l| l.len() == 6 && !l.starts_with('#') && !l.ends_with("00"))
        {
            map.entry(&code[..2]).or_default().push(code);
        }
        map
    });
    let prefix = format!("{province:02}");
    let mine = by_province
        .get(prefix.as_str())
        .unwrap_or_else(|| panic!("no county code for province {prefix}"));
    mine[(h % mine.len() as u64) as usize]
}

/// GB 11643 check character of a 17-digit body.
fn resident_id_check(body: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    match (12 - sum % 11) % 11 {
        10 => 'X',
        v => char::from(b'0' + v as u8),
    }
}

/// The registration record a PMS sends at check-in for guest `i` (the `check_in` purpose's
/// fields: name, gender, birth date, nationality, resident ID, mobile, address).
pub fn guest_fields(i: u64) -> Map<String, Value> {
    let h = mix(i ^ 0x5EED);
    let surname = SURNAMES[(h % 40) as usize];
    let given = GIVEN[((h >> 8) % 32) as usize];
    let (province, city) = CITIES[((h >> 16) % 8) as usize];
    let street = STREETS[((h >> 20) % 8) as usize];
    let house = 1 + (h >> 24) % 999;
    // Born between 1950 and about 2004.
    let born = time::Date::from_calendar_date(1950, time::Month::January, 1)
        .unwrap()
        .checked_add(time::Duration::days(((h >> 32) % 20_000) as i64))
        .unwrap();
    let area = county(province, h >> 12);
    let seq = (h >> 44) % 1000;
    let body = format!(
        "{area}{:04}{:02}{:02}{seq:03}",
        born.year(),
        u8::from(born.month()),
        born.day()
    );
    let id_number = format!("{body}{}", resident_id_check(&body));
    let gender = if seq % 2 == 1 { "M" } else { "F" };
    let fields = json!({
        "full_name": format!("{surname}{given}"),
        "gender": gender,
        "birth_date": format!("{:04}-{:02}-{:02}", born.year(), u8::from(born.month()), born.day()),
        "nationality": "CN",
        "id_type": "cn_resident_id",
        "id_number": id_number,
        "mobile": mobile(i),
        "address": format!("{city}{street}{house}号"),
    });
    match fields {
        Value::Object(m) => m,
        _ => unreachable!("a json! object literal"),
    }
}

/// A stay a PMS records at check-in (all of the `check_in` purpose's stay fields).
pub fn stay_fields(rng: &mut Rng) -> Value {
    let start = time::Date::from_calendar_date(2026, time::Month::January, 1)
        .unwrap()
        .checked_add(time::Duration::days(rng.below(300) as i64))
        .unwrap();
    let nights = 1 + rng.below(6);
    let end = start
        .checked_add(time::Duration::days(nights as i64))
        .unwrap();
    let ymd = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    let rooms = [
        "deluxe king",
        "superior twin",
        "executive suite",
        "standard queen",
    ];
    let property = ["SHA01", "PEK02", "CAN03", "CTU04"][rng.below(4) as usize];
    let channel = ["direct", "ota", "corporate", "walk_in"][rng.below(4) as usize];
    json!({ "fields": {
        "property": property,
        "check_in": ymd(start),
        "check_out": ymd(end),
        "room_type": rooms[rng.below(4) as usize],
        "room_number": format!("{}{:02}", 2 + rng.below(30), 1 + rng.below(40)),
        "amount": format!("{}.00", 480 * nights + rng.below(400)),
        "currency": "CNY",
        "channel": channel,
    }})
}
