//! The planning pass: read the input once, render every row, catch bad rows, and write request
//! lines into shard files within the provider's limits. Nothing touches the network here, so a
//! bad input fails before anything is uploaded or spent: that includes input columns the output
//! could not hold next to the columns dashbatch adds, and (without `[input] skip_empty`) rows
//! whose prompt is empty. Skipped rows are in no shard; shards hold the sent rows in order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::job::Job;
use crate::ledger::{Ledger, ShardRecord, restrict_permissions};
use crate::provider::ProviderProfile;
use crate::render::{RenderError, RenderedRequest, RenderedRow, RequestRenderer};
use crate::shard::{Placement, ShardLimits, ShardPlanner};
use crate::table::open_table;

/// At most this many row problems are listed before planning stops.
const MAX_REPORTED_ROW_ERRORS: usize = 20;

#[derive(Debug)]
pub struct PlanOutcome {
    /// Rows to send: one request each.
    pub row_count: u64,
    /// Rows not sent because their prompt is empty (`[input] skip_empty`).
    pub skipped_rows: u64,
    pub shards: Vec<ShardRecord>,
    /// The first few rendered lines, for `validate` to show.
    pub preview: Vec<RenderedRequest>,
}

/// The limits of one shard: the provider's, lowered by the job where it asks.
pub fn shard_limits(job: &Job, profile: &ProviderProfile) -> ShardLimits {
    let batch = &job.spec.batch;
    ShardLimits {
        max_requests_per_file: batch
            .max_requests_per_file
            .map_or(profile.max_requests_per_file, |v| {
                v.min(profile.max_requests_per_file)
            }),
        max_bytes_per_file: batch
            .max_bytes_per_file
            .map_or(profile.max_bytes_per_file, |v| {
                v.min(profile.max_bytes_per_file)
            }),
        max_line_bytes: batch
            .max_line_bytes
            .map_or(profile.max_line_bytes, |v| v.min(profile.max_line_bytes)),
    }
}

/// A shard file that could not be written, named (a full disk or a file-size limit says only
/// "File too large" or "No space left on device" on its own).
fn shard_write_error(path: &std::path::Path, error: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot write the shard file `{}`: {error}; nothing was uploaded. Free space on that disk (or raise the file-size limit) and run again",
        path.display()
    )
}

struct OpenShard {
    record: ShardRecord,
    path: PathBuf,
    writer: BufWriter<File>,
    hasher: Sha256,
}

impl OpenShard {
    fn close(mut self) -> anyhow::Result<ShardRecord> {
        let path = self.path.clone();
        let cannot_write = move |error: std::io::Error| shard_write_error(&path, error);
        self.writer.flush().map_err(&cannot_write)?;
        let file = self
            .writer
            .into_inner()
            .map_err(|error| cannot_write(error.into_error()))?;
        file.sync_all().map_err(&cannot_write)?;
        self.record.sha256 = hex::encode(self.hasher.finalize());
        restrict_permissions(&self.path);
        Ok(self.record)
    }
}

/// Reads, renders and shards the whole input into `shards_directory`. Custom ids are claimed in
/// `ledger` (which must not have them yet) so duplicates are found with flat memory.
pub fn plan_shards(
    job: &Job,
    profile: &ProviderProfile,
    shards_directory: &Path,
    ledger: &Ledger,
    preview_count: usize,
) -> anyhow::Result<PlanOutcome> {
    let mut reader = open_table(&job.input_path, job.input_format)?;
    let schema = reader.schema();
    let renderer = RequestRenderer::new(job, profile, &schema)?;
    // The output must be able to hold the input's columns next to the ones dashbatch adds.
    super::join_pass::output_schema(job, &schema)?;
    let limits = shard_limits(job, profile);
    let mut planner = ShardPlanner::new(limits);
    let checks_ids = job.spec.input.id_column.is_some();

    let mut shards = Vec::new();
    let mut open_shard: Option<OpenShard> = None;
    let mut row_errors: Vec<String> = Vec::new();
    let mut preview = Vec::new();
    let mut row_number: u64 = 0;
    let mut rows_to_send: u64 = 0;
    let mut skipped_rows: u64 = 0;

    ledger.begin_bulk()?;
    // `while let`, not `for`: the reader is asked for each row's line inside the loop.
    while let Some(batch) = reader.next() {
        let batch = batch?;
        // A signal stops the local stage between record batches, never silently later.
        crate::interrupt::check()?;
        for row in 0..batch.num_rows() {
            row_number += 1;
            let line = reader.line_of_row(row);
            let rendered = match renderer.render_row(&batch, row, row_number) {
                Ok(rendered) => rendered,
                Err(error) => {
                    row_errors.push(error.with_line(line).to_string());
                    if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
                        break;
                    }
                    continue;
                }
            };
            let custom_id = match &rendered {
                RenderedRow::Request(request) => &request.custom_id,
                RenderedRow::Skipped(skipped) => &skipped.custom_id,
            };
            if checks_ids && let Some(first_row) = ledger.claim_custom_id(custom_id, row_number)? {
                row_errors.push(
                    RenderError::Row {
                        input: job.input_path.display().to_string(),
                        row: row_number,
                        line,
                        columns: job.spec.input.id_column.iter().cloned().collect(),
                        custom_id: Some(custom_id.clone()),
                        message: format!(
                            "the id is already used by row {first_row}; ids in `{}` must be unique",
                            job.spec.input.id_column.as_deref().unwrap_or_default()
                        ),
                    }
                    .to_string(),
                );
                if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
                    break;
                }
                continue;
            }
            let rendered = match rendered {
                RenderedRow::Request(request) => request,
                RenderedRow::Skipped(_) => {
                    skipped_rows += 1;
                    continue;
                }
            };
            rows_to_send += 1;
            let placement = match planner.place(rendered.line.len() as u64) {
                Ok(placement) => placement,
                Err(too_long) => {
                    row_errors.push(
                        RenderError::Row {
                            input: job.input_path.display().to_string(),
                            row: row_number,
                            line,
                            columns: Vec::new(),
                            custom_id: Some(rendered.custom_id.clone()),
                            message: format!(
                                "the request line is {} bytes; at most {} are allowed per line; shorten the text or lower what the template includes",
                                too_long.line_bytes, too_long.limit
                            ),
                        }
                        .to_string(),
                    );
                    if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
                        break;
                    }
                    continue;
                }
            };
            if !row_errors.is_empty() {
                // Keep checking rows, but stop writing shards once the plan is doomed.
                continue;
            }
            if let Placement::NewShard { index } = placement {
                if let Some(shard) = open_shard.take() {
                    shards.push(shard.close()?);
                }
                let file_name = format!("shard-{index:05}.jsonl");
                let path = shards_directory.join(&file_name);
                let file = File::create(&path).map_err(|error| shard_write_error(&path, error))?;
                open_shard = Some(OpenShard {
                    record: ShardRecord::planned(
                        index,
                        row_number,
                        file_name,
                        job.spec.request.model.clone(),
                        1,
                    ),
                    path,
                    writer: BufWriter::with_capacity(1 << 20, file),
                    hasher: Sha256::new(),
                });
            }
            let shard = open_shard
                .as_mut()
                .expect("a shard is open after placement");
            shard
                .writer
                .write_all(&rendered.line)
                .and_then(|()| shard.writer.write_all(b"\n"))
                .map_err(|error| shard_write_error(&shard.path, error))?;
            shard.hasher.update(&rendered.line);
            shard.hasher.update(b"\n");
            shard.record.row_count += 1;
            shard.record.byte_size += rendered.line.len() as u64 + 1;
            if preview.len() < preview_count {
                preview.push(rendered);
            }
        }
        if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
            break;
        }
    }
    ledger.commit_bulk()?;
    if let Some(shard) = open_shard.take() {
        shards.push(shard.close()?);
    }
    if !row_errors.is_empty() {
        let more = if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
            format!("\n(stopped after {MAX_REPORTED_ROW_ERRORS} problems)")
        } else {
            String::new()
        };
        anyhow::bail!(
            "the input has {} bad row{}; nothing was uploaded:\n  {}{more}",
            row_errors.len(),
            if row_errors.len() == 1 { "" } else { "s" },
            row_errors.join("\n  ")
        );
    }
    if row_number == 0 {
        anyhow::bail!("`{}` has no rows; nothing to do", job.input_path.display());
    }
    debug_assert_eq!(rows_to_send + skipped_rows, row_number);
    Ok(PlanOutcome {
        row_count: rows_to_send,
        skipped_rows,
        shards,
        preview,
    })
}

/// SHA-256 of a file, read in chunks.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}
