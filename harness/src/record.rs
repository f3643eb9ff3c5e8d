//! What a run record says, for people and files: where stopped vCPUs were (named from
//! System.map) and the machine-readable run report (`pinvm boot --report`, the `vm` part of a
//! case's verdicts.json).

use machine::outcome::Verdict;
use machine::RunReport;
use proto::agent::StepReport;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// "vCPU0 at default_idle+0x12, vCPU1 at ..." for hang reports; None when no vCPU was
/// stopped mid-run.
pub fn where_stopped(r: &RunReport, system_map: Option<&Path>) -> Option<String> {
    if r.vcpu_rips.is_empty() {
        return None;
    }
    // Read System.map once for all vCPUs.
    let map = system_map.and_then(|m| std::fs::read_to_string(m).ok());
    let names: Vec<String> = r
        .vcpu_rips
        .iter()
        .map(|(id, rip)| {
            let sym = map
                .as_deref()
                .and_then(|m| machine::symbols::lookup(m, *rip));
            match sym {
                Some(s) => format!("vCPU{id} at {s}"),
                None => format!("vCPU{id} at {rip:#x}"),
            }
        })
        .collect();
    Some(names.join(", "))
}

/// The run's landmarks on CLOCK_MONOTONIC ns: the guest's first instruction and the agent's
/// start (its first event), when known.
fn clock_json(r: &RunReport) -> Value {
    let first = first_instruction_ns(r);
    let agent = first
        .zip(r.timings.to_init)
        .and_then(|(f, d)| f.checked_add(u64::try_from(d.as_nanos()).ok()?));
    json!({"first_instruction_ns": first, "agent_start_ns": agent})
}

/// One step report as JSON, with the time it arrived (CLOCK_MONOTONIC ns).
fn step_json(s: &StepReport, time_ns: u64) -> Value {
    let mut v = match s {
        StepReport::Done { index, op, detail } => {
            json!({"kind": "done", "index": index, "op": op, "detail": detail})
        }
        StepReport::Failed {
            index,
            op,
            errno,
            message,
        } => json!({"kind": "failed", "index": index, "op": op, "errno": errno,
                    "message": message}),
        StepReport::Extent {
            index,
            logical,
            physical,
            length,
            flags,
        } => json!({"kind": "extent", "index": index, "logical": logical,
                    "physical": physical, "length": length, "flags": flags}),
    };
    v["time_ns"] = json!(time_ns);
    v
}

/// When the guest ran its first instruction, on CLOCK_MONOTONIC ns (the clock of the journal,
/// the DMA log and the step reports), from the first step report's two times; None when no
/// step reported.
pub fn first_instruction_ns(r: &RunReport) -> Option<u64> {
    let (t, &ns) = r.step_times.first().zip(r.step_ns.first())?;
    ns.checked_sub(u64::try_from(t.as_nanos()).ok()?)
}

/// The machine-readable run report (`--report`).
pub fn report_json(r: &RunReport, v: &Verdict) -> Value {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let steps: Vec<Value> = r
        .steps
        .iter()
        .zip(&r.step_ns)
        .map(|(s, &t)| step_json(s, t))
        .collect();
    json!({
        "machine": r.machine,
        "exit_code": v.code,
        "reason": v.reason,
        "vm_end": format!("{:?}", r.end),
        "command_status": r.cmd_status,
        "agent_started": r.agent_started,
        "agent_errors": r.agent_errors,
        "timings_ms": {
            "setup": ms(r.timings.setup),
            "to_init": r.timings.to_init.map(ms),
            "to_cmd_done": r.timings.to_cmd_done.map(ms),
            "total": ms(r.timings.total),
        },
        "steps": steps,
        "clock": clock_json(r),
        "console_line_ns": r.console_line_ns,
        "cmdline": r.cmdline,
        "kvm_pvm_workarounds": r.quirks,
        "notes": r.notes,
    })
}
