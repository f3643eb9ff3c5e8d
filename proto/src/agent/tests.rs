use super::*;

fn done(index: u32, op: &str, detail: &str) -> StepReport {
    StepReport::Done {
        index,
        op: op.into(),
        detail: detail.into(),
    }
}

/// These lines are the ones the agent's unit tests expect it to produce.
#[test]
fn display_is_the_wire_line() {
    for line in [
        "step 1 write ok bytes=1048576",
        "step 3 sync ok",
        "step 2 verify err 5 mismatch at offset 4096",
        "extent 7 logical=0 physical=8913920 length=262144 flags=0x1",
    ] {
        let r = parse_step(line).unwrap();
        assert_eq!(r.to_string(), line);
        assert_eq!(parse_step(&r.to_string()).unwrap(), r);
    }
}

#[test]
fn good_lines() {
    assert_eq!(
        parse_step("step 1 write ok bytes=1048576").unwrap(),
        done(1, "write", "bytes=1048576")
    );
    assert_eq!(parse_step("step 3 sync ok").unwrap(), done(3, "sync", ""));
    assert_eq!(parse_step("step 3 sync ok\n").unwrap(), done(3, "sync", ""));
    let r = parse_step("step 7 fiemap ok extents=2").unwrap();
    assert_eq!(r.detail_field("extents"), Some("2"));
    assert_eq!(r.detail_field("extent"), None);
    assert_eq!(r.index(), 7);
    assert_eq!(
        parse_step("step 2 verify err 5 mismatch at offset 4096: expected 0xa5, found 0x00")
            .unwrap(),
        StepReport::Failed {
            index: 2,
            op: "verify".into(),
            errno: 5,
            message: "mismatch at offset 4096: expected 0xa5, found 0x00".into()
        }
    );
    assert_eq!(
        parse_step("step 4 fsync err 2 open /mnt/x: No such file or directory").unwrap(),
        StepReport::Failed {
            index: 4,
            op: "fsync".into(),
            errno: 2,
            message: "open /mnt/x: No such file or directory".into()
        }
    );
    let e = parse_step("extent 7 logical=0 physical=137363456 length=1048576 flags=0x1").unwrap();
    assert_eq!(
        e,
        StepReport::Extent {
            index: 7,
            logical: 0,
            physical: 137_363_456,
            length: 1_048_576,
            flags: fiemap_flags::LAST
        }
    );
    assert_eq!(e.index(), 7);
    assert_eq!(e.detail_field("extents"), None);
    let e = parse_step(&format!(
        "extent 0 logical={} physical=0 length=4096 flags=0x80a",
        u64::MAX
    ))
    .unwrap();
    assert!(matches!(
        e,
        StepReport::Extent {
            logical: u64::MAX,
            flags: 0x80a,
            ..
        }
    ));
}

#[test]
fn malformed_lines() {
    for bad in [
        "",
        "step",
        "step x write ok",
        "step -1 write ok",
        "step 1",
        "step 1 write",
        "step 1 write done",
        "step 1  ok",
        "step 1 write err",
        "step 1 write err x msg",
        "step 99999999999 write ok",
        "step 1 sync ok\nstep 2 sync ok",
        "Step 1 sync ok",
        "extent 1",
        "extent 1 logical=0 physical=0 length=0",
        "extent 1 logical=0 physical=0 length=0 flags=1",
        "extent 1 logical=0 physical=0 length=0 flags=0x",
        "extent 1 logical=0 physical=0 length=0 flags=0x+1",
        "extent 1 logical=0 physical=0 length=0 flags=0x100000000",
        "extent 1 physical=0 logical=0 length=0 flags=0x0",
        "extent 1 logical=-1 physical=0 length=0 flags=0x0",
        "extent 1 logical=0 physical=0 length=18446744073709551616 flags=0x0",
        "extent 1 logical=0 physical=0 length=0 flags=0x0 extra",
        "extent 1 logical=0  physical=0 length=0 flags=0x0",
        "log something",
    ] {
        let e = parse_step(bad).expect_err(bad);
        assert_eq!(e.message, bad);
        assert!(e.to_string().starts_with("malformed STEP message ("), "{e}");
    }
}

#[test]
fn failed_reports_are_one_line() {
    let r = StepReport::failed(2, "verify", 5, "a\nb\r");
    assert_eq!(r.to_string(), "step 2 verify err 5 a b ");
    assert_eq!(parse_step(&r.to_string()).unwrap(), r);
}
