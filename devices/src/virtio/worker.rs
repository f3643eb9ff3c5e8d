//! The device thread every virtio device runs its queues on.
//!
//! A [`Worker`] owns at most one named thread. Activation is two steps:
//! [`Worker::claim`] checks what the transport handed over (the device is not already
//! running; exactly one queue and one notification EventFd per device queue; every queue
//! ready) and [`Worker::start`] spawns the thread, so a device can prepare its own state in
//! between knowing the activation will be accepted. The thread
//! 1. serves the queues once (the driver may have made buffers available before the device
//!    started), by calling the device's `serve` function with the current guest memory;
//! 2. waits until the private kill EventFd or a queue notification EventFd is readable. Kill
//!    wins; readable notification EventFds are drained, then the queues are served again.
//!
//! `serve` returning `Err` means a ring itself is broken (e.g. the driver claims more
//! available entries than the queue holds): the worker reports a device error through the
//! [`DeviceNotifier`] once and stops serving, but keeps waiting for the kill until the driver
//! resets the device. [`Worker::stop`] (device reset; also on drop) writes the kill EventFd,
//! joins the thread, and returns the queues with their progress (`next_avail`, `next_used`).
//!
//! Nothing here depends on the transport: virtio-mmio hands over ioeventfds and its
//! [`Interrupt`](super::Interrupt); a vhost-user backend would hand over the frontend's kick
//! EventFds and a notifier writing the call EventFds.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{ActivateError, DeviceNotifier, GuestMem};

/// The device thread of one virtio device (see the module documentation).
pub struct Worker {
    name: &'static str,
    running: Option<Running>,
}

struct Running {
    kill: EventFd,
    thread: JoinHandle<Vec<Queue>>,
}

/// Queues and their notification EventFds that passed [`Worker::claim`], in queue order.
pub struct ClaimedQueues {
    queues: Vec<Queue>,
    evts: Vec<EventFd>,
}

impl Worker {
    /// A stopped worker whose thread will be called `name` (e.g. "pinvm-blk").
    pub fn new(name: &'static str) -> Worker {
        Worker {
            name,
            running: None,
        }
    }

    /// Check an activation. Refused with [`ActivateError::AlreadyActive`] while the thread
    /// runs, [`ActivateError::QueueCount`] unless there are exactly `expected` queues and
    /// `expected` EventFds, and [`ActivateError::BadQueue`] for the first queue not ready.
    pub fn claim(
        &self,
        expected: usize,
        queues: Vec<Queue>,
        evts: Vec<EventFd>,
    ) -> Result<ClaimedQueues, ActivateError> {
        if self.running.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        if queues.len() != expected || evts.len() != expected {
            return Err(ActivateError::QueueCount {
                expected,
                got: queues.len().min(evts.len()),
            });
        }
        if let Some(i) = queues.iter().position(|q| !q.ready()) {
            return Err(ActivateError::BadQueue(i));
        }
        Ok(ClaimedQueues { queues, evts })
    }

    /// Spawn the thread serving `claimed` with `serve` (see the module documentation).
    /// `serve` gets the queues in the order they were claimed; it and everything it owns are
    /// dropped when the thread ends (or at once, if the thread cannot be started).
    pub fn start<F>(
        &mut self,
        claimed: ClaimedQueues,
        mem: GuestMem,
        notifier: Arc<dyn DeviceNotifier>,
        serve: F,
    ) -> Result<(), ActivateError>
    where
        F: FnMut(
                &GuestMemoryMmap,
                &mut [Queue],
                &dyn DeviceNotifier,
            ) -> Result<(), virtio_queue::Error>
            + Send
            + 'static,
    {
        if self.running.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        let kill = EventFd::new(EFD_NONBLOCK).map_err(ActivateError::Thread)?;
        let thread_kill = kill.try_clone().map_err(ActivateError::Thread)?;
        let thread = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || run(&thread_kill, claimed, &mem, &*notifier, serve))
            .map_err(ActivateError::Thread)?;
        self.running = Some(Running { kill, thread });
        Ok(())
    }

    /// Stop the thread and wait for it. Returns the queues as the thread left them; `None`
    /// if no thread was running or it panicked. Harmless when stopped.
    pub fn stop(&mut self) -> Option<Vec<Queue>> {
        let running = self.running.take()?;
        // A write only fails if the counter would overflow, i.e. the kill is already pending.
        let _ = running.kill.write(1);
        running.thread.join().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread body: serve, wait, repeat until killed.
fn run<F>(
    kill: &EventFd,
    claimed: ClaimedQueues,
    mem: &GuestMem,
    notifier: &dyn DeviceNotifier,
    mut serve: F,
) -> Vec<Queue>
where
    F: FnMut(
        &GuestMemoryMmap,
        &mut [Queue],
        &dyn DeviceNotifier,
    ) -> Result<(), virtio_queue::Error>,
{
    let ClaimedQueues { mut queues, evts } = claimed;
    let mut broken = false;
    loop {
        if !broken {
            let guard = mem.memory();
            if serve(&guard, &mut queues, notifier).is_err() {
                notifier.notify_device_error();
                broken = true;
            }
        }
        if let Wake::Kill = wait(kill, &evts) {
            return queues;
        }
    }
}

enum Wake {
    Kill,
    Work,
}

/// Block until `kill` or one of `evts` is readable, draining the readable `evts`. Kill wins
/// when several are readable.
fn wait(kill: &EventFd, evts: &[EventFd]) -> Wake {
    let mut fds: Vec<libc::pollfd> = std::iter::once(kill)
        .chain(evts)
        .map(|e| libc::pollfd {
            fd: e.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd structs and we pass
        // its exact length; the descriptors belong to EventFds that outlive the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Anything else (impossible with valid descriptors) would repeat forever: stop
            // the thread instead of spinning.
            return Wake::Kill;
        }
        if fds[0].revents != 0 {
            return Wake::Kill;
        }
        for (e, f) in evts.iter().zip(&fds[1..]) {
            if f.revents != 0 {
                let _ = e.read();
            }
        }
        return Wake::Work;
    }
}

#[cfg(test)]
mod tests;
