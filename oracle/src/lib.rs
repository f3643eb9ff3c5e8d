//! pinvm's oracle: turns what the host recorded during a run into verdicts with evidence.
//!
//! It trusts the host's records (the DMA log, the block journal, the final disk image, the
//! console bytes) and the guest only for the file's extents and the results of its steps; when
//! the two disagree it says so.
