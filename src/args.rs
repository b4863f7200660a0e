//! Argument paths, and the values a verifier derives from a call's arguments
//! for the limits Datalog has no function for: a normalised filesystem path,
//! a parsed URL, an IP address as bits, a number on an ordered integer scale,
//! and arrays. One implementation serves the facts the authorizer reads
//! (`ops::request_facts`) and the direct evaluation (`ops::direct`), so the
//! two cannot disagree; `SCHEMA.md` ("Derived facts") documents each.
//!
//! Every derivation fails closed: a value it cannot decide on with certainty
//! (a path with `..` above the root, a percent sign, a look-alike separator;
//! a URL with userinfo or a non-ASCII host; an integer beyond 2^53) yields no
//! fact, and a limit on it refuses.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{ArgLimit, ArgRule, Bound, Scalar};

/// Most segments in an argument path.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Longest `matches` pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Largest compiled `matches` pattern (the regex crate's size limit).
pub const MAX_REGEX_SIZE: usize = 1 << 20;

/// A parsed argument path: where the value is, and whether a limit applies
/// to every element of the array found there (`items[*]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgPath {
    /// Object keys (and array indexes) from the arguments object down.
    pub segments: Vec<String>,
    /// The limit applies to each element of an array.
    pub each: bool,
}

fn bad_path(text: &str, why: &str) -> Error {
    Error::invalid(format!("argument path {text:?}: {why}"))
}

/// Whether a segment can be written in the dotted form.
fn dotted_segment(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('/') && !s.contains(['.', '[', ']', '~']) && !s.ends_with("[*]")
}

impl ArgPath {
    /// Parses what a person writes: `path`, `config.mode` (objects, and
    /// array indexes as decimal segments), a JSON pointer `/config/mode`
    /// (RFC 6901, for keys with dots), each optionally ending in `[*]`.
    pub fn parse(text: &str) -> Result<ArgPath> {
        let (body, each) = match text.strip_suffix("[*]") {
            Some(b) => (b, true),
            None => (text, false),
        };
        let segments: Vec<String> = if let Some(pointer) = body.strip_prefix('/') {
            pointer
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect()
        } else {
            body.split('.').map(str::to_string).collect()
        };
        if segments.iter().any(String::is_empty) {
            return Err(bad_path(text, "has an empty segment"));
        }
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(bad_path(
                text,
                &format!("has more than {MAX_PATH_SEGMENTS} segments"),
            ));
        }
        if segments.iter().any(|s| s.contains("[*]")) {
            return Err(bad_path(text, "[*] may only end the path"));
        }
        Ok(ArgPath { segments, each })
    }

    /// The key facts name the value by: a top-level key as itself (as every
    /// mcpvault version wrote it), anything deeper as a JSON pointer. Keys
    /// starting with `/` get no plain fact, so the two never collide.
    pub fn key(&self) -> String {
        match self.segments.as_slice() {
            [one] if !one.starts_with('/') => one.clone(),
            segments => segments.iter().fold(String::new(), |mut out, s| {
                out.push('/');
                out.push_str(&s.replace('~', "~0").replace('/', "~1"));
                out
            }),
        }
    }

    /// The canonical text: dotted when every segment allows it, else a
    /// pointer; `[*]` when each element is limited. Parses back to `self`.
    pub fn text(&self) -> String {
        let mut out = if self.segments.iter().all(|s| dotted_segment(s)) {
            self.segments.join(".")
        } else {
            self.segments.iter().fold(String::new(), |mut out, s| {
                out.push('/');
                out.push_str(&s.replace('~', "~0").replace('/', "~1"));
                out
            })
        };
        if self.each {
            out.push_str("[*]");
        }
        out
    }

    /// The path a fact key names (the reverse of [`ArgPath::key`]).
    pub fn of_key(key: &str, each: bool) -> ArgPath {
        let segments = match key.strip_prefix('/') {
            Some(pointer) => pointer
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
            None => vec![key.to_string()],
        };
        ArgPath { segments, each }
    }
}

/// The value a fact key names in a call's arguments: a top-level key, or a
/// JSON pointer through objects and arrays (decimal indexes, no leading
/// zeros).
pub fn lookup<'a>(arguments: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let Some(pointer) = key.strip_prefix('/') else {
        return arguments.get(key);
    };
    let mut segments = pointer
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"));
    let mut value = arguments.get(&segments.next()?)?;
    for s in segments {
        value = match value {
            Value::Object(map) => map.get(&s)?,
            Value::Array(items) => {
                if s.len() > 1 && s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                items.get(s.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(value)
}

// ---------------------------------------------------------------- numbers

/// 2^53: every integer of smaller magnitude is a double exactly (and a
/// JavaScript safe integer).
pub const EXACT_INT: u64 = 1 << 53;

/// A double on an ordered integer scale: `a <= b` exactly when
/// `key(a) <= key(b)`; `-0` is `0`. (IEEE-754 bits, negatives mirrored.)
pub fn f64_key(x: f64) -> i64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let bits = i64::from_ne_bytes(x.to_bits().to_ne_bytes());
    if bits < 0 {
        bits ^ i64::MAX
    } else {
        bits
    }
}

/// The double a key stands for (the reverse of [`f64_key`]).
pub fn key_f64(key: i64) -> f64 {
    let bits = if key < 0 { key ^ i64::MAX } else { key };
    f64::from_bits(u64::from_ne_bytes(bits.to_ne_bytes()))
}

/// A JSON number as a key, compared as the double it is (`1e2` is 100, `-0`
/// is 0). A number of magnitude 2^53 or more has none: beyond JavaScript's
/// safe integers a double no longer holds every integer, and a JavaScript
/// host has already rounded it (`2^53 + 1` arrives as `2^53`, `2^64 - 1` as
/// `2^64`), so refusing them all is the one rule every host applies alike.
pub fn number_key(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else {
        return None;
    };
    let x = if let Some(i) = n.as_i64() {
        if i.unsigned_abs() >= EXACT_INT {
            return None;
        }
        i as f64
    } else if n.is_u64() {
        return None; // above i64::MAX
    } else {
        n.as_f64()?
    };
    (x.is_finite() && x.abs() < EXACT_INT as f64).then(|| f64_key(x))
}

// ---------------------------------------------------------------- paths

/// Characters that look like `/`, `\` or `.` (Unicode confusables), and
/// invisible ones: a path holding any is refused, not normalised.
const LOOKALIKES: &[char] = &[
    '\u{2215}',
    '\u{2044}',
    '\u{FF0F}',
    '\u{29F8}',
    '\u{1735}',
    '\u{2571}',
    '\u{3033}',
    '\u{30CE}',
    '\u{4E3F}',
    '\u{2F03}',
    '\u{FE68}',
    '\u{FF3C}',
    '\u{2216}',
    '\u{29F5}',
    '\u{29F9}',
    '\u{2572}',
    '\u{FF0E}',
    '\u{2024}',
    '\u{2025}',
    '\u{2026}',
    '\u{FE52}',
    '\u{3002}',
    '\u{FF61}',
    '\u{0701}',
    '\u{0702}',
    '\u{A60E}',
    '\u{10A50}',
    '\u{2E3C}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{200E}',
    '\u{200F}',
    '\u{202A}',
    '\u{202B}',
    '\u{202C}',
    '\u{202D}',
    '\u{202E}',
    '\u{2060}',
    '\u{2061}',
    '\u{2062}',
    '\u{2063}',
    '\u{2064}',
    '\u{FEFF}',
    '\u{00AD}',
    // every other character whose NFKC form holds '.', '/' or '\\' (a server that normalises would read one)
    '\u{2100}',
    '\u{2101}',
    '\u{2105}',
    '\u{2106}',
    '\u{2488}',
    '\u{2489}',
    '\u{248A}',
    '\u{248B}',
    '\u{248C}',
    '\u{248D}',
    '\u{248E}',
    '\u{248F}',
    '\u{2490}',
    '\u{2491}',
    '\u{2492}',
    '\u{2493}',
    '\u{2494}',
    '\u{2495}',
    '\u{2496}',
    '\u{2497}',
    '\u{2498}',
    '\u{2499}',
    '\u{249A}',
    '\u{249B}',
    '\u{33C2}',
    '\u{33C7}',
    '\u{33D8}',
    '\u{FE19}',
    '\u{FE30}',
    '\u{1F100}',
];

/// An absolute POSIX path with `.` and `..` resolved and repeated or
/// trailing `/` removed; `None` (refused) for a relative path, `..` above the
/// root, NUL or another control character, `\`, `%` (percent-encoding is
/// never decoded, so it is refused) and look-alike characters.
pub fn normal_path(s: &str) -> Option<String> {
    if !s.starts_with('/')
        || s.chars()
            .any(|c| c.is_control() || c == '\\' || c == '%' || LOOKALIKES.contains(&c))
    {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in s.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            name => out.push(name),
        }
    }
    let mut path = String::with_capacity(s.len());
    for name in &out {
        path.push('/');
        path.push_str(name);
    }
    if path.is_empty() {
        path.push('/');
    }
    Some(path)
}

/// A directory for `under`: normalised (so `/srv/public/` is `/srv/public`).
pub fn under_base(base: &str) -> Result<String> {
    normal_path(base).ok_or_else(|| {
        Error::invalid(format!(
            "under needs an absolute path without '..' above the root, '%', '\\' or look-alike characters, not {base:?}"
        ))
    })
}

/// Whether `path` (resolved: [`normal_path`]) is `base` (resolved: [`under_base`]) or inside it.
pub fn path_under(base: &str, path: &str) -> bool {
    path == base || path.starts_with(&under_prefix(base))
}

/// The prefix a path under `base` starts with.
pub fn under_prefix(base: &str) -> String {
    if base == "/" {
        "/".to_string()
    } else {
        format!("{base}/")
    }
}

// ---------------------------------------------------------------- URLs

/// A URL as the `url` limit reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub scheme: String,
    pub host: String,
    pub port: i64,
    pub path: String,
}

/// Parses a URL as a browser does (the WHATWG URL standard, through the
/// `url` crate), refusing what parsers disagree on: non-ASCII text (give IDN
/// hosts in their `xn--` form), spaces, controls and `\` anywhere, `%` or
/// `@` (userinfo) in the authority, a host ending in `.`, a scheme with no
/// known port and none given, and a path holding an encoded `/`, `\`, `.`
/// or NUL.
pub fn url_parts(s: &str) -> Option<UrlParts> {
    if !s.is_ascii()
        || s.bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
    {
        return None;
    }
    let (_, rest) = s.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains(['%', '@']) {
        return None;
    }
    let url = url::Url::parse(s).ok()?;
    if url.cannot_be_a_base() || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = match url.host()? {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => format!("[{a}]"),
    };
    if host.is_empty() || host.ends_with('.') {
        return None;
    }
    let path = url.path();
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return None;
    }
    Some(UrlParts {
        scheme: url.scheme().to_string(),
        host,
        port: i64::from(url.port_or_known_default()?),
        path: path.to_string(),
    })
}

/// A `url` limit: a scheme, a host (exact, or `*.` and a domain: any
/// subdomain of it, not the domain itself), a port, and optionally a path
/// the URL's path must be (or be under).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    pub scheme: String,
    /// The exact host, or the suffix (starting with `.`) of a wildcard.
    pub host: String,
    pub wildcard: bool,
    pub port: i64,
    /// Without a trailing `/`; `None` when any path is allowed.
    pub path: Option<String>,
}

impl UrlPattern {
    pub fn parse(text: &str) -> Result<UrlPattern> {
        let bad = |why: &str| Error::invalid(format!("url pattern {text:?}: {why}"));
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://HOST[:PORT][/PATH]"))?;
        let wildcard = rest.starts_with("*.");
        let concrete = if wildcard {
            format!("{scheme}://wildcard{}", rest.get(1..).unwrap_or(""))
        } else {
            text.to_string()
        };
        if concrete.contains(['?', '#', '*']) {
            return Err(bad(
                "only a leading '*.' is a wildcard; no query or fragment",
            ));
        }
        let parts = url_parts(&concrete).ok_or_else(|| {
            bad("not a URL this limit can decide on (ASCII only, no userinfo, a known port)")
        })?;
        let host = if wildcard {
            let suffix = parts.host.strip_prefix("wildcard").unwrap_or("");
            if !suffix.starts_with('.') || suffix.contains(['[', ':']) || suffix.len() < 2 {
                return Err(bad("a wildcard host is '*.' and a domain name"));
            }
            suffix.to_string()
        } else {
            parts.host
        };
        let path = match parts.path.trim_end_matches('/') {
            "" => None,
            p => Some(p.to_string()),
        };
        Ok(UrlPattern {
            scheme: parts.scheme,
            host,
            wildcard,
            port: parts.port,
            path,
        })
    }

    /// The canonical text (default ports left out).
    pub fn text(&self) -> String {
        let mut out = format!("{}://", self.scheme);
        if self.wildcard {
            out.push('*');
        }
        out.push_str(&self.host);
        let default = url::Url::parse(&format!("{}://h/", self.scheme))
            .ok()
            .and_then(|u| u.port_or_known_default())
            .map(i64::from);
        if default != Some(self.port) {
            let _ = write!(out, ":{}", self.port);
        }
        if let Some(p) = &self.path {
            out.push_str(p);
        }
        out
    }

    pub fn path_prefix(path: &str) -> String {
        format!("{path}/")
    }

    pub fn allows(&self, url: &UrlParts) -> bool {
        url.scheme == self.scheme
            && url.port == self.port
            && if self.wildcard {
                url.host.ends_with(self.host.as_str())
            } else {
                url.host == self.host
            }
            && self.path.as_ref().map_or(true, |p| {
                url.path == *p || url.path.starts_with(&Self::path_prefix(p))
            })
    }
}

// ---------------------------------------------------------------- IP addresses

fn bits_of(addr: Ipv6Addr) -> String {
    addr.octets()
        .iter()
        .fold(String::with_capacity(128), |mut s, b| {
            let _ = write!(s, "{b:08b}");
            s
        })
}

fn as_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// An IP address as 128 `0`/`1` characters (IPv4 as its IPv4-mapped IPv6
/// address, so `::ffff:10.0.0.1` is `10.0.0.1`); `None` for anything the
/// standard parser refuses (shorthand like `10.1`, octal or hex octets,
/// leading zeros, zone ids, brackets).
pub fn ip_bits(s: &str) -> Option<String> {
    s.parse::<IpAddr>().ok().map(|a| bits_of(as_v6(a)))
}

/// A network `ADDR/LEN` (IPv4 or IPv6, host bits zero) as the bit prefix
/// its addresses start with.
pub fn cidr_bits(text: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(format!("cidr {text:?}: {why}"));
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/LENGTH"))?;
    let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
    let len: usize = len
        .parse()
        .ok()
        .filter(|l| *l <= if addr.is_ipv4() { 32 } else { 128 })
        .ok_or_else(|| bad("bad prefix length"))?;
    let len = if addr.is_ipv4() { len + 96 } else { len };
    let bits = bits_of(as_v6(addr));
    let (prefix, host) = bits.split_at(len.min(128));
    if host.contains('1') {
        return Err(bad("host bits are set"));
    }
    Ok(prefix.to_string())
}

/// The canonical text of a network from its bit prefix (IPv4 when it is
/// within `::ffff:0:0/96`).
pub fn cidr_text(prefix: &str) -> Option<String> {
    if prefix.len() > 128 || !prefix.bytes().all(|b| b == b'0' || b == b'1') {
        return None;
    }
    let mut bits = prefix.to_string();
    while bits.len() < 128 {
        bits.push('0');
    }
    let value = u128::from_str_radix(&bits, 2).ok()?;
    let addr = Ipv6Addr::from(value);
    let mapped = format!("{}{}", "0".repeat(80), "1".repeat(16));
    match addr.to_ipv4_mapped() {
        Some(v4) if prefix.len() >= 96 && prefix.starts_with(&mapped) => {
            Some(format!("{v4}/{}", prefix.len() - 96))
        }
        _ => Some(format!("{addr}/{}", prefix.len())),
    }
}

// ---------------------------------------------------------------- globs and patterns

/// Regex metacharacters a glob may hold as literals: each is written as a
/// one-character class (`[.]`), since mcpvault writes no `\` into a token.
const GLOB_ESCAPED: &[char] = &['.', '+', '(', ')', '|', '{', '}', '$', '#', '&', '-', '~'];
/// Characters a glob may not hold (no backslash-free way to match them).
const GLOB_REFUSED: &[char] = &['[', ']', '\\', '^', '"'];

/// A shell-style wildcard (`*` any run of characters, `?` one character,
/// everything else literal) as an anchored regular expression.
pub fn glob_regex(glob: &str) -> Result<String> {
    if glob.contains(GLOB_REFUSED) || glob.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "glob {glob:?} may not contain [ ] \\ ^ \" or control characters"
        )));
    }
    let mut re = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            c if GLOB_ESCAPED.contains(&c) => {
                re.push('[');
                re.push(c);
                re.push(']');
            }
            c => re.push(c),
        }
    }
    re.push('$');
    Ok(re)
}

/// Whether `text` matches `glob` as its [`glob_regex`] does (anchored; `*` any run of characters, newlines
/// included, `?` one character), without compiling a regular expression: a list or a `subscriptions/listen` of many
/// URIs is matched against every grant, and a compile per pair cost seconds. A glob [`glob_regex`] refuses matches
/// nothing. The usual wildcard walk: on a mismatch, the last `*` takes one more character.
pub fn glob_match(glob: &str, text: &str) -> bool {
    glob_match_within(glob, text, &std::cell::Cell::new(u64::MAX)) == Some(true)
}

/// Most steps of [`glob_match_within`] one request may take (a list filtered, a `subscriptions/listen` decided). The
/// walk takes up to |glob| × |text| steps, and both are the caller's: a holder attenuates a token with 4 KB globs
/// that fail late, and listens to 100 URIs of 4 KB each — 15 s of one core for one request before the limit.
pub const GLOB_STEPS: u64 = 10_000_000;

/// The text of a glob before its first wildcard.
pub(crate) fn glob_literal_prefix(glob: &str) -> &str {
    glob.split(['*', '?']).next().unwrap_or_default()
}

/// [`glob_match`], taking its steps from `steps`: none when they run out (the answer is then unknown, never a match).
pub fn glob_match_within(glob: &str, text: &str, steps: &std::cell::Cell<u64>) -> Option<bool> {
    if glob.contains(GLOB_REFUSED) || glob.chars().any(char::is_control) {
        return Some(false);
    }
    let take = |n: u64| {
        let left = steps.get().checked_sub(n)?;
        steps.set(left);
        Some(())
    };
    // the glob's text before its first wildcard first: most globs of a list fail there, at the cost of that text
    let literal = glob_literal_prefix(glob);
    take(literal.len().min(text.len()) as u64 + 1)?;
    if !text.starts_with(literal) {
        return Some(false);
    }
    take((glob.len() + text.len()) as u64)?;
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&tc) = t.get(ti) {
        take(1)?;
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ti));
                gi += 1;
            }
            Some(&c) if c == '?' || c == tc => {
                gi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    gi = sg + 1;
                    ti = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return Some(false),
            },
        }
    }
    Some(g.get(gi..).unwrap_or_default().iter().all(|&c| c == '*'))
}

/// The glob a regular expression was written from, if it was.
pub fn regex_glob(re: &str) -> Option<String> {
    let mut rest = re.strip_prefix('^')?.strip_suffix('$')?;
    let mut glob = String::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("(?s:.*)") {
            glob.push('*');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("(?s:.)") {
            glob.push('?');
            rest = r;
        } else {
            let mut chars = rest.chars();
            let c = chars.next()?;
            if c == '[' {
                let inner = chars.next()?;
                if chars.next()? != ']' || !GLOB_ESCAPED.contains(&inner) {
                    return None;
                }
                glob.push(inner);
            } else {
                glob.push(c);
            }
            rest = chars.as_str();
        }
    }
    (glob_regex(&glob).ok()? == re).then_some(glob)
}

/// Checks a `matches` pattern: at most [`MAX_PATTERN_LEN`] bytes, compiling
/// within [`MAX_REGEX_SIZE`] (the regex crate matches in linear time).
pub fn check_pattern(pattern: &str) -> Result<()> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
        return Err(Error::invalid(format!(
            "a pattern is 1 to {MAX_PATTERN_LEN} bytes"
        )));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_SIZE)
        .build()
        .map(|_| ())
        .map_err(|e| Error::invalid(format!("pattern {pattern:?}: {e}")))
}

/// Whether `text` matches `pattern` as biscuit-auth's `.matches()` decides
/// (an unanchored search; a pattern that does not compile matches nothing).
pub fn is_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text))
}

// ---------------------------------------------------------------- derived facts

/// What a verifier derives from an argument for a limit: which fact it adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Need {
    /// `request_arg_str|int|bool` for a nested path (top-level scalars get
    /// theirs whether a limit names them or not).
    Scalar,
    /// `request_arg_num(KEY, ordered integer)`.
    Num,
    /// `request_arg_path(KEY, normalised path)`.
    Path,
    /// `request_arg_url(KEY, scheme, host, port, path)`.
    Url,
    /// `request_arg_ip(KEY, 128 bits as "0"/"1")`.
    Ip,
    /// `request_arg_array(KEY, [elements])`.
    Array,
}

/// The fact key and kind a limit reads.
pub(crate) fn need_of(limit: &ArgLimit) -> Option<(String, Need)> {
    let path = ArgPath::parse(&limit.arg).ok()?;
    let key = path.key();
    let need = if path.each {
        Need::Array
    } else {
        match &limit.rule {
            ArgRule::Max(Bound::Float(_)) | ArgRule::Min(Bound::Float(_)) => Need::Num,
            ArgRule::Under(_) => Need::Path,
            ArgRule::Url(_) => Need::Url,
            ArgRule::Cidr(_) => Need::Ip,
            ArgRule::MaxItems(_) | ArgRule::MinItems(_) => Need::Array,
            _ if key.starts_with('/') => Need::Scalar,
            _ => return None,
        }
    };
    Some((key, need))
}

/// A derived value: what the fact holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Derived<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Num(i64),
    Path(String),
    Url(UrlParts),
    Ip(String),
    Array(&'a [Value]),
}

/// The value a verifier supplies for `key` and `need`, if any.
pub(crate) fn derive<'a>(
    arguments: &'a Map<String, Value>,
    key: &str,
    need: Need,
) -> Option<Derived<'a>> {
    let value = lookup(arguments, key)?;
    match need {
        Need::Scalar => scalar(value),
        Need::Num => number_key(value).map(Derived::Num),
        Need::Path => value.as_str().and_then(normal_path).map(Derived::Path),
        Need::Url => value.as_str().and_then(url_parts).map(Derived::Url),
        Need::Ip => value.as_str().and_then(ip_bits).map(Derived::Ip),
        Need::Array => value.as_array().map(|a| Derived::Array(a.as_slice())),
    }
}

/// A scalar argument's fact value: strings, booleans and integers that fit
/// 64 bits; nothing for floats, null, objects and arrays.
pub(crate) fn scalar(value: &Value) -> Option<Derived<'_>> {
    match value {
        Value::String(s) => Some(Derived::Str(s)),
        Value::Bool(b) => Some(Derived::Bool(*b)),
        Value::Number(n) => n.as_i64().map(Derived::Int),
        _ => None,
    }
}

/// The regular expression of a `glob` or `matches` limit.
pub(crate) fn pattern_of(rule: &ArgRule) -> String {
    match rule {
        // a glob that does not translate was never minted; "$^" matches nothing
        ArgRule::Glob(g) => glob_regex(g).unwrap_or_else(|_| "$^".into()),
        ArgRule::Matches(p) => p.clone(),
        _ => String::new(),
    }
}

/// What a chain's limits need compiled, compiled once per verified chain
/// (a cached verify reuses it): regular expressions, URL patterns, network
/// prefixes. A pattern not found here is compiled on the spot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared {
    regexes: Vec<(String, regex::Regex)>,
    urls: Vec<(String, UrlPattern)>,
    networks: Vec<(String, String)>,
}

impl Prepared {
    pub fn of<'a>(limits: impl Iterator<Item = &'a ArgLimit>) -> Prepared {
        let mut p = Prepared::default();
        for l in limits {
            match &l.rule {
                ArgRule::Glob(_) | ArgRule::Matches(_) => {
                    let pattern = pattern_of(&l.rule);
                    if let Ok(re) = regex::Regex::new(&pattern) {
                        p.regexes.push((pattern, re));
                    }
                }
                ArgRule::Url(u) => {
                    if let Ok(pattern) = UrlPattern::parse(u) {
                        p.urls.push((u.clone(), pattern));
                    }
                }
                ArgRule::Cidr(net) => {
                    if let Ok(bits) = cidr_bits(net) {
                        p.networks.push((net.clone(), bits));
                    }
                }
                _ => {}
            }
        }
        p
    }

    /// Whether `text` matches a glob (a resource pattern), as `.matches()`
    /// decides on the glob's regular expression.
    pub fn glob_matches(&self, glob: &str, text: &str) -> bool {
        match glob_regex(glob) {
            Ok(re) => self.is_match(&re, text),
            Err(_) => false,
        }
    }

    /// Compiles a resource pattern once.
    pub fn add_glob(&mut self, glob: &str) {
        if let Ok(pattern) = glob_regex(glob) {
            if let Ok(re) = regex::Regex::new(&pattern) {
                self.regexes.push((pattern, re));
            }
        }
    }

    fn is_match(&self, pattern: &str, text: &str) -> bool {
        match self.regexes.iter().find(|(p, _)| p == pattern) {
            Some((_, re)) => re.is_match(text),
            None => is_match(pattern, text),
        }
    }

    fn url_allows(&self, pattern: &str, url: &UrlParts) -> bool {
        match self.urls.iter().find(|(p, _)| p == pattern) {
            Some((_, p)) => p.allows(url),
            None => UrlPattern::parse(pattern).is_ok_and(|p| p.allows(url)),
        }
    }

    fn in_network(&self, net: &str, bits: &str) -> bool {
        match self.networks.iter().find(|(n, _)| n == net) {
            Some((_, prefix)) => bits.starts_with(prefix.as_str()),
            None => cidr_bits(net).is_ok_and(|prefix| bits.starts_with(&prefix)),
        }
    }
}

/// Whether one scalar satisfies a rule (the rule's own type only).
fn scalar_allows(rule: &ArgRule, v: &Derived<'_>, prepared: &Prepared) -> bool {
    match (rule, v) {
        (ArgRule::Max(Bound::Int(m)), Derived::Int(i)) => i <= m,
        (ArgRule::Min(Bound::Int(m)), Derived::Int(i)) => i >= m,
        (ArgRule::Prefix(p), Derived::Str(s)) => s.starts_with(p.as_str()),
        (ArgRule::Eq(Scalar::Str(x)), Derived::Str(s)) => x == s,
        (ArgRule::Eq(Scalar::Int(x)), Derived::Int(i)) => x == i,
        (ArgRule::Eq(Scalar::Bool(x)), Derived::Bool(b)) => x == b,
        (ArgRule::OneOf(values), Derived::Int(i)) => {
            values.iter().all(|x| matches!(x, Scalar::Int(_))) && values.contains(&Scalar::Int(*i))
        }
        (ArgRule::OneOf(values), Derived::Str(s)) => {
            !values.iter().all(|x| matches!(x, Scalar::Int(_)))
                && values.iter().any(|x| matches!(x, Scalar::Str(y) if y == s))
        }
        (ArgRule::Glob(g), Derived::Str(s)) => match glob_regex(g) {
            Ok(re) => prepared.is_match(&re, s),
            Err(_) => false,
        },
        (ArgRule::Matches(p), Derived::Str(s)) => prepared.is_match(p, s),
        _ => false,
    }
}

/// Whether a call's arguments satisfy one limit: exactly what its check
/// decides on the facts [`derive`] supplies (`tests/props.rs` compares the
/// two on random limits and calls).
pub(crate) fn allows(
    limit: &ArgLimit,
    arguments: &Map<String, Value>,
    prepared: &Prepared,
) -> bool {
    let Ok(path) = ArgPath::parse(&limit.arg) else {
        return false;
    };
    let key = path.key();
    let Some((_, need)) = need_of(limit) else {
        // a top-level scalar
        return lookup(arguments, &key)
            .and_then(scalar)
            .is_some_and(|v| scalar_allows(&limit.rule, &v, prepared));
    };
    let Some(v) = derive(arguments, &key, need) else {
        return false;
    };
    if path.each {
        let Derived::Array(items) = v else {
            return false;
        };
        return items
            .iter()
            .all(|item| scalar(item).is_some_and(|d| scalar_allows(&limit.rule, &d, prepared)));
    }
    match (&limit.rule, &v) {
        (ArgRule::Max(Bound::Float(f)), Derived::Num(k)) => *k <= f64_key(f.0),
        (ArgRule::Min(Bound::Float(f)), Derived::Num(k)) => *k >= f64_key(f.0),
        (ArgRule::Under(base), Derived::Path(p)) => path_under(base, p),
        (ArgRule::Url(pattern), Derived::Url(u)) => prepared.url_allows(pattern, u),
        (ArgRule::Cidr(net), Derived::Ip(bits)) => prepared.in_network(net, bits),
        (ArgRule::MaxItems(n), Derived::Array(a)) => a.len() as u64 <= u64::from(*n),
        (ArgRule::MinItems(n), Derived::Array(a)) => a.len() as u64 >= u64::from(*n),
        (rule, v) => scalar_allows(rule, v, prepared),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `glob_match` is `glob_regex` without the regular expression, on globs and texts of the characters that
        /// matter (wildcards, escaped and refused characters, a newline, a multi-byte one).
        #[test]
        fn glob_match_is_the_globs_regex(glob in "[ab*?.\\[\né/]{0,8}", text in "[ab.\né/*?]{0,10}") {
            let regex = glob_regex(&glob).is_ok_and(|re| is_match(&re, &text));
            proptest::prop_assert_eq!(glob_match(&glob, &text), regex, "{:?} {:?}", glob, text);
        }
    }

    #[test]
    fn glob_matching_stops_when_its_steps_run_out() {
        let (glob, text) = (format!("*{}Z", "a".repeat(100)), "a".repeat(300));
        let steps = std::cell::Cell::new(u64::MAX);
        assert_eq!(glob_match_within(&glob, &text, &steps), Some(false));
        let spent = u64::MAX - steps.get();
        assert!(spent > 100 * 200, "{spent}");
        let steps = std::cell::Cell::new(spent - 1);
        assert_eq!(glob_match_within(&glob, &text, &steps), None);
        let steps = std::cell::Cell::new(spent);
        assert_eq!(glob_match_within(&glob, &text, &steps), Some(false));
        assert_eq!(steps.get(), 0);
    }

    #[test]
    fn paths_parse_and_print_back() {
        for (text, key, canon) in [
            ("path", "path", "path"),
            ("config.mode", "/config/mode", "config.mode"),
            ("/config/mode", "/config/mode", "config.mode"),
            ("/a.b", "a.b", "/a.b"),
            ("items[*]", "items", "items[*]"),
            ("a.0.b[*]", "/a/0/b", "a.0.b[*]"),
            ("/a~1b/c", "/a~1b/c", "a/b.c"),
            ("/a~0b", "a~b", "/a~0b"),
        ] {
            let p = ArgPath::parse(text).unwrap();
            assert_eq!(p.key(), key, "{text}");
            assert_eq!(p.text(), canon, "{text}");
            assert_eq!(ArgPath::parse(&p.text()).unwrap(), p);
            assert_eq!(ArgPath::of_key(&p.key(), p.each), p);
        }
        for bad in ["", "a..b", "a.", "/", "a[*].b", "//a"] {
            assert!(ArgPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_keep_their_order() {
        let xs = [
            -1e300, -2.5, -1.0, -0.0, 0.0, 1e-300, 1.0, 99.5, 100.0, 1e300,
        ];
        for w in xs.windows(2) {
            assert!(f64_key(w[0]) <= f64_key(w[1]));
            assert_eq!(key_f64(f64_key(w[1])), w[1]);
        }
        assert_eq!(f64_key(-0.0), f64_key(0.0));
        let n = |s: &str| number_key(&serde_json::from_str(s).unwrap());
        assert_eq!(n("1e2"), n("100"));
        assert_eq!(
            n("9007199254740991"),
            Some(f64_key(9_007_199_254_740_991.0))
        );
        assert_eq!(
            n("-9007199254740991"),
            Some(f64_key(-9_007_199_254_740_991.0))
        );
        for beyond in [
            "9007199254740992",
            "9007199254740993",
            "9007199254740992.0",
            "1e300",
        ] {
            assert_eq!(n(beyond), None, "{beyond}");
        }
        assert_eq!(n("18446744073709551615"), None);
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(
            normal_path("/srv/public/a/../b//c/").as_deref(),
            Some("/srv/public/b/c")
        );
        assert_eq!(normal_path("/").as_deref(), Some("/"));
        for bad in [
            "srv/public",
            "/../etc",
            "/srv/public/%2e%2e/etc",
            "/srv/public/\0",
            "/srv/public\\..\\etc",
            "/srv/public/\u{FF0E}\u{FF0E}/etc",
            "/srv/public\u{2215}..",
        ] {
            assert_eq!(normal_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_as_a_browser_reads_them() {
        let p = UrlPattern::parse("https://*.example.com").unwrap();
        let ok = |u: &str| url_parts(u).is_some_and(|u| p.allows(&u));
        assert!(ok("https://api.example.com/x"));
        assert!(ok("HTTPS://API.Example.COM:443/x"));
        for bad in [
            "https://example.com/",
            "https://evilexample.com/",
            "https://api.example.com@evil.net/",
            "https://evil.net\\@api.example.com/",
            "https://api.example.com.evil.net/",
            "https://api.example.com:8443/",
            "http://api.example.com/",
            "https://api.example.com./",
            "https://ex%61mple.example.com/",
            "https://b\u{fc}cher.example.com/",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        let p = UrlPattern::parse("https://api.example.com:8443/v1/").unwrap();
        assert_eq!(p.text(), "https://api.example.com:8443/v1");
        let ok = |u: &str| url_parts(u).is_some_and(|u| p.allows(&u));
        assert!(ok("https://api.example.com:8443/v1/users"));
        assert!(!ok("https://api.example.com:8443/v1/../admin"));
        assert!(!ok("https://api.example.com:8443/v10"));
        assert!(!ok("https://api.example.com:8443/v1/%2e%2e/admin"));
    }

    #[test]
    fn networks() {
        let net = cidr_bits("10.0.0.0/8").unwrap();
        assert_eq!(cidr_text(&net).unwrap(), "10.0.0.0/8");
        let inside = |a: &str| ip_bits(a).is_some_and(|b| b.starts_with(&net));
        assert!(inside("10.1.2.3"));
        assert!(inside("::ffff:10.1.2.3"));
        for bad in [
            "11.0.0.1",
            "010.0.0.1",
            "10.1",
            "0x0a.0.0.1",
            "::10.1.2.3",
            "10.0.0.1%eth0",
        ] {
            assert!(!inside(bad), "{bad}");
        }
        assert!(cidr_bits("10.0.0.1/8").is_err());
        let v6 = cidr_bits("2001:db8::/32").unwrap();
        assert_eq!(cidr_text(&v6).unwrap(), "2001:db8::/32");
    }

    #[test]
    fn globs_round_trip() {
        let re = glob_regex("staging-*.v?").unwrap();
        assert_eq!(re, "^staging[-](?s:.*)[.]v(?s:.)$");
        assert_eq!(regex_glob(&re).as_deref(), Some("staging-*.v?"));
        assert!(is_match(&re, "staging-eu.v2"));
        assert!(!is_match(&re, "prod-staging-eu.v2"));
        assert!(!is_match(&re, "staging-eu.v22"));
        assert_eq!(regex_glob("^a.*$"), None);
        assert!(glob_regex("a[b]").is_err());
        assert!(check_pattern("^[a-z]+$").is_ok());
        assert!(check_pattern("(a").is_err());
        assert!(check_pattern("a{1000}{1000}").is_err());
    }
}
