//! The devices a [`RunSpec`] asks for, built once for any machine: each disk served
//! copy-on-write over its image with its write journal, and the DMA device with its log, its
//! writeback observer hooked to the first disk's copies. The machine puts them behind its
//! transport (virtio-mmio under our VMM); after the run, [`Collector`] flushes the records and
//! saves the disks that were asked for.

use crate::{DiskSpec, RunSpec};
use anyhow::{Context, Result};
use devices::block::disk::CowDisk;
use devices::block::observer::BlockObserver;
use devices::block::{Block, BlockConfig, BlockHandle};
use devices::dmapin::{DmaPin, DmaPinConfig, DmaPinHandle};
use devices::virtio::VirtioDevice;
use proto::journal::JournalOptions;
use std::sync::Arc;

/// The run's virtio devices, in slot order: the disks, then the DMA device.
pub struct DeviceSet {
    /// One per `RunSpec::disks`, in order.
    pub disks: Vec<Block>,
    /// The DMA device, if the run asked for it.
    pub dma: Option<DmaPin>,
    /// Handles to collect the devices' records after the run.
    pub collector: Collector,
}

/// What to do with the devices once the guest is stopped.
pub struct Collector {
    disks: Vec<(BlockHandle, DiskSpec)>,
    dma: Option<DmaPinHandle>,
}

impl DeviceSet {
    /// Open every disk image (never modified), create the journals and the DMA log.
    pub fn build(spec: &RunSpec) -> Result<DeviceSet> {
        let dma = match &spec.dma {
            Some(d) => Some(DmaPin::new(DmaPinConfig {
                log: d.log.clone(),
                ..DmaPinConfig::default()
            })?),
            None => None,
        };
        let dma_handle = dma.as_ref().map(|d| d.handle());
        let mut disks = Vec::new();
        let mut handles = Vec::new();
        for (i, d) in spec.disks.iter().enumerate() {
            // The DMA device times its writeback races against the first disk's copies.
            let observer: Option<Arc<dyn BlockObserver>> = match (&dma_handle, i) {
                (Some(h), 0) => Some(h.observer()),
                _ => None,
            };
            let block = disk(d, observer)?;
            handles.push((block.handle(), d.clone()));
            disks.push(block);
        }
        Ok(DeviceSet {
            disks,
            dma,
            collector: Collector {
                disks: handles,
                dma: dma_handle,
            },
        })
    }

    /// The devices as virtio devices in slot order, and the collector.
    pub fn into_virtio(self) -> (Vec<Box<dyn VirtioDevice>>, Collector) {
        let mut devs: Vec<Box<dyn VirtioDevice>> = Vec::new();
        for d in self.disks {
            devs.push(Box::new(d));
        }
        if let Some(d) = self.dma {
            devs.push(Box::new(d));
        }
        (devs, self.collector)
    }
}

/// One disk: copy-on-write over `d.image`, journaled if asked.
fn disk(d: &DiskSpec, observer: Option<Arc<dyn BlockObserver>>) -> Result<Block> {
    let cow = CowDisk::open(&d.image)
        .with_context(|| format!("opening disk image {}", d.image.display()))?;
    let journal = d.journal.as_ref().map(|p| {
        let opts = JournalOptions {
            record_data: d.journal_data,
            ..JournalOptions::default()
        };
        (p.clone(), opts)
    });
    let config = BlockConfig {
        id: d.id.clone(),
        journal,
        observer,
        ..BlockConfig::default()
    };
    Block::new(cow, config).with_context(|| format!("disk {}", d.image.display()))
}

impl Collector {
    /// Flush the DMA log and every disk's journal, then save the disks the run asked to keep.
    /// Every failure is a note: the run happened and its record (and verdict) stands; a disk
    /// that could not be saved is simply not there for the analysis.
    pub fn collect(&self, notes: &mut Vec<String>) {
        if let Some(h) = &self.dma {
            if let Err(e) = h.flush() {
                notes.push(format!("flushing the DMA log: {e}"));
            }
            let s = h.stats();
            if s.refused_log_full > 0 {
                notes.push(format!(
                    "the DMA log was full ({} records): the device refused {} later DMA writes",
                    s.writes, s.refused_log_full
                ));
            }
            if s.log_errors > 0 {
                notes.push("writing the DMA log failed; it stops early".into());
            }
        }
        for (handle, d) in &self.disks {
            if let Err(e) = handle.flush() {
                notes.push(format!("flushing disk {}: {e}", d.image.display()));
            }
            let s = handle.stats();
            let disk = d.image.display();
            if s.journal_data_dropped > 0 {
                notes.push(format!(
                    "the journal of disk {disk} reached its data limit: {} later requests \
                     carry hashes only",
                    s.journal_data_dropped
                ));
            }
            if s.journal_full_refused + s.journal_full_unrecorded > 0 {
                notes.push(format!(
                    "the journal of disk {disk} was full: {} later writes were refused (I/O \
                     error in the guest), {} reads and flushes not recorded",
                    s.journal_full_refused, s.journal_full_unrecorded
                ));
            }
            if s.journal_errors > 0 {
                notes.push(format!(
                    "writing the journal of disk {disk} failed; it stops early"
                ));
            }
            if let Some(keep) = &d.keep {
                if let Err(e) = handle.save_as(keep) {
                    notes.push(format!(
                        "saving the disk to {} failed, it is not kept: {e}",
                        keep.display()
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentEvent, AgentEventKind};
    use crate::console::ConsoleCapture;
    use crate::outcome;
    use crate::watch::{RunEnd, RunWatch};
    use crate::VmEnd;
    use std::time::{Duration, Instant};

    /// A disk the run was asked to keep but could not save (here: its path runs through a
    /// regular file) used to turn the run into "could not boot"; now the collection notes it
    /// and the run's verdict is still the command's.
    #[test]
    fn a_disk_that_cannot_be_saved_costs_a_note_not_the_verdict() {
        let dir = std::env::temp_dir().join(format!("pinvm-collect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("base.img");
        std::fs::write(&image, vec![0x5a; 64 << 10]).unwrap();
        let blocker = dir.join("a-file");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let keep = blocker.join("kept.img");
        let spec = RunSpec {
            cpus: 1,
            timeout: Duration::from_secs(10),
            disks: vec![DiskSpec {
                image: image.clone(),
                journal: None,
                journal_data: false,
                keep: Some(keep.clone()),
                id: "pinvm0".into(),
            }],
            ..RunSpec::new("vmlinux")
        };
        let (_devices, collector) = DeviceSet::build(&spec).unwrap().into_virtio();
        let mut notes = Vec::new();
        collector.collect(&mut notes);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(&format!("saving the disk to {} failed", keep.display())),
            "{notes:?}"
        );
        assert!(!keep.exists());
        assert_eq!(std::fs::read(&image).unwrap(), vec![0x5a; 64 << 10]);

        let (console, _sink) = ConsoleCapture::open(&spec).unwrap();
        let mut w = RunWatch::new(console, Instant::now(), spec.timeout);
        for kind in [
            AgentEventKind::Started,
            AgentEventKind::CmdDone { status: 3 },
        ] {
            w.agent(AgentEvent {
                kind,
                at: Instant::now(),
                at_ns: 1,
            });
        }
        let end = RunEnd {
            end: VmEnd::Reset,
            first_instruction: Some(Instant::now()),
            vcpu_rips: vec![],
            notes,
            quirks: String::new(),
            cmdline: String::new(),
        };
        let report = w.into_report("test", &spec, end);
        let verdict = outcome::judge(&report, None);
        assert_eq!(verdict.code, 3, "{:?}", verdict.reason);
        assert!(report.notes[0].contains("it is not kept"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
