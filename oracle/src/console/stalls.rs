//! Title rules for hangs: hung tasks (`INFO: task hung in f`, `INFO: task can't die in f`)
//! and RCU stalls (`INFO: rcu detected stall in f`).

use super::pick::Pick;
use super::rules::Rule;
use super::stack::{trace, Part, Stack};

/// `INFO: task X blocked for more than N seconds.`, `INFO: task X can't die ...` and RCU's
/// stall reports.
pub(super) fn hang_or_stall(rest: &str) -> Option<Rule> {
    static HANG: Stack = Stack {
        pick: Pick::Hang,
        ..trace(&[])
    };
    static CANT_DIE: Stack = trace(&["schedule"]);
    static RCU: Stack = Stack {
        parts: &[Part::Line(timer_interrupt), Part::Rip, Part::Trace],
        fallback: &[Part::Line(stall_irq_entry), Part::Trace],
        skip: &["apic_timer_interrupt", "rcu"],
        pick: Pick::Stall,
        filtered: true,
    };
    if let Some(task) = rest.strip_prefix("task ") {
        if task.contains(" blocked for more than ")
            || task.contains(" blocked in I/O wait for more than ")
        {
            return Some(Rule::stack("INFO: task hung", &HANG));
        }
        if task.contains(" can't die for more than ") {
            return Some(Rule::stack("INFO: task can't die", &CANT_DIE));
        }
        return None;
    }
    let flavour = ["rcu_preempt ", "rcu_sched ", "rcu_bh ", "rcu_tasks "]
        .iter()
        .find_map(|f| rest.strip_prefix(f))?;
    let flavour = flavour.strip_prefix("self-").unwrap_or(flavour);
    (flavour.starts_with("detected stall") || flavour.starts_with("detected expedited stall"))
        .then(|| Rule::stack("INFO: rcu detected stall", &RCU))
}

fn timer_interrupt(line: &str) -> bool {
    line.contains("apic_timer_interrupt")
}

fn stall_irq_entry(line: &str) -> bool {
    timer_interrupt(line) || line.contains("Exception stack") || line.contains("el1h_64_irq")
}
