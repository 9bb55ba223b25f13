//! The run ledger: a SQLite database in the run directory holding everything needed to resume a
//! run: the job and input fingerprints, every shard, and every side effect as an intent written
//! (and synced) before the call and an outcome written after it.
//!
//! No secret is ever written here: not the API key, not request headers.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::request_key::RequestKey;
use crate::wire::BatchStatus;

pub const LEDGER_FILE_NAME: &str = "ledger.sqlite";

/// The name a new ledger is built under before it is renamed to [`LEDGER_FILE_NAME`].
pub const FOUNDING_LEDGER_FILE_NAME: &str = "ledger.sqlite.founding";

/// What SQLite appends to a database's name for the files it keeps beside it.
pub const SQLITE_FILE_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

#[derive(Debug, thiserror::Error)]
#[error("run ledger `{path}`: {message}", path = path.display())]
pub struct LedgerError {
    pub path: PathBuf,
    pub message: String,
}

/// One shard as planned and as far as it has got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardRecord {
    pub shard_index: u64,
    pub first_row: u64,
    pub row_count: u64,
    pub file_name: String,
    pub byte_size: u64,
    pub sha256: String,
    pub model: String,
    pub file_id: Option<String>,
    pub batch_id: Option<String>,
    pub batch_status: Option<String>,
    pub request_total: u64,
    pub request_completed: u64,
    pub request_failed: u64,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub results_downloaded: bool,
    /// JSON of the batch's validation errors, when it failed.
    pub batch_errors: Option<String>,
    /// 1 for the planned shards; retry shards (rows whose request failed transiently) count up.
    pub attempt: u32,
    /// Whether this shard's transient failures were already collected into a retry shard.
    pub retry_scanned: bool,
    /// For retry shards: whether their results were recorded as row overrides.
    pub results_ingested: bool,
    /// Why a result file of this shard could not be fetched, when it could not.
    pub results_unavailable: Option<String>,
    /// Whether this shard's `ok` answers were recorded in the answer store (or the run has none).
    pub answers_stored: bool,
}

impl ShardRecord {
    /// The batch's last recorded status; `Unknown` before it has one.
    pub fn status(&self) -> BatchStatus {
        self.batch_status
            .as_deref()
            .map_or(BatchStatus::Unknown, BatchStatus::parse)
    }

    /// Whether the shard's batch exists and has not settled yet.
    pub fn has_live_batch(&self) -> bool {
        self.batch_id.is_some() && !self.status().is_terminal()
    }

    /// A shard as planned: written to disk, nothing sent yet.
    pub fn planned(
        shard_index: u64,
        first_row: u64,
        file_name: String,
        model: String,
        attempt: u32,
    ) -> ShardRecord {
        ShardRecord {
            shard_index,
            first_row,
            row_count: 0,
            file_name,
            byte_size: 0,
            sha256: String::new(),
            model,
            file_id: None,
            batch_id: None,
            batch_status: None,
            request_total: 0,
            request_completed: 0,
            request_failed: 0,
            output_file_id: None,
            error_file_id: None,
            results_downloaded: false,
            batch_errors: None,
            attempt,
            retry_scanned: false,
            results_ingested: false,
            results_unavailable: None,
            answers_stored: false,
        }
    }
}

/// Where a row's answer comes from when it is not its own request in a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSource {
    /// An answer in the answer store, pinned in the ledger when the run was planned.
    Store,
    /// The answer of an earlier row of this run with the same request.
    Dedup,
    /// A row that is sent and whose answer later rows copy.
    SharedWithCopies,
    /// A request another live run has in flight: this run waits for that run's answer (or,
    /// should that run end without one, sends it itself).
    Adopted,
}

impl RowSource {
    fn as_str(self) -> &'static str {
        match self {
            RowSource::Store => "store",
            RowSource::Dedup => "dedup",
            RowSource::SharedWithCopies => "shares",
            RowSource::Adopted => "adopted",
        }
    }

    fn parse(text: &str) -> Option<RowSource> {
        match text {
            "store" => Some(RowSource::Store),
            "dedup" => Some(RowSource::Dedup),
            "shares" => Some(RowSource::SharedWithCopies),
            "adopted" => Some(RowSource::Adopted),
            _ => None,
        }
    }
}

/// Where the first row of a run with a request key gets its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Sent in this run's batches.
    Batch,
    /// The answer store.
    Store,
    /// Another live run's request in flight.
    Adopted,
}

impl KeyOrigin {
    pub(crate) fn code(self) -> i64 {
        match self {
            KeyOrigin::Batch => 0,
            KeyOrigin::Store => 1,
            KeyOrigin::Adopted => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<KeyOrigin> {
        match code {
            0 => Some(KeyOrigin::Batch),
            1 => Some(KeyOrigin::Store),
            2 => Some(KeyOrigin::Adopted),
            _ => None,
        }
    }
}

/// The first row of a run with a request key, and where its answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstRowOfKey {
    pub row_number: u64,
    pub origin: KeyOrigin,
}

/// Where an adopted request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptionState {
    /// The other run has it in flight; no answer yet.
    Waiting,
    /// The other run's answer is in the store and pinned in this run.
    Answered,
    /// The other run ended without an answer: this run sent it in a shard of its own.
    Sent,
}

impl AdoptionState {
    fn as_str(self) -> &'static str {
        match self {
            AdoptionState::Waiting => "waiting",
            AdoptionState::Answered => "answered",
            AdoptionState::Sent => "sent",
        }
    }

    fn parse(text: &str) -> Option<AdoptionState> {
        match text {
            "waiting" => Some(AdoptionState::Waiting),
            "answered" => Some(AdoptionState::Answered),
            "sent" => Some(AdoptionState::Sent),
            _ => None,
        }
    }
}

/// A request of this run that another run has in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub key: RequestKey,
    /// The first row of this run with the request, and its custom_id (what this run sends
    /// should the other run end without an answer).
    pub row_number: u64,
    pub custom_id: String,
    /// The run directory of the run that has it in flight.
    pub other_run_directory: String,
    pub state: AdoptionState,
}

/// Kinds of side effect recorded in `effects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectKind {
    Upload,
    CreateBatch,
    Download,
    DeleteFile,
    CancelBatch,
}

impl EffectKind {
    fn as_str(self) -> &'static str {
        match self {
            EffectKind::Upload => "upload",
            EffectKind::CreateBatch => "create_batch",
            EffectKind::Download => "download",
            EffectKind::DeleteFile => "delete_file",
            EffectKind::CancelBatch => "cancel_batch",
        }
    }
}

/// How a side effect ended, as written in `effects.state` (an effect without one is still an
/// `intent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectOutcome {
    /// It happened; the detail holds what it made (a file or batch id).
    Done,
    /// It surely did not happen.
    Failed,
    /// The call's answer was lost: it may have happened; reconciled later.
    Unknown,
    /// An intent left by a crash was matched against the provider and settled.
    Reconciled,
}

impl EffectOutcome {
    fn as_str(self) -> &'static str {
        match self {
            EffectOutcome::Done => "done",
            EffectOutcome::Failed => "failed",
            EffectOutcome::Unknown => "unknown",
            EffectOutcome::Reconciled => "reconciled",
        }
    }
}

pub struct Ledger {
    connection: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS run_facts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shards (
    shard_index INTEGER PRIMARY KEY,
    first_row INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    byte_size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    batch_status TEXT,
    request_total INTEGER NOT NULL DEFAULT 0,
    request_completed INTEGER NOT NULL DEFAULT 0,
    request_failed INTEGER NOT NULL DEFAULT 0,
    output_file_id TEXT,
    error_file_id TEXT,
    results_downloaded INTEGER NOT NULL DEFAULT 0,
    batch_errors TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    retry_scanned INTEGER NOT NULL DEFAULT 0,
    results_ingested INTEGER NOT NULL DEFAULT 0,
    results_unavailable TEXT,
    remote_files_deleted INTEGER NOT NULL DEFAULT 0,
    answers_stored INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS shard_rows (
    shard_index INTEGER NOT NULL,
    line_number INTEGER NOT NULL,
    row_number INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    PRIMARY KEY (shard_index, line_number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS row_overrides (
    custom_id TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL,
    batch_id TEXT,
    result TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS effects (
    effect_id INTEGER PRIMARY KEY AUTOINCREMENT,
    shard_index INTEGER,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT
);
DROP TABLE IF EXISTS row_ids;
CREATE TABLE IF NOT EXISTS shard_estimates (
    shard_index INTEGER PRIMARY KEY,
    counted_with TEXT NOT NULL,
    estimate TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_keys (
    key BLOB PRIMARY KEY,
    row_number INTEGER NOT NULL,
    origin INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS adoptions (
    key BLOB PRIMARY KEY,
    row_number INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    other_run_directory TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS row_sources (
    row_number INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    key BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS pinned_answers (
    key BLOB PRIMARY KEY,
    result_line TEXT NOT NULL,
    batch_id TEXT
);
CREATE TABLE IF NOT EXISTS shared_results (
    key BLOB PRIMARY KEY,
    result TEXT NOT NULL,
    batch_id TEXT
);
";

const UPSERT_FACT: &str = "INSERT INTO run_facts (key, value) VALUES (?1, ?2)
     ON CONFLICT(key) DO UPDATE SET value = excluded.value";

/// Inserts shard rows (planned or retry shards) inside a caller's transaction.
fn insert_shard_records(connection: &Connection, shards: &[ShardRecord]) -> rusqlite::Result<()> {
    let mut statement = connection.prepare(
        "INSERT INTO shards (shard_index, first_row, row_count, file_name, byte_size, sha256, model, attempt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for shard in shards {
        statement.execute(params![
            shard.shard_index as i64,
            shard.first_row as i64,
            shard.row_count as i64,
            shard.file_name,
            shard.byte_size as i64,
            shard.sha256,
            shard.model,
            shard.attempt
        ])?;
    }
    Ok(())
}

/// Inserts the rows shards carry, as (shard, line, input row, custom_id), inside a caller's
/// transaction.
fn insert_shard_rows(
    connection: &Connection,
    rows: &[(u64, u64, u64, String)],
) -> rusqlite::Result<()> {
    let mut insert_row = connection.prepare(
        "INSERT INTO shard_rows (shard_index, line_number, row_number, custom_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (shard_index, line_number, row_number, custom_id) in rows {
        insert_row.execute(params![
            *shard_index as i64,
            *line_number as i64,
            *row_number as i64,
            custom_id
        ])?;
    }
    Ok(())
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Ledger {
    /// Opens (creating if needed) the ledger of the run in `run_directory`, for the process
    /// holding the run's lock; any other process reads with [`Ledger::open_read_only`]. A new
    /// ledger is built whole under [`FOUNDING_LEDGER_FILE_NAME`] and renamed into place, so a
    /// process that finds `ledger.sqlite` never finds one half made.
    pub fn open(run_directory: &Path) -> Result<Ledger, LedgerError> {
        let path = run_directory.join(LEDGER_FILE_NAME);
        let exists = path.try_exists().map_err(|e| LedgerError {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if exists {
            // A second name of the ledger, left by a founder that died between link and unlink.
            let _ = std::fs::remove_file(run_directory.join(FOUNDING_LEDGER_FILE_NAME));
        } else {
            Self::found(run_directory, &path)?;
        }
        Self::open_path(&path)
    }

    /// Builds an empty ledger beside `path` and renames it to `path`.
    fn found(run_directory: &Path, path: &Path) -> Result<(), LedgerError> {
        let building = run_directory.join(FOUNDING_LEDGER_FILE_NAME);
        let error = |message: String| LedgerError {
            path: path.to_owned(),
            message,
        };
        // Left by a process that died while founding (the lock holder is the only writer).
        for suffix in std::iter::once("").chain(SQLITE_FILE_SUFFIXES) {
            let _ = std::fs::remove_file(format!("{}{suffix}", building.display()));
        }
        let ledger = Self::open_path(&building)?;
        // Everything into the main file: the write-ahead log keeps its old name in a rename.
        ledger
            .connection
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| error(e.to_string()))?;
        ledger
            .connection
            .close()
            .map_err(|(_, e)| error(e.to_string()))?;
        let put_in_place = || -> std::io::Result<()> {
            std::fs::File::open(&building)?.sync_all()?;
            // A link, not a rename: it never replaces a ledger that is there already. When the
            // link fails and no ledger is there (a file system without hard links), a rename
            // (this process holds the run's lock); a ledger that is there is always kept.
            match std::fs::hard_link(&building, path) {
                Ok(()) => std::fs::remove_file(&building)?,
                Err(_) if path.try_exists()? => std::fs::remove_file(&building)?,
                Err(_) => std::fs::rename(&building, path)?,
            }
            // Best effort: some file systems cannot sync a directory, and the ledger is in place.
            if let Ok(directory) = std::fs::File::open(run_directory) {
                let _ = directory.sync_all();
            }
            Ok(())
        };
        put_in_place().map_err(|e| error(format!("cannot put the new ledger in place: {e}")))
    }

    /// Opens a ledger at an explicit path (also used for throw-away ledgers by `validate`).
    pub fn open_path(path: &Path) -> Result<Ledger, LedgerError> {
        let error = |message: String| LedgerError {
            path: path.to_owned(),
            message,
        };
        let connection = Connection::open(path).map_err(|e| error(e.to_string()))?;
        restrict_permissions(path);
        // WAL with FULL sync: an intent is on disk before the call it announces is made. A page
        // cache of up to 16 MiB holds the indexes planning writes across (request keys),
        // instead of spilling and re-reading them through the operating system.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                 PRAGMA cache_size = -16384;",
            )
            .map_err(|e| error(e.to_string()))?;
        connection
            .execute_batch(SCHEMA)
            .map_err(|e| error(e.to_string()))?;
        add_missing_columns(&connection).map_err(|e| error(e.to_string()))?;
        Ok(Ledger {
            connection,
            path: path.to_owned(),
        })
    }

    /// Opens the ledger of another run only to read it (nothing is created or changed).
    pub fn open_read_only(run_directory: &Path) -> Result<Ledger, LedgerError> {
        let path = run_directory.join(LEDGER_FILE_NAME);
        let connection = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LedgerError {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Ledger { connection, path })
    }

    /// Whether the ledger has every column this dashbatch reads (one opened read-only may be an
    /// older dashbatch's, which only the lock's holder brings up to date).
    ///
    /// # Errors
    /// When the ledger cannot be read.
    pub fn has_current_columns(&self) -> Result<bool, LedgerError> {
        has_current_columns(&self.connection).map_err(|error| self.error(error))
    }

    pub fn exists_in(run_directory: &Path) -> bool {
        run_directory.join(LEDGER_FILE_NAME).exists()
    }

    /// An error about what the ledger holds (a value dashbatch never writes), naming the ledger.
    pub fn corrupt(&self, message: String) -> LedgerError {
        LedgerError {
            path: self.path.clone(),
            message,
        }
    }

    fn error(&self, error: rusqlite::Error) -> LedgerError {
        LedgerError {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }

    pub fn set_fact(&self, key: &str, value: &str) -> Result<(), LedgerError> {
        self.connection
            .execute(UPSERT_FACT, params![key, value])
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Records several facts in one transaction: all of them or none.
    pub fn set_facts(&mut self, facts: &[(&str, String)]) -> Result<(), LedgerError> {
        self.in_transaction(|transaction| {
            for (key, value) in facts {
                transaction.execute(UPSERT_FACT, params![key, value])?;
            }
            Ok(())
        })
    }

    /// Runs `work` in one transaction, committed only when it succeeds.
    fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let path = self.path.clone();
        let error = |e: rusqlite::Error| LedgerError {
            path: path.clone(),
            message: e.to_string(),
        };
        let transaction = self.connection.transaction().map_err(error)?;
        let value = work(&transaction).map_err(error)?;
        transaction.commit().map_err(error)?;
        Ok(value)
    }

    pub fn fact(&self, key: &str) -> Result<Option<String>, LedgerError> {
        self.connection
            .query_row(
                "SELECT value FROM run_facts WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Records the planned shards in one transaction (after their files are written and synced).
    pub fn insert_shards(&mut self, shards: &[ShardRecord]) -> Result<(), LedgerError> {
        self.in_transaction(|transaction| insert_shard_records(transaction, shards))
    }

    pub fn shards(&self) -> Result<Vec<ShardRecord>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT shard_index, first_row, row_count, file_name, byte_size, sha256, model,
                        file_id, batch_id, batch_status, request_total, request_completed,
                        request_failed, output_file_id, error_file_id, results_downloaded, batch_errors,
                        attempt, retry_scanned, results_ingested, results_unavailable, answers_stored
                 FROM shards ORDER BY shard_index",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(ShardRecord {
                    shard_index: row.get::<_, i64>(0)? as u64,
                    first_row: row.get::<_, i64>(1)? as u64,
                    row_count: row.get::<_, i64>(2)? as u64,
                    file_name: row.get(3)?,
                    byte_size: row.get::<_, i64>(4)? as u64,
                    sha256: row.get(5)?,
                    model: row.get(6)?,
                    file_id: row.get(7)?,
                    batch_id: row.get(8)?,
                    batch_status: row.get(9)?,
                    request_total: row.get::<_, i64>(10)? as u64,
                    request_completed: row.get::<_, i64>(11)? as u64,
                    request_failed: row.get::<_, i64>(12)? as u64,
                    output_file_id: row.get(13)?,
                    error_file_id: row.get(14)?,
                    results_downloaded: row.get::<_, i64>(15)? != 0,
                    batch_errors: row.get(16)?,
                    attempt: row.get::<_, i64>(17)? as u32,
                    retry_scanned: row.get::<_, i64>(18)? != 0,
                    results_ingested: row.get::<_, i64>(19)? != 0,
                    results_unavailable: row.get(20)?,
                    answers_stored: row.get::<_, i64>(21)? != 0,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    /// Writes the intent of a side effect before it happens; returns its id for the outcome.
    pub fn record_intent(
        &self,
        shard_index: Option<u64>,
        kind: EffectKind,
        detail: &str,
    ) -> Result<i64, LedgerError> {
        self.connection
            .execute(
                "INSERT INTO effects (shard_index, kind, state, detail, started_at)
                 VALUES (?1, ?2, 'intent', ?3, ?4)",
                params![
                    shard_index.map(|i| i as i64),
                    kind.as_str(),
                    detail,
                    now_text()
                ],
            )
            .map_err(|e| self.error(e))?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Records how a side effect ended.
    pub fn record_outcome(
        &self,
        effect_id: i64,
        outcome: EffectOutcome,
        detail: &str,
    ) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE effects SET state = ?2, detail = ?3, finished_at = ?4 WHERE effect_id = ?1",
                params![effect_id, outcome.as_str(), detail, now_text()],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Side effects whose intent was written but whose outcome never was (a crash in between).
    pub fn open_intents(
        &self,
        kind: EffectKind,
    ) -> Result<Vec<(i64, Option<u64>, String)>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT effect_id, shard_index, COALESCE(detail, '') FROM effects
                 WHERE kind = ?1 AND state IN ('intent', 'unknown') ORDER BY effect_id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![kind.as_str()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<i64>>(1)?.map(|i| i as u64),
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    /// Whether the ledger holds any shard or any intent of a side effect: a run that planned.
    pub fn holds_shards_or_effects(&self) -> Result<bool, LedgerError> {
        self.connection
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM shards) OR EXISTS (SELECT 1 FROM effects)",
                [],
                |row| row.get::<_, bool>(0),
            )
            .map_err(|e| self.error(e))
    }

    pub fn count_effects(&self, kind: EffectKind) -> Result<u64, LedgerError> {
        self.connection
            .query_row(
                "SELECT COUNT(*) FROM effects WHERE kind = ?1",
                params![kind.as_str()],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| count as u64)
            .map_err(|e| self.error(e))
    }

    pub fn set_file_id(&self, shard_index: u64, file_id: Option<&str>) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE shards SET file_id = ?2 WHERE shard_index = ?1",
                params![shard_index as i64, file_id],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    pub fn set_batch_id(&self, shard_index: u64, batch_id: &str) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE shards SET batch_id = ?2, batch_status = COALESCE(batch_status, 'validating') WHERE shard_index = ?1",
                params![shard_index as i64, batch_id],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn update_batch_state(
        &self,
        shard_index: u64,
        status: &str,
        total: u64,
        completed: u64,
        failed: u64,
        output_file_id: Option<&str>,
        error_file_id: Option<&str>,
        batch_errors: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE shards SET batch_status = ?2, request_total = ?3, request_completed = ?4,
                        request_failed = ?5, output_file_id = ?6, error_file_id = ?7, batch_errors = ?8
                 WHERE shard_index = ?1",
                params![
                    shard_index as i64,
                    status,
                    total as i64,
                    completed as i64,
                    failed as i64,
                    output_file_id,
                    error_file_id,
                    batch_errors
                ],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Records that a result file can no longer be fetched (and why), or, with `None`, that the
    /// shard's lost results were all found again (in the answer store).
    pub fn set_results_unavailable(
        &self,
        shard_index: u64,
        reason: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE shards SET results_unavailable = ?2 WHERE shard_index = ?1",
                params![shard_index as i64, reason],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Shards whose remote input, output and error files are deleted.
    pub fn set_remote_files_deleted(&self, shard_index: u64) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE shards SET remote_files_deleted = 1 WHERE shard_index = ?1",
                params![shard_index as i64],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    pub fn shards_with_remote_files(&self) -> Result<Vec<u64>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT shard_index FROM shards WHERE results_downloaded = 1 AND remote_files_deleted = 0 ORDER BY shard_index",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| row.get::<_, i64>(0).map(|index| index as u64))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    pub fn set_results_downloaded(&self, shard_index: u64) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE shards SET results_downloaded = 1 WHERE shard_index = ?1",
                params![shard_index as i64],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The shard estimates kept for a run whose tokens are counted as `counted_with`
    /// (estimates counted otherwise are ignored), as written by
    /// [`crate::estimate::ShardEstimate::to_stored`].
    pub fn shard_estimates(&self, counted_with: &str) -> Result<Vec<String>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT estimate FROM shard_estimates WHERE counted_with = ?1 ORDER BY shard_index",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![counted_with], |row| row.get::<_, String>(0))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    /// Keeps shards' estimates, (shard index, estimate), all counted as `counted_with`
    /// (replacing ones counted otherwise), in one transaction (a savepoint, so it may run inside
    /// another).
    pub fn save_shard_estimates(
        &self,
        counted_with: &str,
        estimates: &[(u64, String)],
    ) -> Result<(), LedgerError> {
        if estimates.is_empty() {
            return Ok(());
        }
        let write = || -> rusqlite::Result<()> {
            self.connection.execute_batch("SAVEPOINT shard_estimates")?;
            let mut statement = self.connection.prepare_cached(
                "INSERT OR REPLACE INTO shard_estimates (shard_index, counted_with, estimate) VALUES (?1, ?2, ?3)",
            )?;
            for (shard_index, estimate) in estimates {
                statement.execute(params![*shard_index as i64, counted_with, estimate])?;
            }
            self.connection.execute_batch("RELEASE shard_estimates")
        };
        write().map_err(|e| {
            let _ = self
                .connection
                .execute_batch("ROLLBACK TO shard_estimates; RELEASE shard_estimates");
            self.error(e)
        })
    }

    /// Records retry shards, the rows they carry, and that their source shards were scanned, all
    /// in one transaction: after a crash either all of it is there or none.
    pub fn insert_retry_plan(
        &mut self,
        shards: &[ShardRecord],
        rows: &[(u64, u64, u64, String)],
        scanned_shards: &[u64],
    ) -> Result<(), LedgerError> {
        self.in_transaction(|transaction| {
            insert_shard_records(transaction, shards)?;
            insert_shard_rows(transaction, rows)?;
            let mut mark = transaction
                .prepare("UPDATE shards SET retry_scanned = 1 WHERE shard_index = ?1")?;
            for shard_index in scanned_shards {
                mark.execute(params![*shard_index as i64])?;
            }
            Ok(())
        })
    }

    /// The rows a retry shard carries: (line number in the shard file, input row number, custom_id).
    pub fn shard_rows(&self, shard_index: u64) -> Result<Vec<(u64, u64, String)>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT line_number, row_number, custom_id FROM shard_rows WHERE shard_index = ?1 ORDER BY line_number",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![shard_index as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)? as u64,
                    row.get::<_, i64>(1)? as u64,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    /// Stores a retry shard's results as the latest word on their rows, and marks the shard done.
    pub fn ingest_overrides(
        &mut self,
        shard_index: u64,
        attempt: u32,
        batch_id: Option<&str>,
        results: &[(String, String)],
    ) -> Result<(), LedgerError> {
        self.in_transaction(|transaction| {
            let mut upsert = transaction.prepare(
                "INSERT INTO row_overrides (custom_id, attempt, batch_id, result) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(custom_id) DO UPDATE SET attempt = excluded.attempt,
                    batch_id = excluded.batch_id, result = excluded.result
                 WHERE excluded.attempt >= row_overrides.attempt",
            )?;
            for (custom_id, result) in results {
                upsert.execute(params![custom_id, attempt, batch_id, result])?;
            }
            transaction.execute(
                "UPDATE shards SET results_ingested = 1 WHERE shard_index = ?1",
                params![shard_index as i64],
            )?;
            Ok(())
        })
    }

    /// The latest retry result of a row, as (batch id, result JSON).
    pub fn row_override(
        &self,
        custom_id: &str,
    ) -> Result<Option<(Option<String>, String)>, LedgerError> {
        self.connection
            .prepare_cached("SELECT batch_id, result FROM row_overrides WHERE custom_id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row(params![custom_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.error(e))
    }

    pub fn has_overrides(&self) -> Result<bool, LedgerError> {
        self.connection
            .query_row("SELECT EXISTS (SELECT 1 FROM row_overrides)", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|exists| exists != 0)
            .map_err(|e| self.error(e))
    }

    /// Forgets a plan that was interrupted before it was recorded as complete.
    pub fn clear_plan(&self) -> Result<(), LedgerError> {
        self.connection
            .execute_batch(
                "DELETE FROM shards; DELETE FROM shard_rows; DELETE FROM row_overrides;
                 DELETE FROM request_keys; DELETE FROM row_sources; DELETE FROM shard_estimates; DELETE FROM pinned_answers; DELETE FROM shared_results;
                 DELETE FROM adoptions;",
            )
            .map_err(|e| self.error(e))
    }

    /// The first row of the run with request `key`, when one was recorded.
    pub fn request_key(&self, key: &RequestKey) -> Result<Option<FirstRowOfKey>, LedgerError> {
        let found = self
            .connection
            .prepare_cached("SELECT row_number, origin FROM request_keys WHERE key = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row(params![&key.0[..]], |row| {
                        Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)?))
                    })
                    .optional()
            })
            .map_err(|e| self.error(e))?;
        let Some((row_number, code)) = found else {
            return Ok(None);
        };
        let origin = KeyOrigin::from_code(code).ok_or_else(|| {
            self.corrupt(format!(
                "a request key has origin {code}, which dashbatch never writes"
            ))
        })?;
        Ok(Some(FirstRowOfKey { row_number, origin }))
    }

    /// Records request keys with their first rows (keys in order fill the index fastest).
    pub fn insert_request_keys(
        &self,
        keys: &[(RequestKey, FirstRowOfKey)],
    ) -> Result<(), LedgerError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "INSERT OR IGNORE INTO request_keys (key, row_number, origin) VALUES (?1, ?2, ?3)",
            )
            .map_err(|e| self.error(e))?;
        for (key, first) in keys {
            statement
                .execute(params![
                    &key.0[..],
                    first.row_number as i64,
                    first.origin.code()
                ])
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// The keys this run sends itself, after `after` (in key order), at most `limit`.
    pub fn sent_keys_after(
        &self,
        after: Option<&RequestKey>,
        limit: usize,
    ) -> Result<Vec<RequestKey>, LedgerError> {
        self.keys_after(
            "SELECT key FROM request_keys WHERE origin = 0 AND (?1 IS NULL OR key > ?1) ORDER BY key LIMIT ?2",
            after,
            limit,
        )
    }

    /// The request keys `query` selects (`?1` the key to start after, `?2` the limit).
    fn keys_after(
        &self,
        query: &str,
        after: Option<&RequestKey>,
        limit: usize,
    ) -> Result<Vec<RequestKey>, LedgerError> {
        let mut statement = self
            .connection
            .prepare_cached(query)
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(
                params![after.map(|key| key.0.to_vec()), limit as i64],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .map_err(|e| self.error(e))?;
        let mut keys = Vec::new();
        for key in rows {
            let key = key.map_err(|e| self.error(e))?;
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| self.corrupt("a request key is not 32 bytes".to_owned()))?;
            keys.push(RequestKey(key));
        }
        Ok(keys)
    }

    /// Records that this run adopts another run's request in flight; false when the key was
    /// adopted already (by an earlier row).
    pub fn adopt(
        &self,
        key: &RequestKey,
        row_number: u64,
        custom_id: &str,
        other_run_directory: &str,
    ) -> Result<bool, LedgerError> {
        self.connection
            .prepare_cached(
                "INSERT OR IGNORE INTO adoptions (key, row_number, custom_id, other_run_directory, state)
                 VALUES (?1, ?2, ?3, ?4, 'waiting')",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    &key.0[..],
                    row_number as i64,
                    custom_id,
                    other_run_directory
                ])
            })
            .map(|inserted| inserted == 1)
            .map_err(|e| self.error(e))
    }

    fn adoption_of_row(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<u8>, Adoption)> {
        let key: Vec<u8> = row.get(0)?;
        let state: String = row.get(4)?;
        Ok((
            key,
            Adoption {
                key: RequestKey([0; 32]),
                row_number: row.get::<_, i64>(1)? as u64,
                custom_id: row.get(2)?,
                other_run_directory: row.get(3)?,
                state: AdoptionState::parse(&state).unwrap_or(AdoptionState::Waiting),
            },
        ))
    }

    /// Every adoption of the run in `state`.
    pub fn adoptions_in(&self, state: AdoptionState) -> Result<Vec<Adoption>, LedgerError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT key, row_number, custom_id, other_run_directory, state FROM adoptions WHERE state = ?1 ORDER BY row_number",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![state.as_str()], |row| self.adoption_of_row(row))
            .map_err(|e| self.error(e))?;
        let mut adoptions = Vec::new();
        for row in rows {
            let (key, mut adoption) = row.map_err(|e| self.error(e))?;
            adoption.key = RequestKey(
                key.try_into()
                    .map_err(|_| self.corrupt("an adopted key is not 32 bytes".to_owned()))?,
            );
            adoptions.push(adoption);
        }
        Ok(adoptions)
    }

    /// The adoption of request `key`.
    pub fn adoption(&self, key: &RequestKey) -> Result<Option<Adoption>, LedgerError> {
        let found = self
            .connection
            .prepare_cached(
                "SELECT key, row_number, custom_id, other_run_directory, state FROM adoptions WHERE key = ?1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![&key.0[..]], |row| self.adoption_of_row(row))
                    .optional()
            })
            .map_err(|e| self.error(e))?;
        Ok(found.map(|(_, adoption)| Adoption {
            key: *key,
            ..adoption
        }))
    }

    /// The other run's answer arrived: pinned, and the adoption answered, in one transaction.
    pub fn answer_adoption(
        &mut self,
        key: &RequestKey,
        result_line: &str,
        batch_id: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.in_transaction(|transaction| {
            transaction.execute(
                "INSERT OR IGNORE INTO pinned_answers (key, result_line, batch_id) VALUES (?1, ?2, ?3)",
                params![&key.0[..], result_line, batch_id],
            )?;
            transaction.execute(
                "UPDATE adoptions SET state = 'answered' WHERE key = ?1",
                params![&key.0[..]],
            )?;
            Ok(())
        })
    }

    /// Records shards that send adopted requests the other run ended without answering, the
    /// rows they carry, and that those adoptions are now sent: all or nothing.
    pub fn insert_adoption_sends(
        &mut self,
        shards: &[ShardRecord],
        rows: &[(u64, u64, u64, String)],
        keys: &[RequestKey],
    ) -> Result<(), LedgerError> {
        self.in_transaction(|transaction| {
            insert_shard_records(transaction, shards)?;
            insert_shard_rows(transaction, rows)?;
            let mut sent =
                transaction.prepare("UPDATE adoptions SET state = 'sent' WHERE key = ?1")?;
            for key in keys {
                sent.execute(params![&key.0[..]])?;
            }
            Ok(())
        })
    }

    /// Says where row `row_number`'s answer comes from (a row already marked keeps its mark).
    pub fn set_row_source(
        &self,
        row_number: u64,
        source: RowSource,
        key: &RequestKey,
    ) -> Result<(), LedgerError> {
        self.connection
            .prepare_cached(
                "INSERT OR IGNORE INTO row_sources (row_number, source, key) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut statement| {
                statement.execute(params![row_number as i64, source.as_str(), &key.0[..]])
            })
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The rows after `after_row` whose answers come from elsewhere, in row order, at most `limit`.
    pub fn row_sources_after(
        &self,
        after_row: u64,
        limit: usize,
    ) -> Result<Vec<(u64, RowSource, RequestKey)>, LedgerError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT row_number, source, key FROM row_sources WHERE row_number > ?1 ORDER BY row_number LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![after_row as i64, limit as i64], |row| {
                let source: String = row.get(1)?;
                let key: Vec<u8> = row.get(2)?;
                Ok((row.get::<_, i64>(0)? as u64, source, key))
            })
            .map_err(|e| self.error(e))?;
        let mut sources = Vec::new();
        for row in rows {
            let (row_number, source, key) = row.map_err(|e| self.error(e))?;
            let source = RowSource::parse(&source).ok_or_else(|| {
                self.corrupt(format!(
                    "row {row_number} has source `{source}`, which dashbatch never writes"
                ))
            })?;
            let key: [u8; 32] = key.try_into().map_err(|_| {
                self.corrupt(format!(
                    "row {row_number} has a request key that is not 32 bytes"
                ))
            })?;
            sources.push((row_number, source, RequestKey(key)));
        }
        Ok(sources)
    }

    /// Keeps a stored answer in the run, so a resumed run joins the answer it planned with.
    pub fn pin_answer(
        &self,
        key: &RequestKey,
        result_line: &str,
        batch_id: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.connection
            .prepare_cached(
                "INSERT OR IGNORE INTO pinned_answers (key, result_line, batch_id) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut statement| statement.execute(params![&key.0[..], result_line, batch_id]))
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// A pinned answer: (result line, batch id).
    pub fn pinned_answer(
        &self,
        key: &RequestKey,
    ) -> Result<Option<(String, Option<String>)>, LedgerError> {
        self.connection
            .prepare_cached("SELECT result_line, batch_id FROM pinned_answers WHERE key = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row(params![&key.0[..]], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.error(e))
    }

    /// The keys of the pinned answers after `after` (in key order), at most `limit`.
    pub fn pinned_keys_after(
        &self,
        after: Option<&RequestKey>,
        limit: usize,
    ) -> Result<Vec<RequestKey>, LedgerError> {
        self.keys_after(
            "SELECT key FROM pinned_answers WHERE ?1 IS NULL OR key > ?1 ORDER BY key LIMIT ?2",
            after,
            limit,
        )
    }

    /// Keeps the final result of a sent row whose answer later rows copy.
    pub fn set_shared_result(
        &self,
        key: &RequestKey,
        result: &str,
        batch_id: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.connection
            .prepare_cached(
                "INSERT INTO shared_results (key, result, batch_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET result = excluded.result, batch_id = excluded.batch_id",
            )
            .and_then(|mut statement| statement.execute(params![&key.0[..], result, batch_id]))
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The final result (JSON of a `RowResult`) and batch of the row whose answer copies share.
    pub fn shared_result(
        &self,
        key: &RequestKey,
    ) -> Result<Option<(String, Option<String>)>, LedgerError> {
        self.connection
            .prepare_cached("SELECT result, batch_id FROM shared_results WHERE key = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row(params![&key.0[..]], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.error(e))
    }

    /// Whether any row of the run takes its answer from elsewhere.
    pub fn has_row_sources(&self) -> Result<bool, LedgerError> {
        self.connection
            .query_row("SELECT EXISTS (SELECT 1 FROM row_sources)", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|exists| exists != 0)
            .map_err(|e| self.error(e))
    }

    /// Records that a shard's answers are in the answer store.
    pub fn set_answers_stored(&self, shard_index: u64) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE shards SET answers_stored = 1 WHERE shard_index = ?1",
                params![shard_index as i64],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The connection itself, for tests that doctor a ledger.
    #[cfg(test)]
    pub(crate) fn connection_for_tests(&self) -> &Connection {
        &self.connection
    }

    /// Groups many writes into one transaction (used while planning millions of rows).
    pub fn begin_bulk(&self) -> Result<(), LedgerError> {
        self.connection
            .execute_batch("BEGIN")
            .map_err(|e| self.error(e))
    }

    pub fn commit_bulk(&self) -> Result<(), LedgerError> {
        self.connection
            .execute_batch("COMMIT")
            .map_err(|e| self.error(e))
    }
}

/// Adds the columns later versions of dashbatch added to a ledger an earlier version created, so
/// a run started before an upgrade can be resumed after it.
fn has_answers_stored_column(connection: &Connection) -> rusqlite::Result<bool> {
    connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('shards') WHERE name = 'answers_stored')",
        [],
        |row| row.get(0),
    )
}

/// The tables [`SCHEMA`] makes.
fn schema_tables() -> impl Iterator<Item = &'static str> {
    SCHEMA
        .split("CREATE TABLE IF NOT EXISTS ")
        .skip(1)
        .filter_map(|statement| statement.split_whitespace().next())
}

/// Whether the ledger has every table of [`SCHEMA`] and the columns added to them since.
fn has_current_columns(connection: &Connection) -> rusqlite::Result<bool> {
    let mut table_exists = connection.prepare(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
    )?;
    for table in schema_tables() {
        if !table_exists.query_row([table], |row| row.get::<_, bool>(0))? {
            return Ok(false);
        }
    }
    has_answers_stored_column(connection)
}

fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    if !has_answers_stored_column(connection)? {
        connection.execute_batch(
            "ALTER TABLE shards ADD COLUMN answers_stored INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    Ok(())
}

/// Run files hold prompts and answers: only the owner may read them.
pub fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: u64) -> ShardRecord {
        ShardRecord {
            row_count: 10,
            byte_size: 100,
            sha256: "ab".into(),
            ..ShardRecord::planned(
                index,
                index * 10 + 1,
                format!("shard-{index:05}.jsonl"),
                "qwen-plus".into(),
                1,
            )
        }
    }

    #[test]
    fn the_schema_tables_are_read_from_the_schema_itself() {
        let tables: Vec<&str> = schema_tables().collect();
        assert_eq!(
            tables.len(),
            SCHEMA.matches("CREATE TABLE IF NOT EXISTS").count()
        );
        assert!(
            tables.contains(&"run_facts") && tables.contains(&"adoptions"),
            "{tables:?}"
        );
        assert!(
            tables.iter().all(|table| !table.contains('(')),
            "{tables:?}"
        );
    }

    #[test]
    fn a_new_ledger_appears_whole_and_a_half_made_one_is_built_again() {
        let directory = tempfile::tempdir().unwrap();
        // Left by a founder that died: not a ledger, and built again from nothing.
        std::fs::write(
            directory.path().join(FOUNDING_LEDGER_FILE_NAME),
            b"half a ledger",
        )
        .unwrap();
        let mut ledger = Ledger::open(directory.path()).unwrap();
        ledger.insert_shards(&[shard(0)]).unwrap();
        let names: Vec<String> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|name| name.contains("founding")),
            "{names:?}"
        );
        // Whole when it appears: a reader that holds no lock finds every table.
        let reader = Ledger::open_read_only(directory.path()).unwrap();
        assert_eq!(reader.shards().unwrap().len(), 1);
        let mode: String = reader
            .connection
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // A second name left by a founder that died between linking and unlinking is removed.
        drop(reader);
        drop(ledger);
        std::fs::hard_link(
            directory.path().join(LEDGER_FILE_NAME),
            directory.path().join(FOUNDING_LEDGER_FILE_NAME),
        )
        .unwrap();
        let ledger = Ledger::open(directory.path()).unwrap();
        assert!(!directory.path().join(FOUNDING_LEDGER_FILE_NAME).exists());
        assert_eq!(ledger.shards().unwrap().len(), 1);
    }

    #[test]
    fn shards_and_effects_survive_reopening() {
        let directory = tempfile::tempdir().unwrap();
        {
            let mut ledger = Ledger::open(directory.path()).unwrap();
            ledger.insert_shards(&[shard(0), shard(1)]).unwrap();
            ledger.set_fact("job_name", "demo").unwrap();
            let effect = ledger
                .record_intent(Some(0), EffectKind::Upload, "shard-00000.jsonl")
                .unwrap();
            ledger
                .record_outcome(effect, EffectOutcome::Done, "file-1")
                .unwrap();
            ledger.set_file_id(0, Some("file-1")).unwrap();
            ledger
                .record_intent(Some(1), EffectKind::Upload, "shard-00001.jsonl")
                .unwrap();
        }
        let ledger = Ledger::open(directory.path()).unwrap();
        let shards = ledger.shards().unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[0].file_id.as_deref(), Some("file-1"));
        assert_eq!(ledger.fact("job_name").unwrap().as_deref(), Some("demo"));
        let open = ledger.open_intents(EffectKind::Upload).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].1, Some(1));
    }
}
