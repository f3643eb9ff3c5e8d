//! [`QemuMachine`]: one run under `qemu-system-x86_64`, with pinvm's devices served as
//! vhost-user backends from this process (docs/qemu.md).
//!
//! The run in named steps: [`Session::prepare`] (devices, sockets, initramfs file, command
//! line), [`Session::spawn`] (QEMU, and the threads that read its console, agent channel and
//! exit), [`Session::watch`] (the shared run clock until the guest ends, hangs or panics),
//! [`Session::stop`] (registers over QMP for a hang, then QEMU stopped) and
//! [`Session::collect`] (vhost-user servers joined, device records flushed).

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::control::ControlEvent;
use devices::serial::ConsoleSink;
use devices::virtio::vhost_user::Server;
// EVENT_QUEUE: a guest that floods its agent channel is slowed down (its UART blocks while
// the queue is full), never given more host memory.
use machine::agent::{AgentEvent, EVENT_QUEUE};
use machine::console::ConsoleCapture;
use machine::device_set::{Collector, DeviceSet};
use machine::watch::{RunEnd, RunWatch};
use machine::{Machine, MachineError, RunReport, RunSpec, VmEnd};
use proto::control::ControlEventKind;
use vmm_sys_util::tempdir::TempDir;

use crate::command::{self, Accel, DmaFrontend, QemuConfig};
use crate::qmp::Qmp;
use crate::{find, serial_channel};

/// How long QEMU gets to connect to pinvm's sockets and to quit when asked.
const QEMU_GRACE: Duration = Duration::from_secs(10);
/// QEMU's standard error kept for error messages (the last bytes).
const STDERR_CAP: usize = 16 << 10;

/// QEMU with pinvm's devices.
#[derive(Debug, Clone)]
pub struct QemuMachine {
    binary: PathBuf,
    accel: Accel,
    dma_frontend: DmaFrontend,
}

impl QemuMachine {
    /// Find `qemu-system-x86_64` (or `$PINVM_QEMU`) and learn which frontend can carry the DMA
    /// device. `Unavailable` says what to install.
    pub fn new(accel: Accel) -> Result<QemuMachine, MachineError> {
        let binary = find::qemu_binary().map_err(|why| MachineError::Unavailable {
            machine: "qemu",
            why,
        })?;
        if accel == Accel::Kvm {
            find::kvm_usable().map_err(|why| MachineError::Unavailable {
                machine: "qemu-kvm",
                why,
            })?;
        }
        let dma_frontend =
            find::dma_frontend(&binary).map_err(|why| MachineError::Unavailable {
                machine: "qemu",
                why,
            })?;
        Ok(QemuMachine {
            binary,
            accel,
            dma_frontend,
        })
    }
}

impl Machine for QemuMachine {
    fn name(&self) -> &'static str {
        match self.accel {
            Accel::Tcg => "qemu-tcg",
            Accel::Kvm => "qemu-kvm",
        }
    }

    fn boots_bzimage(&self) -> bool {
        true
    }

    fn run(&self, spec: &RunSpec) -> Result<RunReport, MachineError> {
        let started = Instant::now();
        let mut s = Session::prepare(self, spec, started)?;
        s.spawn()?;
        let end = s.watch();
        let (rips, mut notes) = s.stop(&end);
        s.collect(&mut notes)?;
        let cmdline = s.config.cmdline.clone();
        let first = s.spawned_at;
        Ok(s.watch.into_report(
            self.name(),
            spec,
            RunEnd {
                end,
                first_instruction: first,
                vcpu_rips: rips,
                notes,
                quirks: format!(
                    "{:?} accel, DMA device via {:?}",
                    self.accel, self.dma_frontend
                ),
                cmdline,
            },
        ))
    }
}

/// What the run loop waits for.
enum Msg {
    Agent(AgentEvent),
    /// The agent channel held lines that were not frames.
    BadLines(u64),
    /// QEMU exited with this status.
    Exited(std::process::ExitStatus),
}

/// One QEMU run, from set-up to collected records.
struct Session {
    config: QemuConfig,
    _dir: TempDir,
    watch: RunWatch,
    sink: Option<ConsoleSink>,
    servers: Vec<Server>,
    collector: Collector,
    listeners: Option<(UnixListener, UnixListener)>,
    child: Option<QemuProcess>,
    stderr: Arc<Mutex<Vec<u8>>>,
    rx: Receiver<Msg>,
    tx: Option<SyncSender<Msg>>,
    spawned_at: Option<Instant>,
    exited: Option<std::process::ExitStatus>,
    bad_lines: u64,
}

/// Sockets and files of a run live in a private directory; Unix socket paths must stay short.
fn run_dir() -> Result<TempDir, MachineError> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    TempDir::new_with_prefix(base.join("pinvm-qemu-"))
        .map_err(|e| MachineError::Setup(anyhow::anyhow!("creating a run directory: {e}")))
}

impl Session {
    fn prepare(m: &QemuMachine, spec: &RunSpec, started: Instant) -> Result<Session, MachineError> {
        spec.check_bounds()?;
        let cmdline = serial_channel::cmdline(&spec.append)
            .map_err(|e| MachineError::Invalid(e.to_string()))?;
        let kernel = bzimage_for(&spec.kernel).ok_or_else(|| {
            MachineError::Invalid(format!(
                "{}: QEMU boots a bzImage; no bzImage next to it or in its tree's \
                 arch/x86/boot (pass --kernel path/to/bzImage)",
                spec.kernel.display()
            ))
        })?;
        let dir = run_dir()?;
        let p = |n: &str| dir.as_path().join(n);
        let (console, sink) = ConsoleCapture::open(spec)?;
        let (devices, collector) = DeviceSet::build(spec)?.into_virtio();
        let mut servers = Vec::new();
        let mut disks = Vec::new();
        let n_disks = spec.disks.len();
        let mut dma = None;
        for (i, dev) in devices.into_iter().enumerate() {
            let (path, name) = if i < n_disks {
                (p(&format!("vd{i}.sock")), format!("pinvm-vu-vd{i}"))
            } else {
                (p("dma.sock"), "pinvm-vu-dma".to_string())
            };
            servers
                .push(Server::start(&path, &name, dev).map_err(|e| MachineError::Setup(e.into()))?);
            if i < n_disks {
                disks.push(path);
            } else {
                dma = Some(path);
            }
        }
        let initrd = match &spec.initrd {
            Some(bytes) => {
                std::fs::write(p("initrd"), bytes)?;
                Some(p("initrd"))
            }
            None => None,
        };
        let listeners = (
            UnixListener::bind(p("console.sock"))?,
            UnixListener::bind(p("agent.sock"))?,
        );
        let config = QemuConfig {
            binary: m.binary.clone(),
            accel: m.accel,
            kernel,
            initrd,
            cmdline,
            cpus: spec.cpus,
            mem_mib: spec.mem_mib,
            console: p("console.sock"),
            agent: p("agent.sock"),
            qmp: p("qmp.sock"),
            disks,
            dma,
            dma_frontend: m.dma_frontend,
        };
        let (tx, rx) = sync_channel(EVENT_QUEUE);
        Ok(Session {
            config,
            _dir: dir,
            watch: RunWatch::new(console, started, spec.timeout),
            sink: Some(sink),
            servers,
            collector,
            listeners: Some(listeners),
            child: None,
            stderr: Arc::new(Mutex::new(Vec::new())),
            rx,
            tx: Some(tx),
            spawned_at: None,
            exited: None,
            bad_lines: 0,
        })
    }

    /// Start QEMU and the threads that read its console, agent channel, stderr and exit.
    fn spawn(&mut self) -> Result<(), MachineError> {
        let mut child = Command::new(&self.config.binary)
            .args(command::args(&self.config))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| MachineError::Unavailable {
                machine: "qemu",
                why: format!(
                    "cannot start {}: {e} (install QEMU: apt install qemu-system-x86)",
                    self.config.binary.display()
                ),
            })?;
        self.spawned_at = Some(Instant::now());
        let stderr = child.stderr.take().expect("piped");
        spawn_named("pinvm-qemu-stderr", {
            let keep = self.stderr.clone();
            move || keep_tail(stderr, &keep)
        })?;
        let child = Arc::new(Mutex::new(child));
        self.child = Some(QemuProcess(child.clone()));
        let tx = self.tx.take().expect("spawned once");
        let (console, agent) = self.listeners.take().expect("spawned once");
        let sink = self.sink.take().expect("spawned once");
        spawn_named("pinvm-qemu-console", move || read_console(console, sink))?;
        let agent_tx = tx.clone();
        spawn_named("pinvm-qemu-agent", move || read_agent(agent, agent_tx))?;
        spawn_named("pinvm-qemu-exit", move || wait_exit(child, tx))?;
        Ok(())
    }

    /// Wait for the end of the run: QEMU exiting (the guest rebooted or crashed), a panic, the
    /// deadline.
    fn watch(&mut self) -> VmEnd {
        loop {
            let wait = match self.watch.next_wait() {
                std::ops::ControlFlow::Break(end) => return end,
                std::ops::ControlFlow::Continue(w) => w,
            };
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Agent(ev)) => self.watch.agent(ev),
                Ok(Msg::BadLines(n)) => self.bad_lines += n,
                Ok(Msg::Exited(status)) => {
                    self.exited = Some(status);
                    return self.exit_end(status);
                }
                // The next pass's `next_wait` ends the run if its time is up.
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return VmEnd::VcpuFailed("QEMU's reader threads vanished".into())
                }
            }
        }
    }

    /// QEMU exits 0 when the guest reboots (`-no-reboot`); anything else is QEMU's failure.
    fn exit_end(&self, status: std::process::ExitStatus) -> VmEnd {
        if status.success() {
            VmEnd::Shutdown
        } else {
            VmEnd::VcpuFailed(format!("QEMU {status}: {}", self.stderr_text()))
        }
    }

    fn stderr_text(&self) -> String {
        let b = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&b).trim().replace('\n', "; ")
    }

    /// Stop QEMU (asking it first for its vCPUs' registers if the guest hung).
    fn stop(&mut self, end: &VmEnd) -> (Vec<(u8, u64)>, Vec<String>) {
        let mut notes = Vec::new();
        let mut rips = Vec::new();
        let running = self.exited.is_none();
        let mut asked = false;
        if running {
            match Qmp::connect(&self.config.qmp) {
                Ok(mut q) => {
                    if matches!(end, VmEnd::Timeout | VmEnd::NoRebootAfterCommand) {
                        match q.vcpu_rips() {
                            Ok(r) => rips = r,
                            Err(e) => notes.push(format!("asking QEMU for vCPU registers: {e}")),
                        }
                    }
                    asked = q.quit().is_ok();
                }
                Err(e) => notes.push(format!("QMP: {e}; killing QEMU")),
            }
        }
        self.reap(asked, &mut notes);
        if self.bad_lines > 0 {
            notes.push(format!(
                "the agent channel carried {} lines that were not events (ignored)",
                self.bad_lines
            ));
        }
        rips.sort();
        (rips, notes)
    }

    /// Wait for QEMU to exit: for the grace period if it was asked to quit, else kill it now.
    fn reap(&mut self, asked: bool, notes: &mut Vec<String>) {
        let Some(QemuProcess(child)) = &self.child else {
            return;
        };
        let grace = if asked { QEMU_GRACE } else { Duration::ZERO };
        let deadline = Instant::now() + grace;
        loop {
            let mut c = child.lock().unwrap_or_else(|p| p.into_inner());
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    if asked {
                        notes.push("QEMU did not quit when asked; killed".into());
                    }
                    let _ = c.kill();
                    let _ = c.wait();
                    return;
                }
                Ok(None) => {}
            }
            drop(c);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The vhost-user connections end with QEMU; then the devices' records are flushed.
    fn collect(&mut self, notes: &mut Vec<String>) -> Result<(), MachineError> {
        for s in self.servers.drain(..) {
            if let Some(why) = s.join() {
                notes.push(format!("vhost-user: {why}"));
            }
        }
        self.collector.collect(notes);
        Ok(())
    }
}

/// The QEMU process: whatever path leaves the run (an error half-way included), it does not
/// outlive the session.
struct QemuProcess(Arc<Mutex<Child>>);

impl Drop for QemuProcess {
    fn drop(&mut self) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), MachineError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| MachineError::Setup(anyhow::anyhow!("starting thread {name}: {e}")))
}

/// Keep the last [`STDERR_CAP`] bytes QEMU writes to its standard error.
fn keep_tail(mut from: impl Read, keep: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            return;
        }
        let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
        k.extend_from_slice(&buf[..n]);
        let excess = k.len().saturating_sub(STDERR_CAP);
        k.drain(..excess);
    }
}

/// Accept QEMU's connection to a chardev socket, giving up after [`QEMU_GRACE`].
fn accept(listener: UnixListener) -> Option<std::os::unix::net::UnixStream> {
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + QEMU_GRACE;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => return None,
        }
    }
}

/// ttyS0: every byte into the shared console capture.
fn read_console(listener: UnixListener, mut sink: ConsoleSink) {
    let Some(mut s) = accept(listener) else {
        return;
    };
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || sink.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// ttyS1: framed agent events, timestamped on arrival.
fn read_agent(listener: UnixListener, tx: SyncSender<Msg>) {
    let Some(mut s) = accept(listener) else {
        return;
    };
    let mut decoder = serial_channel::Decoder::default();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            return;
        }
        let at = Instant::now();
        let at_ns = devices::clock::monotonic_ns();
        let got = decoder.feed(&buf[..n]);
        for f in got.frames {
            let ev = ControlEvent {
                kind: ControlEventKind::from_code(f.code),
                status: f.status,
                message: String::from_utf8_lossy(&f.message).into_owned(),
                at,
                at_ns,
            };
            if tx.send(Msg::Agent(AgentEvent::from(ev))).is_err() {
                return;
            }
        }
        if got.bad_lines > 0 && tx.send(Msg::BadLines(got.bad_lines)).is_err() {
            return;
        }
    }
}

/// Report QEMU's exit to the run loop.
fn wait_exit(child: Arc<Mutex<Child>>, tx: SyncSender<Msg>) {
    loop {
        let status = child.lock().unwrap_or_else(|p| p.into_inner()).try_wait();
        match status {
            Ok(Some(st)) => {
                let _ = tx.send(Msg::Exited(st));
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return,
        }
    }
}

/// What QEMU's `-kernel` gets for `kernel`: a bzImage as it is; for an ELF vmlinux, the
/// bzImage beside it (pinvm's kernel cache) or in its build tree (`arch/x86/boot/bzImage`).
pub fn bzimage_for(kernel: &Path) -> Option<PathBuf> {
    if !is_elf(kernel) {
        return Some(kernel.to_path_buf());
    }
    let dir = kernel.parent()?;
    [dir.join("bzImage"), dir.join("arch/x86/boot/bzImage")]
        .into_iter()
        .find(|p| p.is_file())
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}
