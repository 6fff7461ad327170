//! Points between two keys, where a listing can be split in two. S3 lists
//! keys in the order of their UTF-8 bytes, which is the order of their code
//! points, so a key is read here as a number in base "every Unicode scalar
//! value": a point between two keys is their midpoint in that base, rounded
//! to the shortest key that lies strictly between them.
//!
//! Keys of real buckets crowd into a few characters (ASCII letters, digits,
//! `/`, `-`), so where no upper key is known the guess stays within ASCII
//! unless the keys at hand have left it: a split in the middle of all of
//! Unicode would almost always land where no key is.
//!
//! Better still are points where keys like the ones just listed go on
//! ([`points_ahead`]): keys vary in a few characters (the digits of a
//! counter or a date, the hex of a hash), so the next keys after
//! `obj/000000999` are found at `obj/00001`, `obj/00002`, ... (ten pages of
//! 1,000 ahead each), then `obj/0001`, ... (a hundred pages each): ranges
//! of every size at once, nearest first, in one round trip.

/// The number of Unicode scalar values: code points less the surrogates.
const BASE: u32 = 0x11_0000 - 0x800;
/// The first code point past ASCII, as a digit.
const PAST_ASCII: u32 = 0x80;
/// S3 keys (and so StartAfter) are at most 1,024 bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;

fn digit(c: char) -> u32 {
    let c = u32::from(c);
    if c >= 0xE000 { c - 0x800 } else { c }
}

fn char_of(digit: u32) -> char {
    let c = if digit >= 0xD800 {
        digit + 0x800
    } else {
        digit
    };
    // Every digit below BASE maps to a scalar value.
    char::from_u32(c).unwrap_or(char::MAX)
}

/// A key strictly between `low` and `high` (`None`: past every key under
/// `prefix`), keeping `prefix`, which both start with; `None` when no key
/// lies between them (or only keys longer than S3 allows).
pub fn midpoint(prefix: &str, low: &str, high: Option<&str>) -> Option<String> {
    let a: Vec<u32> = low.chars().map(digit).collect();
    let fixed = prefix.chars().count();
    let point = match high {
        Some(high) => {
            let b: Vec<u32> = high.chars().map(digit).collect();
            if b <= a {
                return None;
            }
            between(&a, &b)?
        }
        None => above(&a, fixed),
    };
    let key: String = point.into_iter().map(char_of).collect();
    let inside = key.as_str() > low && high.is_none_or(|h| key.as_str() < h);
    let fits = key.starts_with(prefix) && key.len() <= MAX_KEY_BYTES;
    (inside && fits && xml_safe(&key[prefix.len()..])).then_some(key)
}

/// How the keys of one full page are spelt: the characters they vary in,
/// and how many leading characters they all share (the page spans about
/// one step of the character after those).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub alphabet: Vec<char>,
    pub shared: usize,
}

impl Shape {
    /// The shape of a page of keys, in order, first to last.
    pub fn of(first: &str, last: &str, keys: impl Iterator<Item = String>) -> Shape {
        let shared = first
            .chars()
            .zip(last.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let mut alphabet: Vec<char> = keys
            .flat_map(|k| k.chars().skip(shared).collect::<Vec<_>>())
            .collect();
        alphabet.sort_unstable();
        alphabet.dedup();
        Shape { alphabet, shared }
    }
}

/// Up to `wanted` points after `frontier` and before `upto`, nearest first,
/// where keys spelt like `shape` would go on: at each position of
/// `frontier`, from the last to the first after `prefix`, every character of
/// the alphabet above the one there. Where one step is about a page, points
/// are a few steps apart, and positions finer than that come only when
/// nothing coarser is left: a listing learns that its range has ended only
/// from a page past it, so a slice of one page costs two.
pub fn points_ahead(
    prefix: &str,
    frontier: &str,
    upto: Option<&str>,
    shape: &Shape,
    wanted: usize,
) -> Vec<String> {
    let chars: Vec<char> = frontier.chars().collect();
    let fixed = prefix.chars().count();
    // The character before the shared ones steps about once a page: there,
    // points a few steps apart, so that a slice is a few pages; before it,
    // every step is many pages.
    let fine = shape.shared.saturating_sub(1);
    let stride = |j: usize| if j >= fine { PAGES_PER_FINE_SLICE } else { 1 };
    let coarse = points_from(
        prefix,
        &chars[..(fine + 1).min(chars.len())],
        fixed,
        upto,
        &shape.alphabet,
        wanted,
        stride,
    );
    if !coarse.is_empty() {
        return coarse;
    }
    points_from(prefix, &chars, fixed, upto, &shape.alphabet, wanted, |_| 1)
}

/// The prefix every key of the range `(after, upto]` shares: the longest
/// common prefix of its ends, where it is longer than the listing's own
/// `prefix`. A key between two strings that start alike starts so too, so
/// a slice listed with it sees only its own keys and the ones after them
/// in the same folder, not the next folders': a guessed range where no key
/// is (`data/0/3` to `data/0/5` while `data/0/` ends at `data/0/09`) then
/// costs an empty page, not a page of 1,000 keys of the slice after it.
pub fn range_prefix(prefix: &str, after: Option<&str>, upto: Option<&str>) -> String {
    let (Some(after), Some(upto)) = (after, upto) else {
        return prefix.to_owned();
    };
    let shared: usize = after
        .char_indices()
        .zip(upto.chars())
        .take_while(|((_, a), b)| a == b)
        .map(|((_, a), _)| a.len_utf8())
        .sum();
    let common = &after[..shared];
    if common.len() > prefix.len() && common.starts_with(prefix) {
        common.to_owned()
    } else {
        prefix.to_owned()
    }
}

/// Steps of a page each taken together at the finest position cut.
const PAGES_PER_FINE_SLICE: usize = 4;

fn points_from(
    prefix: &str,
    chars: &[char],
    fixed: usize,
    upto: Option<&str>,
    alphabet: &[char],
    wanted: usize,
    stride: impl Fn(usize) -> usize,
) -> Vec<String> {
    let mut points = Vec::new();
    for j in (fixed..chars.len()).rev() {
        let stem: String = chars[..j].iter().collect();
        let above = alphabet.iter().filter(|&&c| c > chars[j]);
        for &next in above.skip(stride(j) - 1).step_by(stride(j)) {
            if points.len() == wanted {
                return points;
            }
            let point = format!("{stem}{next}");
            if upto.is_some_and(|u| point.as_str() >= u) {
                return points;
            }
            if xml_safe(&point[prefix.len().min(point.len())..]) {
                points.push(point);
            }
        }
    }
    points
}

/// S3 names StartAfter again in its answer, and some servers (moto among
/// them) write it there raw even when asked to URL-encode: a point with a
/// character XML 1.0 cannot carry would break the listing. Such points are
/// not offered; the slice is split elsewhere, or not at all.
fn xml_safe(point: &str) -> bool {
    point
        .chars()
        .all(|c| !matches!(c, '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}'))
}

/// Between `a` and `b` (`a < b`, as digit strings).
fn between(a: &[u32], b: &[u32]) -> Option<Vec<u32>> {
    let i = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let mut point = a[..i].to_vec();
    match a.get(i) {
        // `a` is a prefix of `b`: a key that starts as `a` and stays below
        // the rest of `b`.
        None => {
            let y = b[i];
            if y >= 1 {
                // Below `b`'s next character, and printable where it can be.
                point.push(if y > 0x20 { (y / 2).max(0x20) } else { y / 2 });
            } else {
                // `b` continues with U+0000: only under it, deeper.
                point.push(0);
                let rest = b.get(i + 1..).filter(|rest| !rest.is_empty())?;
                point.extend(between(&[], rest)?);
            }
        }
        Some(&x) => {
            let y = b[i];
            if y - x >= 2 {
                point.push(x + (y - x) / 2);
            } else {
                // Adjacent: any key that continues `a` past its end is below `b`.
                point.push(x);
                point.extend(above(&a[i + 1..], 0));
            }
        }
    }
    Some(point)
}

/// A digit string above `a` (keeping its first `fixed` digits), halfway to
/// the top of the range its next digit is in: within ASCII while `a` is.
fn above(a: &[u32], fixed: usize) -> Vec<u32> {
    let mut point = a[..fixed.min(a.len())].to_vec();
    for &x in a.iter().skip(fixed) {
        let top = if x < PAST_ASCII { PAST_ASCII } else { BASE };
        if top - x >= 2 {
            point.push(x + (top - x) / 2);
            return point;
        }
        point.push(x);
    }
    point.push(PAST_ASCII / 2);
    point
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strictly_between(prefix: &str, low: &str, high: Option<&str>) -> String {
        let m = midpoint(prefix, low, high)
            .unwrap_or_else(|| panic!("no point between {low:?} and {high:?}"));
        assert!(m.as_bytes() > low.as_bytes(), "{m:?} > {low:?}");
        if let Some(high) = high {
            assert!(m.as_bytes() < high.as_bytes(), "{m:?} < {high:?}");
        }
        assert!(m.starts_with(prefix), "{m:?} keeps {prefix:?}");
        assert!(
            xml_safe(&m),
            "{m:?} is written raw into XML by some servers"
        );
        m
    }

    #[test]
    fn a_range_is_listed_under_the_prefix_its_ends_share() {
        let range = |after, upto| range_prefix("data/", after, upto);
        assert_eq!(range(Some("data/0/3"), Some("data/0/5")), "data/0/");
        assert_eq!(range(Some("data/0/3"), Some("data/1/")), "data/");
        assert_eq!(range(Some("data/0/3"), None), "data/");
        assert_eq!(range(None, Some("data/0/5")), "data/");
        // Never shorter than the listing's prefix, never inside a character.
        assert_eq!(
            range_prefix("data/0/", Some("data/"), Some("data/1")),
            "data/0/"
        );
        assert_eq!(range_prefix("", Some("aé1"), Some("aè2")), "a");
    }

    #[test]
    fn a_point_lies_strictly_between_in_s3s_byte_order() {
        for (low, high) in [
            ("a", "c"),
            ("a", "b"),
            ("a", "ab"),
            ("abc", "abd"),
            ("logs/2024/12/31/x", "logs/2025/01/01/a"),
            ("k0001", "k0002"),
            ("a", "a!"),
            ("a\u{7f}", "b"),
            ("\u{d7ff}", "\u{e000}\u{1}"),
            ("日本/1", "日本/9"),
            ("", "\u{10ffff}"),
            ("x\u{10ffff}", "y"),
        ] {
            strictly_between("", low, Some(high));
        }
    }

    #[test]
    fn nothing_lies_between_a_key_and_the_next_possible_one() {
        assert_eq!(midpoint("", "a", Some("a\u{0}")), None);
        // Only control characters lie between these: none is offered.
        assert_eq!(midpoint("", "a", Some("a\u{1}")), None);
        assert_eq!(midpoint("", "a", Some("a ")), None);
        assert_eq!(midpoint("", "b", Some("a")), None);
        assert_eq!(midpoint("", "a", Some("a")), None);
    }

    #[test]
    fn without_an_upper_key_the_guess_keeps_the_prefix_and_stays_in_ascii() {
        let m = strictly_between("logs/", "logs/2024/x", None);
        assert!(m.is_ascii(), "{m:?}");
        assert!(m.as_str() > "logs/2024/x", "{m:?}");
        // Keys already past ASCII are split among code points past it.
        let m = strictly_between("", "日本", None);
        assert!(!m.is_ascii(), "{m:?}");
    }

    #[test]
    fn repeated_halving_converges_on_dense_keys() {
        // Bisection between a listed key and the guess above it reaches
        // the next real key's neighbourhood in a few steps.
        let low = "k0001";
        let mut high: Option<String> = None;
        let mut steps = 0;
        while let Some(m) = midpoint("", low, high.as_deref()) {
            steps += 1;
            if m.as_str() < "k0002" {
                break;
            }
            high = Some(m);
            assert!(steps < 40, "bisection does not converge");
        }
        assert!(steps < 40);
    }

    #[test]
    fn points_ahead_follow_the_digits_the_keys_vary_in() {
        let keys = (0..1000).map(|i| format!("obj/{i:09}"));
        let shape = Shape::of("obj/000000000", "obj/000000999", keys);
        assert_eq!(shape.alphabet, ('0'..='9').collect::<Vec<_>>());
        assert_eq!(shape.shared, "obj/000000".len());
        let points = points_ahead("", "obj/000000999", None, &shape, 14);
        assert_eq!(
            points[..4],
            ["obj/000004", "obj/000008", "obj/00001", "obj/00002"],
            "four pages apart, then ten"
        );
        assert_eq!(points[11..], ["obj/0001", "obj/0002", "obj/0003"]);
        assert!(points.windows(2).all(|w| w[0] < w[1]), "nearest first");
        // Never at or past the slice's end; a page at a time where nothing
        // coarser is left.
        let bounded = points_ahead("", "obj/000000999", Some("obj/00003"), &shape, 12);
        assert_eq!(
            bounded,
            ["obj/000004", "obj/000008", "obj/00001", "obj/00002"]
        );
        let fine = points_ahead("", "obj/000000999", Some("obj/000003"), &shape, 12);
        assert_eq!(fine, ["obj/000001", "obj/000002"]);
        // Never outside the prefix.
        assert!(points_ahead("obj/", "obj/9", None, &shape, 5).is_empty());
    }

    #[test]
    fn points_never_exceed_the_longest_key_s3_holds() {
        // Between a longest key and the next one up, only longer keys lie.
        let long = "a".repeat(MAX_KEY_BYTES);
        assert_eq!(midpoint("", &long, Some(&format!("{long}~"))), None);
        let shorter = "a".repeat(MAX_KEY_BYTES - 1);
        assert!(midpoint("", &shorter, Some(&format!("{shorter}~"))).is_some());
    }
}
