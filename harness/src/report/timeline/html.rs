//! The HTML around the timeline: the case page (summary header, the timeline's data for the
//! page script, the inlined stylesheet and script) and the suite's index (the outcome matrix).
//! Every text from the guest or the records goes through [`escape`]; the data goes into a JSON
//! script element that cannot end early. The page loads nothing: its Content-Security-Policy
//! forbids any request.

use super::load::{CaseFiles, RAW_FILES};
use super::model::Timeline;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

const CSS: &str = include_str!("assets/timeline.css");
const JS: &str = include_str!("assets/timeline.js");
/// No network, no plug-ins: only the inlined style and script run.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   img-src data:";
/// At most this many evidence lines per verdict in the header.
const HEADER_EVIDENCE: usize = 8;

/// `s` safe in HTML text and in quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `v` as JSON that is safe inside a `<script>` element (no `<`, so no `</script>`).
fn script_json(t: &Timeline) -> String {
    serde_json::to_string(t)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A link from a page in `from` to `target`: relative when `target` lies below `from`, else an
/// absolute `file://` URL.
pub fn href(from: &Path, target: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, target) = (abs(from), abs(target));
    let url = match target.strip_prefix(&from) {
        Ok(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => {
            rel.to_string_lossy().into_owned()
        }
        _ => format!("file://{}", target.display()),
    };
    let mut out = String::new();
    for b in url.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-' | b'~' | b':' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        v => v.to_string(),
    }
}

fn row(h: &mut String, name: &str, value: &str) {
    let _ = writeln!(
        h,
        "<div><span class=\"k\">{}</span> {}</div>",
        escape(name),
        escape(value)
    );
}

/// The summary header of a case.
fn header(f: &CaseFiles, page_dir: &Path) -> String {
    let v = &f.verdicts;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<h1>{} <small>{}</small></h1>\n<p class=\"title\">{}</p>",
        escape(&text(&v["scenario"])),
        escape(&text(&v["id"])),
        escape(&text(&v["title"]))
    );
    let outcome = text(&v["outcome"]);
    let _ = writeln!(
        h,
        "<p class=\"outcome o-{0}\" id=\"outcome\">outcome: <b>{0}</b> — expected {1}; found {2}</p>",
        escape(&outcome),
        escape(&text(&v["expected"]["verdicts"])),
        escape(&text(&v["found"]))
    );
    h.push_str("<div class=\"meta\">\n");
    let kernel = format!(
        "{} (release {})",
        text(&v["kernel"]),
        text(&v["kernel_release"])
    );
    row(&mut h, "kernel", &kernel);
    row(&mut h, "kernel source", &text(&v["kernel_source"]));
    row(&mut h, "kernel file", &text(&v["kernel_file"]));
    row(&mut h, "patches", &text(&v["patches"]));
    row(&mut h, "config fragments", &text(&v["configs"]));
    row(&mut h, "kernel cache key", &text(&v["kernel_cache_key"]));
    row(&mut h, "filesystem", &text(&v["fs"]));
    row(&mut h, "machine", &text(&v["machine"]));
    row(
        &mut h,
        "run, seed",
        &format!("{}, {}", text(&v["run"]), text(&v["seed"])),
    );
    row(&mut h, "expected titles", &text(&v["expected"]["titles"]));
    row(&mut h, "console titles", &text(&v["console_titles"]));
    row(&mut h, "why", &text(&v["why"]));
    row(&mut h, "recorded finding", &text(&v["expected"]["finding"]));
    h.push_str("</div>\n");
    verdict_list(&mut h, v);
    raw_links(&mut h, &f.dir, page_dir);
    h
}

fn verdict_list(h: &mut String, v: &Value) {
    let verdicts = v["verdicts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if verdicts.is_empty() {
        h.push_str("<p class=\"clean\">no verdict</p>\n");
        return;
    }
    h.push_str("<div class=\"verdicts\">\n");
    for vd in verdicts {
        let kind = text(&vd["kind"]);
        let _ = writeln!(
            h,
            "<details class=\"verdict v-{0}\" data-kind=\"{0}\"><summary><b>{0}</b> ×{1}: {2}</summary><ul>",
            escape(&kind),
            escape(&text(&vd["count"])),
            escape(&text(&vd["summary"]))
        );
        let ev = vd["evidence"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for e in ev.iter().take(HEADER_EVIDENCE) {
            let _ = writeln!(h, "<li>{}</li>", escape(&text(&e["text"])));
        }
        if ev.len() > HEADER_EVIDENCE {
            let _ = writeln!(
                h,
                "<li>… {} more in verdicts.json</li>",
                ev.len() - HEADER_EVIDENCE
            );
        }
        h.push_str("</ul></details>\n");
    }
    h.push_str("</div>\n");
}

fn raw_links(h: &mut String, dir: &Path, page_dir: &Path) {
    h.push_str("<p class=\"raw\">raw files: ");
    for name in RAW_FILES {
        let p = dir.join(name);
        if p.is_file() {
            let _ = write!(
                h,
                "<a href=\"{}\">{}</a> ",
                escape(&href(page_dir, &p)),
                escape(name)
            );
        }
    }
    let _ = writeln!(
        h,
        "<span class=\"dir\">({})</span></p>",
        escape(&dir.display().to_string())
    );
}

/// The whole page of one case, to be written into `page_dir`.
pub fn case_page(f: &CaseFiles, t: &Timeline, page_dir: &Path) -> String {
    let title = format!(
        "{} · {} {} · pinvm timeline",
        text(&f.verdicts["scenario"]),
        text(&f.verdicts["kernel"]),
        text(&f.verdicts["fs"])
    );
    let notes: String = t
        .notes
        .iter()
        .chain(
            f.verdicts["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|s| s.to_owned())
                .collect::<Vec<_>>()
                .iter(),
        )
        .map(|n| format!("<li>{}</li>", escape(n)))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <title>{}</title>\n<style>\n{CSS}</style></head>\n<body>\n<header>\n{}</header>\n\
         <main>\n<div id=\"toolbar\"></div>\n<div id=\"timeline\" role=\"img\" aria-label=\"timeline\"></div>\n\
         <div id=\"detail\" aria-live=\"polite\">Hover or click a mark to see the record behind it.</div>\n\
         <ul class=\"notes\">{notes}</ul>\n\
         <output id=\"selfcheck\" hidden></output>\n</main>\n\
         <script type=\"application/json\" id=\"timeline-data\">{}</script>\n\
         <script>\n{JS}</script>\n</body></html>\n",
        escape(&title),
        header(f, page_dir),
        script_json(t)
    )
}

/// One case of a suite's index: its verdicts.json and its page.
pub struct IndexEntry {
    /// The case's `verdicts.json`.
    pub verdicts: Value,
    /// Where its page was written.
    pub page: PathBuf,
}

/// The suite's index page: the outcome matrix (scenario × kernel/fs), each cell linking to
/// its case pages (one per run), to be written into `page_dir`.
pub fn index_page(entries: &[IndexEntry], page_dir: &Path) -> String {
    let col = |v: &Value| format!("{} {}", text(&v["kernel"]), text(&v["fs"]));
    let mut cols: Vec<String> = entries.iter().map(|e| col(&e.verdicts)).collect();
    cols.sort();
    cols.dedup();
    let mut rows: Vec<String> = entries
        .iter()
        .map(|e| text(&e.verdicts["scenario"]))
        .collect();
    rows.sort();
    rows.dedup();
    let mut h = String::from("<table class=\"matrix\"><tr><th>scenario</th>");
    for c in &cols {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr>\n");
    for r in &rows {
        let _ = write!(h, "<tr><th>{}</th>", escape(r));
        for c in &cols {
            h.push_str("<td>");
            for e in entries
                .iter()
                .filter(|e| text(&e.verdicts["scenario"]) == *r && col(&e.verdicts) == *c)
            {
                let o = text(&e.verdicts["outcome"]);
                let _ = write!(
                    h,
                    "<a class=\"cell o-{0}\" href=\"{1}\" title=\"run {2}: found {3}\">{0}</a> ",
                    escape(&o),
                    escape(&href(page_dir, &e.page)),
                    escape(&text(&e.verdicts["run"])),
                    escape(&text(&e.verdicts["found"]))
                );
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <title>pinvm suite · {} cases</title>\n<style>\n{CSS}</style></head>\n<body>\n\
         <header><h1>pinvm suite <small>{} cases</small></h1></header>\n<main>\n{h}</main>\n</body></html>\n",
        entries.len(),
        entries.len()
    )
}
