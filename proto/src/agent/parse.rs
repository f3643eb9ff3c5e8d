//! Parsing STEP messages: the inverse of [`StepReport`]'s `Display`.

use super::StepReport;

/// A STEP message that does not follow the format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed STEP message ({reason}): {message:?}")]
pub struct StepParseError {
    /// The whole message.
    pub message: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses the mailbox text of one STEP event (a single line; one trailing `\n` is tolerated).
pub fn parse_step(msg: &str) -> Result<StepReport, StepParseError> {
    let fail = |reason| StepParseError {
        message: msg.to_string(),
        reason,
    };
    let line = msg.strip_suffix('\n').unwrap_or(msg);
    if line.contains('\n') {
        return Err(fail("more than one line"));
    }
    let (kind, rest) = word(line);
    let (index, rest) = word(rest);
    let index: u32 = number(index).ok_or_else(|| fail("bad step index"))?;
    match kind {
        "step" => {
            let (op, rest) = word(rest);
            if op.is_empty() {
                return Err(fail("missing op"));
            }
            let op = op.to_string();
            match word(rest) {
                ("ok", detail) => Ok(StepReport::Done {
                    index,
                    op,
                    detail: detail.to_string(),
                }),
                ("err", rest) => {
                    let (errno, message) = word(rest);
                    let errno = errno.parse().map_err(|_| fail("bad errno"))?;
                    Ok(StepReport::Failed {
                        index,
                        op,
                        errno,
                        message: message.to_string(),
                    })
                }
                _ => Err(fail("expected ok or err after the op")),
            }
        }
        "extent" => {
            let mut fields = rest.split(' ');
            let mut field = |key: &str| {
                fields
                    .next()
                    .and_then(|w| w.strip_prefix(key))
                    .ok_or_else(|| fail("extent fields must be logical= physical= length= flags="))
            };
            let logical = field("logical=")?;
            let physical = field("physical=")?;
            let length = field("length=")?;
            let flags = field("flags=0x")?;
            if fields.next().is_some() {
                return Err(fail("trailing words after flags="));
            }
            let flags = u32::from_str_radix(flags, 16)
                .ok()
                .filter(|_| !flags.is_empty() && flags.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| fail("bad extent flags"))?;
            Ok(StepReport::Extent {
                index,
                logical: number(logical).ok_or_else(|| fail("bad extent logical"))?,
                physical: number(physical).ok_or_else(|| fail("bad extent physical"))?,
                length: number(length).ok_or_else(|| fail("bad extent length"))?,
                flags,
            })
        }
        _ => Err(fail("expected step or extent")),
    }
}

/// Splits off the first space-separated word (the rest is empty when there is no space).
fn word(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

/// A plain decimal number (no sign, no spaces).
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
