//! Kconfig fragments: strict parsing, merging onto a base `.config`, and the survival
//! check (after `olddefconfig`, every requested option must hold, as kunit_tool checks).
//!
//! Fragment syntax, one item per line:
//! - `CONFIG_FOO=y|m|n`, `CONFIG_FOO=123`, `CONFIG_FOO=0x1f`, `CONFIG_FOO="text"`
//! - `# CONFIG_FOO is not set`
//! - blank lines and other `#` comments (a comment that starts like `# CONFIG_` but is not
//!   exactly the "is not set" form is an error, as it is almost certainly a typo)
//!
//! Anything else is an error reported as `file:line: …`. Within one fragment a symbol may
//! be repeated only with the same value; across fragments the later one wins.
//!
//! Survival semantics: a request `=n` or `is not set` holds when the final `.config`
//! has the symbol as `is not set`, `=n`, or not at all (Kconfig omits symbols whose
//! dependencies are unmet). Any other request holds only on an identical value.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::fmt;

/// A config symbol's value in a fragment or a `.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// `# CONFIG_X is not set` (a fragment's `CONFIG_X=n` is normalized to this).
    NotSet,
    /// `y`, `m`, a number, or a quoted string exactly as written (quotes included).
    Value(String),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::NotSet => f.write_str("n"),
            ConfigValue::Value(v) => f.write_str(v),
        }
    }
}

/// One option requested by a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Symbol name including the `CONFIG_` prefix.
    pub symbol: String,
    /// The value asked for.
    pub value: ConfigValue,
    /// `file:line` where it was requested.
    pub origin: String,
}

/// A parsed fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Display name (file name or `pinvm:<name>` for embedded ones).
    pub name: String,
    /// The exact bytes (hashed into the cache key and appended to `.config`).
    pub text: String,
    /// Its options, in file order (a symbol repeated with the same value appears once).
    pub requests: Vec<Request>,
}

fn valid_symbol(sym: &str) -> bool {
    sym.strip_prefix("CONFIG_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

fn valid_value(v: &str) -> bool {
    match v {
        "y" | "m" | "n" => true,
        _ if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
            // Inside the quotes every `"` must be escaped and `\` must escape something.
            let inner = &v.as_bytes()[1..v.len() - 1];
            let mut i = 0;
            while i < inner.len() {
                match inner[i] {
                    b'\\' if i + 1 < inner.len() => i += 2,
                    b'\\' | b'"' => return false,
                    _ => i += 1,
                }
            }
            true
        }
        _ => {
            let digits = v.strip_prefix('-').unwrap_or(v);
            let hex = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"));
            match hex {
                Some(h) => !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
                None => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            }
        }
    }
}

/// Parses one line. `Ok(None)` for blank lines and plain comments.
fn parse_line(line: &str) -> std::result::Result<Option<(String, ConfigValue)>, String> {
    let t = line.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Some(comment) = t.strip_prefix('#') {
        let c = comment.trim_start();
        if !c.starts_with("CONFIG_") {
            return Ok(None);
        }
        return match c.strip_suffix(" is not set") {
            Some(sym) if valid_symbol(sym) => Ok(Some((sym.to_string(), ConfigValue::NotSet))),
            _ => Err(format!(
                "malformed line {t:?}: expected `# CONFIG_NAME is not set`"
            )),
        };
    }
    let Some((sym, val)) = t.split_once('=') else {
        return Err(format!(
            "malformed line {t:?}: expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`"
        ));
    };
    if !valid_symbol(sym) {
        return Err(format!(
            "bad symbol {sym:?}: expected CONFIG_ followed by letters, digits or _"
        ));
    }
    if !valid_value(val) {
        return Err(format!(
            "bad value {val:?} for {sym}: expected y, m, n, a number, 0x-hex or a \"quoted string\""
        ));
    }
    let value = if val == "n" {
        ConfigValue::NotSet
    } else {
        ConfigValue::Value(val.to_string())
    };
    Ok(Some((sym.to_string(), value)))
}

/// Parses a fragment strictly. Errors name `name:line` and list every bad line.
pub fn parse_fragment(name: &str, text: &str) -> Result<Fragment> {
    let mut requests: Vec<Request> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((symbol, value))) => {
                if let Some(&idx) = seen.get(&symbol) {
                    let prev: &Request = &requests[idx];
                    if prev.value != value {
                        errors.push(format!(
                            "{origin}: {symbol}={value} conflicts with {symbol}={} at {}",
                            prev.value, prev.origin
                        ));
                    }
                    continue;
                }
                seen.insert(symbol.clone(), requests.len());
                requests.push(Request {
                    symbol,
                    value,
                    origin,
                });
            }
            Err(e) => errors.push(format!("{origin}: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("invalid config fragment {name}:\n  {}", errors.join("\n  "));
    }
    Ok(Fragment {
        name: name.to_string(),
        text: text.to_string(),
        requests,
    })
}

/// The effective requests of a fragment series: later fragments override earlier ones.
pub fn effective_requests(fragments: &[Fragment]) -> BTreeMap<String, Request> {
    let mut out = BTreeMap::new();
    for f in fragments {
        for r in &f.requests {
            out.insert(r.symbol.clone(), r.clone());
        }
    }
    out
}

/// Parses a generated `.config` leniently (kconfig wrote it): symbol → value; symbols
/// written as `is not set` map to [`ConfigValue::NotSet`], absent symbols are absent.
pub fn parse_dotconfig(text: &str) -> BTreeMap<String, ConfigValue> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Ok(Some((sym, val))) = parse_line(line) {
            out.insert(sym, val);
        } else if let Some((sym, val)) = line.split_once('=') {
            // Tolerate values the strict parser rejects (kconfig's own output is authoritative).
            if valid_symbol(sym) {
                out.insert(sym.to_string(), ConfigValue::Value(val.to_string()));
            }
        }
    }
    out
}

/// Appends the fragments to a base `.config` (each under a marker comment). Kconfig
/// reads the file top to bottom and a later assignment overrides an earlier one, so
/// `olddefconfig` on the result applies the fragments in order.
pub fn merge_onto(base: &str, fragments: &[Fragment]) -> String {
    let mut out = String::with_capacity(base.len() + 4096);
    out.push_str(base);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for f in fragments {
        out.push_str(&format!("\n# pinvm: fragment {}\n", f.name));
        out.push_str(&f.text);
        if !f.text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// One requested option that did not survive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The request that did not hold, with where it came from.
    pub request: Request,
    /// `None` when the symbol is absent from the final `.config`.
    pub got: Option<ConfigValue>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let got = match &self.got {
            None => "<absent>".to_string(),
            Some(v) => v.to_string(),
        };
        write!(
            f,
            "{}: requested {}, got {} (from {})",
            self.request.symbol, self.request.value, got, self.request.origin
        )
    }
}

/// Every effective request that the final `.config` does not satisfy, by symbol.
pub fn survival_mismatches(
    fragments: &[Fragment],
    final_config: &BTreeMap<String, ConfigValue>,
) -> Vec<Mismatch> {
    effective_requests(fragments)
        .into_values()
        .filter_map(|request| {
            let got = final_config.get(&request.symbol).cloned();
            let ok = match (&request.value, &got) {
                (ConfigValue::NotSet, None | Some(ConfigValue::NotSet)) => true,
                (ConfigValue::Value(want), Some(ConfigValue::Value(have))) => want == have,
                _ => false,
            };
            (!ok).then_some(Mismatch { request, got })
        })
        .collect()
}

/// Fails with every dropped or changed option listed, like kunit_tool.
pub fn check_survival(fragments: &[Fragment], final_config_text: &str) -> Result<()> {
    let mismatches = survival_mismatches(fragments, &parse_dotconfig(final_config_text));
    if mismatches.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
    bail!(
        "{} requested config option(s) did not survive `make olddefconfig` \
         (unmet dependencies, or a typo in a symbol name):\n{}",
        mismatches.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(name: &str, text: &str) -> Fragment {
        parse_fragment(name, text).unwrap()
    }

    #[test]
    fn parses_all_forms() {
        let f = frag(
            "a.config",
            "# a comment\n\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=n\n\
             CONFIG_E=123\nCONFIG_F=-4\nCONFIG_G=0x1F\nCONFIG_H=\"a \\\"q\\\" b\"\nCONFIG_I=\"\"\n\
             #CONFIG_J is not set\n  CONFIG_K=y  \n#comment # CONFIG_ mention\nCONFIG_A=y\n",
        );
        let got: Vec<(String, ConfigValue, String)> = f
            .requests
            .iter()
            .map(|r| (r.symbol.clone(), r.value.clone(), r.origin.clone()))
            .collect();
        let v = |s: &str| ConfigValue::Value(s.to_string());
        let want = vec![
            ("CONFIG_A", v("y"), 3),
            ("CONFIG_B", v("m"), 4),
            ("CONFIG_C", ConfigValue::NotSet, 5),
            ("CONFIG_D", ConfigValue::NotSet, 6),
            ("CONFIG_E", v("123"), 7),
            ("CONFIG_F", v("-4"), 8),
            ("CONFIG_G", v("0x1F"), 9),
            ("CONFIG_H", v("\"a \\\"q\\\" b\""), 10),
            ("CONFIG_I", v("\"\""), 11),
            ("CONFIG_J", ConfigValue::NotSet, 12),
            ("CONFIG_K", v("y"), 13),
        ];
        let want: Vec<(String, ConfigValue, String)> = want
            .into_iter()
            .map(|(s, val, l)| (s.to_string(), val, format!("a.config:{l}")))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rejects_bad_lines_with_file_and_line() {
        let cases = [
            ("CONFIG_A=yes", ":1: bad value"),
            ("CONFIG_A", ":1: malformed line"),
            ("FOO=y", ":1: bad symbol"),
            ("CONFIG_=y", ":1: bad symbol"),
            ("CONFIG_A-B=y", ":1: bad symbol"),
            ("CONFIG_A=\"open", ":1: bad value"),
            ("CONFIG_A=\"a\"b\"", ":1: bad value"),
            ("CONFIG_A=0x", ":1: bad value"),
            ("CONFIG_A=1.5", ":1: bad value"),
            ("CONFIG_A= y", ":1: bad value"),
            ("# CONFIG_A is not", ":1: malformed line"),
            ("# CONFIG_A=y", ":1: malformed line"),
            ("set CONFIG_A=y", ":1: bad symbol"),
        ];
        for (line, want) in cases {
            let err = parse_fragment("f.config", &format!("{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("f.config{want}")), "{line}: {err}");
        }
        // Every bad line is reported, with its own line number.
        let err = parse_fragment("g", "CONFIG_OK=y\nbad\nCONFIG_X=maybe\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("g:2:") && err.contains("g:3:"), "{err}");
        assert!(!err.contains("g:1:"), "{err}");
    }

    #[test]
    fn conflicting_duplicates_within_a_fragment_are_errors() {
        let err = parse_fragment("d", "CONFIG_A=y\n# CONFIG_A is not set\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("d:2: CONFIG_A=n conflicts with CONFIG_A=y at d:1"),
            "{err}"
        );
        // `=n` and `is not set` are the same request.
        let f = frag("d", "CONFIG_A=n\n# CONFIG_A is not set\n");
        assert_eq!(f.requests.len(), 1);
    }

    #[test]
    fn later_fragments_override() {
        let a = frag("a", "CONFIG_A=y\nCONFIG_B=y\n");
        let b = frag("b", "# CONFIG_A is not set\nCONFIG_C=m\n");
        let eff = effective_requests(&[a, b]);
        assert_eq!(eff["CONFIG_A"].value, ConfigValue::NotSet);
        assert_eq!(eff["CONFIG_A"].origin, "b:1");
        assert_eq!(eff["CONFIG_B"].origin, "a:2");
        assert_eq!(eff.len(), 3);
    }

    #[test]
    fn dotconfig_parsing() {
        let c = parse_dotconfig(
            "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_A=y\n# CONFIG_B is not set\n\
             CONFIG_S=\"x\"\n\n#\n# General setup\n#\nCONFIG_ODD=weird value\n",
        );
        assert_eq!(c["CONFIG_A"], ConfigValue::Value("y".into()));
        assert_eq!(c["CONFIG_B"], ConfigValue::NotSet);
        assert_eq!(c["CONFIG_S"], ConfigValue::Value("\"x\"".into()));
        assert_eq!(c["CONFIG_ODD"], ConfigValue::Value("weird value".into()));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn survival_semantics() {
        let f = frag(
            "pinvm.config",
            "CONFIG_Y=y\nCONFIG_M=m\n# CONFIG_NS_ABSENT is not set\n# CONFIG_NS_N is not set\n\
             CONFIG_N_ABSENT=n\nCONFIG_NUM=32\nCONFIG_STR=\"s\"\nCONFIG_DROPPED=y\nCONFIG_CHANGED=y\n\
             # CONFIG_FORCED is not set\nCONFIG_NUMCH=32\n",
        );
        let user = frag("user.config", "CONFIG_USER=y\n");
        let final_cfg = "CONFIG_Y=y\nCONFIG_M=m\n# CONFIG_NS_N is not set\nCONFIG_NUM=32\n\
                         CONFIG_STR=\"s\"\nCONFIG_CHANGED=m\nCONFIG_FORCED=y\nCONFIG_NUMCH=64\n";
        let mism = survival_mismatches(&[f.clone(), user.clone()], &parse_dotconfig(final_cfg));
        let text: Vec<String> = mism.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "CONFIG_CHANGED: requested y, got m (from pinvm.config:9)",
                "CONFIG_DROPPED: requested y, got <absent> (from pinvm.config:8)",
                "CONFIG_FORCED: requested n, got y (from pinvm.config:10)",
                "CONFIG_NUMCH: requested 32, got 64 (from pinvm.config:11)",
                "CONFIG_USER: requested y, got <absent> (from user.config:1)",
            ]
        );
        let err = check_survival(&[f.clone(), user], final_cfg)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("5 requested config option(s) did not survive"),
            "{err}"
        );
        assert!(
            err.contains("\n  CONFIG_DROPPED: requested y, got <absent>"),
            "{err}"
        );

        // A requested `y` is not satisfied by `is not set`.
        let g = frag("g", "CONFIG_A=y\n");
        let mism = survival_mismatches(
            std::slice::from_ref(&g),
            &parse_dotconfig("# CONFIG_A is not set\n"),
        );
        assert_eq!(
            mism[0].to_string(),
            "CONFIG_A: requested y, got n (from g:1)"
        );
        check_survival(&[g], "CONFIG_A=y\n").unwrap();
    }

    #[test]
    fn override_decides_what_is_checked() {
        // The user turns off something pinvm's fragment turned on: only the later request counts.
        let base = frag("pinvm", "CONFIG_A=y\n");
        let user = frag("user", "# CONFIG_A is not set\n");
        check_survival(&[base.clone(), user.clone()], "# CONFIG_A is not set\n").unwrap();
        check_survival(&[base.clone(), user], "").unwrap();
        assert!(check_survival(&[base], "").is_err());
    }

    #[test]
    fn merge_appends_in_order() {
        let a = frag("a", "CONFIG_A=y");
        let b = frag("b", "CONFIG_A=m\n");
        let merged = merge_onto("CONFIG_BASE=y", &[a, b]);
        assert_eq!(
            merged,
            "CONFIG_BASE=y\n\n# pinvm: fragment a\nCONFIG_A=y\n\n# pinvm: fragment b\nCONFIG_A=m\n"
        );
        // Last assignment wins when read top to bottom, as kconfig does.
        assert_eq!(
            parse_dotconfig(&merged)["CONFIG_A"],
            ConfigValue::Value("m".into())
        );
    }
}
