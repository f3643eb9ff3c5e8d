//! Which of a report's frames names it: the first, or — for stalls and hung tasks, whose
//! stacks show a random victim rather than the culprit — a representative frame deeper in
//! the stack (syzkaller's stall and hang rules, so that one stall gets one title).

use super::skip::matches;

/// How a report's guilty frame is chosen among its (already filtered, canonical) frames.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pick {
    /// The first frame.
    First,
    /// CPU stalls (RCU, soft lockup, stack overflow): the frame just before the first generic
    /// dispatcher ([`STALL_ANCHORS`]: the syscall entry, a workqueue or timer callback, a
    /// file or socket operation).
    Stall,
    /// Hung tasks: hangs in `rtnl_lock` or an RCU grace period are grouped by that; otherwise
    /// the first frame that is not waiting or locking.
    Hang,
}

pub(super) fn pick(how: Pick, frames: &[&str]) -> Option<String> {
    match how {
        Pick::First => frames.first().map(|f| f.to_string()),
        Pick::Stall => stall(frames),
        Pick::Hang => hang(frames),
    }
}

/// The frame before the first dispatcher (the dispatcher itself when it comes first; all
/// cross-CPU calls as `smp_call_function`).
fn stall(frames: &[&str]) -> Option<String> {
    let mut prev = *frames.first()?;
    for f in frames {
        if STALL_ANCHORS.iter().any(|a| matches(a, f)) {
            if f.contains("smp_call_function") {
                return Some("smp_call_function".into());
            }
            return Some(prev.to_string());
        }
        prev = f;
    }
    None
}

fn hang(frames: &[&str]) -> Option<String> {
    for f in frames {
        if f.contains("rtnl_lock") {
            return Some(f.to_string());
        }
        let grace_period = [
            "synchronize_rcu",
            "synchronize_srcu",
            "synchronize_net",
            "synchronize_sched",
        ];
        if grace_period.iter().any(|a| f.contains(a)) {
            return Some("synchronize_rcu".into());
        }
    }
    const WAITING: &[&str] = &[
        "sched",
        "_lock",
        "_slowlock",
        "down",
        "rwsem",
        "completion",
        "kthread",
        "wait",
        "synchronize",
        "context_switch",
        "__switch_to",
        "cancel_delayed_work",
        "rcu_barrier",
    ];
    frames
        .iter()
        .find(|f| !WAITING.iter().any(|w| f.contains(w)))
        .map(|f| f.to_string())
}

/// Generic dispatchers (patterns as in `skip`): the entries of syscalls, workqueues, timers,
/// softirqs and kthreads, and the file, socket and page-fault operations that still say which
/// driver or protocol it was.
const STALL_ANCHORS: &[&str] = &[
    "process_one_work",
    "do_syscall_",
    "do_fast_syscall_",
    "sysenter_dispatch",
    "tracesys_phase2",
    "el0_svc_handler",
    "invoke_syscall",
    "ret_fast_syscall",
    "netif_receive_skb",
    "do_softirq",
    "call_timer_fn",
    "_run_timers",
    "run_timer_softirq",
    "hrtimer_run",
    "run_ksoftirqd",
    "smpboot_thread_fn",
    "^kthread$",
    "start_secondary",
    "cpu_startup_entry",
    "ret_from_fork",
    "vfs_write",
    "vfs_read",
    "vfs_iter_read",
    "vfs_iter_write",
    "do_iter_read",
    "do_iter_write",
    "call_read_iter",
    "call_write_iter",
    "new_sync_read",
    "new_sync_write",
    "vfs_ioctl",
    "ksys_ioctl",
    "compat_ioctl",
    "compat_sys_ioctl",
    "blkdev_driver_ioctl",
    "blkdev_ioctl",
    "do_iter_readv_writev",
    "^call_mmap",
    "mmap_region",
    "do_mmap",
    "do_dentry_open",
    "vfs_open",
    "^sock_sendmsg",
    "^sock_recvmsg",
    "^sock_release",
    "^__sock_release",
    "^setsockopt$",
    "kernel_setsockopt",
    "sock_common_setsockopt",
    "^listen$",
    "kernel_listen",
    "sk_common_release",
    "^sock_mmap",
    "^accept$",
    "kernel_accept",
    "^sock_do_ioctl",
    "^sock_ioctl",
    "^compat_sock_ioctl",
    "^nfnetlink_rcv_msg",
    "^rtnetlink_rcv_msg",
    "^netlink_dump",
    "^socketpair",
    "^connect",
    "^ioctl",
    "^sys_socketpair",
    "^sys_connect",
    "^sys_ioctl",
    "__do_fault",
    "do_page_fault",
    "^page_fault$",
    "__fput",
    "task_work_run",
    "exit_to_usermode",
    "smp_call_function",
    "tasklet_action",
    "tasklet_hi_action",
];
