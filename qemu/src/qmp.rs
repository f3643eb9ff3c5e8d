//! A minimal QMP client: enough to ask a stuck guest where its vCPUs are (`info registers
//! -a` through `human-monitor-command`) and to stop QEMU. Every read has a timeout, so a QEMU
//! that stops answering cannot hold pinvm.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// How long one QMP answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest line accepted from QEMU (the register dump of many vCPUs is one JSON line).
const MAX_LINE: usize = 1 << 20;

/// What went wrong talking to QEMU's monitor.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Socket errors, including timeouts.
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU answered with something that is not QMP.
    #[error("QMP: unexpected answer: {0}")]
    Protocol(String),
}

/// A connected, negotiated QMP session.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect to QEMU's QMP socket and leave capabilities negotiation mode.
    pub fn connect(path: &Path) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = q.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = Read::take(&mut self.reader, MAX_LINE as u64).read_line(&mut line)?;
        if n == 0 {
            return Err(QmpError::Protocol("QEMU closed the monitor".into()));
        }
        serde_json::from_str(&line).map_err(|e| QmpError::Protocol(format!("{e}: {line}")))
    }

    /// Run a command and return its `return` value (events in between are skipped).
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let msg = json!({"execute": command, "arguments": arguments});
        self.writer.write_all(format!("{msg}\n").as_bytes())?;
        loop {
            let v = self.read_message()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Protocol(e.to_string()));
            }
        }
    }

    /// Each vCPU's instruction pointer, from the human monitor's `info registers -a`.
    pub fn vcpu_rips(&mut self) -> Result<Vec<(u8, u64)>, QmpError> {
        let out = self.execute(
            "human-monitor-command",
            json!({"command-line": "info registers -a"}),
        )?;
        Ok(parse_rips(out.as_str().unwrap_or_default()))
    }

    /// Stop QEMU now.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        self.execute("quit", json!({})).map(|_| ())
    }
}

/// `CPU#1` headers and `RIP=ffffffff81234567` fields of an `info registers -a` dump.
pub fn parse_rips(dump: &str) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    let mut cpu: Option<u8> = None;
    for line in dump.lines() {
        if let Some(rest) = line.trim().strip_prefix("CPU#") {
            cpu = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok());
        }
        for word in line.split_whitespace() {
            if let (Some(id), Some(hex)) = (cpu, word.strip_prefix("RIP=")) {
                if let Ok(rip) = u64::from_str_radix(hex, 16) {
                    out.push((id, rip));
                    cpu = None;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rips_from_a_register_dump() {
        let dump = "\r\nCPU#0\r\nRAX=0000000000000000 RBX=ffffffff82a0c940\r\n\
RIP=ffffffff81e4c3a2 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n\
ES =0000 0000000000000000 00000000 00000000\r\n\
CPU#1\r\nRIP=ffffffff810a1b2c RFL=00000202\r\n";
        assert_eq!(
            parse_rips(dump),
            vec![(0, 0xffff_ffff_81e4_c3a2), (1, 0xffff_ffff_810a_1b2c)]
        );
        assert!(parse_rips("garbage RIP=zz CPU#x").is_empty());
    }
}
