//! The vhost-user transport: one of pinvm's virtio devices served to a vhost-user frontend
//! (QEMU) over a Unix socket, as [`super::mmio::MmioTransport`] serves it to a guest under our
//! own VMM. It is a transport behind the device, not a second device: the frontend's messages
//! set up what the MMIO registers set up (features, guest memory, queue sizes and addresses,
//! notification descriptors), and once every queue is ready the transport calls the same
//! [`VirtioDevice::activate`] with the same kind of [`Queue`]s, kick `EventFd`s and a
//! [`DeviceNotifier`] that writes each ring's "call" eventfd. The device's own thread
//! then serves the rings in the shared guest memory exactly as under KVM.
//!
//! Protocol (vhost-user spec, "Ring states" and "Starting and stopping rings"): with
//! VHOST_USER_F_PROTOCOL_FEATURES negotiated a ring starts disabled and is enabled with
//! SET_VRING_ENABLE; the device is activated when every ring has a size, addresses, a kick
//! and a call descriptor and is enabled. GET_VRING_BASE stops the ring: the device is reset
//! (its thread joined) and the transport waits for a new set-up. Nothing a frontend sends can
//! panic the transport; bad values are refused with an error reply.

mod memory;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVirtioFeatures,
    VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{
    Backend, BackendReqHandler, Error as VuError, GpuBackend, Result as VuResult,
    VhostUserBackendReqHandlerMut,
};
use vhost::VhostUserMemoryRegionBase;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

pub use memory::{MemTable, MemTableError};

use super::{features, queue_bit, DeviceNotifier, GuestMem, VirtioDevice};

/// Protocol features we offer: the device's configuration space is served by us (CONFIG,
/// which QEMU's vhost-user-blk and vhost-user-gpio frontends require), and the frontend may
/// ask for acknowledgements (REPLY_ACK). Nothing else (no migration, no inflight tracking).
const PROTOCOL_FEATURES: VhostUserProtocolFeatures =
    VhostUserProtocolFeatures::CONFIG.union(VhostUserProtocolFeatures::REPLY_ACK);

/// Largest split virtqueue (virtio 1.2 §2.7: Queue Size is at most 32768).
const MAX_RING_SIZE: u16 = 32768;

/// Largest configuration space read or written in one message.
const MAX_CONFIG: u32 = 0x1000;

/// What the frontend told us about one ring.
#[derive(Default)]
struct Ring {
    size: Option<u16>,
    /// Guest-physical addresses of the descriptor table, available and used rings.
    addrs: Option<(u64, u64, u64)>,
    base: u16,
    kick: Option<EventFd>,
    call: Option<EventFd>,
    err: Option<EventFd>,
    enabled: bool,
}

/// One device behind a vhost-user connection.
pub struct VhostUserTransport {
    device: Box<dyn VirtioDevice>,
    owned: bool,
    acked: u64,
    protocol: u64,
    mem: GuestMem,
    table: Option<MemTable>,
    rings: Vec<Ring>,
    active: bool,
}

/// An `EventFd` from a descriptor the frontend sent.
fn eventfd(file: File) -> EventFd {
    // SAFETY: `into_raw_fd` gives up ownership of a valid open descriptor, which the new
    // EventFd now owns alone; vhost-user only ever sends eventfds for kick, call and err.
    unsafe { EventFd::from_raw_fd(file.into_raw_fd()) }
}

impl VhostUserTransport {
    /// Serve `device` (not yet activated).
    pub fn new(device: Box<dyn VirtioDevice>) -> Self {
        let rings = device
            .queue_max_sizes()
            .iter()
            .map(|_| Ring::default())
            .collect();
        VhostUserTransport {
            device,
            owned: false,
            acked: 0,
            protocol: 0,
            mem: GuestMemoryAtomic::new(GuestMemoryMmap::new()),
            table: None,
            rings,
            active: false,
        }
    }

    /// Whether the device is running (all rings set up and enabled).
    pub fn is_active(&self) -> bool {
        self.active
    }

    fn offered(&self) -> u64 {
        (self.device.features() | features::VERSION_1) & !features::RING_PACKED
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn ring(&mut self, index: u32) -> VuResult<&mut Ring> {
        self.rings
            .get_mut(index as usize)
            .ok_or(VuError::InvalidParam)
    }

    fn protocol_features_acked(&self) -> bool {
        self.acked & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0
    }

    /// A ring is ready when it is fully described and enabled (rings start enabled when the
    /// protocol-features bit was not negotiated).
    fn ring_ready(&self, r: &Ring) -> bool {
        r.size.is_some()
            && r.addrs.is_some()
            && r.kick.is_some()
            && r.call.is_some()
            && (r.enabled || !self.protocol_features_acked())
    }

    /// Activate the device once every ring is ready.
    fn try_activate(&mut self) -> VuResult<()> {
        if self.active || self.table.is_none() || !self.rings.iter().all(|r| self.ring_ready(r)) {
            return Ok(());
        }
        let event_idx = self.acked & features::RING_EVENT_IDX != 0;
        let mem = self.mem.memory();
        let mut queues = Vec::with_capacity(self.rings.len());
        let mut kicks = Vec::with_capacity(self.rings.len());
        for r in &self.rings {
            let q = build_queue(r, event_idx, &mem)?;
            queues.push(q);
            let kick = r.kick.as_ref().expect("ready ring has a kick");
            kicks.push(kick.try_clone().map_err(VuError::ReqHandlerError)?);
        }
        drop(mem);
        let clone = |e: &EventFd| e.try_clone().map_err(VuError::ReqHandlerError);
        let mut calls = Vec::with_capacity(self.rings.len());
        let mut errs = Vec::new();
        for r in &self.rings {
            calls.push(clone(r.call.as_ref().expect("ready ring has a call"))?);
            if let Some(e) = &r.err {
                errs.push(clone(e)?);
            }
        }
        let notifier = Arc::new(CallNotifier { calls, errs });
        self.device
            .activate(self.mem.clone(), self.acked, queues, notifier, kicks)
            .map_err(|_| VuError::InvalidOperation("the device refused to start"))?;
        self.active = true;
        Ok(())
    }

    fn stop(&mut self) {
        if self.active {
            self.device.reset();
            self.active = false;
        }
    }
}

/// Used-buffer notifications through the frontend's per-ring "call" eventfds.
struct CallNotifier {
    calls: Vec<EventFd>,
    /// The rings' error eventfds, where the frontend gave them.
    errs: Vec<EventFd>,
}

impl DeviceNotifier for CallNotifier {
    fn notify_used(&self, queues: u64) {
        for (i, call) in self.calls.iter().enumerate() {
            if queues & queue_bit(i) != 0 {
                // A write fails only if the counter would overflow: it is signalled already.
                let _ = call.write(1);
            }
        }
    }

    fn notify_device_error(&self) {
        // vhost-user has no DEVICE_NEEDS_RESET. The device has stopped serving its rings;
        // the frontend learns it through the error eventfds (QEMU logs "vhost vring error"),
        // and the guest, whose requests no longer complete, ends in the run's watchdog.
        for e in &self.errs {
            let _ = e.write(1);
        }
    }
}

/// A virtio-queue `Queue` from a ring's set-up, validated against guest memory.
fn build_queue(r: &Ring, event_idx: bool, mem: &GuestMemoryMmap) -> VuResult<Queue> {
    let size = r.size.ok_or(VuError::InvalidParam)?;
    let mut q = Queue::new(size).map_err(|_| VuError::InvalidParam)?;
    let (desc, avail, used) = r.addrs.ok_or(VuError::InvalidParam)?;
    let split = |a: u64| (Some(a as u32), Some((a >> 32) as u32));
    let (lo, hi) = split(desc);
    q.set_desc_table_address(lo, hi);
    let (lo, hi) = split(avail);
    q.set_avail_ring_address(lo, hi);
    let (lo, hi) = split(used);
    q.set_used_ring_address(lo, hi);
    q.set_next_avail(r.base);
    q.set_next_used(r.base);
    q.set_event_idx(event_idx);
    q.set_ready(true);
    if !q.is_valid(mem) {
        return Err(VuError::InvalidParam);
    }
    Ok(q)
}

impl VhostUserBackendReqHandlerMut for VhostUserTransport {
    fn set_owner(&mut self) -> VuResult<()> {
        if self.owned {
            return Err(VuError::InvalidOperation("already owned"));
        }
        self.owned = true;
        Ok(())
    }

    fn reset_owner(&mut self) -> VuResult<()> {
        self.stop();
        self.owned = false;
        self.acked = 0;
        Ok(())
    }

    fn reset_device(&mut self) -> VuResult<()> {
        self.stop();
        self.acked = 0;
        for r in &mut self.rings {
            *r = Ring::default();
        }
        Ok(())
    }

    fn get_features(&mut self) -> VuResult<u64> {
        Ok(self.offered())
    }

    fn set_features(&mut self, features: u64) -> VuResult<()> {
        if features & !self.offered() != 0 {
            return Err(VuError::InvalidParam);
        }
        if self.active && features != self.acked {
            return Err(VuError::InvalidOperation("features changed while running"));
        }
        self.acked = features;
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy_listening: Option<bool>,
    ) -> VuResult<Option<Vec<VhostUserMemoryRegionBase>>> {
        let table = MemTable::map(ctx, files).map_err(|_| VuError::InvalidParam)?;
        // Device threads take `memory()` per batch, so they pick up the new table next time.
        self.mem
            .lock()
            .map_err(|_| VuError::BackendInternalError)?
            .replace(table.mem.clone());
        self.table = Some(table);
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> VuResult<()> {
        // The frontend owns ring sizes: QEMU's virtio-mmio offers the guest QUEUE_NUM_MAX 1024
        // for every ring whatever the device says, so the device's own maximum (what our
        // virtio-mmio transport offers) cannot bind here; any split-ring size is served.
        let num = u16::try_from(num).map_err(|_| VuError::InvalidParam)?;
        if num == 0 || num > MAX_RING_SIZE || !num.is_power_of_two() {
            return Err(VuError::InvalidParam);
        }
        self.ring(index)?.size = Some(num);
        Ok(())
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> VuResult<()> {
        let table = self
            .table
            .as_ref()
            .ok_or(VuError::InvalidOperation("no memory table"))?;
        let gpa = |va| table.va_to_gpa(va).ok_or(VuError::InvalidParam);
        let addrs = (gpa(descriptor)?, gpa(available)?, gpa(used)?);
        self.ring(index)?.addrs = Some(addrs);
        self.try_activate()
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> VuResult<()> {
        self.ring(index)?.base = u16::try_from(base).map_err(|_| VuError::InvalidParam)?;
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> VuResult<VhostUserVringState> {
        // The frontend stops the ring. The device owns its queues while it runs and resets
        // them on stop, so the base reported is the one the ring was started with: pinvm's
        // machines never migrate or reconnect a running device, and a restart (guest driver
        // reset) sets every ring up again from zero.
        let base = self.ring(index)?.base;
        self.stop();
        let r = self.ring(index)?;
        r.kick = None;
        r.enabled = false;
        Ok(VhostUserVringState::new(index, u32::from(base)))
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        let fd = fd.ok_or(VuError::InvalidParam)?;
        self.ring(u32::from(index))?.kick = Some(eventfd(fd));
        self.try_activate()
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        self.ring(u32::from(index))?.call = fd.map(eventfd);
        self.try_activate()
    }

    fn set_vring_err(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        self.ring(u32::from(index))?.err = fd.map(eventfd);
        Ok(())
    }

    fn get_protocol_features(&mut self) -> VuResult<VhostUserProtocolFeatures> {
        Ok(PROTOCOL_FEATURES)
    }

    fn set_protocol_features(&mut self, features: u64) -> VuResult<()> {
        if features & !PROTOCOL_FEATURES.bits() != 0 {
            return Err(VuError::InvalidParam);
        }
        self.protocol = features;
        Ok(())
    }

    fn get_queue_num(&mut self) -> VuResult<u64> {
        Ok(self.rings.len() as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> VuResult<()> {
        self.ring(index)?.enabled = enable;
        if enable {
            self.try_activate()
        } else {
            self.stop();
            Ok(())
        }
    }

    fn get_config(
        &mut self,
        offset: u32,
        size: u32,
        _flags: VhostUserConfigFlags,
    ) -> VuResult<Vec<u8>> {
        if size > MAX_CONFIG || offset.checked_add(size).is_none_or(|end| end > MAX_CONFIG) {
            return Err(VuError::InvalidParam);
        }
        let mut buf = vec![0u8; size as usize];
        self.device.read_config(u64::from(offset), &mut buf);
        Ok(buf)
    }

    fn set_config(
        &mut self,
        offset: u32,
        buf: &[u8],
        _flags: VhostUserConfigFlags,
    ) -> VuResult<()> {
        let end = u32::try_from(buf.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or(VuError::InvalidParam)?;
        if end > MAX_CONFIG {
            return Err(VuError::InvalidParam);
        }
        self.device.write_config(u64::from(offset), buf);
        Ok(())
    }

    fn set_backend_req_fd(&mut self, _backend: Backend) {}

    fn set_gpu_socket(&mut self, _gpu_backend: GpuBackend) -> VuResult<()> {
        Err(VuError::InvalidOperation("not a GPU"))
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> VuResult<File> {
        Err(VuError::InvalidOperation("no shared objects"))
    }

    fn get_inflight_fd(
        &mut self,
        _inflight: &VhostUserInflight,
    ) -> VuResult<(VhostUserInflight, File)> {
        Err(VuError::InvalidOperation("no inflight tracking"))
    }

    fn set_inflight_fd(&mut self, _inflight: &VhostUserInflight, _file: File) -> VuResult<()> {
        Err(VuError::InvalidOperation("no inflight tracking"))
    }

    fn get_max_mem_slots(&mut self) -> VuResult<u64> {
        Err(VuError::InvalidOperation("memory slots are not negotiated"))
    }

    fn add_mem_region(
        &mut self,
        _region: &VhostUserSingleMemoryRegion,
        _fd: File,
        _postcopy_listening: Option<bool>,
    ) -> VuResult<Option<VhostUserMemoryRegionBase>> {
        Err(VuError::InvalidOperation("memory slots are not negotiated"))
    }

    fn remove_mem_region(&mut self, _region: &VhostUserSingleMemoryRegion) -> VuResult<()> {
        Err(VuError::InvalidOperation("memory slots are not negotiated"))
    }

    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> VuResult<Option<File>> {
        Err(VuError::InvalidOperation("no migration"))
    }

    fn check_device_state(&mut self) -> VuResult<()> {
        Err(VuError::InvalidOperation("no migration"))
    }

    fn get_shmem_config(&mut self) -> VuResult<VhostUserShMemConfig> {
        Err(VuError::InvalidOperation("no shared memory regions"))
    }

    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> VuResult<()> {
        Err(VuError::InvalidOperation("no dirty logging"))
    }
}

/// Why a vhost-user server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket could not be created.
    #[error("cannot listen on {path}: {source}")]
    Listen {
        /// The socket path.
        path: String,
        /// What bind said.
        source: std::io::Error,
    },
    /// The server thread could not be started.
    #[error("cannot start the vhost-user thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A running vhost-user server for one device: it accepts ONE frontend connection on its
/// socket and serves it until the frontend disconnects (QEMU exits); the device is reset then.
pub struct Server {
    thread: std::thread::JoinHandle<Option<String>>,
}

impl Server {
    /// Listen on `path` (created; it must not exist) and serve `device` on a thread named
    /// `name`. The socket exists when this returns, so the frontend may connect at once.
    pub fn start(
        path: &Path,
        name: &str,
        device: Box<dyn VirtioDevice>,
    ) -> Result<Server, ServeError> {
        let listener = UnixListener::bind(path).map_err(|source| ServeError::Listen {
            path: path.display().to_string(),
            source,
        })?;
        let transport = Arc::new(Mutex::new(VhostUserTransport::new(device)));
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || serve(listener, transport))
            .map_err(ServeError::Thread)?;
        Ok(Server { thread })
    }

    /// Whether the connection has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Wait for the connection to end. `Some(why)` when it ended with a protocol error rather
    /// than the frontend's disconnect.
    pub fn join(self) -> Option<String> {
        self.thread
            .join()
            .unwrap_or_else(|_| Some("the vhost-user thread panicked".into()))
    }
}

fn serve(listener: UnixListener, transport: Arc<Mutex<VhostUserTransport>>) -> Option<String> {
    let stream = match listener.accept() {
        Ok((s, _)) => s,
        Err(e) => return Some(format!("accept: {e}")),
    };
    drop(listener);
    let mut handler = BackendReqHandler::from_stream(stream, transport.clone());
    let why = loop {
        match handler.handle_request() {
            Ok(()) => {}
            Err(VuError::Disconnected) | Err(VuError::PartialMessage) => break None,
            Err(VuError::SocketBroken(_)) => break None,
            // A refused request was answered with an error reply; the connection goes on.
            Err(VuError::InvalidParam)
            | Err(VuError::InvalidOperation(_))
            | Err(VuError::InactiveOperation(_))
            | Err(VuError::InactiveFeature(_)) => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    transport.lock().unwrap_or_else(|p| p.into_inner()).stop();
    why
}
