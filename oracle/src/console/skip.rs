//! Frames that are never a report's "guilty" function: the reporting machinery, allocators,
//! locking, string and list helpers, user copies and other callees that many unrelated bugs
//! pass through. Syzkaller's rules (its `pkg/report`): a title names the first frame that is
//! none of these, so that a bug found in `memcpy` is titled by `memcpy`'s caller.
//!
//! A pattern is matched against the function name: `^name` must start it, `name$` must end
//! it, `^name$` must be all of it, anything else may be anywhere in it.

/// Does `pattern` (see the module doc) match function `f`?
pub(super) fn matches(pattern: &str, f: &str) -> bool {
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    match (start, end) {
        (true, true) => f == p,
        (true, false) => f.starts_with(p),
        (false, true) => f.ends_with(p),
        (false, false) => f.contains(p),
    }
}

/// Is `f` skipped by the common rules or by one of the report format's own `extra` patterns?
pub(super) fn skipped(f: &str, extra: &[&str]) -> bool {
    COMMON.iter().flat_map(|g| g.iter()).any(|p| matches(p, f))
        || extra.iter().any(|p| matches(p, f))
        || numbered_crc(f)
        || unchecked_once(f)
        || atomic_op(f)
}

/// `crc32_le`, `crc16`, ...: checksum helpers are called with whatever the caller got wrong.
fn numbered_crc(f: &str) -> bool {
    f.strip_prefix("crc")
        .is_some_and(|r| r.bytes().next().is_some_and(|c| c.is_ascii_digit()))
}

/// `read_once_word_nocheck`-style unchecked reads (`(read|write)_once_...nocheck`).
fn unchecked_once(f: &str) -> bool {
    ["read_once_", "write_once_"].iter().any(|p| {
        f.find(p)
            .is_some_and(|i| f[i + p.len()..].contains("nocheck"))
    })
}

/// `atomic_inc`, `atomic64_fetch_add`, ... (the operation right after `atomic_`/`atomic64_`).
fn atomic_op(f: &str) -> bool {
    const OPS: &[&str] = &[
        "dec", "inc", "read", "set", "or", "xor", "and", "add", "sub", "fetch", "xchg", "cmpxchg",
        "try",
    ];
    ["atomic_", "atomic64_"].iter().any(|p| {
        f.match_indices(p)
            .any(|(i, _)| OPS.iter().any(|op| f[i + p.len()..].starts_with(op)))
    })
}

/// The common patterns, grouped by what the functions are.
const COMMON: &[&[&str]] = &[
    SANITIZERS,
    REPORTING,
    ALLOCATION,
    LOCKING,
    STRINGS_AND_COPIES,
    DATA_STRUCTURES,
    PRINTING,
    WORK_AND_TIMERS,
    DEVICES,
    MISC,
];

/// The sanitizers' and debug checkers' own code.
const SANITIZERS: &[&str] = &[
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__fortify_report",
    "__phys_addr",
];

/// The code that prints a report or takes the trap that leads to one.
const REPORTING: &[&str] = &[
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "print_report",
    "print_usage_bug",
    "do_error",
    "_trap$",
    "do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "print_unlock",
    "imbalance_bug",
    "program_check_exception",
    "program_check_common",
    "assertfail",
    "print_tainted",
    "^get_taint$",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "do_kernel_fault",
    "do_translation_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync",
    "_indirect_thunk_",
];

/// Page and object allocation and the page cache's lookup-or-allocate helpers.
const ALLOCATION: &[&str] = &[
    "alloc_page",
    "malloc",
    "zalloc",
    "calloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "__alloc_frozen_pages_noprof",
    "folio_alloc",
    "folio_unlock",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "^kfree$",
    "^kvfree$",
    "kfree_skb",
    "memdup",
    "^lock_page",
    "^unlock_page",
    "xas_start",
    "xas_load",
    "xas_find",
    "find_lock_entries",
    "truncate_inode_pages_range",
];

/// Locks, lockdep, interrupt state and reference counts.
const LOCKING: &[&str] = &[
    "__might_fault",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "reacquire_held_locks",
    "mark_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "set_bit",
    "clear_bit",
    "change_bit",
    "test_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    "trace_hardirq",
    "trace_softirq",
    "^complete$",
    "wait_for_completion",
    "finish_wait",
    "cleanup_srcu_struct",
    "perf_trace",
];

/// Memory and string operations, user copies and iterators.
const STRINGS_AND_COPIES: &[&str] = &[
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "string",
    "pointer",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "__might_resched",
    "extract_user_to_sg",
    "extract_iter_to_sg",
    "crc_itu_t",
    "hex_dump_to_buffer",
    "print_hex_dump",
];

/// Lists, trees and hash tables.
const DATA_STRUCTURES: &[&str] = &[
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "^klist_",
    "rhashtable_lookup",
    "ida_free",
];

/// printk and its wrappers.
const PRINTING: &[&str] = &[
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
];

/// Workqueues, kthreads and timers: the caller that waits or cancels is the one to blame.
const WORK_AND_TIMERS: &[&str] = &[
    "del_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "kthread_stop",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "lock_timer_base",
    "__timer_delete_sync",
    "sk_stop_timer_sync",
    "__mod_timer",
];

/// The driver model, sysfs, USB and MMIO accessors: generic code a driver's bug runs into.
const DEVICES: &[&str] = &[
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "device_remove_file",
    "tty_unregister_device",
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    "^put_device$",
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
];

/// Inode and dentry reference helpers and the last few generic callees.
const MISC: &[&str] = &[
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "drop_nlink",
    "fast_dput",
    "dput",
    "mark_buffer_dirty",
];
