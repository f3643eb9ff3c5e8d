//! Titles: the guilty frame of a report and the stable title built from its header.

use super::headers::{symbol, Header};
use super::normalize::normalize;

/// Longest title (syzkaller truncates at 120 characters too).
const MAX_TITLE: usize = 120;

/// Functions that report, dispatch or wait rather than cause: never the "guilty" frame.
const SKIP_EXACT: &[&str] = &[
    "panic",
    "vpanic",
    "__panic",
    "nmi_panic",
    "report_bug",
    "handle_bug",
    "__warn",
    "__warn_printk",
    "warn_slowpath_fmt",
    "warn_slowpath_null",
    "die",
    "__die",
    "__die_body",
    "die_addr",
    "oops_end",
    "do_trap",
    "do_error_trap",
    "page_fault_oops",
    "kernelmode_fixup_or_oops",
    "no_context",
    "bad_area_nosemaphore",
    "__bad_area_nosemaphore",
    "__bad_area",
    "bad_area",
    "do_user_addr_fault",
    "do_kern_addr_fault",
    "handle_page_fault",
    "fixup_exception",
    "show_stack",
    "show_regs",
    "__show_regs",
    "show_trace_log_lvl",
    "show_stack_log_lvl",
    "sched_show_task",
    "dump_stack",
    "dump_stack_lvl",
    "print_modules",
    "printk",
    "_printk",
    "__schedule",
    "schedule",
    "schedule_timeout",
    "schedule_hrtimeout",
    "schedule_hrtimeout_range",
    "schedule_preempt_disabled",
    "io_schedule",
    "io_schedule_timeout",
    "preempt_schedule",
    "preempt_schedule_common",
    "preempt_schedule_irq",
    "preempt_schedule_notrace",
    "_cond_resched",
    "__cond_resched",
    "cpu_relax",
    "copy_to_user",
    "copy_from_user",
    "_copy_to_user",
    "_copy_from_user",
    "rep_movs_alternative",
    "kfree",
    "lock_acquire",
    "lock_release",
    "__lock_acquire",
    "queued_spin_lock_slowpath",
    "native_queued_spin_lock_slowpath",
    "update_process_times",
    "watchdog_timer_fn",
    "irq_exit",
    "irq_exit_rcu",
    "__irq_exit_rcu",
    "__do_softirq",
    "handle_softirqs",
    "do_softirq",
    "native_safe_halt",
    "default_idle",
    "ret_from_fork",
    "ret_from_fork_asm",
    "entry_SYSCALL_64_after_hwframe",
    "do_syscall_64",
    "x64_sys_call",
];

/// Prefixes of functions that are never the guilty frame.
const SKIP_PREFIX: &[&str] = &[
    "asm_exc_",
    "exc_",
    "asm_sysvec_",
    "sysvec_",
    "__sysvec_",
    "asm_common_interrupt",
    "common_interrupt",
    "kasan_",
    "__kasan_",
    "__asan_",
    "kmsan_",
    "kcsan_",
    "kfence_",
    "__ubsan_",
    "ubsan_",
    "check_memory_region",
    "dump_stack",
    "vprintk",
    "console_",
    "mem",
    "__mem",
    "str",
    "__str",
    "list_add",
    "list_del",
    "__list_",
    "mutex_",
    "__mutex_",
    "down",
    "__down",
    "up_",
    "rwsem_",
    "_raw_spin",
    "_raw_read",
    "_raw_write",
    "do_raw_spin",
    "spin_",
    "rt_spin",
    "wait_for_completion",
    "__wait_",
    "bit_wait",
    "out_of_line_wait_on_bit",
    "kmalloc",
    "__kmalloc",
    "kmem_cache_",
    "slab_",
    "___slab_",
    "__slab_",
    "refcount_",
    "hrtimer_",
    "__hrtimer_",
    "__run_hrtimer",
    "tick_",
    "rcu_",
    "__rcu_",
    "print_cpu_stall",
    "check_cpu_stall",
    "nmi_",
    "arch_trigger_",
    "trigger_",
    "smp_call_function",
    "__x64_sys_",
];

fn skipped(f: &str) -> bool {
    SKIP_EXACT.contains(&f) || SKIP_PREFIX.iter().any(|p| f.starts_with(p))
}

/// The report's guilty function: the first `RIP:` that is not a helper, else the first
/// reliable call-trace frame that is not one, else the first unreliable ("? ") one.
fn guilty(excerpt: &[&str]) -> Option<String> {
    for l in excerpt {
        if let Some(rip) = l.trim_start().strip_prefix("RIP: ") {
            // "RIP: 0010:lkdtm_BUG+0x5/0x10"; user mode is "RIP: 0033:0x7f...".
            let at = rip.split_once(':').map_or(rip, |(_, f)| f);
            if let Some(f) = symbol(at) {
                if !skipped(&f) {
                    return Some(f);
                }
            }
        }
    }
    let mut unreliable = None;
    let mut in_trace = false;
    for l in excerpt {
        let t = l.trim();
        if t.starts_with("Call Trace:") || t.starts_with("Call trace:") {
            in_trace = true;
            continue;
        }
        if !in_trace {
            continue;
        }
        let (reliable, frame) = match t.strip_prefix("? ") {
            Some(f) => (false, f),
            None => (true, t),
        };
        let Some(f) = symbol(frame) else { continue };
        if skipped(&f) {
            continue;
        }
        if reliable {
            return Some(f);
        }
        unreliable.get_or_insert(f);
    }
    unreliable
}

pub(super) fn title(h: &Header, excerpt: &[&str]) -> String {
    let with_func = |base: &str, f: Option<String>| match f {
        Some(f) => format!("{base} in {f}"),
        None => base.to_string(),
    };
    let t = match h {
        Header::CutHere => "WARNING".to_string(),
        Header::Warning(f) => with_func("WARNING", f.clone().or_else(|| guilty(excerpt))),
        Header::WarningNamed(base) => with_func(base, guilty(excerpt)),
        Header::KernelBug(file) => format!("kernel BUG at {file}"),
        Header::PageFault(base) => with_func(base, guilty(excerpt)),
        Header::Kasan(what, f) => {
            let access = excerpt.iter().find_map(|l| {
                let l = l.trim_start();
                if l.starts_with("Read of size") {
                    Some(" Read")
                } else if l.starts_with("Write of size") {
                    Some(" Write")
                } else {
                    None
                }
            });
            let f = f
                .clone()
                .filter(|f| !skipped(f))
                .or_else(|| guilty(excerpt));
            with_func(&format!("{what}{}", access.unwrap_or("")), f)
        }
        Header::SoftLockup => with_func("BUG: soft lockup", guilty(excerpt)),
        Header::Bug(base) => with_func(base, guilty(excerpt)),
        Header::Oops(what) => with_func(what, guilty(excerpt)),
        Header::Gpf => with_func("general protection fault", guilty(excerpt)),
        Header::Ubsan(t) => t.clone(),
        Header::HungTask => with_func("INFO: task hung", guilty(excerpt)),
        Header::RcuStall => with_func("INFO: rcu detected stall", guilty(excerpt)),
        Header::Panic(msg) => format!("kernel panic: {}", normalize(msg)),
    };
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    match t.char_indices().nth(MAX_TITLE) {
        Some((i, _)) => t[..i].to_string(),
        None => t,
    }
}
