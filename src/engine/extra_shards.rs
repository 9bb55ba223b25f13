//! Shards a run adds after planning, whose lines are copied from elsewhere: retry shards (a
//! settled shard's transiently failed lines) and adoption sends (requests another run had in
//! flight and stopped without answering). Each line is placed within the shard limits and
//! remembered with the input row and custom_id it answers (the ledger's `shard_rows`), since
//! such shards do not hold consecutive rows.

use super::RunDirectory;
use super::shard_buffers::ShardBuffers;
use super::shard_file::{ShardDurability, ShardFileWriter};
use crate::ledger::ShardRecord;
use crate::shard::{Placement, ShardLimits, ShardPlanner};

/// One line of an extra shard: (shard, line in it from 1, input row, custom_id).
pub(super) type ShardRow = (u64, u64, u64, String);

/// The shards being written, numbered on from the run's last shard.
pub(super) struct ExtraShards<'a> {
    run_directory: &'a RunDirectory,
    limits: ShardLimits,
    planner: ShardPlanner,
    open: Option<ShardFileWriter>,
    buffers: ShardBuffers,
    next_index: u64,
    shards: Vec<ShardRecord>,
    /// Every line written.
    rows: Vec<ShardRow>,
}

impl<'a> ExtraShards<'a> {
    pub(super) fn new(
        run_directory: &'a RunDirectory,
        limits: ShardLimits,
        first_index: u64,
    ) -> ExtraShards<'a> {
        ExtraShards {
            run_directory,
            limits,
            planner: ShardPlanner::new(limits),
            open: None,
            buffers: ShardBuffers::default(),
            next_index: first_index,
            shards: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Adds one request line, answering input row `row_number` as `custom_id`, to a shard of
    /// `model` sent as attempt `attempt`.
    ///
    /// # Errors
    /// When the line is over the line limit, or a shard file cannot be written.
    pub(super) fn write(
        &mut self,
        line: &str,
        row_number: u64,
        custom_id: String,
        model: &str,
        attempt: u32,
    ) -> anyhow::Result<()> {
        let placement = self.planner.place(line.len() as u64).map_err(|too_long| {
            anyhow::anyhow!(
                "a line to send again is {} bytes, over the limit",
                too_long.line_bytes
            )
        })?;
        if let Placement::NewShard { .. } = placement {
            self.close_shard()?;
            let index = self.next_index;
            self.next_index += 1;
            let file_name = format!("shard-{index:05}.jsonl");
            self.open = Some(ShardFileWriter::create(
                self.run_directory.shard_path(&file_name),
                ShardRecord::planned(index, row_number, file_name, model.to_owned(), attempt),
                ShardDurability::Synced,
                &self.buffers,
            )?);
        }
        let writer = self.open.as_mut().expect("a shard is open after placement");
        writer.write_line(line.as_bytes())?;
        self.rows.push((
            writer.record().shard_index,
            writer.record().row_count,
            row_number,
            custom_id,
        ));
        Ok(())
    }

    /// Ends the open shard: the next line starts a new one (lines of different attempts are
    /// never mixed).
    ///
    /// # Errors
    /// When the shard file cannot be closed.
    pub(super) fn close_group(&mut self) -> anyhow::Result<()> {
        self.close_shard()?;
        self.planner = ShardPlanner::new(self.limits);
        Ok(())
    }

    fn close_shard(&mut self) -> anyhow::Result<()> {
        if let Some(done) = self.open.take() {
            self.shards.push(done.close()?);
        }
        Ok(())
    }

    /// The shards written and the rows they carry.
    ///
    /// # Errors
    /// When the last shard file cannot be closed.
    pub(super) fn finish(mut self) -> anyhow::Result<(Vec<ShardRecord>, Vec<ShardRow>)> {
        self.close_shard()?;
        Ok((self.shards, self.rows))
    }
}
