//! The join pass: read the input again in order and give every row exactly one output row,
//! with the answer of its request (found by custom_id in its shard's result files), its status,
//! tokens and cost. Memory holds the results of at most three shards at a time (the one being
//! joined and the next two, read ahead; two when a shard's results are large), never the whole
//! output.
//!
//! Rows the plan did not send because their prompt is empty (`[input] skip_empty`) are found
//! again by rendering them, and get status `skipped`; shards are matched to the rows that were
//! sent, in order.

use std::collections::{BTreeMap, HashMap};

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder, Int64Builder,
    StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::RunDirectory;
use super::input_check::InputCheck;
use super::report::ShardReport;
use super::shard_results::{
    AnswerTexts, Digesting, ResultsById, StoredAnswerTexts, load_shard_results_into,
};
use super::totals::{MoneySum, TokenTotals};
use crate::cost::RunPricer;
use crate::job::{Job, OutputFieldType};
use crate::ledger::{AdoptionState, RowSource, ShardRecord};
use crate::output_fields::{FieldValue, ResultColumn, parse_answer};
use crate::provider::ProviderProfile;
use crate::render::RequestRenderer;
use crate::request_key::RequestKey;
use crate::row_result::classify_result_line;
use crate::row_result::{RowResult, RowStatus};
use crate::table::{AtomicTableWriter, ColumnHints, TableError, TableFormat, open_table_digesting};
use crate::wire::ResultLine;
use crate::wire::{BatchError, BatchStatus};

/// What the join produced, for the report.
pub struct JoinSummary {
    pub rows: u64,
    pub rows_by_status: BTreeMap<String, u64>,
    /// Rows the provider answered (and so billed) without saying the usage: their cost is
    /// unknown and missing from `cost`.
    pub rows_without_usage: u64,
    /// Texts cut to fit an Excel cell (32,767 characters); 0 for the other formats.
    pub output_texts_cut: u64,
    pub tokens: TokenTotals,
    pub cost: MoneySum,
    pub realtime_cost: MoneySum,
    pub shards: Vec<ShardReport>,
    /// Rows with a request of their own in this run's batches.
    pub rows_sent: u64,
    /// Of those, rows whose request another run had in flight and ended without answering.
    pub rows_sent_for_adoptions: u64,
    /// Rows answered by another run's request that was in flight when this run planned.
    pub rows_adopted: u64,
    /// Rows answered from the answer store, and rows that copied an earlier row's answer.
    pub rows_from_store: u64,
    pub rows_deduplicated: u64,
    /// What those rows would have cost sent again, at batch price.
    pub reuse_saved: MoneySum,
}

/// The vector size of an embeddings job's output column.
pub fn embedding_dimensions(job: &Job) -> i32 {
    if let Some(dimensions) = job.spec.request.dimensions {
        return dimensions as i32;
    }
    crate::model_facts::default_embedding_dimensions(&job.spec.request.model) as i32
}

/// The `status` of a row that was not sent because its prompt is empty (`[input] skip_empty`).
pub const SKIPPED_STATUS: &str = "skipped";
const _: () = assert!(
    SKIPPED_STATUS.len() == 7,
    "the same text as RowStatus::Skipped"
);
/// The `error_code` of such a row.
pub const EMPTY_PROMPT_ERROR_CODE: &str = "empty_prompt";

/// The name of result column `column` in the output: with `[output] result_prefix`.
fn result_column_name(job: &Job, column: ResultColumn) -> String {
    format!("{}{}", job.spec.output.result_prefix, column.name())
}

/// The field of result column `column` in the output, named with `[output] result_prefix`;
/// `None` for a column this job does not write (`embedding` outside embeddings jobs).
fn result_field(job: &Job, column: ResultColumn) -> Option<Field> {
    let name = result_column_name(job, column);
    let field = match column {
        ResultColumn::CustomId | ResultColumn::Status => Field::new(name, DataType::Utf8, false),
        ResultColumn::Content
        | ResultColumn::FinishReason
        | ResultColumn::ErrorCode
        | ResultColumn::ErrorMessage
        | ResultColumn::BatchId
        | ResultColumn::RequestId
        | ResultColumn::AnswerSource => Field::new(name, DataType::Utf8, true),
        ResultColumn::PromptTokens
        | ResultColumn::CompletionTokens
        | ResultColumn::ReasoningTokens
        | ResultColumn::TotalTokens => Field::new(name, DataType::Int64, true),
        ResultColumn::Cost => Field::new(name, DataType::Float64, true),
        ResultColumn::Embedding => {
            if !job.is_embeddings() {
                return None;
            }
            Field::new(
                name,
                DataType::FixedSizeList(
                    Arc::new(Field::new("item", DataType::Float32, true)),
                    embedding_dimensions(job),
                ),
                true,
            )
        }
    };
    Some(field)
}

/// Where an output column comes from, to say what two columns of one name are.
enum ColumnOrigin<'a> {
    Input,
    Result(&'static str),
    Declared(&'a str),
}

/// Builds the output schema: kept input columns, result columns, declared fields. Two output
/// columns of one name (an input column named like a column dashbatch adds, or a column kept
/// twice) are an error naming the input column: pandas cannot read such a table, and one of the
/// two would be lost.
pub fn output_schema(
    job: &Job,
    input_schema: &Schema,
) -> Result<(SchemaRef, Vec<usize>), TableError> {
    let kept: Vec<usize> = match &job.spec.output.keep_columns {
        Some(keep) => keep
            .iter()
            .filter_map(|name| input_schema.index_of(name).ok())
            .collect(),
        None => (0..input_schema.fields().len()).collect(),
    };
    let mut fields: Vec<Field> = Vec::new();
    let mut origins: Vec<ColumnOrigin<'_>> = Vec::new();
    for index in &kept {
        fields.push(
            input_schema
                .field(*index)
                .as_ref()
                .clone()
                .with_nullable(true),
        );
        origins.push(ColumnOrigin::Input);
    }
    for column in ResultColumn::ALL {
        if let Some(field) = result_field(job, column) {
            fields.push(field);
            origins.push(ColumnOrigin::Result(column.name()));
        }
    }
    for field in &job.spec.output.fields {
        let data_type = match field.field_type {
            OutputFieldType::String | OutputFieldType::Label => DataType::Utf8,
            OutputFieldType::Integer => DataType::Int64,
            OutputFieldType::Float => DataType::Float64,
            OutputFieldType::Boolean => DataType::Boolean,
        };
        fields.push(Field::new(
            format!("{}{}", job.spec.output.result_prefix, field.name),
            data_type,
            true,
        ));
        origins.push(ColumnOrigin::Declared(&field.name));
    }
    let mut first_of_name: HashMap<&str, usize> = HashMap::new();
    for (index, field) in fields.iter().enumerate() {
        let Some(first) = first_of_name.insert(field.name().as_str(), index) else {
            continue;
        };
        let name = field.name();
        let way_out = "rename it in the input, or set `[output] result_prefix = \"result_\"` in the job file to put a prefix before every column dashbatch adds";
        let message = match (&origins[first], &origins[index]) {
            (ColumnOrigin::Input, ColumnOrigin::Result(result)) => format!(
                "input column `{name}` collides with the result column `{result}` that dashbatch adds to the output (one of the two would be lost); {way_out}"
            ),
            (ColumnOrigin::Input, ColumnOrigin::Declared(declared)) => format!(
                "input column `{name}` collides with the declared output field `{declared}` (`[[output.fields]]`) (one of the two would be lost); {way_out}"
            ),
            (ColumnOrigin::Input, ColumnOrigin::Input) => {
                format!("column `{name}` is listed twice in `[output] keep_columns`; list it once")
            }
            _ => format!(
                "the output would have two columns named `{name}`; rename the declared field or change `[output] result_prefix`"
            ),
        };
        return Err(TableError::new(
            &job.input_path,
            Some(format!("column `{name}`")),
            message,
        ));
    }
    Ok((Arc::new(Schema::new(fields)), kept))
}

enum DeclaredBuilder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Boolean(BooleanBuilder),
}

struct ResultBuilders {
    custom_id: StringBuilder,
    status: StringBuilder,
    content: StringBuilder,
    finish_reason: StringBuilder,
    prompt_tokens: Int64Builder,
    completion_tokens: Int64Builder,
    reasoning_tokens: Int64Builder,
    total_tokens: Int64Builder,
    cost: Float64Builder,
    error_code: StringBuilder,
    error_message: StringBuilder,
    batch_id: StringBuilder,
    request_id: StringBuilder,
    answer_source: StringBuilder,
    declared: Vec<DeclaredBuilder>,
    embedding: Option<FixedSizeListBuilder<Float32Builder>>,
    embedding_dimensions: i32,
}

impl ResultBuilders {
    /// Builders with room for `rows` rows of typical sizes, so a batch's columns are not copied
    /// again and again as they grow.
    fn new(job: &Job, rows: usize) -> ResultBuilders {
        let text = |bytes_per_row: usize| StringBuilder::with_capacity(rows, rows * bytes_per_row);
        let count = || Int64Builder::with_capacity(rows);
        ResultBuilders {
            custom_id: text(16),
            status: text(8),
            content: text(32),
            finish_reason: text(8),
            prompt_tokens: count(),
            completion_tokens: count(),
            reasoning_tokens: count(),
            total_tokens: count(),
            cost: Float64Builder::with_capacity(rows),
            error_code: text(0),
            error_message: text(0),
            batch_id: text(32),
            request_id: text(40),
            answer_source: text(8),
            declared: job
                .spec
                .output
                .fields
                .iter()
                .map(|field| match field.field_type {
                    OutputFieldType::String | OutputFieldType::Label => {
                        DeclaredBuilder::Text(text(16))
                    }
                    OutputFieldType::Integer => DeclaredBuilder::Integer(Int64Builder::new()),
                    OutputFieldType::Float => DeclaredBuilder::Float(Float64Builder::new()),
                    OutputFieldType::Boolean => DeclaredBuilder::Boolean(BooleanBuilder::new()),
                })
                .collect(),
            embedding: job.is_embeddings().then(|| {
                FixedSizeListBuilder::new(Float32Builder::new(), embedding_dimensions(job))
            }),
            embedding_dimensions: embedding_dimensions(job),
        }
    }

    /// Appends one row: its result's status, counts and error, with its answer texts from
    /// `texts` (its shard's text store, or the result itself).
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        custom_id: &str,
        status: &str,
        result: &RowResult,
        texts: AnswerTexts<'_>,
        cost: Option<f64>,
        batch_id: Option<&str>,
        answer_source: Option<AnswerSource>,
        declared_values: Option<&[FieldValue]>,
    ) {
        self.custom_id.append_value(custom_id);
        self.status.append_value(status);
        self.content.append_option(texts.content);
        self.finish_reason.append_option(texts.finish_reason);
        let count = |value: Option<u64>| value.map(|v| v as i64);
        self.prompt_tokens
            .append_option(count(result.prompt_tokens));
        self.completion_tokens
            .append_option(count(result.completion_tokens));
        self.reasoning_tokens
            .append_option(count(result.reasoning_tokens));
        self.total_tokens.append_option(count(result.total_tokens));
        self.cost.append_option(cost);
        self.error_code.append_option(result.error_code.as_deref());
        self.error_message
            .append_option(result.error_message.as_deref());
        self.batch_id.append_option(batch_id);
        self.request_id.append_option(texts.request_id);
        self.answer_source
            .append_option(answer_source.map(AnswerSource::as_str));
        for (index, builder) in self.declared.iter_mut().enumerate() {
            let value = declared_values.and_then(|values| values.get(index));
            match (builder, value) {
                (DeclaredBuilder::Text(b), Some(FieldValue::Text(text))) => b.append_value(text),
                (DeclaredBuilder::Integer(b), Some(FieldValue::Integer(n))) => b.append_value(*n),
                (DeclaredBuilder::Float(b), Some(FieldValue::Float(n))) => b.append_value(*n),
                (DeclaredBuilder::Boolean(b), Some(FieldValue::Boolean(v))) => b.append_value(*v),
                (DeclaredBuilder::Text(b), _) => b.append_null(),
                (DeclaredBuilder::Integer(b), _) => b.append_null(),
                (DeclaredBuilder::Float(b), _) => b.append_null(),
                (DeclaredBuilder::Boolean(b), _) => b.append_null(),
            }
        }
        if let Some(builder) = self.embedding.as_mut() {
            match &result.embedding {
                Some(vector) if vector.len() == self.embedding_dimensions as usize => {
                    builder.values().append_slice(vector);
                    builder.append(true);
                }
                _ => {
                    for _ in 0..self.embedding_dimensions {
                        builder.values().append_null();
                    }
                    builder.append(false);
                }
            }
        }
    }

    /// The result columns in the order of [`ResultColumn::ALL`] (as `output_schema` lists
    /// them), then the declared fields.
    fn finish(&mut self) -> Vec<ArrayRef> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(ResultColumn::ALL.len());
        for column in ResultColumn::ALL {
            let array: ArrayRef = match column {
                ResultColumn::CustomId => Arc::new(self.custom_id.finish()),
                ResultColumn::Status => Arc::new(self.status.finish()),
                ResultColumn::Content => Arc::new(self.content.finish()),
                ResultColumn::FinishReason => Arc::new(self.finish_reason.finish()),
                ResultColumn::PromptTokens => Arc::new(self.prompt_tokens.finish()),
                ResultColumn::CompletionTokens => Arc::new(self.completion_tokens.finish()),
                ResultColumn::ReasoningTokens => Arc::new(self.reasoning_tokens.finish()),
                ResultColumn::TotalTokens => Arc::new(self.total_tokens.finish()),
                ResultColumn::Cost => Arc::new(self.cost.finish()),
                ResultColumn::ErrorCode => Arc::new(self.error_code.finish()),
                ResultColumn::ErrorMessage => Arc::new(self.error_message.finish()),
                ResultColumn::BatchId => Arc::new(self.batch_id.finish()),
                ResultColumn::RequestId => Arc::new(self.request_id.finish()),
                ResultColumn::AnswerSource => Arc::new(self.answer_source.finish()),
                ResultColumn::Embedding => match self.embedding.as_mut() {
                    Some(builder) => Arc::new(builder.finish()),
                    None => continue,
                },
            };
            columns.push(array);
        }
        for builder in &mut self.declared {
            columns.push(match builder {
                DeclaredBuilder::Text(b) => Arc::new(b.finish()),
                DeclaredBuilder::Integer(b) => Arc::new(b.finish()),
                DeclaredBuilder::Float(b) => Arc::new(b.finish()),
                DeclaredBuilder::Boolean(b) => Arc::new(b.finish()),
            });
        }
        columns
    }
}

/// What the join counts into a shard's report as it goes.
struct ShardTotals {
    report: ShardReport,
    cost: MoneySum,
    /// Billed requests by the index of the price tier they were billed at.
    billed_requests_by_tier_index: Vec<u64>,
    rows_by_status: StatusCounts,
}

/// Rows counted by status: a count per row without a name looked up, made names once at the end.
#[derive(Debug, Default, Clone, Copy)]
struct StatusCounts([u64; RowStatus::ALL.len()]);

impl StatusCounts {
    fn count(&mut self, status: RowStatus) {
        self.0[Self::place(status)] += 1;
    }

    /// Where `status` is in `RowStatus::ALL` (a test checks), matched so that a status added
    /// to the enum does not compile until it has a place.
    fn place(status: RowStatus) -> usize {
        match status {
            RowStatus::Ok => 0,
            RowStatus::Failed => 1,
            RowStatus::Expired => 2,
            RowStatus::Cancelled => 3,
            RowStatus::Missing => 4,
            RowStatus::InvalidOutput => 5,
            RowStatus::Skipped => 6,
        }
    }

    /// Adds the counts into `rows_by_status`, by status name.
    fn add_to(&self, rows_by_status: &mut BTreeMap<String, u64>) {
        for (status, count) in RowStatus::ALL.iter().zip(self.0) {
            if count > 0 {
                *rows_by_status
                    .entry(status.as_str().to_owned())
                    .or_default() += count;
            }
        }
    }
}

/// The state of the shard whose rows are being joined.
struct CurrentShard {
    record: ShardRecord,
    batch_status: Option<BatchStatus>,
    results: ResultsById,
    /// Validation errors by 1-based line of the shard file.
    line_errors: HashMap<u64, BatchError>,
    first_error: Option<BatchError>,
    /// Its report and what is counted into it, apart from its results, so that a row's answer
    /// texts are read from the results while the row is counted.
    totals: ShardTotals,
    /// Left unsubmitted because it could have passed the run's budget cap.
    skipped_by_budget: bool,
    /// Rows of this shard joined so far: the next row is on line `rows_joined + 1` of its file.
    rows_joined: u64,
    /// The thread of [`ResultsAhead`] that read its results, which gets them back to fill
    /// again once the shard is joined; `None` when the join read them itself.
    read_by: Option<usize>,
}

/// A planned shard's results by custom_id: read from its result files when they are on disk,
/// into the buffers of `spent` (a shard's results the join is done with) when given.
fn shard_results(
    run_directory: &RunDirectory,
    record: &ShardRecord,
    spent: Option<ResultsById>,
) -> anyhow::Result<ResultsById> {
    let batch_status = record.batch_status.as_ref().map(|_| record.status());
    if !record.results_downloaded {
        return Ok(ResultsById::default());
    }
    load_shard_results_into(
        run_directory,
        record,
        batch_status.unwrap_or(BatchStatus::Unknown),
        spent,
        Digesting::Yes,
    )
}

/// Threads reading shards' results ahead of the join. Reading result lines is the join's
/// largest single piece of work (a profile put one reading thread busy all along while the
/// others waited for it), so two threads read alternate shards, unless a shard's results are
/// large (see [`result_reading_threads`]).
const RESULT_READING_THREADS: usize = 2;

/// Result files (output and error) of one shard larger than this are read by one thread: two
/// hold a third shard's results in memory, which for long answers or embeddings (a shard of
/// 1,024-dimension vectors is about 1 GB of lines) costs more memory than the time it saves.
const LARGE_SHARD_RESULT_BYTES: u64 = 64 << 20;

/// How many threads read the results of `shards` ahead of the join.
fn result_reading_threads(run_directory: &RunDirectory, shards: &[&ShardRecord]) -> usize {
    let largest = shards
        .iter()
        .map(|shard| {
            run_directory
                .results_paths(shard.shard_index)
                .iter()
                .filter_map(|path| std::fs::metadata(path).ok())
                .map(|metadata| metadata.len())
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    if largest > LARGE_SHARD_RESULT_BYTES {
        1
    } else {
        RESULT_READING_THREADS
    }
}

/// The results of the shards to join, read ahead on threads of their own and handed over in
/// shard order.
struct ResultsAhead {
    inboxes: Vec<std::sync::mpsc::Receiver<(u64, anyhow::Result<ResultsById>)>>,
    /// Where each thread gets back the results the join is done with, to fill again.
    spent: Vec<std::sync::mpsc::Sender<ResultsById>>,
    /// The inbox the next shard's results come from.
    next: usize,
}

impl ResultsAhead {
    /// The next shard's index and results; `None` once every shard was handed over, or when
    /// the thread reading it stopped (at an error it already handed over), and the join then
    /// reads that shard itself. (A thread that panicked makes the join's scope panic once it
    /// ends, before any output is put in place.)
    fn recv(&mut self) -> Option<(usize, u64, anyhow::Result<ResultsById>)> {
        let thread = self.next;
        // The turn passes on even when this thread has stopped, so the next shard is still
        // asked of the thread that reads it.
        self.next = (self.next + 1) % self.inboxes.len();
        let (shard_index, results) = self.inboxes[thread].recv().ok()?;
        Some((thread, shard_index, results))
    }

    /// Hands the results of a joined shard back to the thread that read them, to be filled
    /// with a later shard's (dropped if that thread has ended).
    fn hand_back(&self, thread: usize, results: ResultsById) {
        let _ = self.spent[thread].send(results);
    }
}

/// Reads the results of `shards` (in order) on `threads` threads of `scope`, shard `i` on
/// thread `i % threads`, ahead of the join: the join takes each shard's results when it
/// reaches the shard. A thread stops at its first error (handed over in its place) or when the
/// join stops taking results.
fn read_results_ahead<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    run_directory: &'env RunDirectory,
    shards: Vec<&'env ShardRecord>,
    threads: usize,
) -> ResultsAhead {
    let mut inboxes = Vec::with_capacity(threads);
    let mut spent = Vec::with_capacity(threads);
    for thread in 0..threads {
        let (spent_outbox, spent_inbox) = std::sync::mpsc::channel::<ResultsById>();
        // A rendezvous: each thread holds at most the one shard it read and has not handed over.
        let (results, results_inbox) = std::sync::mpsc::sync_channel(0);
        let own_shards: Vec<&ShardRecord> = shards
            .iter()
            .copied()
            .skip(thread)
            .step_by(threads)
            .collect();
        scope.spawn(move || {
            for record in own_shards {
                let read = shard_results(run_directory, record, spent_inbox.try_recv().ok());
                let failed = read.is_err();
                if results.send((record.shard_index, read)).is_err() || failed {
                    return;
                }
            }
        });
        inboxes.push(results_inbox);
        spent.push(spent_outbox);
    }
    ResultsAhead {
        inboxes,
        spent,
        next: 0,
    }
}

/// Writes the record batches sent to it with `writer` on a thread of `scope`, at most two
/// batches behind the sender; joined, it gives the writer back to be finished, or the first
/// error (after which it takes no more batches).
fn write_behind<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut writer: AtomicTableWriter,
) -> (
    std::sync::mpsc::SyncSender<RecordBatch>,
    std::thread::ScopedJoinHandle<'scope, anyhow::Result<AtomicTableWriter>>,
) {
    let (batches, batch_inbox) = std::sync::mpsc::sync_channel::<RecordBatch>(1);
    let writing = scope.spawn(move || {
        for batch in batch_inbox {
            writer.write(&batch)?;
        }
        Ok(writer)
    });
    (batches, writing)
}

fn open_shard(
    record: &ShardRecord,
    results: ResultsById,
    read_by: Option<usize>,
    pricer: &RunPricer,
    skipped_by_budget: bool,
) -> anyhow::Result<CurrentShard> {
    let batch_status = record.batch_status.as_ref().map(|_| record.status());
    let errors: Vec<BatchError> = record
        .batch_errors
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let first_error = errors.first().cloned();
    let line_errors = errors
        .into_iter()
        .filter_map(|error| error.line.map(|line| (line, error)))
        .collect();
    Ok(CurrentShard {
        totals: ShardTotals {
            report: ShardReport {
                shard_index: record.shard_index,
                first_row: record.first_row,
                row_count: record.row_count,
                batch_id: record.batch_id.clone(),
                batch_status: record.batch_status.clone(),
                rows_by_status: BTreeMap::new(),
                tokens: TokenTotals::default(),
                cost: None,
                billed_requests_by_price_tier: BTreeMap::new(),
                estimate_vs_actual: None,
            },
            cost: MoneySum::new(pricer.currency()),
            billed_requests_by_tier_index: Vec::new(),
            rows_by_status: StatusCounts::default(),
        },
        record: record.clone(),
        batch_status,
        results,
        line_errors,
        first_error,
        skipped_by_budget,
        rows_joined: 0,
        read_by,
    })
}

impl CurrentShard {
    /// Puts the result of the request on `line` (from 1) of this shard's file into `into`,
    /// but for a chat answer's texts, which stay in the shard's text store where the returned
    /// place says ([`ResultsById::take_leaving_texts`]).
    fn fill_result_for(
        &mut self,
        custom_id: &str,
        line: u64,
        into: &mut RowResult,
    ) -> Option<StoredAnswerTexts> {
        if let Some(stored_texts) = self.results.take_leaving_texts(custom_id, into) {
            self.results.prefetch_next();
            return stored_texts;
        }
        *into = self.unanswered_result(line);
        None
    }

    /// The result of the request on `line` when its shard's results have none: why.
    fn unanswered_result(&self, line: u64) -> RowResult {
        if self.batch_status == Some(BatchStatus::Failed) {
            let error = self.line_errors.get(&line).or(self.first_error.as_ref());
            let mut result = RowResult::unanswered(Some(BatchStatus::Failed));
            if let Some(error) = error {
                result.error_code = error.code.clone().or(result.error_code);
                let own = self.line_errors.contains_key(&line);
                result.error_message = Some(match (&error.message, own) {
                    (Some(message), true) => message.clone(),
                    (Some(message), false) => {
                        format!("the batch failed validation because of another row: {message}")
                    }
                    (None, _) => "the batch failed validation".to_owned(),
                });
            }
            return result;
        }
        if let Some(reason) = &self.record.results_unavailable {
            return RowResult {
                status: Some(RowStatus::Failed),
                error_code: Some("results_unavailable".into()),
                error_message: Some(format!(
                    "{reason}; the batch reported {} request(s) completed, which the provider billed",
                    self.record.request_completed
                )),
                ..RowResult::default()
            };
        }
        if self.record.batch_id.is_none() && self.skipped_by_budget {
            return RowResult {
                status: Some(RowStatus::Missing),
                error_code: Some(super::budget::BUDGET_CAP_ERROR_CODE.into()),
                error_message: Some(
                    "not submitted: this row's shard could have taken the run past its budget cap (max_cost); \
                     raise the cap with `--max-cost` and run the job again to submit it"
                        .into(),
                ),
                ..RowResult::default()
            };
        }
        if self.record.batch_id.is_none() {
            return RowResult {
                status: Some(RowStatus::Missing),
                error_code: Some("not_submitted".into()),
                error_message: Some("this row's shard was never submitted".into()),
                ..RowResult::default()
            };
        }
        RowResult::unanswered(self.batch_status)
    }
}

/// Checks an `ok` answer against what the job asked for: declared fields parsed from its JSON,
/// an embedding of the right size. An answer that does not fit becomes `invalid_output`
/// (billed, but not an answer; never stored for reuse). Returns the declared fields' values.
/// The answer is `stored_content` when it is given (an answer the join writes from its shard's
/// text store), else the result's own.
pub(super) fn judge_answer(
    job: &Job,
    result: &mut RowResult,
    stored_content: Option<&str>,
) -> Option<Vec<FieldValue>> {
    let mut declared_values = None;
    if result.status() == RowStatus::Ok && !job.spec.output.fields.is_empty() {
        let content = stored_content.or(result.content.as_deref()).unwrap_or("");
        match parse_answer(&job.spec.output.fields, content) {
            Ok(values) => declared_values = Some(values),
            Err(reason) => mark_invalid_output(result, reason),
        }
    }
    if job.is_embeddings()
        && result.status() == RowStatus::Ok
        && result.embedding.as_ref().map(Vec::len) != Some(embedding_dimensions(job) as usize)
    {
        let reason = format!(
            "the embedding has {} values, expected {}",
            result.embedding.as_ref().map_or(0, Vec::len),
            embedding_dimensions(job)
        );
        mark_invalid_output(result, reason);
    }
    declared_values
}

/// Marks a row whose answer is not what the job declared: status `invalid_output`, and why.
pub(super) fn mark_invalid_output(result: &mut RowResult, reason: String) {
    result.status = Some(RowStatus::InvalidOutput);
    result.error_code = Some("invalid_output".into());
    result.error_message = Some(reason);
}

/// The outcome of a finished input check; a panic on its thread is raised again here.
fn input_check_outcome(
    checking: std::thread::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    checking
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Waits for the input check to end, or for a signal: a stop requested while the input is
/// still being hashed is not held up by it (the thread only reads, and ends with the process).
fn wait_for_input_check(
    checking: std::thread::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    while !checking.is_finished() {
        crate::interrupt::check()?;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    input_check_outcome(checking)
}

/// The input hashed again on a thread of its own (a pass over all of it).
fn hash_input_again(
    check: &InputCheck,
) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let check = check.clone();
    std::thread::Builder::new()
        .name("input-check".into())
        .spawn(move || check.hash_again())
}

/// Joins results to the input and writes the output table atomically. With `check_input`, the
/// output is in place only once the input passed it: a CSV file by the digest of the bytes the
/// rows were read from, any other input hashed again alongside the join.
#[allow(clippy::too_many_arguments)]
pub fn join_results(
    job: &Job,
    profile: &ProviderProfile,
    run_directory: &RunDirectory,
    ledger: &crate::ledger::Ledger,
    shards: &[ShardRecord],
    pricer: &RunPricer,
    output_path: &Path,
    output_format: TableFormat,
    budget_skipped: &std::collections::BTreeSet<u64>,
    check_input: Option<InputCheck>,
    on_rows: &dyn Fn(u64),
) -> anyhow::Result<JoinSummary> {
    let (reader, read_digest) = open_table_digesting(
        &job.input_path,
        job.input_format,
        &job.input_options,
        check_input.as_ref().map(InputCheck::algorithm),
    )?;
    let input_schema = reader.schema();
    let renderer = RequestRenderer::new(job, profile, &input_schema)?;
    let (schema, kept) = output_schema(job, &input_schema)?;
    // Every row has its own custom_id, and nearly every one its own request id, which is
    // random (a UUID from DashScope and the simulator, `req_` and hex digits from OpenAI's).
    let hints = ColumnHints {
        all_different: vec![result_column_name(job, ResultColumn::CustomId)],
        random: vec![result_column_name(job, ResultColumn::RequestId)],
    };
    let writer = AtomicTableWriter::create_for_output(
        output_path,
        output_format,
        schema.clone(),
        job.spec.output.bom,
        &hints,
    )?;

    let mut summary = JoinSummary {
        rows: 0,
        rows_by_status: BTreeMap::new(),
        rows_without_usage: 0,
        output_texts_cut: 0,
        tokens: TokenTotals::default(),
        cost: MoneySum::new(pricer.currency()),
        realtime_cost: MoneySum::new(pricer.currency()),
        shards: Vec::new(),
        rows_sent: 0,
        rows_sent_for_adoptions: 0,
        rows_adopted: 0,
        rows_from_store: 0,
        rows_deduplicated: 0,
        reuse_saved: MoneySum::new(pricer.currency()),
    };
    // Retry shards carry rows of earlier shards; their results arrive as row overrides. The
    // planned shards hold every row once, in input order.
    let planned_shards: Vec<&ShardRecord> =
        shards.iter().filter(|shard| shard.attempt <= 1).collect();
    let reading_threads = result_reading_threads(run_directory, &planned_shards);
    let mut shard_iter = planned_shards.iter().copied();
    let has_overrides = ledger.has_overrides()?;
    let mut row_sources = RowSourceCursor::new(ledger);
    // Shared results are written while joining: one transaction, not one per row.
    let writes_shared_results = ledger.has_row_sources()?;
    if writes_shared_results {
        ledger.begin_bulk()?;
    }
    let mut current: Option<CurrentShard> = None;
    // One result for every row sent; a chat answer's texts stay in its shard's text store, so
    // no string is made for them.
    let mut result = RowResult::default();
    // The run's rows by status, named into the summary at the end.
    let mut rows_by_status = StatusCounts::default();
    let mut answer_judge = super::answer_judge::AnswerJudge::new(job);
    let mut row_number: u64 = 0;
    let mut rows_sent: u64 = 0;

    let finish_shard = |shard: CurrentShard, summary: &mut JoinSummary| {
        let totals = shard.totals;
        let mut report = totals.report;
        totals.rows_by_status.add_to(&mut report.rows_by_status);
        report.cost = totals.cost.total.map(|money| money.to_decimal_string());
        report.billed_requests_by_price_tier = totals
            .billed_requests_by_tier_index
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(tier_index, count)| (pricer.tier_label(tier_index), *count))
            .collect();
        summary.shards.push(report);
    };

    // The input is read and parsed, the next shards' results read, and the output encoded and
    // written on threads of their own while this one joins the rows.
    let mut input_checking = check_input
        .as_ref()
        .filter(|_| read_digest.is_none())
        .map(hash_input_again)
        .transpose()?;
    let joined = std::thread::scope(|scope| -> anyhow::Result<AtomicTableWriter> {
        let mut results_ahead = read_results_ahead(
            scope,
            run_directory,
            planned_shards.clone(),
            reading_threads,
        );
        let batches = super::ordered_rendering::read_ahead(scope, reader, None);
        let (to_writer, writing) = write_behind(scope, writer);
        for read in batches {
            let (batch, _) = read?;
            // A signal stops the local stage between record batches, never silently later.
            crate::interrupt::check()?;
            // A changed input stops the join as soon as its hash says so.
            if let Some(checking) = input_checking.take_if(|checking| checking.is_finished()) {
                input_check_outcome(checking)?;
            }
            on_rows(row_number);
            let mut builders = ResultBuilders::new(job, batch.num_rows());
            for row in 0..batch.num_rows() {
                row_number += 1;
                let custom_id = renderer.custom_id(&batch, row, row_number)?;
                if let Some(reason) =
                    renderer.skipped_reason(&batch, row, row_number, &custom_id)?
                {
                    let result = RowResult {
                        error_code: Some(EMPTY_PROMPT_ERROR_CODE.into()),
                        error_message: Some(format!("not sent: {reason}")),
                        ..RowResult::default()
                    };
                    rows_by_status.count(RowStatus::Skipped);
                    builders.append(
                        &custom_id,
                        SKIPPED_STATUS,
                        &result,
                        AnswerTexts::default(),
                        Some(0.0),
                        None,
                        None,
                        None,
                    );
                    continue;
                }
                let row_source = row_sources.source_of(row_number)?;
                if let Some((source, key)) = row_source
                    && source != RowSource::SharedWithCopies
                {
                    let (mut result, answering_batch, answer_source) =
                        reused_result(ledger, source, &key, row_number)?;
                    let declared_values = answer_judge.judge(&mut result, None);
                    let row_cost = if answer_source == AnswerSource::Batch {
                        // An adopted request this run sent itself: its own, billed here.
                        summary.rows_sent_for_adoptions += 1;
                        account_billed_row(&mut summary, &mut rows_by_status, None, pricer, &result)
                            .map(|cost| cost.batch.to_f64())
                    } else {
                        if let Some(cost) = pricer.row_cost(&result) {
                            summary.reuse_saved.add(cost.batch);
                        }
                        match answer_source {
                            AnswerSource::Store => summary.rows_from_store += 1,
                            AnswerSource::Adopted => summary.rows_adopted += 1,
                            _ => summary.rows_deduplicated += 1,
                        }
                        rows_by_status.count(result.status());
                        Some(0.0)
                    };
                    builders.append(
                        &custom_id,
                        result.status().as_str(),
                        &result,
                        AnswerTexts::of(&result),
                        row_cost,
                        answering_batch.as_deref(),
                        Some(answer_source),
                        declared_values,
                    );
                    continue;
                }
                rows_sent += 1;
                while current
                    .as_ref()
                    .is_none_or(|shard| shard.rows_joined >= shard.record.row_count)
                {
                    if let Some(mut done) = current.take() {
                        if let Some(thread) = done.read_by {
                            results_ahead.hand_back(thread, std::mem::take(&mut done.results));
                        }
                        finish_shard(done, &mut summary);
                    }
                    let record = shard_iter.next().ok_or_else(|| {
                anyhow::anyhow!(
                    "row {row_number} of `{}` belongs to no shard: the input changed since the run was planned; start a new run",
                    job.input_path.display()
                )
            })?;
                    if record.first_row != row_number {
                        anyhow::bail!(
                            "shard {} starts at row {} but row {row_number} of `{}` comes next: the input changed since the run was planned; start a new run",
                            record.shard_index,
                            record.first_row,
                            job.input_path.display()
                        );
                    }
                    let (results, read_by) = match results_ahead.recv() {
                        Some((thread, shard_index, results))
                            if shard_index == record.shard_index =>
                        {
                            (results?, Some(thread))
                        }
                        _ => (shard_results(run_directory, record, None)?, None),
                    };
                    current = Some(open_shard(
                        record,
                        results,
                        read_by,
                        pricer,
                        budget_skipped.contains(&record.shard_index),
                    )?);
                }
                let shard = current.as_mut().expect("current shard set above");
                shard.rows_joined += 1;
                let line = shard.rows_joined;
                let mut stored_texts = shard.fill_result_for(&custom_id, line, &mut result);
                let mut overriding_batch = None;
                if has_overrides
                    && result.status() != RowStatus::Ok
                    && let Some((batch_id, text)) = ledger.row_override(&custom_id)?
                {
                    result = serde_json::from_str(&text)?;
                    stored_texts = None;
                    overriding_batch = Some(batch_id);
                }
                // Read from the store once, while the row is judged, counted and appended.
                let stored = stored_texts.map(|stored| shard.results.answer_texts(stored));
                let declared_values =
                    answer_judge.judge(&mut result, stored.and_then(|texts| texts.content));
                let row_cost = account_billed_row(
                    &mut summary,
                    &mut rows_by_status,
                    Some(&mut shard.totals),
                    pricer,
                    &result,
                );
                // The shard's batch answered the row, unless a retry did.
                let answering_batch = match &overriding_batch {
                    Some(batch_id) => batch_id.as_deref(),
                    None => shard.record.batch_id.as_deref(),
                };
                let texts = stored.unwrap_or_else(|| AnswerTexts::of(&result));
                if let Some((RowSource::SharedWithCopies, key)) = row_source {
                    let whole = texts.put_into(result.clone());
                    ledger.set_shared_result(
                        &key,
                        &serde_json::to_string(&whole)?,
                        answering_batch,
                    )?;
                }
                builders.append(
                    &custom_id,
                    result.status().as_str(),
                    &result,
                    texts,
                    row_cost.map(|cost| cost.batch.to_f64()),
                    answering_batch,
                    Some(AnswerSource::Batch),
                    declared_values,
                );
            }
            summary.rows += batch.num_rows() as u64;
            let mut columns: Vec<ArrayRef> = kept
                .iter()
                .map(|index| batch.column(*index).clone())
                .collect();
            columns.extend(builders.finish());
            let output = RecordBatch::try_new(schema.clone(), columns)?;
            if to_writer.send(output).is_err() {
                // The writer stopped at an error, which joining it gives.
                break;
            }
            crate::kill_point::reach("during_join");
        }
        drop(to_writer);
        writing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    // A changed input explains any error the join met (a row past the last shard), so its
    // error comes first; a join stopped by a signal does not wait for it.
    let interrupted = joined
        .as_ref()
        .is_err_and(crate::interrupt::is_interruption);
    if let Some(checking) = input_checking.take() {
        if !interrupted || checking.is_finished() {
            wait_for_input_check(checking)?;
        }
    } else if let (Some(check), Some(read_digest)) = (&check_input, &read_digest)
        && !interrupted
    {
        match read_digest.of_whole_file() {
            Some(digest) => check.judge_digest(&digest)?,
            // The join stopped before the input's end (at an error), or a compressed stream
            // ended before the file: the input is hashed again to tell whether it changed.
            None => wait_for_input_check(hash_input_again(check)?)?,
        }
    }
    let writer = joined?;
    if let Some(done) = current.take() {
        finish_shard(done, &mut summary);
    }
    let planned_rows: u64 = planned_shards.iter().map(|shard| shard.row_count).sum();
    if rows_sent != planned_rows {
        anyhow::bail!(
            "`{}` has {rows_sent} rows to send but the run planned {planned_rows}: the input changed since the run was planned; start a new run",
            job.input_path.display(),
        );
    }
    if writes_shared_results {
        ledger.commit_bulk()?;
    }
    rows_by_status.add_to(&mut summary.rows_by_status);
    summary.rows_sent = rows_sent + summary.rows_sent_for_adoptions;
    crate::kill_point::reach("during_output_write");
    summary.output_texts_cut = writer.finish()?;
    Ok(summary)
}

/// Adds a row answered by this run's own request to the run's totals (and its shard's, when it
/// has one): status, billed cost at batch and realtime price, price tier, tokens. Returns its cost.
fn account_billed_row(
    summary: &mut JoinSummary,
    rows_by_status: &mut StatusCounts,
    mut shard: Option<&mut ShardTotals>,
    pricer: &RunPricer,
    result: &RowResult,
) -> Option<crate::cost::RowCost> {
    let row_cost = pricer.row_cost(result);
    if result.status().was_billed() && RunPricer::billed_usage(result).is_none() {
        summary.rows_without_usage += 1;
    }
    if let Some(cost) = row_cost {
        summary.cost.add(cost.batch);
        summary.realtime_cost.add(cost.realtime);
        if let Some(shard) = shard.as_deref_mut() {
            shard.cost.add(cost.batch);
            let counts = &mut shard.billed_requests_by_tier_index;
            if counts.len() <= cost.tier_index {
                counts.resize(cost.tier_index + 1, 0);
            }
            counts[cost.tier_index] += 1;
        }
    }
    if let Some(usage) = RunPricer::billed_usage(result) {
        let total = result
            .total_tokens
            .unwrap_or(usage.prompt_tokens + usage.completion_tokens);
        let add = |tokens: &mut TokenTotals| {
            tokens.prompt_tokens += usage.prompt_tokens;
            tokens.completion_tokens += usage.completion_tokens;
            tokens.reasoning_tokens += usage.reasoning_tokens;
            tokens.total_tokens += total;
        };
        add(&mut summary.tokens);
        if let Some(shard) = shard.as_deref_mut() {
            add(&mut shard.report.tokens);
        }
    }
    rows_by_status.count(result.status());
    if let Some(shard) = shard {
        shard.rows_by_status.count(result.status());
    }
    row_cost
}

/// Where a row's answer came from (`answer_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSource {
    /// Its own request in one of this run's batches.
    Batch,
    /// The answer store.
    Store,
    /// An earlier row of this run with the same request.
    Dedup,
    /// Another run's request, in flight when this run planned.
    Adopted,
}

impl AnswerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerSource::Batch => "batch",
            AnswerSource::Store => "store",
            AnswerSource::Dedup => "dedup",
            AnswerSource::Adopted => "adopted",
        }
    }
}

/// The result of a row answered without a request of its own: the store's answer pinned in the
/// ledger, or the final result of the earlier row with the same request; with its batch.
fn reused_result(
    ledger: &crate::ledger::Ledger,
    source: RowSource,
    key: &RequestKey,
    row_number: u64,
) -> anyhow::Result<(RowResult, Option<String>, AnswerSource)> {
    let missing = |what: &str| {
        ledger.corrupt(format!(
            "row {row_number} takes its answer from {what} (request key {}), which the ledger does not hold",
            key.to_hex()
        ))
    };
    // A pinned answer: the result line the store (or the other run) gave, as the provider wrote it.
    let pinned = |what: &str| -> anyhow::Result<(RowResult, Option<String>)> {
        let (line, batch_id) = ledger.pinned_answer(key)?.ok_or_else(|| missing(what))?;
        let parsed: ResultLine = serde_json::from_str(&line).map_err(|error| {
            ledger.corrupt(format!(
                "row {row_number}'s answer from {what} is not a result line: {error}"
            ))
        })?;
        Ok((
            classify_result_line(&parsed, BatchStatus::Completed),
            batch_id,
        ))
    };
    match source {
        RowSource::Store => {
            let (result, batch_id) = pinned("the answer store")?;
            Ok((result, batch_id, AnswerSource::Store))
        }
        RowSource::Adopted => {
            let adoption = ledger
                .adoption(key)?
                .ok_or_else(|| missing("another run's request in flight"))?;
            match adoption.state {
                AdoptionState::Answered => {
                    let (result, batch_id) = pinned("another run's answer")?;
                    Ok((result, batch_id, AnswerSource::Adopted))
                }
                AdoptionState::Sent => match ledger.row_override(&adoption.custom_id)? {
                    Some((batch_id, text)) => {
                        let source = if adoption.row_number == row_number {
                            AnswerSource::Batch
                        } else {
                            AnswerSource::Dedup
                        };
                        Ok((serde_json::from_str(&text)?, batch_id, source))
                    }
                    // Planned to be sent here, never submitted (the budget cap held it back).
                    None => Ok((
                        RowResult {
                            status: Some(RowStatus::Missing),
                            error_code: Some("not_submitted".into()),
                            error_message: Some(format!(
                                "run `{}` had this request in flight and stopped without answering; this run did not submit it (see `budget` in report.json): raise `--max-cost` and run the job again with `--run-dir`",
                                adoption.other_run_directory
                            )),
                            ..RowResult::default()
                        },
                        None,
                        AnswerSource::Adopted,
                    )),
                },
                AdoptionState::Waiting => Ok((
                    RowResult {
                        status: Some(RowStatus::Missing),
                        error_code: Some("not_answered".into()),
                        error_message: Some(format!(
                            "run `{}` had this request in flight and its answer has not arrived; run `dashbatch resume` on this run to wait for it",
                            adoption.other_run_directory
                        )),
                        ..RowResult::default()
                    },
                    None,
                    AnswerSource::Adopted,
                )),
            }
        }
        RowSource::Dedup | RowSource::SharedWithCopies => {
            let (text, batch_id) = ledger
                .shared_result(key)?
                .ok_or_else(|| missing("an earlier row"))?;
            Ok((serde_json::from_str(&text)?, batch_id, AnswerSource::Dedup))
        }
    }
}

/// The rows of the run whose answers come from elsewhere, read from the ledger in row order a
/// few thousand at a time, as the join walks the input.
struct RowSourceCursor<'a> {
    ledger: &'a crate::ledger::Ledger,
    buffered: std::collections::VecDeque<(u64, RowSource, RequestKey)>,
    read_after: u64,
    exhausted: bool,
}

impl<'a> RowSourceCursor<'a> {
    fn new(ledger: &'a crate::ledger::Ledger) -> RowSourceCursor<'a> {
        RowSourceCursor {
            ledger,
            buffered: std::collections::VecDeque::new(),
            read_after: 0,
            exhausted: false,
        }
    }

    /// The source of row `row_number` (rows are asked in increasing order).
    fn source_of(&mut self, row_number: u64) -> anyhow::Result<Option<(RowSource, RequestKey)>> {
        loop {
            if let Some((row, _, _)) = self.buffered.front() {
                if *row < row_number {
                    self.buffered.pop_front();
                    continue;
                }
                if *row > row_number {
                    return Ok(None);
                }
                let (_, source, key) = self.buffered.pop_front().expect("front exists");
                return Ok(Some((source, key)));
            }
            if self.exhausted {
                return Ok(None);
            }
            let next = self.ledger.row_sources_after(self.read_after, 4096)?;
            match next.last() {
                Some((row, _, _)) => self.read_after = *row,
                None => self.exhausted = true,
            }
            self.buffered.extend(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::load_job;
    use crate::ledger::Ledger;
    use crate::pricing::PriceTable;
    use crate::provider::ProviderKind;

    #[test]
    fn statuses_are_counted_by_their_place_and_named_at_the_end() {
        for (place, status) in RowStatus::ALL.iter().enumerate() {
            assert_eq!(StatusCounts::place(*status), place, "{status:?}");
        }
        let mut counts = StatusCounts::default();
        for status in [
            RowStatus::Ok,
            RowStatus::Ok,
            RowStatus::Skipped,
            RowStatus::Failed,
        ] {
            counts.count(status);
        }
        let mut named = BTreeMap::from([("ok".to_owned(), 5)]);
        counts.add_to(&mut named);
        assert_eq!(
            named,
            BTreeMap::from([
                ("ok".to_owned(), 7),
                ("failed".to_owned(), 1),
                (SKIPPED_STATUS.to_owned(), 1)
            ])
        );
    }

    #[test]
    fn shards_with_large_results_are_read_by_one_thread() {
        let directory = tempfile::tempdir().unwrap();
        let run_directory = RunDirectory::new(directory.path().join("run"));
        let shards: Vec<ShardRecord> = (0..3)
            .map(|index| {
                ShardRecord::planned(index, 1, format!("shard-{index:05}.jsonl"), "m".into(), 1)
            })
            .collect();
        let planned: Vec<&ShardRecord> = shards.iter().collect();
        // No results on disk yet, then small ones: two threads.
        assert_eq!(result_reading_threads(&run_directory, &planned), 2);
        let output = run_directory.output_results_path(1);
        std::fs::create_dir_all(output.parent().unwrap()).unwrap();
        std::fs::write(&output, "{}\n").unwrap();
        assert_eq!(result_reading_threads(&run_directory, &planned), 2);
        // One shard whose output and error files together pass the limit: one thread.
        let errors = std::fs::File::create(run_directory.error_results_path(1)).unwrap();
        errors.set_len(LARGE_SHARD_RESULT_BYTES).unwrap();
        assert_eq!(result_reading_threads(&run_directory, &planned), 1);
    }

    #[test]
    fn output_columns_of_one_name_are_refused_and_result_prefix_avoids_them() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(
            directory.path().join("job.toml"),
            "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n[[output.fields]]\nname = \"mood\"\ntype = \"string\"\n",
        )
        .unwrap();
        let mut job = load_job(&directory.path().join("job.toml")).unwrap();
        let input = Schema::new(vec![
            Field::new("text", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
        ]);
        let message = output_schema(&job, &input).unwrap_err().to_string();
        assert!(
            message.contains("rows.csv, column `status`: input column `status` collides with the result column `status`"),
            "{message}"
        );
        assert!(message.contains("result_prefix"), "{message}");
        let moody = Schema::new(vec![Field::new("mood", DataType::Utf8, false)]);
        let message = output_schema(&job, &moody).unwrap_err().to_string();
        assert!(
            message.contains("collides with the declared output field `mood`"),
            "{message}"
        );

        job.spec.output.result_prefix = "r_".into();
        let (schema, kept) = output_schema(&job, &input).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(kept, [0, 1]);
        assert_eq!(&names[..4], ["text", "status", "r_custom_id", "r_status"]);
        assert_eq!(names.last(), Some(&"r_mood"));
        assert_eq!(names.len(), 2 + ResultColumn::ALL.len() - 1 + 1);

        job.spec.output.keep_columns = Some(vec!["text".into(), "text".into()]);
        let message = output_schema(&job, &input).unwrap_err().to_string();
        assert!(message.contains("listed twice"), "{message}");
    }

    fn success_line(custom_id: &str, content: &str) -> String {
        format!(
            r#"{{"id":"r-{custom_id}","custom_id":"{custom_id}","response":{{"status_code":200,"request_id":"q-{custom_id}","body":{{"usage":{{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}},"choices":[{{"index":0,"finish_reason":"stop","message":{{"role":"assistant","content":{content}}}}}]}}}},"error":null}}"#
        )
    }

    #[test]
    fn rows_come_back_in_input_order_with_one_row_each_and_exact_costs() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("rows.csv"), "text\na\nb\nc\nd\n").unwrap();
        std::fs::write(
            directory.path().join("job.toml"),
            "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n[[output.fields]]\nname = \"n\"\ntype = \"integer\"\n",
        )
        .unwrap();
        let job = load_job(&directory.path().join("job.toml")).unwrap();
        let run_directory = RunDirectory::new(directory.path().join("run"));
        run_directory.create().unwrap();
        // Results out of order; row 3 never answered; row 4 answered with JSON that does not fit.
        std::fs::write(
            run_directory.output_results_path(0),
            [
                success_line("2", r#""{\"n\": 2}""#),
                success_line("1", r#""{\"n\": 1}""#),
                success_line("4", r#""not json""#),
            ]
            .join("\n"),
        )
        .unwrap();
        let shard = ShardRecord {
            row_count: 4,
            file_id: Some("file-1".into()),
            batch_id: Some("batch-1".into()),
            batch_status: Some("completed".into()),
            request_total: 4,
            request_completed: 3,
            output_file_id: Some("file-out".into()),
            results_downloaded: true,
            retry_scanned: true,
            ..ShardRecord::planned(0, 1, "shard-00000.jsonl".into(), "qwen-plus".into(), 1)
        };
        let ledger = Ledger::open(&run_directory.root).unwrap();
        let pricer = RunPricer::new(
            PriceTable::for_provider(crate::provider::ProviderKind::Dashscope),
            "qwen-plus",
            false,
        );
        let output = directory.path().join("out.csv");
        let summary = join_results(
            &job,
            &ProviderProfile::for_kind(ProviderKind::Sim),
            &run_directory,
            &ledger,
            &[shard],
            &pricer,
            &output,
            TableFormat::Csv,
            &std::collections::BTreeSet::new(),
            None,
            &|_| {},
        )
        .unwrap();
        assert_eq!(summary.rows, 4);
        let mut reader = csv::Reader::from_path(&output).unwrap();
        let headers = reader.headers().unwrap().clone();
        let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let values = |name: &str| {
            rows.iter()
                .map(|row| row[column(name)].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(values("text"), ["a", "b", "c", "d"]);
        assert_eq!(values("custom_id"), ["1", "2", "3", "4"]);
        assert_eq!(values("status"), ["ok", "ok", "missing", "invalid_output"]);
        assert_eq!(values("n"), ["1", "2", "", ""]);
        assert!(values("error_message")[3].contains("not valid JSON"));
        // qwen-plus at batch price: 0.4 CNY per 1M input, 1 CNY per 1M output. Three billed rows
        // (invalid output is still billed) of 1,000 + 500 tokens: 3 × (0.0004 + 0.0005).
        assert_eq!(summary.cost.total.unwrap().to_decimal_string(), "0.0027");
        assert_eq!(
            summary.realtime_cost.total.unwrap().to_decimal_string(),
            "0.0054"
        );
        assert_eq!(summary.rows_by_status["missing"], 1);
    }
}
