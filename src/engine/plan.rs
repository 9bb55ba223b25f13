//! The planning pass: read the input once, render every row, catch bad rows, and write request
//! lines into shard files within the provider's limits. Nothing touches the network here, so a
//! bad input fails before anything is uploaded or spent: that includes input columns the output
//! could not hold next to the columns dashbatch adds, and (without `[input] skip_empty`) rows
//! whose prompt is empty. Skipped rows are in no shard; shards hold the sent rows in order.

use std::fs::File;
use std::path::Path;

use super::answer_reuse::{AnswerReuse, RowDecision, RowRequest};
use super::bloom_filter::FilterHashes;
use super::custom_id_claims::{ClaimingRow, CustomIdClaims, RepeatedId};
use super::ordered_rendering::{OrderedRendering, read_ahead};
use super::shard_buffers::ShardBuffers;
use super::shard_file::{ShardDurability, ShardFileWriter, ShardsClosing};
use crate::job::Job;
use crate::ledger::{Ledger, ShardRecord};
use crate::provider::ProviderProfile;
use crate::render::{RenderError, RenderedRequest, RenderedRow, RequestRenderer};
use crate::request_key::{RequestKey, RequestKeyMaker};
use crate::shard::{Placement, ShardPlanner, shard_limits};
use crate::table::{DigestAlgorithm, open_table_digesting, open_table_with};

/// At most this many row problems are listed before planning stops.
const MAX_REPORTED_ROW_ERRORS: usize = 20;

#[derive(Debug)]
pub struct PlanOutcome {
    /// Rows to send: one request each.
    pub row_count: u64,
    /// Rows not sent because their prompt is empty (`[input] skip_empty`).
    pub skipped_rows: u64,
    /// Rows not sent because the answer store has their request's answer.
    pub rows_from_store: u64,
    /// Rows not sent because an earlier row of the run sends the same request.
    pub rows_deduplicated: u64,
    /// Rows not sent (yet) because another live run has their request in flight.
    pub rows_adopted: u64,
    pub shards: Vec<ShardRecord>,
    /// The first few rendered lines, for `validate` to show.
    pub preview: Vec<RenderedRequest>,
    /// Columns of the output table: the kept input columns and those dashbatch adds.
    pub output_columns: usize,
    /// The input's columns, and how it was read (encoding, delimiter, sheet, parts), for
    /// `validate` to show without opening the input again.
    pub input_schema: arrow_schema::SchemaRef,
    pub input_description: Option<String>,
    /// The digest ([`DigestAlgorithm::FOR_NEW_RUNS`]) of the input taken from the bytes its
    /// rows were read from, when asked for and the input is one that is hashed while read
    /// (`digests_while_reading`).
    pub input_digest: Option<String>,
}

impl PlanOutcome {
    /// Every input row (each has an output row, sent, skipped or answered without a request).
    pub fn input_rows(&self) -> u64 {
        self.row_count
            + self.skipped_rows
            + self.rows_from_store
            + self.rows_deduplicated
            + self.rows_adopted
    }
}

/// The rows and the output's columns of the job's input, counted by reading it (for a resumed
/// run whose plan did not record them).
///
/// # Errors
/// When the input cannot be read.
pub fn output_table_shape(job: &Job) -> anyhow::Result<(u64, usize)> {
    let reader = open_table_with(&job.input_path, job.input_format, &job.input_options)?;
    let columns = super::join_pass::output_schema(job, &reader.schema())?
        .0
        .fields()
        .len();
    let mut rows = 0u64;
    for batch in reader {
        rows += batch?.num_rows() as u64;
    }
    Ok((rows, columns))
}

/// [`plan_shards`] into a scratch directory that is removed once read (`validate`,
/// `estimate`): the shard files are not synced (or not written at all, as `durability` says),
/// and no progress is shown.
///
/// # Errors
/// As [`plan_shards`].
pub fn plan_scratch_shards(
    job: &Job,
    profile: &ProviderProfile,
    scratch_directory: &Path,
    durability: ShardDurability,
    ledger: &Ledger,
    reuse: &AnswerReuse,
    preview_count: usize,
) -> anyhow::Result<PlanOutcome> {
    plan_shards(
        job,
        profile,
        scratch_directory,
        durability,
        ledger,
        reuse,
        preview_count,
        false,
        &|_| {},
    )
}

/// Reads, renders and shards the whole input into `shards_directory`. Custom ids and request
/// keys are claimed through Bloom filters and scratch files beside the shards, so duplicates are
/// found with flat memory; rows `reuse` answers without a request are in no shard. With
/// `digest_input`, an input that can be is hashed as it is read ([`PlanOutcome::input_digest`]).
/// `on_rows` is told the rows planned so far after each record batch (a progress bar).
///
/// # Errors
/// When the input cannot be read, a row is bad (up to a number of them, each located), or a
/// shard or scratch file cannot be written.
#[allow(clippy::too_many_arguments)]
pub fn plan_shards(
    job: &Job,
    profile: &ProviderProfile,
    shards_directory: &Path,
    durability: ShardDurability,
    ledger: &Ledger,
    reuse: &AnswerReuse,
    preview_count: usize,
    digest_input: bool,
    on_rows: &dyn Fn(u64),
) -> anyhow::Result<PlanOutcome> {
    let opened = open_table_digesting(
        &job.input_path,
        job.input_format,
        &job.input_options,
        digest_input.then_some(DigestAlgorithm::FOR_NEW_RUNS),
    );
    // A reader that reads the whole input before its first row (JSON Lines) stops at a signal.
    if opened.is_err() {
        crate::interrupt::check()?;
    }
    let (reader, input_digest) = opened?;
    let schema = reader.schema();
    let input_description = reader.text_description().map(str::to_owned);
    let renderer = RequestRenderer::new(job, profile, &schema)?;
    // The output must be able to hold the input's columns next to the ones dashbatch adds.
    let output_columns = super::join_pass::output_schema(job, &schema)?
        .0
        .fields()
        .len();
    let limits = shard_limits(job, profile);
    let mut planner = ShardPlanner::new(limits);
    let checks_ids = job.spec.input.id_column.is_some();

    // The next row's id hashes and request key, made while this row is handled so that the
    // claims' filter blocks they need are loaded by the time it comes (`prefetch`).
    let mut looked_ahead: Option<(u64, FilterHashes, RequestKey)> = None;
    let key_maker = RequestKeyMaker::new(&reuse.provider_identity, renderer.endpoint());
    // Each full shard is written and synced by its own thread while the next one fills.
    let mut shards = ShardsClosing::default();
    let shard_buffers = ShardBuffers::default();
    let mut open_shard: Option<ShardFileWriter> = None;
    let mut row_errors: Vec<String> = Vec::new();
    let mut preview = Vec::new();
    let mut row_number: u64 = 0;
    let mut rows_to_send: u64 = 0;
    let mut skipped_rows: u64 = 0;
    let mut rows_from_store: u64 = 0;
    let mut rows_deduplicated: u64 = 0;
    let mut rows_adopted: u64 = 0;

    let mut id_claims = CustomIdClaims::new(shards_directory)?;
    reuse.claims.borrow_mut().spill_into(shards_directory);
    ledger.begin_bulk()?;
    // One read snapshot of the store for the whole plan, not a lock taken per row.
    let _store_snapshot = reuse
        .store
        .as_ref()
        .map(crate::answer_store::AnswerStore::read_snapshot)
        .transpose()?;
    // The input is read on one thread (and, for a text job, rendered on another) while rows
    // read earlier are claimed, sharded and written on this one.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut ordered = OrderedRendering::new(&renderer, scope);
        let batches = read_ahead(scope, reader, ordered.render_ahead());
        for read in batches {
            let (batch, place) = read?;
            // A signal stops the local stage between record batches, never silently later.
            crate::interrupt::check()?;
            for row in 0..batch.num_rows() {
                row_number += 1;
                let line = place.line_of_row(row);
                let input_label = || {
                    place
                        .part
                        .as_deref()
                        .unwrap_or(&job.input_path)
                        .display()
                        .to_string()
                };
                let claiming_row = || ClaimingRow {
                    row_number,
                    line,
                    part: place.part.clone(),
                };
                let rendered = match ordered.render(&batch, row, row_number) {
                    Ok(rendered) => rendered,
                    Err(error) => {
                        // A render stopped by a signal is the signal's, not the row's.
                        crate::interrupt::check()?;
                        row_errors.push(
                            error
                                .with_line(line)
                                .in_part(place.part.as_deref())
                                .to_string(),
                        );
                        // Its id is claimed all the same, so a repeat of it is reported now, not
                        // after the user has mended this row.
                        if checks_ids
                            && let Ok(custom_id) = renderer.custom_id(&batch, row, row_number)
                        {
                            let repeats = id_claims.claim(&custom_id, claiming_row, row_number)?;
                            row_errors.extend(
                                repeats.iter().map(|repeat| repeated_id_error(job, repeat)),
                            );
                        }
                        if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
                            break;
                        }
                        continue;
                    }
                };
                let this_row_ahead = looked_ahead
                    .take()
                    .filter(|(ahead_row, ..)| *ahead_row == row_number);
                if let Some(Ok(RenderedRow::Request(next))) = ordered.peek_rendered() {
                    let id_hashes = CustomIdClaims::hashes(&next.custom_id);
                    if checks_ids {
                        id_claims.prefetch(id_hashes);
                    }
                    let key = key_maker.key(&next.body_digest);
                    reuse.prefetch(&key);
                    looked_ahead = Some((next.row_number, id_hashes, key));
                }
                let custom_id = match &rendered {
                    RenderedRow::Request(request) => &request.custom_id,
                    RenderedRow::Skipped(skipped) => &skipped.custom_id,
                };
                if checks_ids {
                    let id_hashes = match this_row_ahead {
                        Some((_, id_hashes, _)) => id_hashes,
                        None => CustomIdClaims::hashes(custom_id),
                    };
                    let repeats =
                        id_claims.claim_hashed(custom_id, id_hashes, claiming_row, row_number)?;
                    if !repeats.is_empty() {
                        row_errors
                            .extend(repeats.iter().map(|repeat| repeated_id_error(job, repeat)));
                        if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
                            break;
                        }
                    }
                }
                let rendered = match rendered {
                    RenderedRow::Request(request) => request,
                    RenderedRow::Skipped(_) => {
                        skipped_rows += 1;
                        continue;
                    }
                };
                let key = match this_row_ahead {
                    Some((_, _, key)) => key,
                    None => key_maker.key(&rendered.body_digest),
                };
                let decision = reuse.decide(
                    ledger,
                    &RowRequest {
                        key,
                        row_number,
                        custom_id: &rendered.custom_id,
                        line: &rendered.line,
                    },
                )?;
                match decision {
                    RowDecision::Send => {}
                    RowDecision::FromStore => {
                        rows_from_store += 1;
                        continue;
                    }
                    RowDecision::Copy => {
                        rows_deduplicated += 1;
                        continue;
                    }
                    RowDecision::Adopted => {
                        rows_adopted += 1;
                        continue;
                    }
                }
                rows_to_send += 1;
                let placement = match planner.place(rendered.line.len() as u64) {
                    Ok(placement) => placement,
                    Err(too_long) => {
                        row_errors.push(
                        RenderError::Row {
                            input: input_label(),
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
                        shards.close(shard)?;
                    }
                    let file_name = format!("shard-{index:05}.jsonl");
                    let path = shards_directory.join(&file_name);
                    open_shard = Some(ShardFileWriter::create(
                        path,
                        ShardRecord::planned(
                            index,
                            row_number,
                            file_name,
                            job.spec.request.model.clone(),
                            1,
                        ),
                        durability,
                        &shard_buffers,
                    )?);
                }
                let shard = open_shard
                    .as_mut()
                    .expect("a shard is open after placement");
                shard.write_line(&rendered.line)?;
                if preview.len() < preview_count {
                    preview.push(rendered);
                } else {
                    ordered.done_with(rendered);
                }
            }
            if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
                break;
            }
            on_rows(row_number);
        }
        Ok(())
    })?;
    reuse.finish(ledger)?;
    ledger.commit_bulk()?;
    if row_errors.len() < MAX_REPORTED_ROW_ERRORS {
        let repeats = id_claims.finish()?;
        row_errors.extend(repeats.iter().map(|repeat| repeated_id_error(job, repeat)));
    }
    // An early check of many candidates may report thousands of repeats at once.
    row_errors.truncate(MAX_REPORTED_ROW_ERRORS);
    if let Some(shard) = open_shard.take() {
        shards.close(shard)?;
    }
    let shards = shards.finish()?;
    if !row_errors.is_empty() {
        let more = if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
            format!("\n(stopped after {MAX_REPORTED_ROW_ERRORS} problems)")
        } else {
            String::new()
        };
        anyhow::bail!(
            "the input has {}{} bad row{}; nothing was uploaded:\n  {}{more}",
            if row_errors.len() >= MAX_REPORTED_ROW_ERRORS {
                "at least "
            } else {
                ""
            },
            row_errors.len(),
            if row_errors.len() == 1 { "" } else { "s" },
            row_errors.join("\n  ")
        );
    }
    if row_number == 0 {
        anyhow::bail!("`{}` has no rows; nothing to do", job.input_path.display());
    }
    debug_assert_eq!(
        rows_to_send + skipped_rows + rows_from_store + rows_deduplicated + rows_adopted,
        row_number
    );
    Ok(PlanOutcome {
        row_count: rows_to_send,
        skipped_rows,
        rows_from_store,
        rows_deduplicated,
        rows_adopted,
        shards,
        preview,
        output_columns,
        input_schema: schema,
        input_description,
        input_digest: input_digest.and_then(|digest| digest.of_whole_file()),
    })
}

/// The problem of a row whose id an earlier row has.
fn repeated_id_error(job: &Job, repeat: &RepeatedId) -> String {
    RenderError::Row {
        input: repeat
            .row
            .part
            .as_deref()
            .unwrap_or(&job.input_path)
            .display()
            .to_string(),
        row: repeat.row.row_number,
        line: repeat.row.line,
        columns: job.spec.input.id_column.iter().cloned().collect(),
        custom_id: Some(repeat.custom_id.clone()),
        message: format!(
            "the id is already used by row {}; ids in `{}` must be unique",
            repeat.first_row,
            job.spec.input.id_column.as_deref().unwrap_or_default()
        ),
    }
    .to_string()
}

/// The identity of an input, taken with `algorithm`: its file's digest, or for a partitioned
/// input the digest of its parts' paths and digests, so that an added, removed, renamed or
/// edited part changes it. Written as [`DigestAlgorithm::of_written`] reads it.
///
/// # Errors
/// When a part cannot be read, or a directory listed.
pub fn input_digest(path: &Path, algorithm: DigestAlgorithm) -> std::io::Result<String> {
    // Parts that cannot be found as an input (a directory emptied, a pattern that now matches
    // nothing, parts of two formats) are not the input planned: `NotFound`, which a check
    // tells as a changed input, not as one it cannot read.
    let files = crate::table::find_input_files(path)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::NotFound, error.to_string()))?;
    if !files.partitioned {
        return file_digest(path, algorithm, StopAtSignal::Yes);
    }
    // Parts are named from the directory, or the pattern's fixed leading directories, so that the
    // identity is the same whether the job file was named by a relative or an absolute path.
    let base = if crate::table::is_glob(path) && !path.exists() {
        crate::table::glob_base(path)
    } else {
        path.to_owned()
    };
    let mut hasher = algorithm.hasher();
    for part in &files.parts {
        let name = part.strip_prefix(&base).unwrap_or(part);
        hasher.update(name.to_string_lossy().as_bytes());
        hasher.update(b"\t");
        hasher.update(file_digest(part, algorithm, StopAtSignal::Yes)?.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hasher.written())
}

/// Whether a pass over a file stops when a signal arrives: a pass over the whole input does
/// (its caller tells the signal); the check of a shard file before its upload, short and
/// told as a changed file if it fails, does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopAtSignal {
    Yes,
    No,
}

/// The digest of a file's bytes, taken with `algorithm`.
fn file_digest(
    path: &Path,
    algorithm: DigestAlgorithm,
    stop: StopAtSignal,
) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = algorithm.hasher();
    let mut buffer = vec![0u8; 1 << 16];
    for reads in 0u64.. {
        // A signal stops the pass within 16 MiB (a few milliseconds from a warm cache).
        if stop == StopAtSignal::Yes && reads.is_multiple_of(256) {
            crate::interrupt::check_while_reading()?;
        }
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.written())
}

/// The SHA-256 of a file's bytes, in hex.
pub(crate) fn file_sha256(path: &Path) -> std::io::Result<String> {
    file_digest(path, DigestAlgorithm::Sha256, StopAtSignal::No)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::load_job;
    use crate::provider::ProviderKind;

    /// Every row of these cases renders to a line of one length (same-length texts and ids), so
    /// byte limits are given in lines of that length and measured once from a one-row plan.
    const ROW_TEXT: &str = "abcd";

    /// The first row and row count of each planned shard.
    struct PlannedShards {
        rows_to_send: u64,
        skipped_rows: u64,
        shards: &'static [(u64, u64)],
    }

    struct PlanCase {
        name: &'static str,
        /// The CSV input, header included.
        csv: &'static str,
        /// Extra keys of `[input]`.
        input_keys: &'static str,
        max_requests_per_file: Option<u64>,
        /// `max_bytes_per_file` as (whole lines with their newlines, bytes added to that).
        max_bytes_per_file_in_lines: Option<(u64, i64)>,
        /// `max_line_bytes` as bytes added to the length of one line.
        max_line_bytes_beyond_one_line: Option<i64>,
        /// Whether rows with the same request are sent once (`[reuse] deduplicate`); off in the
        /// cases about shard limits, whose rows are all alike.
        deduplicate: bool,
        /// The plan, or words the refusal must contain.
        expected: Result<PlannedShards, &'static [&'static str]>,
    }

    const PLAN: PlanCase = PlanCase {
        name: "",
        csv: "text\nabcd\n",
        input_keys: "",
        max_requests_per_file: None,
        max_bytes_per_file_in_lines: None,
        max_line_bytes_beyond_one_line: None,
        deduplicate: false,
        // Words no message has: a case that forgets its expectation fails.
        expected: Err(&["(every case states what it expects)"]),
    };

    const PLAN_CASES: &[PlanCase] = &[
        PlanCase {
            name: "a header without rows is refused: there is nothing to do",
            csv: "text\n",
            expected: Err(&["has no rows; nothing to do"]),
            ..PLAN
        },
        PlanCase {
            name: "one row makes one shard starting at row 1",
            expected: Ok(PlannedShards {
                rows_to_send: 1,
                skipped_rows: 0,
                shards: &[(1, 1)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "rows exactly at the request limit fill one shard",
            csv: "text\nabcd\nabcd\nabcd\n",
            max_requests_per_file: Some(3),
            expected: Ok(PlannedShards {
                rows_to_send: 3,
                skipped_rows: 0,
                shards: &[(1, 3)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "one row past the request limit starts a second shard at that row",
            csv: "text\nabcd\nabcd\nabcd\nabcd\n",
            max_requests_per_file: Some(3),
            expected: Ok(PlannedShards {
                rows_to_send: 4,
                skipped_rows: 0,
                shards: &[(1, 3), (4, 1)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "many small rows under a request limit of two",
            csv: "text\nabcd\nabcd\nabcd\nabcd\nabcd\nabcd\nabcd\n",
            max_requests_per_file: Some(2),
            expected: Ok(PlannedShards {
                rows_to_send: 7,
                skipped_rows: 0,
                shards: &[(1, 2), (3, 2), (5, 2), (7, 1)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "a byte limit of exactly two lines with their newlines holds two rows per shard",
            csv: "text\nabcd\nabcd\nabcd\nabcd\nabcd\n",
            max_bytes_per_file_in_lines: Some((2, 0)),
            expected: Ok(PlannedShards {
                rows_to_send: 5,
                skipped_rows: 0,
                shards: &[(1, 2), (3, 2), (5, 1)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "a byte limit one byte short of two lines puts every row in a shard of its own",
            csv: "text\nabcd\nabcd\nabcd\n",
            max_bytes_per_file_in_lines: Some((2, -1)),
            expected: Ok(PlannedShards {
                rows_to_send: 3,
                skipped_rows: 0,
                shards: &[(1, 1), (2, 1), (3, 1)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "a line exactly at the line limit is sent",
            csv: "text\nabcd\nabcd\n",
            max_line_bytes_beyond_one_line: Some(0),
            expected: Ok(PlannedShards {
                rows_to_send: 2,
                skipped_rows: 0,
                shards: &[(1, 2)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "lines one byte over the line limit are refused by row and nothing is planned",
            csv: "text\nabcd\nabcd\n",
            max_line_bytes_beyond_one_line: Some(-1),
            expected: Err(&[
                "the input has 2 bad rows; nothing was uploaded",
                "rows.csv, row 1 (line 2)",
                "rows.csv, row 2 (line 3)",
                "at most",
            ]),
            ..PLAN
        },
        PlanCase {
            name: "one huge row among small ones is refused by its row number alone",
            csv: "text\nabcd\nabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcd\nabcd\n",
            max_line_bytes_beyond_one_line: Some(10),
            expected: Err(&["the input has 1 bad row;", "row 2 (line 3)"]),
            ..PLAN
        },
        PlanCase {
            name: "rows skipped as empty are in no shard and the next shard starts at the next sent row",
            csv: "text\nabcd\n\"  \"\nabcd\nabcd\n",
            input_keys: "skip_empty = true\n",
            max_requests_per_file: Some(2),
            expected: Ok(PlannedShards {
                rows_to_send: 3,
                skipped_rows: 1,
                shards: &[(1, 2), (4, 1)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "every row skipped as empty makes no shard and counts every row as skipped",
            csv: "text\n\"  \"\n\" \"\n",
            input_keys: "skip_empty = true\n",
            expected: Ok(PlannedShards {
                rows_to_send: 0,
                skipped_rows: 2,
                shards: &[],
            }),
            ..PLAN
        },
        PlanCase {
            name: "an empty prompt without skip_empty is refused naming its row",
            csv: "text\nabcd\n\"  \"\n",
            expected: Err(&["row 2 (line 3)", "empty", "skip_empty = true"]),
            ..PLAN
        },
        PlanCase {
            name: "rows repeating an earlier row's request are in no shard and the shards hold the rest in order",
            csv: "text\nabcd\nwxyz\nabcd\nabcd\nefgh\nwxyz\n",
            max_requests_per_file: Some(2),
            deduplicate: true,
            expected: Ok(PlannedShards {
                rows_to_send: 3,
                skipped_rows: 0,
                shards: &[(1, 2), (5, 1)],
            }),
            ..PLAN
        },
        PlanCase {
            name: "rows alike but for their ids are still sent once, and repeated ids are still refused",
            csv: "id,text\nx1,abcd\nx2,abcd\nx1,abcd\n",
            input_keys: "id_column = \"id\"\n",
            deduplicate: true,
            expected: Err(&["row 3 (line 4)", "already used by row 1"]),
            ..PLAN
        },
        PlanCase {
            name: "a repeated id is refused naming the row that used it first",
            csv: "id,text\nx1,abcd\nx2,abcd\nx1,abcd\n",
            input_keys: "id_column = \"id\"\n",
            expected: Err(&["row 3 (line 4)", "already used by row 1"]),
            ..PLAN
        },
    ];

    fn plan_in(
        directory: &Path,
        csv: &str,
        input_keys: &str,
        batch_keys: &str,
        deduplicate: bool,
    ) -> anyhow::Result<PlanOutcome> {
        std::fs::write(directory.join("rows.csv"), csv).unwrap();
        std::fs::write(
            directory.join("job.toml"),
            format!(
                "[input]\npath = \"rows.csv\"\n{input_keys}[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{{{ text }}}}\"\n[batch]\n{batch_keys}"
            ),
        )
        .unwrap();
        let job = load_job(&directory.join("job.toml")).unwrap();
        let shards_directory = directory.join("shards");
        std::fs::create_dir_all(&shards_directory).unwrap();
        let ledger = Ledger::open(directory).unwrap();
        plan_shards(
            &job,
            &ProviderProfile::for_kind(ProviderKind::Sim),
            &shards_directory,
            ShardDurability::Synced,
            &ledger,
            &AnswerReuse {
                deduplicate,
                ..AnswerReuse::nothing("sim")
            },
            0,
            true,
            &|_| {},
        )
    }

    /// The length of the one line every case's rows render to, newline not counted.
    fn common_line_bytes() -> u64 {
        let directory = tempfile::tempdir().unwrap();
        let outcome = plan_in(
            directory.path(),
            &format!("text\n{ROW_TEXT}\n"),
            "",
            "",
            false,
        )
        .unwrap();
        outcome.shards[0].byte_size - 1
    }

    #[test]
    fn plan_cases() {
        let line_bytes = common_line_bytes();
        for case in PLAN_CASES {
            let mut batch_keys = String::new();
            if let Some(requests) = case.max_requests_per_file {
                batch_keys.push_str(&format!("max_requests_per_file = {requests}\n"));
            }
            if let Some((lines, added)) = case.max_bytes_per_file_in_lines {
                let bytes = (lines * (line_bytes + 1))
                    .checked_add_signed(added)
                    .unwrap();
                batch_keys.push_str(&format!("max_bytes_per_file = {bytes}\n"));
            }
            if let Some(added) = case.max_line_bytes_beyond_one_line {
                let bytes = line_bytes.checked_add_signed(added).unwrap();
                batch_keys.push_str(&format!("max_line_bytes = {bytes}\n"));
            }
            let directory = tempfile::tempdir().unwrap();
            let outcome = plan_in(
                directory.path(),
                case.csv,
                case.input_keys,
                &batch_keys,
                case.deduplicate,
            );
            let expected = match (&case.expected, outcome) {
                (Ok(expected), Ok(outcome)) => (expected, outcome),
                (Err(words), Err(error)) => {
                    let message = format!("{error:#}");
                    for word in *words {
                        assert!(
                            message.contains(word),
                            "case `{}`: no `{word}` in: {message}",
                            case.name
                        );
                    }
                    continue;
                }
                (Ok(_), Err(error)) => {
                    panic!("case `{}`: refused, expected a plan: {error:#}", case.name)
                }
                (Err(_), Ok(outcome)) => {
                    panic!(
                        "case `{}`: planned {outcome:?}, expected a refusal",
                        case.name
                    )
                }
            };
            let (expected, outcome) = expected;
            assert_eq!(
                (outcome.row_count, outcome.skipped_rows),
                (expected.rows_to_send, expected.skipped_rows),
                "case `{}`: rows to send and rows skipped",
                case.name
            );
            let shards: Vec<(u64, u64)> = outcome
                .shards
                .iter()
                .map(|shard| (shard.first_row, shard.row_count))
                .collect();
            assert_eq!(
                shards, expected.shards,
                "case `{}`: (first row, rows) of each shard",
                case.name
            );
            for (position, shard) in outcome.shards.iter().enumerate() {
                assert_eq!(
                    shard.shard_index, position as u64,
                    "case `{}`: shards are numbered in order",
                    case.name
                );
                let path = directory.path().join("shards").join(&shard.file_name);
                let text = std::fs::read_to_string(&path).unwrap();
                assert_eq!(
                    (text.lines().count() as u64, text.len() as u64),
                    (shard.row_count, shard.byte_size),
                    "case `{}`: shard {} file matches its record",
                    case.name,
                    shard.shard_index
                );
                assert_eq!(
                    file_sha256(&path).unwrap(),
                    shard.sha256,
                    "case `{}`: shard {} hash",
                    case.name,
                    shard.shard_index
                );
            }
        }
    }
}
