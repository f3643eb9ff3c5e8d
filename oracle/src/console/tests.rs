use super::lines::split_line;
use super::normalize::normalize;
use super::*;

fn one(console: &str) -> CrashReport {
    let r = parse(console);
    assert_eq!(r.len(), 1, "{r:#?}");
    r.into_iter().next().unwrap()
}

#[test]
fn stale_page_cache_after_direct_io_is_critical() {
    let m = fs_messages("[    6.077047] Page cache invalidation failure on direct I/O.  Possible data corruption due to collision with buffered I/O!\n");
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].fs.as_str(), m[0].severity),
        ("vfs", FsSeverity::Critical)
    );
}

#[test]
fn line_prefixes() {
    let l = split_line("[    1.234567] hello\r");
    assert_eq!((l.text, l.time, l.caller), ("hello", Some(1.234567), None));
    let l = split_line("[   12.000001][  T123] BUG: x");
    assert_eq!((l.text, l.caller), ("BUG: x", Some("T123")));
    let l = split_line("[    0.100000] [    C0] x");
    assert_eq!((l.text, l.caller), ("x", Some("C0")));
    let l = split_line("<4>[    2.5] y");
    assert_eq!((l.text, l.time), ("y", Some(2.5)));
    // Mixed with a user program's output on the same line.
    let l = split_line("# [    3.250000] WARNING: CPU: 0");
    assert_eq!((l.text, l.time), ("WARNING: CPU: 0", Some(3.25)));
    // "[1.5]" in a user program's output is not a printk stamp.
    assert_eq!(split_line("score [1.5] ok").time, None);
    assert_eq!(split_line("no prefix").text, "no prefix");
}

#[test]
fn warn_with_file_and_line() {
    let c = "\
[    9.100000] ------------[ cut here ]------------\n\
[    9.100001] WARNING: CPU: 1 PID: 57 at fs/ext4/inode.c:3587 ext4_dirty_folio+0x3d/0x60\n\
[    9.100002] Modules linked in:\n\
[    9.100003] CPU: 1 UID: 0 PID: 57 Comm: t Not tainted 6.12.17 #1\n\
[    9.100004] RIP: 0010:ext4_dirty_folio+0x3d/0x60\n\
[    9.100005] Call Trace:\n\
[    9.100006]  <TASK>\n\
[    9.100007]  ? __warn+0x7c/0x120\n\
[    9.100008]  folio_mark_dirty+0x2a/0x50\n\
[    9.100009]  </TASK>\n\
[    9.100010] ---[ end trace 0000000000000000 ]---\n\
[    9.200000] EXT4-fs (vda): mounted filesystem\n";
    let r = one(c);
    assert_eq!(r.kind, CrashKind::Warning);
    assert_eq!(r.title, "WARNING in ext4_dirty_folio");
    assert_eq!(r.line, 0);
    assert_eq!(r.time_s, Some(9.1));
    assert_eq!(r.excerpt.len(), 11);
    assert_eq!(r.excerpt[0], "------------[ cut here ]------------");
    assert!(r.excerpt[10].starts_with("---[ end trace"));
}

#[test]
fn warn_without_file_and_line() {
    let c = "[ 1.0] WARNING: CPU: 0 PID: 1 at foo_bar.isra.0+0x1/0x2\n\
             [ 1.1] ---[ end trace 0 ]---\n";
    assert_eq!(one(c).title, "WARNING in foo_bar");
    // No symbol at all: the RIP names it.
    let c = "[ 1.0] WARNING: CPU: 0 PID: 1 at 0x0\n[ 1.1] RIP: 0010:baz+0x1/0x2\n";
    assert_eq!(one(c).title, "WARNING in baz");
}

#[test]
fn crlf_and_interleaved_lines() {
    let c = "[    5.000000] ------------[ cut here ]------------\r\n\
[    5.000001] WARNING: CPU: 1 PID: 57 at mm/gup.c:100 try_grab_folio+0x1/0x2\r\n\
[    5.000002] virtio_blk virtio0: [vda] 2048 512-byte logical blocks\r\n\
[    5.000003] RIP: 0010:try_grab_folio+0x1/0x2\r\n\
[    5.000004] Call Trace:\r\n\
[    5.000005]  gup_fast+0x1/0x2\r\n\
[    5.000006] ---[ end trace 0000000000000000 ]---\r\n";
    let r = one(c);
    assert_eq!(r.title, "WARNING in try_grab_folio");
    assert_eq!(r.excerpt.len(), 6, "{:?}", r.excerpt);
    assert!(r
        .excerpt
        .iter()
        .all(|l| !l.contains('\r') && !l.contains("virtio")));
    // With caller ids, another task's lines are left out even when they look like a body.
    let c = "[ 1.000000][  T57] BUG: kernel NULL pointer dereference, address: 0000000000000000\n\
             [ 1.000001][  T12]  other_task_line+0x1/0x2\n\
             [ 1.000002][  T57] RIP: 0010:lkdtm_EXCEPTION+0x1/0x2\n\
             [ 1.000003][  T57] Oops: 0002 [#1] SMP\n";
    let r = one(c);
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in lkdtm_EXCEPTION"
    );
    assert_eq!(r.excerpt.len(), 3);
}

#[test]
fn kernel_bug_names_its_function() {
    let c = "[ 2.0] ------------[ cut here ]------------\n\
             [ 2.0] kernel BUG at fs/ext4/inode.c:2620!\n\
             [ 2.0] Oops: invalid opcode: 0000 [#1] SMP\n\
             [ 2.0] RIP: 0010:mpage_prepare_extent_to_map+0x1/0x2\n\
             [ 2.0] ---[ end trace 0000000000000000 ]---\n\
             [ 2.0] RIP: 0010:mpage_prepare_extent_to_map+0x1/0x2\n\
             [ 2.1] Kernel panic - not syncing: Fatal exception\n\
             [ 2.1] ---[ end Kernel panic - not syncing: Fatal exception ]---\n";
    let r = one(c);
    assert_eq!(
        (r.kind, r.title.as_str()),
        (CrashKind::Bug, "kernel BUG in mpage_prepare_extent_to_map")
    );
    // 6.1's form of the oops line; skb helpers' BUG_ON()s are their callers' bugs.
    let c = "[ 2.0] kernel BUG at net/core/skbuff.c:1500!\n[ 2.0] invalid opcode: 0000 [#1] SMP\n\
             [ 2.0] RIP: 0010:skb_put+0x1/0x2\n[ 2.0] Call Trace:\n[ 2.0]  ip6_append_data+0x1/0x2\n";
    assert_eq!(one(c).title, "kernel BUG in ip6_append_data");
    // The list and usercopy checkers have their own class.
    let c = "[ 2.0] kernel BUG at lib/list_debug.c:50!\n[ 2.0] Call Trace:\n\
             [ 2.0]  __list_del_entry_valid+0x1/0x2\n[ 2.0]  ext4_orphan_del+0x1/0x2\n";
    assert_eq!(one(c).title, "BUG: corrupted list in ext4_orphan_del");
    // No function at all.
    let c = "[ 2.0] kernel BUG at mm/filemap.c:1500!\n[ 2.0] invalid opcode: 0000 [#1] SMP\n";
    assert_eq!(one(c).title, "kernel BUG");
}

#[test]
fn page_faults_and_gpf() {
    let c = "[ 3.0] BUG: unable to handle page fault for address: ffffffffff600000\n\
             [ 3.0] #PF: supervisor read access in kernel mode\n\
             [ 3.0] Oops: 0000 [#1] SMP\n\
             [ 3.0] RIP: 0010:topology_unit_count+0x10/0x40\n";
    let r = one(c);
    assert_eq!(r.kind, CrashKind::PageFault);
    // syzkaller's wording for every kernel paging fault.
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel paging request in topology_unit_count"
    );
    let c = "[ 3.0] Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP\n\
             [ 3.0] RIP: 0010:list_del+0x1/0x2\n\
             [ 3.0] Call Trace:\n\
             [ 3.0]  folio_end_writeback+0x1/0x2\n";
    let r = one(c);
    assert_eq!(r.kind, CrashKind::GeneralProtection);
    assert_eq!(r.title, "general protection fault in folio_end_writeback");
    let c = "[ 3.0] general protection fault: 0000 [#1] SMP\n[ 3.0] RIP: 0010:f+0x1/0x2\n";
    assert_eq!(one(c).title, "general protection fault in f");
    let c = "[ 3.0] Oops: divide error: 0000 [#1] SMP\n[ 3.0] RIP: 0010:g+0x1/0x2\n";
    assert_eq!(
        (one(c).kind, one(c).title),
        (CrashKind::Oops, "divide error in g".into())
    );
}

#[test]
fn sanitizers() {
    let c = "[ 4.0] ==================================================================\n\
             [ 4.0] BUG: KASAN: slab-use-after-free in ext4_foo+0x12/0x34\n\
             [ 4.0] Read of size 8 at addr ffff888003a1b2c8 by task sh/57\n\
             [ 4.0] Call Trace:\n\
             [ 4.0]  kasan_report+0x1/0x2\n\
             [ 4.0]  ext4_foo+0x12/0x34\n\
             [ 4.0] ==================================================================\n\
             [ 4.1] next\n";
    let r = one(c);
    assert_eq!((r.kind, r.line), (CrashKind::Kasan, 1));
    assert_eq!(r.title, "KASAN: slab-use-after-free Read in ext4_foo");
    assert_eq!(r.excerpt.len(), 6);
    // UBSAN: the function the check fired in, not UBSAN's handlers.
    let c = "[ 4.0] UBSAN: array-index-out-of-bounds in /root/.cache/pinvm/build/ab12/src/drivers/misc/lkdtm/bugs.c:406:16\n\
             [ 4.0] Call Trace:\n\
             [ 4.0]  dump_stack_lvl+0x1/0x2\n\
             [ 4.0]  __ubsan_handle_out_of_bounds+0x1/0x2\n\
             [ 4.0]  lkdtm_ARRAY_BOUNDS+0x1/0x2\n";
    assert_eq!(
        one(c).title,
        "UBSAN: array-index-out-of-bounds in lkdtm_ARRAY_BOUNDS"
    );
    let c = "[ 4.0] UBSAN: shift-out-of-bounds in fs/x.c:12:5\n\
             [ 4.0] shift exponent 70 is too large for 64-bit type 'long'\n\
             [ 4.0] ---[ end trace ]---\n";
    let r = one(c);
    assert_eq!(
        (r.kind, r.title.as_str()),
        (CrashKind::Ubsan, "UBSAN: shift-out-of-bounds")
    );
}

#[test]
fn hangs_and_stalls() {
    let c = "[ 20.0] INFO: task sh:57 blocked for more than 5 seconds.\n\
             [ 20.0]       Not tainted 6.12.17 #1\n\
             [ 20.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
             [ 20.0] task:sh state:D stack:0 pid:57\n\
             [ 20.0] Call Trace:\n\
             [ 20.0]  __schedule+0x1/0x2\n\
             [ 20.0]  schedule+0x1/0x2\n\
             [ 20.0]  folio_wait_bit_common+0x1/0x2\n\
             [ 20.0]  folio_wait_writeback+0x1/0x2\n\
             [ 20.0]  __filemap_fdatawait_range+0x1/0x2\n\
             [ 20.0]  file_write_and_wait_range+0x1/0x2\n\
             [ 20.0]  ext4_sync_file+0x1/0x2\n";
    // The first frame that is not waiting or scheduling.
    let r = one(c);
    assert_eq!(
        (r.kind, r.title.as_str()),
        (CrashKind::HungTask, "INFO: task hung in ext4_sync_file")
    );
    let c = "[ 30.0] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [sh:57]\n\
             [ 30.0] RIP: 0010:spin+0x1/0x2\n\
             [ 31.0] rcu: INFO: rcu_sched self-detected stall on CPU\n\
             [ 31.0] rcu: \t1-....: (2100 ticks this GP)\n\
             [ 31.0] RIP: 0010:spin+0x1/0x2\n";
    let r = parse(c);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].kind, r[0].title.as_str()),
        (CrashKind::SoftLockup, "BUG: soft lockup in spin")
    );
    assert_eq!(
        (r[1].kind, r[1].title.as_str()),
        (CrashKind::RcuStall, "INFO: rcu detected stall in spin")
    );
}

#[test]
fn repeated_hang_reports_are_one() {
    let c = "[ 25.0] INFO: task sh:36 blocked for more than 5 seconds.\n\
             [ 25.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
             [ 30.0] INFO: task sh:36 blocked for more than 10 seconds.\n\
             [ 30.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
             [ 30.0] INFO: task kworker/0:1:12 blocked for more than 10 seconds.\n";
    let r = parse(c);
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!((r[0].line, r[0].excerpt.len(), r[1].line), (0, 2, 4));
    let c = "[ 30.0] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [sh:57]\n\
             [ 30.0] RIP: 0010:spin+0x1/0x2\n\
             [ 58.0] watchdog: BUG: soft lockup - CPU#1 stuck for 48s! [sh:57]\n\
             [ 58.0] RIP: 0010:spin+0x1/0x2\n";
    assert_eq!(parse(c).len(), 1);
}

#[test]
fn panics_fold_or_stand_alone() {
    let c = "[ 5.0] sysrq: Trigger a crash\n\
             [ 5.0] Kernel panic - not syncing: sysrq triggered crash\n\
             [ 5.0] CPU: 0 PID: 57 Comm: sh\n\
             [ 5.0] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---\n";
    let r = one(c);
    assert_eq!(
        (r.kind, r.title.as_str()),
        (CrashKind::Panic, "kernel panic: sysrq triggered crash")
    );
    assert_eq!(r.line, 1);
    let c = "[ 5.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n";
    assert_eq!(one(c).title, "kernel panic: Attempted to kill init!");
    let c =
        "[ 5.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
    assert_eq!(
        one(c).title,
        "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
    );
}

#[test]
fn not_crashes() {
    assert!(parse("[ 0.1] BUG: arch topology borken\n[ 0.1]      the SMT domain not a subset of the MC domain\n").is_empty());
    assert!(parse("DEBUG: value\nDEBUGGING BUG\n").is_empty());
    // A user program printing "BUG: " on a console the kernel stamps.
    assert!(parse("[ 1.0] hello\nBUG: not the kernel\n").is_empty());
    assert!(parse("[ 1.0] WARNING: this is deprecated\n").is_empty());
    assert!(parse("[ 1.0] ------------[ cut here ]------------\n[ 1.0] x\n").is_empty());
    assert!(parse("").is_empty());
}

#[test]
fn other_bugs_and_lockdep() {
    let c =
        "[ 1.0] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n\
             [ 1.0] in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 57, name: sh\n\
             [ 1.0] Call Trace:\n\
             [ 1.0]  __might_resched+0x1/0x2\n\
             [ 1.0]  mutex_lock_nested+0x1/0x2\n\
             [ 1.0]  ext4_foo+0x1/0x2\n";
    assert_eq!(
        one(c).title,
        "BUG: sleeping function called from invalid context in ext4_foo"
    );
    let c = "[ 1.0] BUG: scheduling while atomic: sh/57/0x00000002\n";
    assert_eq!(one(c).title, "BUG: scheduling while atomic");
    // Bad page state: the allocation's caller, not the page allocator.
    let c = "[ 1.0] BUG: Bad page state in process sh  pfn:01234\n\
             [ 1.0] page last allocated via order 0, migratetype Movable, pid 57, tgid 57 (sh)\n\
             [ 1.0]  post_alloc_hook+0x1/0x2\n\
             [ 1.0]  get_page_from_freelist+0x1/0x2\n\
             [ 1.0]  ext4_da_write_begin+0x1/0x2\n\
             [ 1.0] RIP: 0010:free_pages_prepare+0x1/0x2\n";
    assert_eq!(one(c).title, "BUG: Bad page state in ext4_da_write_begin");
    let c = "[ 1.0] WARNING: possible circular locking dependency detected\n\
             [ 1.0] Call Trace:\n[ 1.0]  ext4_writepages+0x1/0x2\n";
    assert_eq!(
        (one(c).kind, one(c).title),
        (
            CrashKind::Warning,
            "possible deadlock in ext4_writepages".into()
        )
    );
}

#[test]
fn excerpt_is_capped() {
    let mut c = String::from("[ 1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2\n");
    for _ in 0..100 {
        c.push_str("[ 1.0]  g+0x1/0x2\n");
    }
    assert_eq!(one(&c).excerpt.len(), MAX_EXCERPT);
}

#[test]
fn normalization() {
    assert_eq!(
        normalize("CPU#3 stuck at fs/x.c:12:4 0xffff 12345678abc f+0x1d/0x50"),
        "CPU stuck at fs/x.c:LINE 0xffff ADDR f"
    );
    assert_eq!(normalize("dumptest"), "dumptest");
    assert_eq!(normalize("é 12\tü  x"), "NUM x");
    assert_eq!(
        normalize("cfg80211_x (0,1,2) x1234567 1234567"),
        "cfg80211_x (NUM,NUM,NUM) xNUM ADDR"
    );
    assert_eq!(normalize(&"x".repeat(200)).len(), 120);
    assert_eq!(
        normalize("Fatal exception in interrupt"),
        "Fatal exception in interrupt"
    );
}

#[test]
fn filesystem_messages() {
    let c = "\
[    7.000000] EXT4-fs (vda): mounted filesystem 1234 r/w with ordered data mode\r\n\
[    7.100000] EXT4-fs warning (device vda): mpage_prepare_extent_to_map:2526: inode #12: comm x: page 3 does not have buffers attached\r\n\
[    7.200000] EXT4-fs error (device vda): ext4_validate_block_bitmap:421: comm x: bg 0: bad block bitmap checksum\n\
[    7.300000] Aborting journal on device vda-8.\n\
[    7.400000] JBD2: Invalid checksum recovering data block 1234 in log\n\
[    7.500000] BTRFS warning (device vda): csum failed root 5 ino 257 off 0 csum 0x8941f998 expected csum 0x1234 mirror 1\n\
[    7.600000] BTRFS error (device vda): bdev /dev/vda errs: wr 0, rd 0, flush 0, corrupt 1, gen 0\n\
[    7.700000] BTRFS critical (device vda): corrupt leaf: root=1 block=30408704 slot=0\n\
[    7.750000] BTRFS info (device vda): first mount of filesystem\n\
[    7.800000] XFS (vda): Metadata corruption detected at xfs_buf_ioend+0x1/0x2, xfs_inode block 0x20\n\
[    7.810000] XFS (vda): Metadata CRC error detected at xfs_dir3_block_read_verify+0x1/0x2, xfs_dir3_block block 0x40\n\
[    7.820000] XFS (vda): Corruption of in-memory data (0x8) detected at xfs_trans_cancel+0x1/0x2. Shutting down filesystem.\n\
[    7.830000] XFS (vda): Mounting V5 Filesystem\n\
[    7.900000] I/O error, dev vda, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0\n\
[    7.910000] blk_update_request: I/O error, dev vda, sector 8 op 0x0:(READ) flags 0x0\n\
EXT4-fs error printed by a user program\n";
    let m = fs_messages(c);
    let got: Vec<(&str, FsSeverity, bool, usize)> = m
        .iter()
        .map(|m| (m.fs.as_str(), m.severity, m.checksum, m.line))
        .collect();
    use FsSeverity::*;
    assert_eq!(
        got,
        vec![
            ("ext4", Warning, false, 1),
            ("ext4", Error, true, 2),
            ("jbd2", Error, false, 3),
            ("jbd2", Error, true, 4),
            ("btrfs", Warning, true, 5),
            ("btrfs", Error, false, 6),
            ("btrfs", Critical, false, 7),
            ("xfs", Error, false, 9),
            ("xfs", Error, true, 10),
            ("xfs", Critical, false, 11),
            ("block", Error, false, 13),
            ("block", Error, false, 14),
        ]
    );
    assert_eq!(m[0].time_s, Some(7.1));
    assert!(m[0]
        .text
        .starts_with("EXT4-fs warning (device vda): mpage_prepare_extent_to_map"));
    assert!(!m[0].text.ends_with('\r'));
}

/// `lines` as a console with printk stamps.
fn stamped(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| format!("[    1.000000] {l}\n"))
        .collect()
}

#[test]
fn syzkaller_title_rules() {
    let cases: &[(&[&str], &str)] = &[
        // 6.18's WARN format; the warning's own function.
        (
            &[
                "WARNING: fs/ext4/inode.c:3587 at 0x1d, CPU#1: sh/57",
                "RIP: 0010:ext4_dirty_folio+0x3d/0x60",
                "Call Trace:",
                " folio_mark_dirty+0x2a/0x50",
            ],
            "WARNING in ext4_dirty_folio",
        ),
        // A generic checker's class; the caller of the checker and of kobject_put.
        (
            &[
                "WARNING: CPU: 0 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0x1/0x2",
                "RIP: 0010:refcount_warn_saturate+0x1/0x2",
                "Call Trace:",
                " <TASK>",
                " kobject_put+0x1/0x2",
                " hdm_disconnect+0x1/0x2",
            ],
            "WARNING: refcount bug in hdm_disconnect",
        ),
        // KASAN: not the reporting helpers nor memcpy.
        (
            &[
                "BUG: KASAN: slab-out-of-bounds in memcpy+0x1/0x2",
                "Write of size 8 at addr ffff888003a1b2c8 by task sh/57",
                "Call Trace:",
                " dump_stack_lvl+0x1/0x2",
                " print_address_description.constprop.0+0x1/0x2",
                " print_report+0x1/0x2",
                " kasan_report+0x1/0x2",
                " memcpy+0x1/0x2",
                " ext4_xattr_set_entry+0x1/0x2",
            ],
            "KASAN: slab-out-of-bounds Write in ext4_xattr_set_entry",
        ),
        // A retpoline thunk is no culprit; a syscall is named without its wrapper.
        (
            &[
                "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000000: 0000 [#1] SMP KASAN",
                "RIP: 0010:__x86_indirect_thunk_rax+0x1/0x2",
                "Call Trace:",
                " ? die_addr+0x1/0x2",
                " __se_sys_ioctl+0x1/0x2",
            ],
            "general protection fault in ioctl",
        ),
        // Lockdep: the function its "at:" lines name, not __might_fault.
        (
            &[
                "WARNING: possible circular locking dependency detected",
                "sh/57 is trying to acquire lock:",
                "ffff888003a1b2c8 (&mm->mmap_lock){++++}-{3:3}, at: __might_fault+0x8f/0x110",
                "but task is already holding lock:",
                "ffff888003a1b2c8 (&sb->s_type->i_mutex_key#9){+.+.}-{3:3}, at: ext4_buffered_write_iter+0x1/0x2",
            ],
            "possible deadlock in ext4_buffered_write_iter",
        ),
        (
            &[
                "[ BUG: held lock freed! ]",
                "sh/57 is freeing memory ffff88003a1b2c8, with a lock still held there!",
                " (sk_lock-AF_INET){+.+.}, at: [<ffffffff81234567>] sctp_sendmsg+0x1/0x2",
            ],
            "BUG: held lock freed in sctp_sendmsg",
        ),
        // A stall: the frame before the first dispatcher (here the file operation).
        (
            &[
                "rcu: INFO: rcu_preempt self-detected stall on CPU",
                " <TASK>",
                " asm_sysvec_apic_timer_interrupt+0x1a/0x20",
                "RIP: 0010:spin_loop+0x1/0x2",
                "RSP: 0018:ffffc90000133e18 EFLAGS: 00000246",
                " ext4_foo+0x1/0x2",
                " vfs_write+0x1/0x2",
                " ksys_write+0x1/0x2",
            ],
            "INFO: rcu detected stall in ext4_foo",
        ),
        // Hangs waiting for an RCU grace period are one bug.
        (
            &[
                "INFO: task sh:57 blocked for more than 143 seconds.",
                "Call Trace:",
                " __schedule+0x1/0x2",
                " schedule+0x1/0x2",
                " synchronize_rcu_expedited+0x1/0x2",
                " ext4_foo+0x1/0x2",
            ],
            "INFO: task hung in synchronize_rcu",
        ),
        // kmemleak: the allocation's caller.
        (
            &[
                "BUG: memory leak",
                "unreferenced object 0xffff880039a55260 (size 64):",
                "  backtrace:",
                "    [<ffffffff81234567>] kmem_cache_alloc+0x1/0x2",
                "    [<ffffffff81234567>] ext4_mb_init+0x1/0x2",
            ],
            "memory leak in ext4_mb_init",
        ),
        (
            &["BUG: MAX_STACK_TRACE_ENTRIES too low!"],
            "BUG: MAX_STACK_TRACE_ENTRIES too low!",
        ),
    ];
    for (lines, want) in cases {
        let r = parse(&stamped(lines));
        assert_eq!(r.len(), 1, "{lines:#?}: {r:#?}");
        assert_eq!(r[0].title, *want, "{lines:#?}");
    }
}
