//! Batches move on before each state operation: every due transition of every unfinished batch
//! is replayed in an environment made of the file store and the world's files and ids, which
//! validates inputs and stores result files.

use std::io;

use super::capacity::CapacityQueue;
use super::clock::whole_seconds;
use super::config::SimFlavour;
use super::expiry;
use super::id_sequence::IdSequence;
use super::lifecycle::{
    BatchEnvironment, BatchRecord, BatchResults, QueuePlace, UnprocessedLines, advance_batch,
};
use super::persist::{FileSink, FileStore};
use super::results::write_results;
use super::validation::{InputValidation, validate_input};
use super::world::{FileRecord, World};
use crate::wire::FileObject;

/// Replays every due transition of every unfinished batch, then frees the bytes of deleted
/// files no unfinished batch needs any more.
pub(crate) fn advance_every_batch(
    world: &mut World,
    store: &FileStore,
    seed: u64,
    flavour: SimFlavour,
    capacity: Option<f64>,
    now: f64,
) {
    let World {
        files,
        batches,
        ids,
        changed,
        bytes_to_remove,
        ..
    } = world;
    let capacity = capacity.map(|per_second| CapacityQueue::after(per_second, batches.iter()));
    let mut environment = WorldBatchEnvironment {
        store,
        seed,
        flavour,
        files,
        ids,
        capacity,
    };
    for batch in batches
        .iter_mut()
        .filter(|batch| !batch.stage.is_terminal())
    {
        match advance_batch(batch, now, &mut environment) {
            Ok(true) => *changed = true,
            Ok(false) => {}
            Err(error) => eprintln!(
                "dashbatch simulator: batch `{}` could not advance: {error}",
                batch.id
            ),
        }
    }
    for file in files
        .iter_mut()
        .filter(|file| file.deleted && !file.bytes_removed)
    {
        let needed = batches
            .iter()
            .any(|batch| !batch.stage.is_terminal() && batch.input_file_id == file.object.id);
        if !needed {
            file.bytes_removed = true;
            bytes_to_remove.push(file.object.id.clone());
            *changed = true;
        }
    }
}

/// The environment batches advance in: the file store, and the world's files and ids.
struct WorldBatchEnvironment<'world> {
    store: &'world FileStore,
    seed: u64,
    flavour: SimFlavour,
    files: &'world mut Vec<FileRecord>,
    ids: &'world mut IdSequence,
    capacity: Option<CapacityQueue>,
}

impl WorldBatchEnvironment<'_> {
    fn store_result_file(
        &mut self,
        sink: FileSink,
        batch: &BatchRecord,
        kind: &str,
        ended_at: f64,
    ) -> io::Result<String> {
        let id = self.ids.result_file_id(self.seed, self.flavour);
        let committed = self.store.commit_sink(sink, &id)?;
        let created_at = whole_seconds(ended_at);
        self.files.push(FileRecord {
            object: FileObject {
                id: id.clone(),
                object: "file".to_owned(),
                bytes: committed.bytes,
                created_at,
                filename: format!("{}_{kind}.jsonl", batch.id),
                purpose: "batch_output".to_owned(),
                status: Some("processed".to_owned()),
                expires_at: (self.flavour == SimFlavour::Openai)
                    .then(|| expiry::expires_at(created_at, batch.output_expires_after_seconds)),
                status_details: None,
            },
            sha256: committed.sha256,
            deleted: false,
            bytes_removed: false,
        });
        Ok(id)
    }
}

impl BatchEnvironment for WorldBatchEnvironment<'_> {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn validate(&mut self, batch: &BatchRecord) -> io::Result<Option<InputValidation>> {
        let file_bytes = self
            .files
            .iter()
            .find(|file| file.object.id == batch.input_file_id)
            .map_or(0, |file| file.object.bytes);
        match self.store.open_source(&batch.input_file_id) {
            Ok(mut source) => {
                validate_input(&mut *source, file_bytes, &batch.endpoint, self.flavour).map(Some)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn take_capacity_place(&mut self, validated_at: f64, request_count: u64) -> Option<QueuePlace> {
        self.capacity
            .as_mut()
            .map(|queue| queue.take_place(validated_at, request_count))
    }

    fn write_results(
        &mut self,
        batch: &BatchRecord,
        processed: u64,
        unprocessed: UnprocessedLines,
        ended_at: f64,
    ) -> io::Result<BatchResults> {
        let written = write_results(
            self.store,
            self.seed,
            self.flavour,
            batch,
            processed,
            unprocessed,
            ended_at,
        )?;
        let output_file_id = match written.output {
            Some(sink) => Some(self.store_result_file(sink, batch, "output", ended_at)?),
            None => None,
        };
        let error_file_id = match written.errors {
            Some(sink) => Some(self.store_result_file(sink, batch, "error", ended_at)?),
            None => None,
        };
        Ok(BatchResults {
            output_file_id,
            error_file_id,
            counts: written.counts,
            bills: written.bills,
        })
    }
}
