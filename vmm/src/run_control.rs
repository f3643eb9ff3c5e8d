//! Run control: one channel carries everything the run controller waits for (the i8042
//! reset, the agent's events from the control page, each vCPU's end), sent directly by the
//! device or vCPU thread where it happens. The channel is bounded ([`channel`]): a guest that
//! floods the control page is slowed down (its vCPU thread waits in the EVENT write until the
//! controller takes an event), never given more host memory. The controller watches until the
//! run ends, then stops every vCPU with a signal + `immediate_exit` (see `kick`), never with a
//! vCPU ioctl from its own thread, taking events all the while, so a vCPU thread waiting to
//! send always gets through, sees the stop flag at its next exit and leaves.

use crate::kick;
use crate::vcpu::{VcpuEnd, VcpuShared};
use machine::agent::AgentEvent;
use machine::watch::RunWatch;
use machine::VmEnd;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::Killable;

/// How long stopped vCPU threads get to leave KVM_RUN before the run gives up on them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a vCPU thread that has not stopped yet is kicked again.
const KICK_INTERVAL: Duration = Duration::from_millis(20);

/// The run's channel: at most [`machine::agent::EVENT_QUEUE`] messages wait in it, as under
/// the QEMU machine.
pub fn channel() -> (SyncSender<RunMsg>, Receiver<RunMsg>) {
    sync_channel(machine::agent::EVENT_QUEUE)
}

/// What the run controller hears about.
pub enum RunMsg {
    /// The guest pulsed the i8042 reset line.
    Reset,
    /// The guest agent reported through the control page.
    Agent(AgentEvent),
    /// A vCPU thread ended.
    Vcpu(u8, VcpuEnd),
}

/// The vCPU threads of a started guest.
pub struct Running {
    /// One per vCPU, in id order.
    pub threads: Vec<JoinHandle<()>>,
    /// What they share (the stop flag, first-run time, quirk counts).
    pub shared: VcpuShared,
}

/// What stopping the vCPUs left behind.
pub struct Stopped {
    /// Where each vCPU was: (id, RIP), sorted.
    pub rips: Vec<(u8, u64)>,
    /// When the first vCPU entered the guest.
    pub first_run: Option<Instant>,
    /// The kvm_pvm work-arounds summary.
    pub quirks: String,
}

/// Wait for the end of the run: a reset, a vCPU that stopped, or what the watch's clock says
/// (timeout, no reboot after the command, a panic that had its grace).
pub fn watch(rx: &Receiver<RunMsg>, w: &mut RunWatch) -> VmEnd {
    loop {
        let wait = match w.next_wait() {
            ControlFlow::Continue(wait) => wait,
            ControlFlow::Break(end) => return end,
        };
        match rx.recv_timeout(wait) {
            Ok(RunMsg::Reset) => return VmEnd::Reset,
            Ok(RunMsg::Agent(ev)) => w.agent(ev),
            Ok(RunMsg::Vcpu(id, end)) => return vcpu_end(id, end),
            // The next pass's `next_wait` ends the run if its time is up.
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return VmEnd::VcpuFailed("all vCPU threads vanished".into())
            }
        }
    }
}

/// The end of the run when vCPU `id` ended on its own.
fn vcpu_end(id: u8, end: VcpuEnd) -> VmEnd {
    match end {
        VcpuEnd::Shutdown => VmEnd::Shutdown,
        VcpuEnd::SystemEvent(k) => VmEnd::SystemEvent(k),
        VcpuEnd::Failed(why) => VmEnd::VcpuFailed(format!("vCPU {id}: {why}")),
        VcpuEnd::Stopped { .. } => VmEnd::VcpuFailed(format!("vCPU {id} stopped unexpectedly")),
    }
}

/// Stop every vCPU: set the stop flag and kick the threads until they have left KVM_RUN (at
/// most [`STOP_TIMEOUT`]), collecting where each one was and the agent events still queued.
pub fn stop(
    running: Running,
    rx: &Receiver<RunMsg>,
    w: &mut RunWatch,
    notes: &mut Vec<String>,
) -> Stopped {
    let Running { threads, shared } = running;
    shared.stop.store(true, Ordering::Release);
    let mut rips = Vec::new();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        for t in threads.iter().filter(|t| !t.is_finished()) {
            let _ = t.kill(kick::kick_signal());
        }
        while let Ok(msg) = rx.recv_timeout(KICK_INTERVAL) {
            late(msg, &mut rips, w);
        }
    }
    if threads.iter().any(|t| !t.is_finished()) {
        notes.push("a vCPU thread did not stop within 5 s".into());
    } else {
        for t in threads {
            let _ = t.join();
        }
    }
    while let Ok(msg) = rx.try_recv() {
        late(msg, &mut rips, w);
    }
    rips.sort();
    Stopped {
        rips,
        first_run: shared.first_run.get().copied(),
        quirks: shared.quirks.summary(),
    }
}

/// A message that arrived while stopping: a stopped vCPU's RIP, or a late agent event.
fn late(msg: RunMsg, rips: &mut Vec<(u8, u64)>, w: &mut RunWatch) {
    match msg {
        RunMsg::Vcpu(id, VcpuEnd::Stopped { rip: Some(rip) }) => rips.push((id, rip)),
        RunMsg::Agent(ev) => w.agent(ev),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder;
    use crate::quirks::QuirkCounts;
    use crate::vcpu::VcpuShared;
    use devices::bus::Bus;
    use devices::control::ControlPage;
    use machine::console::ConsoleCapture;
    use machine::RunSpec;
    use proto::control::reg;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex, OnceLock};
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    fn spec() -> RunSpec {
        RunSpec {
            cpus: 4,
            timeout: Duration::from_millis(200),
            ..RunSpec::new("vmlinux")
        }
    }

    /// Four threads that write the control page's EVENT as fast as they can, leaving only at
    /// the stop flag, as a vCPU thread leaves `vcpu::run_loop` at its next exit: the run
    /// still ends at its deadline, and stopping takes every queued event and every thread
    /// (each waits in its EVENT write while the bounded queue is full) within a second.
    #[test]
    fn a_flooding_guest_neither_outlives_its_deadline_nor_holds_the_stop() {
        kick::install().unwrap();
        let (tx, rx) = channel();
        let mut mmio = Bus::new();
        let page: ControlPage = builder::control_page(&tx);
        mmio.insert(0, 0x1000, Arc::new(Mutex::new(page))).unwrap();
        let shared = VcpuShared {
            pio: Arc::new(Bus::new()),
            mmio: Arc::new(mmio),
            mem: Arc::new(GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap()),
            stop: Arc::new(AtomicBool::new(false)),
            quirks: Arc::new(QuirkCounts::default()),
            first_run: Arc::new(OnceLock::new()),
        };
        let threads = (0..4u8)
            .map(|id| {
                let sh = shared.clone();
                let done = tx.clone();
                std::thread::spawn(move || {
                    while !sh.stop.load(Ordering::Acquire) {
                        sh.mmio.write(reg::EVENT, &5u32.to_le_bytes()); // LOG
                    }
                    let _ = done.send(RunMsg::Vcpu(id, VcpuEnd::Stopped { rip: Some(0) }));
                })
            })
            .collect();
        drop(tx);
        let (console, _sink) = ConsoleCapture::open(&spec()).unwrap();
        let t0 = Instant::now();
        let mut w = RunWatch::new(console, t0, spec().timeout);
        assert_eq!(watch(&rx, &mut w), VmEnd::Timeout);
        let watched = t0.elapsed();
        assert!(watched < Duration::from_secs(2), "watch took {watched:?}");
        let mut notes = Vec::new();
        let t1 = Instant::now();
        let stopped = stop(Running { threads, shared }, &rx, &mut w, &mut notes);
        let stopping = t1.elapsed();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(stopped.rips, vec![(0, 0), (1, 0), (2, 0), (3, 0)]);
        assert!(stopping < Duration::from_secs(1), "stop took {stopping:?}");
        eprintln!("flooded run: watch {watched:?}, stop {stopping:?}");
    }
}
