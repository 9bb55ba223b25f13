//! What `world.json` holds: the stored files' records, the batches, the id sequence and the
//! upload counts, with what is still to be saved or removed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::id_sequence::IdSequence;
use super::lifecycle::BatchRecord;
use crate::wire::FileObject;

/// Files, batches and ids: saved to `world.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct World {
    pub(crate) files: Vec<FileRecord>,
    pub(crate) batches: Vec<BatchRecord>,
    pub(crate) ids: IdSequence,
    pub(crate) uploads: u64,
    pub(crate) uploads_per_sha256: BTreeMap<String, u64>,
    pub(crate) files_deleted: u64,
    pub(crate) last_simulated_now: f64,
    #[serde(skip)]
    pub(crate) changed: bool,
    /// Bytes to drop once the world that no longer refers to them is saved.
    #[serde(skip)]
    pub(crate) bytes_to_remove: Vec<String>,
}

/// A stored file: its object, the SHA-256 of its bytes, and whether it (then its bytes) is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    pub(crate) object: FileObject,
    pub(crate) sha256: String,
    pub(crate) deleted: bool,
    pub(crate) bytes_removed: bool,
}
