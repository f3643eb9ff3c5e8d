//! Stamped sectors: 512-byte sectors that say what they are, so that any sector found on a
//! disk or in a block write request can be traced back to who wrote it.
//!
//! Two formats, written by different sides and never mixed up (their magics differ):
//!
//! - [`mod@file`]: the `stamp:<TAG>` file-content pattern the guest agent writes into files (and
//!   verifies), which the host recognises in disk images and journals.
//! - [`dma`]: the generation stamp the dmapin device writes into pinned pages ("sector `s` of
//!   generation `g` of page `p` of region `r`"), which the oracle classifies.

pub mod dma;
pub mod file;
