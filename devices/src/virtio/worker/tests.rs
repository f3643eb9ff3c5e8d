//! The shared device thread, driven the way a transport drives it, with a recording
//! notifier of the shape a vhost-user transport has (one notification per queue, no
//! interrupt status register).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

use virtio_queue::QueueOwnedT;
use vm_memory::GuestMemoryAtomic;

use super::*;
use crate::virtio::chain::pop_chain;
use crate::virtio::queue_bit;
use crate::virtio::testing::{guest_memory, TestQueue};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Recorder {
    used: Mutex<Vec<u64>>,
    errors: AtomicUsize,
}

impl DeviceNotifier for Recorder {
    fn notify_used(&self, queues: u64) {
        self.used.lock().unwrap().push(queues);
    }
    fn notify_device_error(&self) {
        self.errors.fetch_add(1, Ordering::SeqCst);
    }
}

struct Rig {
    mem: GuestMemoryMmap,
    tqs: Vec<TestQueue>,
    /// The driver's side of the notification EventFds.
    kicks: Vec<EventFd>,
    notifier: Arc<Recorder>,
}

impl Rig {
    fn new(n: usize) -> Rig {
        let mem = guest_memory(0x10_0000);
        let tqs = (0..n)
            .map(|i| TestQueue::new(&mem, 0x1000 + 0x1000 * i as u64, 8))
            .collect();
        let kicks = (0..n)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        Rig {
            mem,
            tqs,
            kicks,
            notifier: Arc::new(Recorder::default()),
        }
    }

    fn queues(&self) -> Vec<Queue> {
        self.tqs.iter().map(|t| t.create_queue()).collect()
    }

    fn evts(&self) -> Vec<EventFd> {
        self.kicks.iter().map(|e| e.try_clone().unwrap()).collect()
    }

    fn claim(&self, w: &Worker) -> ClaimedQueues {
        w.claim(self.tqs.len(), self.queues(), self.evts()).unwrap()
    }

    fn mem(&self) -> GuestMem {
        GuestMemoryAtomic::new(self.mem.clone())
    }
}

fn err_of(r: Result<ClaimedQueues, ActivateError>) -> ActivateError {
    match r {
        Ok(_) => panic!("claim accepted"),
        Err(e) => e,
    }
}

#[test]
fn claim_checks_count_readiness_and_activity() {
    let rig = Rig::new(2);
    let mut w = Worker::new("pinvm-test");
    let e = err_of(
        w.claim(
            2,
            rig.queues(),
            rig.evts()[..1]
                .iter()
                .map(|e| e.try_clone().unwrap())
                .collect(),
        ),
    );
    assert!(matches!(
        e,
        ActivateError::QueueCount {
            expected: 2,
            got: 1
        }
    ));
    let e = err_of(w.claim(1, rig.queues(), rig.evts()));
    assert!(matches!(
        e,
        ActivateError::QueueCount {
            expected: 1,
            got: 2
        }
    ));
    let mut queues = rig.queues();
    queues[1].set_ready(false);
    let e = err_of(w.claim(2, queues, rig.evts()));
    assert!(matches!(e, ActivateError::BadQueue(1)));

    let claimed = rig.claim(&w);
    w.start(claimed, rig.mem(), rig.notifier.clone(), |_, _, _| Ok(()))
        .unwrap();
    let e = err_of(w.claim(2, rig.queues(), rig.evts()));
    assert!(matches!(e, ActivateError::AlreadyActive));
    assert!(w.stop().is_some());
    assert!(w.stop().is_none(), "stopping twice is harmless");
    // Stopped: activation is accepted again.
    rig.claim(&w);
}

/// Serves queue 1 like a device would: every chain back with length 0, one notification.
fn serve_queue_1(
    mem: &GuestMemoryMmap,
    queues: &mut [Queue],
    notifier: &dyn DeviceNotifier,
) -> Result<(), virtio_queue::Error> {
    let q = &mut queues[1];
    let mut used = false;
    while let Some(chain) = pop_chain(q, mem, 4)? {
        q.add_used(mem, chain.head, 0)?;
        used = true;
    }
    if used {
        notifier.notify_used(queue_bit(1));
    }
    Ok(())
}

#[test]
fn serves_at_start_and_per_notification_and_stop_returns_progress() {
    let mut rig = Rig::new(2);
    let mut w = Worker::new("pinvm-test");
    let (tx, rx) = channel();
    let claimed = rig.claim(&w);
    w.start(
        claimed,
        rig.mem(),
        rig.notifier.clone(),
        move |mem, queues, n| {
            let served = serve_queue_1(mem, queues, n);
            tx.send(std::thread::current().name().map(String::from))
                .unwrap();
            served
        },
    )
    .unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap().as_deref(),
        Some("pinvm-test")
    );

    for round in 1..=2u16 {
        let head = rig.tqs[1].add_chain(&[(0x8000, 16, false)]);
        rig.tqs[1].publish(head);
        rig.kicks[1].write(1).unwrap();
        rx.recv_timeout(WAIT).unwrap();
        assert_eq!(rig.tqs[1].used_idx(), round);
        // The worker drained the notification it woke up for.
        assert!(rig.kicks[1].read().is_err());
    }
    assert_eq!(*rig.notifier.used.lock().unwrap(), [queue_bit(1); 2]);
    let queues = w.stop().expect("thread ran and was joined");
    assert_eq!(queues.len(), 2);
    assert_eq!((queues[0].next_avail(), queues[1].next_avail()), (0, 2));
    assert_eq!(queues[1].next_used(), 2);
    // The thread is gone, and `serve` (owning the sender) with it.
    assert_eq!(rx.recv_timeout(WAIT), Err(RecvTimeoutError::Disconnected));
    assert_eq!(rig.notifier.errors.load(Ordering::SeqCst), 0);
}

#[test]
fn broken_ring_is_reported_once_and_no_longer_served() {
    let rig = Rig::new(1);
    let mut w = Worker::new("pinvm-test");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    // A driver claiming more available entries than the queue holds.
    rig.tqs[0].set_avail_idx(100);
    let claimed = rig.claim(&w);
    w.start(
        claimed,
        rig.mem(),
        rig.notifier.clone(),
        move |mem, queues, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            queues[0].iter(mem).map(|_| ())
        },
    )
    .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while rig.notifier.errors.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "no device error");
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..3 {
        rig.kicks[0].write(1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(rig.notifier.errors.load(Ordering::SeqCst), 1);
    assert!(rig.notifier.used.lock().unwrap().is_empty());
    assert!(w.stop().is_some());
}

#[test]
fn drop_stops_and_joins_the_thread() {
    let rig = Rig::new(1);
    let mut w = Worker::new("pinvm-test");
    let owned = Arc::new(());
    let held = owned.clone();
    let claimed = rig.claim(&w);
    w.start(claimed, rig.mem(), rig.notifier.clone(), move |_, _, _| {
        let _ = &held;
        Ok(())
    })
    .unwrap();
    assert_eq!(Arc::strong_count(&owned), 2);
    drop(w);
    assert_eq!(Arc::strong_count(&owned), 1);
}
