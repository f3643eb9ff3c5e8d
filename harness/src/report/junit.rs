//! JUnit XML, in the common Jenkins/Ant form that GitLab, GitHub reporters and `fstests -R
//! xunit` consumers read:
//!
//! ```text
//! <testsuites name="pinvm" tests= failures= errors="0" time=>   (what Jenkins' junit-10.xsd
//!                                                                 allows there; skips and
//!                                                                 the start time are per suite)
//!   <testsuite name="S03-gup-reclaim" ...>          one per scenario
//!     <properties><property name="description" value="..."/></properties>
//!     <testcase classname="pinvm.S03-gup-reclaim" name="6.12.ext4" time="41.200">
//!       <failure message="<summary>" type="unexpected_pass">expectation, summary, evidence</failure>
//!       <system-out>outcome, kernel release, results dir, finding, evidence</system-out>
//!     </testcase>
//! ```
//!
//! Test case names are `<kernel>.<fs>`, with `.run<N>` for repeated runs after the first;
//! times are seconds with millisecond precision; `timestamp` is UTC without a zone designator,
//! as the Jenkins schema wants.
//!
//! # Result mapping
//!
//! | outcome | element | counted in |
//! |---|---|---|
//! | pass | (none) | passed |
//! | expected failure | (none; `<system-out>` says "xfail") | passed |
//! | unexpected pass | `<failure type="unexpected_pass">` | `failures` |
//! | failure | `<failure type="failure">` | `failures` |
//! | untestable | `<skipped message=...>` | `skipped` |
//!
//! JUnit has no expected-failure state, and a test case here checks "the run behaves as the
//! scenario predicts", so a matching run passes and a mismatch of either kind fails; the
//! `type` attribute tells the two mismatches apart. A kernel crash is a `<failure>` too, not an
//! `<error>`: the crash is the tested code misbehaving, while `<error>` means the test itself
//! broke, which is what `Untestable` covers, and that is reported as skipped (the kernel was
//! not tested, as with exit 125) so that an infrastructure problem is not counted against it.
//!
//! # Escaping
//!
//! Text and attribute values escape `& < > " '`; attribute values also escape tab, LF and CR as
//! character references (attribute-value normalisation would turn them into spaces), text
//! escapes CR. Characters XML 1.0 forbids even as references (C0 controls other than tab, LF,
//! CR; U+FFFE, U+FFFF) become the visible text `\xNN` / `\u{fffe}`.

use std::io::{self, Write};

use super::{
    one_line, secs, truncate_chars, verdict_list, CaseResult, Counts, Outcome, SuiteResult,
};

/// Evidence lines in a `<failure>` body; `<system-out>` gets up to [`MAX_OUT_EVIDENCE`].
pub const MAX_FAILURE_EVIDENCE: usize = 50;
/// Evidence lines in a `<system-out>`.
pub const MAX_OUT_EVIDENCE: usize = 1000;
/// Characters of one evidence line kept.
pub const MAX_LINE: usize = 2000;
/// Characters of a `message` attribute kept.
pub const MAX_MESSAGE: usize = 500;

/// Writes `s` as a JUnit XML document.
pub fn write(s: &SuiteResult, w: &mut impl Write) -> io::Result<()> {
    let c = s.counts();
    let ts = super::iso8601_local(s.started);
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<testsuites name="pinvm" tests="{}" failures="{}" errors="0" time="{:.3}">"#,
        c.total(),
        c.mismatching(),
        secs(s.duration)
    )?;
    for (id, (scenario, cases)) in s.by_scenario().into_iter().enumerate() {
        write_suite(w, id, scenario, &cases, &ts)?;
    }
    writeln!(w, "</testsuites>")
}

fn write_suite(
    w: &mut impl Write,
    id: usize,
    scenario: &str,
    cases: &[&CaseResult],
    ts: &str,
) -> io::Result<()> {
    let c = Counts::of(cases.iter().copied());
    let time = secs(cases.iter().map(|c| c.duration).sum());
    writeln!(
        w,
        r#"  <testsuite id="{id}" name="{}" tests="{}" failures="{}" errors="0" skipped="{}" time="{time:.3}" timestamp="{ts}">"#,
        attr(scenario),
        c.total(),
        c.mismatching(),
        c.untestable,
    )?;
    if let Some(d) = cases
        .first()
        .map(|c| c.description.as_str())
        .filter(|d| !d.is_empty())
    {
        writeln!(w, "    <properties>")?;
        writeln!(
            w,
            r#"      <property name="description" value="{}"/>"#,
            attr(d)
        )?;
        writeln!(w, "    </properties>")?;
    }
    for case in cases {
        write_case(w, case)?;
    }
    writeln!(w, "  </testsuite>")
}

fn write_case(w: &mut impl Write, c: &CaseResult) -> io::Result<()> {
    writeln!(
        w,
        r#"    <testcase classname="pinvm.{}" name="{}" time="{:.3}">"#,
        attr(&c.scenario),
        attr(&c.case_name(".")),
        secs(c.duration)
    )?;
    let message = attr(&truncate_chars(&one_line(&message_of(c)), MAX_MESSAGE));
    match c.outcome {
        Outcome::Pass | Outcome::ExpectedFailure => {}
        Outcome::UnexpectedPass | Outcome::Failure => {
            let mut body = vec![c.expectation_line()];
            if !c.summary.is_empty() {
                body.push(c.summary.clone());
            }
            body.extend(evidence(c, MAX_FAILURE_EVIDENCE));
            writeln!(
                w,
                r#"      <failure message="{message}" type="{}">{}</failure>"#,
                c.outcome.name(),
                text(&body.join("\n"))
            )?;
        }
        Outcome::Untestable => writeln!(w, r#"      <skipped message="{message}"/>"#)?,
    }
    writeln!(w, "      <system-out>{}</system-out>", text(&system_out(c)))?;
    writeln!(w, "    </testcase>")
}

fn message_of(c: &CaseResult) -> String {
    if !c.summary.trim().is_empty() {
        c.summary.clone()
    } else {
        c.expectation_line()
    }
}

/// Up to `max` evidence lines, each cut to [`MAX_LINE`], and a count of the rest.
fn evidence(c: &CaseResult, max: usize) -> Vec<String> {
    let mut v: Vec<String> = c
        .evidence
        .iter()
        .take(max)
        .map(|e| truncate_chars(e, MAX_LINE))
        .collect();
    if c.evidence.len() > max {
        let whole = match &c.results_dir {
            Some(d) => format!(" (all in {})", d.display()),
            None => String::new(),
        };
        v.push(format!(
            "... {} more evidence lines{whole}",
            c.evidence.len() - max
        ));
    }
    v
}

fn system_out(c: &CaseResult) -> String {
    let mut v = vec![
        format!("outcome: {} ({})", c.outcome.label(), c.outcome.name()),
        format!("scenario: {} - {}", c.scenario, c.description),
        format!("kernel: {}", c.kernel_line()),
        format!("fs: {}", c.fs),
        format!("machine: {}", c.machine),
        format!("run: {}", c.run),
        format!("expected: {}", verdict_list(&c.expected, "nothing")),
        format!("found: {}", verdict_list(&c.found, "nothing")),
        format!("summary: {}", c.summary),
    ];
    if let Some(f) = &c.finding {
        v.push(format!("finding: {f}"));
    }
    if let Some(d) = &c.results_dir {
        v.push(format!("results: {}", d.display()));
    }
    if !c.evidence.is_empty() {
        v.push("evidence:".to_string());
        v.extend(
            evidence(c, MAX_OUT_EVIDENCE)
                .into_iter()
                .map(|e| format!("  {e}")),
        );
    }
    v.join("\n")
}

/// Escapes `s` for XML character data.
pub fn text(s: &str) -> String {
    escape(s, false)
}

/// Escapes `s` for a double- or single-quoted XML attribute value.
pub fn attr(s: &str) -> String {
    escape(s, true)
}

/// Whether XML 1.0 allows `c` at all (the `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn escape(s: &str, in_attr: bool) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' if in_attr => out.push_str("&#10;"),
            '\t' if in_attr => out.push_str("&#9;"),
            c if !xml_char(c) => {
                if (c as u32) < 0x100 {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    fn render(s: &SuiteResult) -> String {
        let mut out = Vec::new();
        write(s, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// An element as the checker sees it.
    #[derive(Debug)]
    struct El {
        name: String,
        attrs: Vec<(String, String)>,
        text: String,
        children: Vec<El>,
    }

    impl El {
        fn attr(&self, k: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        }
        fn child(&self, name: &str) -> Option<&El> {
            self.children.iter().find(|c| c.name == name)
        }
        fn all(&self, name: &str) -> Vec<&El> {
            self.children.iter().filter(|c| c.name == name).collect()
        }
    }

    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let j = rest[i..].find(';').expect("unterminated reference") + i;
            let ent = &rest[i + 1..j];
            let c = match ent {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let n = ent.strip_prefix('#').expect("unknown entity");
                    let n: u32 = n.parse().expect("decimal reference");
                    let c = char::from_u32(n).unwrap();
                    assert!(xml_char(c), "reference to a forbidden character");
                    c
                }
            };
            out.push(c);
            rest = &rest[j + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A strict little XML reader for what this writer emits: one declaration, properly nested
    /// elements, quoted attributes, known references only, no raw `<`/`&`, no forbidden
    /// characters.
    fn parse_xml(doc: &str) -> El {
        assert!(
            doc.chars().all(xml_char),
            "forbidden character in the document"
        );
        let body = doc
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .expect("declaration");
        let mut pos = 0;
        let root = parse_el(body, &mut pos);
        assert!(
            body[pos..].trim().is_empty(),
            "content after the root element"
        );
        root
    }

    fn parse_el(s: &str, pos: &mut usize) -> El {
        let b = s.as_bytes();
        while b[*pos].is_ascii_whitespace() {
            *pos += 1;
        }
        assert_eq!(b[*pos], b'<');
        *pos += 1;
        let name_end = s[*pos..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap()
            + *pos;
        let name = s[*pos..name_end].to_string();
        *pos = name_end;
        let mut attrs = Vec::new();
        loop {
            while b[*pos].is_ascii_whitespace() {
                *pos += 1;
            }
            if s[*pos..].starts_with("/>") {
                *pos += 2;
                return El {
                    name,
                    attrs,
                    text: String::new(),
                    children: vec![],
                };
            }
            if b[*pos] == b'>' {
                *pos += 1;
                break;
            }
            let eq = s[*pos..].find('=').unwrap() + *pos;
            let k = s[*pos..eq].to_string();
            let q = b[eq + 1];
            assert!(q == b'"' || q == b'\'', "unquoted attribute {k}");
            let end = s[eq + 2..].find(q as char).unwrap() + eq + 2;
            let raw = &s[eq + 2..end];
            assert!(!raw.contains('<'), "raw < in attribute {k}");
            assert!(
                !raw.contains('\n') && !raw.contains('\t'),
                "raw whitespace in attribute {k}"
            );
            attrs.push((k, unescape(raw)));
            *pos = end + 1;
        }
        let mut text = String::new();
        let mut children = Vec::new();
        loop {
            let lt = s[*pos..].find('<').unwrap() + *pos;
            let raw = &s[*pos..lt];
            assert!(!raw.contains('>'), "raw > in text of <{name}>");
            text.push_str(&unescape(raw));
            *pos = lt;
            if s[*pos..].starts_with("</") {
                let close = format!("</{name}>");
                assert!(
                    s[*pos..].starts_with(&close),
                    "expected {close} at {}",
                    &s[*pos..(*pos + 40).min(s.len())]
                );
                *pos += close.len();
                return El {
                    name,
                    attrs,
                    text,
                    children,
                };
            }
            children.push(parse_el(s, pos));
        }
    }

    #[test]
    fn structure_counts_and_mapping() {
        let s = testdata::suite();
        let doc = parse_xml(&render(&s));
        assert_eq!(doc.name, "testsuites");
        assert_eq!(doc.attr("tests"), Some("7"));
        assert_eq!(doc.attr("failures"), Some("2"));
        assert_eq!(doc.attr("errors"), Some("0"));
        assert_eq!(doc.attr("time"), Some("600.000"));
        // junit-10.xsd allows neither on <testsuites>: they are on each <testsuite>.
        assert_eq!(doc.attr("skipped"), None);
        assert_eq!(doc.attr("timestamp"), None);
        let suites = doc.all("testsuite");
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0].attr("name"), Some("S01-baseline"));
        assert_eq!(suites[0].attr("tests"), Some("2"));
        assert_eq!(suites[0].attr("failures"), Some("0"));
        let s03 = suites[1];
        assert_eq!(
            (
                s03.attr("tests"),
                s03.attr("failures"),
                s03.attr("skipped"),
                s03.attr("time")
            ),
            (Some("5"), Some("2"), Some("1"), Some("61.725"))
        );
        let prop = s03.child("properties").unwrap().child("property").unwrap();
        assert_eq!(prop.attr("name"), Some("description"));
        let cases = s03.all("testcase");
        let names: Vec<_> = cases.iter().map(|c| c.attr("name").unwrap()).collect();
        assert_eq!(
            names,
            [
                "6.12.ext4",
                "6.12.ext4.run2",
                "6.1.ext4",
                "6.12.xfs",
                "6.1.xfs"
            ]
        );
        assert!(cases
            .iter()
            .all(|c| c.attr("classname") == Some("pinvm.S03-gup-reclaim")));
        assert!(cases.iter().all(|c| c.attr("time") == Some("12.345")));
        // xfail: passes, says so in system-out.
        assert!(cases[0].child("failure").is_none() && cases[0].child("skipped").is_none());
        let out = &cases[0].child("system-out").unwrap().text;
        assert!(out.starts_with("outcome: xfail (expected_failure)\n"));
        assert!(out.contains("results: /tmp/results/S03-gup-reclaim/6.12-ext4-1"));
        assert!(out.contains("\n  evidence line 8"));
        // xpass and fail: failures with types.
        let xpass = cases[2].child("failure").unwrap();
        assert_eq!(xpass.attr("type"), Some("unexpected_pass"));
        assert_eq!(
            xpass.attr("message"),
            Some("expected lost_write, found nothing")
        );
        assert!(xpass
            .text
            .starts_with("expected lost_write; found nothing\n"));
        let fail = cases[3].child("failure").unwrap();
        assert_eq!(fail.attr("type"), Some("failure"));
        assert!(fail.text.contains("evidence line 1\n"));
        // untestable: skipped.
        let sk = cases[4].child("skipped").unwrap();
        assert_eq!(
            sk.attr("message"),
            Some("kernel 6.1 failed to boot: no console output")
        );
        assert!(cases[4].child("failure").is_none());
    }

    #[test]
    fn empty_suite() {
        let text = render(&testdata::empty());
        let doc = parse_xml(&text);
        assert_eq!(doc.attr("tests"), Some("0"));
        assert!(doc.children.is_empty());
    }

    #[test]
    fn escaping() {
        assert_eq!(text(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(attr("x\ty\nz\r"), "x&#9;y&#10;z&#13;");
        assert_eq!(text("x\ty\nz\r"), "x\ty\nz&#13;");
        assert_eq!(
            text("\u{0}\u{1b}[1m\u{7}\u{b}\u{c}"),
            "\\x00\\x1b[1m\\x07\\x0b\\x0c"
        );
        assert_eq!(
            text("\u{fffe}\u{ffff}\u{fffd}é\u{1F600}"),
            "\\u{fffe}\\u{ffff}\u{fffd}é\u{1F600}"
        );
        assert_eq!(text("]]>"), "]]&gt;");
    }

    #[test]
    fn hostile_text_round_trips() {
        let mut c = testdata::case("S<9>&\"'", "6.12", "ext4", 2, Outcome::Failure);
        c.summary = "page <3> & \"4\" 'x'\r\nsecond line \u{1b}[31m".into();
        c.evidence = vec![
            "</failure><injected/>".into(),
            "]]> <![CDATA[ x".into(),
            "\u{0}nul".into(),
        ];
        c.description = "desc with \"quotes\"\nand a newline".into();
        let mut s = testdata::empty();
        s.cases = vec![c];
        let doc = parse_xml(&render(&s));
        let suite = doc.child("testsuite").unwrap();
        assert_eq!(suite.attr("name"), Some("S<9>&\"'"));
        assert_eq!(
            suite
                .child("properties")
                .unwrap()
                .child("property")
                .unwrap()
                .attr("value"),
            Some("desc with \"quotes\"\nand a newline")
        );
        let tc = suite.child("testcase").unwrap();
        assert_eq!(tc.attr("classname"), Some("pinvm.S<9>&\"'"));
        assert_eq!(tc.attr("name"), Some("6.12.ext4.run2"));
        let f = tc.child("failure").unwrap();
        assert_eq!(
            f.attr("message"),
            Some("page <3> & \"4\" 'x'  second line \\x1b[31m")
        );
        assert!(f.children.is_empty(), "evidence became markup");
        assert!(f
            .text
            .contains("</failure><injected/>\n]]> <![CDATA[ x\n\\x00nul"));
        assert!(f
            .text
            .contains("page <3> & \"4\" 'x'\r\nsecond line \\x1b[31m"));
    }

    #[test]
    fn long_evidence_is_cut() {
        let mut c = testdata::case("S1", "6.12", "ext4", 1, Outcome::Failure);
        c.evidence = (0..5000)
            .map(|i| format!("line {i} {}", "y".repeat(if i == 0 { 10_000 } else { 3 })))
            .collect();
        let mut s = testdata::empty();
        s.cases = vec![c];
        let doc = parse_xml(&render(&s));
        let tc = doc.child("testsuite").unwrap().child("testcase").unwrap();
        let f = &tc.child("failure").unwrap().text;
        assert!(f.contains("... 4950 more evidence lines (all in /tmp/results/S1/6.12-ext4-1)"));
        assert!(f.lines().all(|l| l.chars().count() <= MAX_LINE));
        let out = &tc.child("system-out").unwrap().text;
        assert!(out.contains("... 4000 more evidence lines"));
    }
}
