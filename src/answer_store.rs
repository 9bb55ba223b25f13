//! The answer store: one SQLite file per user (or per job, when the job names one) holding every
//! answer dashbatch judged `ok`, keyed by its request's [`RequestKey`], so that a request sent and
//! paid for once is never paid for again by a later run, a later night or another job.
//!
//! Several processes use one store at once: WAL journal, writers take the lock at the start of a
//! short transaction (`BEGIN IMMEDIATE`) and wait up to [`BUSY_WAIT`] for each other. Created
//! owner-only (0600, like the run files): it holds prompts' answers. Lookups are by key, so memory
//! stays flat however many answers it holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::request_key::RequestKey;

/// How long a process waits for another one holding the store's write lock.
const BUSY_WAIT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS answers (
    key BLOB PRIMARY KEY,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    result_line TEXT NOT NULL,
    batch_id TEXT,
    job TEXT NOT NULL,
    run_id TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost TEXT,
    currency TEXT,
    answered_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_by_job ON answers (job);
CREATE TABLE IF NOT EXISTS in_flight (
    key BLOB NOT NULL,
    run_id TEXT NOT NULL,
    run_directory TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (key, run_id)
);
CREATE INDEX IF NOT EXISTS in_flight_by_run ON in_flight (run_id);
";

/// A request another run has in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub run_id: String,
    pub run_directory: String,
}

impl InFlight {
    /// Reads a row of `(run_id, run_directory)`.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<InFlight> {
        Ok(InFlight {
            run_id: row.get(0)?,
            run_directory: row.get(1)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("answer store `{path}`: {message}", path = path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub message: String,
}

/// A stored answer, as a run reuses it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    /// The provider's result line for the request, as it was received.
    pub result_line: String,
    pub batch_id: Option<String>,
}

/// One answer to record.
#[derive(Debug, Clone)]
pub struct AnswerRecord {
    pub key: RequestKey,
    pub provider: String,
    pub endpoint: String,
    pub model: String,
    pub result_line: String,
    pub batch_id: Option<String>,
    pub job: String,
    pub run_id: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// What it cost at batch price, in `currency`.
    pub cost: Option<String>,
    pub currency: Option<String>,
}

/// What `dashbatch store stats` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStats {
    pub path: String,
    pub answers: u64,
    pub file_bytes: u64,
    pub oldest_answer: Option<String>,
    pub newest_answer: Option<String>,
    /// The answers of each job (by the job's `name`), in name order.
    pub jobs: Vec<JobStats>,
}

/// One job's answers in the store: how many, from which models, when last reused.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobStats {
    pub job: String,
    pub answers: u64,
    pub models: Vec<String>,
    pub last_used_at: Option<String>,
}

/// An open read transaction on the store, ended when dropped.
pub struct ReadSnapshot<'a> {
    store: &'a AnswerStore,
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        let _ = self.store.connection.execute_batch("COMMIT");
    }
}

pub struct AnswerStore {
    connection: Connection,
    path: PathBuf,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl AnswerStore {
    /// Opens the store at `path`, creating it (and its directory) owner-only when missing.
    ///
    /// # Errors
    /// When the file cannot be created or is not a store.
    pub fn open(path: &Path) -> Result<AnswerStore, StoreError> {
        let error = |message: String| StoreError {
            path: path.to_owned(),
            message,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            create_private_directory(parent).map_err(|e| {
                error(format!(
                    "cannot create its directory `{}`: {e}",
                    parent.display()
                ))
            })?;
        }
        match std::fs::metadata(path) {
            Ok(metadata) if !metadata.is_file() => {
                return Err(error(
                    "is not a regular file (a directory, device or pipe); name a file for the store"
                        .to_owned(),
                ));
            }
            Ok(_) => {}
            Err(_) => {
                create_private_file(path).map_err(|e| error(format!("cannot create it: {e}")))?;
            }
        }
        let connection = Connection::open(path).map_err(|e| error(e.to_string()))?;
        let store = AnswerStore {
            connection,
            path: path.to_owned(),
        };
        store
            .refuse_other_databases()
            .map_err(|e| store.explained(e))?;
        store.prepare().map_err(|e| store.explained(e))?;
        Ok(store)
    }

    /// An SQLite database with tables but no `answers` table belongs to something else (another
    /// program, a run's ledger): dashbatch never adds its tables to it.
    fn refuse_other_databases(&self) -> rusqlite::Result<()> {
        let (tables, has_answers): (i64, bool) = self.connection.query_row(
            "SELECT COUNT(*), COALESCE(MAX(name = 'answers'), 0) FROM sqlite_master WHERE type = 'table'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        if tables > 0 && !has_answers {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
                Some("an SQLite database of something else".to_owned()),
            ));
        }
        Ok(())
    }

    /// Opens an existing store only to read it (`estimate`, `validate`, `store stats`); `None`
    /// when there is no file yet (nothing stored, nothing to reuse).
    ///
    /// # Errors
    /// When the file exists but is not a store.
    pub fn open_to_read(path: &Path) -> Result<Option<AnswerStore>, StoreError> {
        match std::fs::metadata(path) {
            Err(_) => return Ok(None),
            Ok(metadata) if !metadata.is_file() => {
                return Err(StoreError {
                    path: path.to_owned(),
                    message: "is not a regular file (a directory, device or pipe); name a file for the store".to_owned(),
                });
            }
            Ok(_) => {}
        }
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let store = AnswerStore {
            connection,
            path: path.to_owned(),
        };
        store
            .connection
            .busy_timeout(BUSY_WAIT)
            .map_err(|e| store.explained(e))?;
        store
            .refuse_other_databases()
            .map_err(|e| store.explained(e))?;
        let has_table: bool = store
            .connection
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'answers')",
                [],
                |row| row.get(0),
            )
            .map_err(|e| store.explained(e))?;
        if !has_table {
            return Ok(None);
        }
        Ok(Some(store))
    }

    fn prepare(&self) -> rusqlite::Result<()> {
        self.connection.busy_timeout(BUSY_WAIT)?;
        self.connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        self.connection.execute_batch(SCHEMA)
    }

    /// An SQLite error said for a user: what the file is and what to do.
    fn explained(&self, error: rusqlite::Error) -> StoreError {
        let message = match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => format!(
                "{error}: the file is not an answer store; point `DASHBATCH_STORE` or `[reuse] store` at another file, move this one away, or use no store (`DASHBATCH_STORE=off`, or `dashbatch run --no-store`)"
            ),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                format!(
                    "{error}: another process held the store for more than {} s",
                    BUSY_WAIT.as_secs()
                )
            }
            _ => error.to_string(),
        };
        StoreError {
            path: self.path.clone(),
            message,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything from one snapshot until the guard is dropped (a run's plan: one read
    /// transaction instead of one per lookup; writers are not held up, WAL readers never block
    /// them).
    ///
    /// # Errors
    /// When the read transaction cannot start.
    pub fn read_snapshot(&self) -> Result<ReadSnapshot<'_>, StoreError> {
        self.connection
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| self.explained(e))?;
        Ok(ReadSnapshot { store: self })
    }

    /// The answer stored for `key`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn lookup(&self, key: &RequestKey) -> Result<Option<StoredAnswer>, StoreError> {
        self.row_of_key(
            "SELECT result_line, batch_id FROM answers WHERE key = ?1",
            key,
            |row| {
                Ok(StoredAnswer {
                    result_line: row.get(0)?,
                    batch_id: row.get(1)?,
                })
            },
        )
    }

    /// The one row `query` selects for `key` (`?1`), read by `read`.
    fn row_of_key<T>(
        &self,
        query: &str,
        key: &RequestKey,
        read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        self.connection
            .prepare_cached(query)
            .and_then(|mut statement| statement.query_row(params![&key.0[..]], read).optional())
            .map_err(|e| self.explained(e))
    }

    /// Records answers in one transaction (a newer answer for a key replaces the older one).
    ///
    /// # Errors
    /// When the store cannot be written.
    pub fn record(&mut self, answers: &[AnswerRecord]) -> Result<(), StoreError> {
        let now = now_text();
        let result = (|| -> rusqlite::Result<()> {
            let transaction = self
                .connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO answers (key, provider, endpoint, model, result_line, batch_id, job, run_id,
                        prompt_tokens, completion_tokens, reasoning_tokens, cost, currency, answered_at, last_used_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)
                     ON CONFLICT(key) DO UPDATE SET provider = excluded.provider, endpoint = excluded.endpoint,
                        model = excluded.model, result_line = excluded.result_line, batch_id = excluded.batch_id,
                        job = excluded.job, run_id = excluded.run_id, prompt_tokens = excluded.prompt_tokens,
                        completion_tokens = excluded.completion_tokens, reasoning_tokens = excluded.reasoning_tokens,
                        cost = excluded.cost, currency = excluded.currency, answered_at = excluded.answered_at,
                        last_used_at = excluded.last_used_at
                     WHERE answers.batch_id IS NOT excluded.batch_id OR answers.result_line <> excluded.result_line",
                )?;
                let count = |value: Option<u64>| value.map(|v| v as i64);
                // An answer landed: no run needs to be waited for with it any more.
                let mut landed =
                    transaction.prepare_cached("DELETE FROM in_flight WHERE key = ?1")?;
                for answer in answers {
                    landed.execute(params![&answer.key.0[..]])?;
                    insert.execute(params![
                        &answer.key.0[..],
                        answer.provider,
                        answer.endpoint,
                        answer.model,
                        answer.result_line,
                        answer.batch_id,
                        answer.job,
                        answer.run_id,
                        count(answer.prompt_tokens),
                        count(answer.completion_tokens),
                        count(answer.reasoning_tokens),
                        answer.cost,
                        answer.currency,
                        now,
                    ])?;
                }
            }
            transaction.commit()
        })();
        result.map_err(|e| self.explained(e))
    }

    /// Announces that run `run_id` (in `run_directory`) sends these requests, so that another
    /// run asking the same waits for its answers instead of paying for them again. Several runs
    /// may announce one key.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub fn announce_in_flight(
        &mut self,
        keys: &[RequestKey],
        run_id: &str,
        run_directory: &str,
    ) -> Result<(), StoreError> {
        let now = now_text();
        let result = (|| -> rusqlite::Result<()> {
            let transaction = self
                .connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO in_flight (key, run_id, run_directory, since) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(key, run_id) DO UPDATE SET run_directory = excluded.run_directory,
                        since = excluded.since",
                )?;
                for key in keys {
                    insert.execute(params![&key.0[..], run_id, run_directory, now])?;
                }
            }
            transaction.commit()
        })();
        result.map_err(|e| self.explained(e))
    }

    /// Withdraws every announcement of run `run_id` (it finished, answered or not).
    ///
    /// # Errors
    /// When the store cannot be written.
    pub fn withdraw_in_flight(&mut self, run_id: &str) -> Result<(), StoreError> {
        self.connection
            .execute("DELETE FROM in_flight WHERE run_id = ?1", params![run_id])
            .map(drop)
            .map_err(|e| self.explained(e))
    }

    /// The runs that announced request `key`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn in_flight(&self, key: &RequestKey) -> Result<Vec<InFlight>, StoreError> {
        let result = (|| -> rusqlite::Result<Vec<InFlight>> {
            let mut statement = self
                .connection
                .prepare_cached("SELECT run_id, run_directory FROM in_flight WHERE key = ?1")?;
            statement
                .query_map(params![&key.0[..]], InFlight::from_row)?
                .collect()
        })();
        result.map_err(|e| self.explained(e))
    }

    /// Every run with requests in flight.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn runs_in_flight(&self) -> Result<Vec<InFlight>, StoreError> {
        let result = (|| -> rusqlite::Result<Vec<InFlight>> {
            let mut statement = self.connection.prepare(
                "SELECT DISTINCT run_id, run_directory FROM in_flight ORDER BY run_directory, run_id",
            )?;
            statement.query_map([], InFlight::from_row)?.collect()
        })();
        result.map_err(|e| self.explained(e))
    }

    /// Notes that these answers were used now (what `store prune --unused-for` goes by). An
    /// answer already marked within the last hour is left as it is: a nightly re-run of a
    /// million rows rewrites nothing it rewrote an hour ago, and prune ages are hours or days.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub fn mark_used(&mut self, keys: &[RequestKey]) -> Result<(), StoreError> {
        let now = chrono::Utc::now();
        let recent =
            (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let result = (|| -> rusqlite::Result<()> {
            let transaction = self
                .connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut update = transaction.prepare_cached(
                    "UPDATE answers SET last_used_at = ?2 WHERE key = ?1 AND last_used_at < ?3",
                )?;
                for key in keys {
                    update.execute(params![&key.0[..], now, recent])?;
                }
            }
            transaction.commit()
        })();
        result.map_err(|e| self.explained(e))
    }

    /// Counts by job, dates, size.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let result = (|| -> rusqlite::Result<StoreStats> {
            let (answers, oldest, newest): (i64, Option<String>, Option<String>) =
                self.connection.query_row(
                    "SELECT COUNT(*), MIN(answered_at), MAX(answered_at) FROM answers",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?;
            let mut statement = self.connection.prepare(
                "SELECT job, COUNT(*), GROUP_CONCAT(DISTINCT model), MAX(last_used_at) FROM answers GROUP BY job ORDER BY job",
            )?;
            let jobs = statement
                .query_map([], |row| {
                    let models: Option<String> = row.get(2)?;
                    Ok(JobStats {
                        job: row.get(0)?,
                        answers: row.get::<_, i64>(1)? as u64,
                        models: models
                            .map(|text| text.split(',').map(str::to_owned).collect())
                            .unwrap_or_default(),
                        last_used_at: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(StoreStats {
                path: self.path.display().to_string(),
                answers: answers as u64,
                file_bytes: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
                oldest_answer: oldest,
                newest_answer: newest,
                jobs,
            })
        })();
        result.map_err(|e| self.explained(e))
    }

    /// Deletes answers given before `answered_before` or not used since `unused_since` (RFC 3339
    /// times), optionally of one job only; returns how many.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub fn prune(
        &mut self,
        answered_before: Option<&str>,
        unused_since: Option<&str>,
        job: Option<&str>,
    ) -> Result<u64, StoreError> {
        let deleted = self
            .connection
            .execute(
                "DELETE FROM answers WHERE (?1 IS NOT NULL AND answered_at < ?1 OR ?2 IS NOT NULL AND last_used_at < ?2)
                   AND (?3 IS NULL OR job = ?3)",
                params![answered_before, unused_since, job],
            )
            .map_err(|e| self.explained(e))?;
        Ok(deleted as u64)
    }

    /// Writes every answer (of one job, or all) as JSON Lines to `out`, oldest first; returns
    /// how many.
    ///
    /// # Errors
    /// When the store cannot be read or `out` written.
    pub fn export(&self, job: Option<&str>, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT key, provider, endpoint, model, result_line, batch_id, job, run_id, prompt_tokens,
                        completion_tokens, reasoning_tokens, cost, currency, answered_at, last_used_at
                 FROM answers WHERE ?1 IS NULL OR job = ?1 ORDER BY answered_at, key",
            )
            .map_err(|e| self.explained(e))?;
        let mut rows = statement
            .query(params![job])
            .map_err(|e| self.explained(e))?;
        let mut written = 0u64;
        while let Some(row) = rows.next().map_err(|e| self.explained(e))? {
            let read = || -> rusqlite::Result<serde_json::Value> {
                let key: Vec<u8> = row.get(0)?;
                let result_line: String = row.get(4)?;
                let result: serde_json::Value = serde_json::from_str(&result_line)
                    .unwrap_or(serde_json::Value::String(result_line));
                Ok(serde_json::json!({
                    "key": hex::encode(key),
                    "provider": row.get::<_, String>(1)?,
                    "endpoint": row.get::<_, String>(2)?,
                    "model": row.get::<_, String>(3)?,
                    "batch_id": row.get::<_, Option<String>>(5)?,
                    "job": row.get::<_, String>(6)?,
                    "run_id": row.get::<_, String>(7)?,
                    "prompt_tokens": row.get::<_, Option<i64>>(8)?,
                    "completion_tokens": row.get::<_, Option<i64>>(9)?,
                    "reasoning_tokens": row.get::<_, Option<i64>>(10)?,
                    "cost": row.get::<_, Option<String>>(11)?,
                    "currency": row.get::<_, Option<String>>(12)?,
                    "answered_at": row.get::<_, String>(13)?,
                    "last_used_at": row.get::<_, String>(14)?,
                    "result": result,
                }))
            };
            let value = read().map_err(|e| self.explained(e))?;
            serde_json::to_writer(&mut *out, &value)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        Ok(written)
    }
}

fn create_private_directory(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(key: u8, job: &str, text: &str) -> AnswerRecord {
        AnswerRecord {
            key: RequestKey([key; 32]),
            provider: "sim".into(),
            endpoint: "/v1/chat/completions".into(),
            model: "qwen-plus".into(),
            result_line: format!(r#"{{"custom_id":"1","answer":"{text}"}}"#),
            batch_id: Some("batch-1".into()),
            job: job.into(),
            run_id: "run-1".into(),
            prompt_tokens: Some(10),
            completion_tokens: Some(2),
            reasoning_tokens: None,
            cost: Some("0.000006".into()),
            currency: Some("CNY".into()),
        }
    }

    #[test]
    fn answers_are_found_by_key_replaced_by_newer_ones_and_pruned_and_exported() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested").join("answers.sqlite");
        let mut store = AnswerStore::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store
            .record(&[answer(1, "a", "one"), answer(2, "b", "two")])
            .unwrap();
        store.record(&[answer(1, "a", "uno")]).unwrap();
        assert!(
            store
                .lookup(&RequestKey([1; 32]))
                .unwrap()
                .unwrap()
                .result_line
                .contains("uno")
        );
        assert_eq!(store.lookup(&RequestKey([3; 32])).unwrap(), None);
        let stats = store.stats().unwrap();
        assert_eq!(stats.answers, 2);
        assert_eq!(stats.jobs.len(), 2);

        let mut exported = Vec::new();
        assert_eq!(store.export(Some("b"), &mut exported).unwrap(), 1);
        let line: serde_json::Value = serde_json::from_slice(&exported).unwrap();
        assert_eq!(line["result"]["answer"], "two");

        // Nothing is older than a time far back; everything is older than one far ahead.
        assert_eq!(
            store
                .prune(Some("2000-01-01T00:00:00Z"), None, None)
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .prune(None, Some("9999-01-01T00:00:00Z"), Some("a"))
                .unwrap(),
            1
        );
        assert_eq!(store.stats().unwrap().answers, 1);

        // Two runs may announce one request; an answer landing withdraws every announcement.
        let key = RequestKey([9; 32]);
        store
            .announce_in_flight(&[key], "run-a", "/runs/a")
            .unwrap();
        store
            .announce_in_flight(&[key], "run-b", "/runs/b")
            .unwrap();
        assert_eq!(store.in_flight(&key).unwrap().len(), 2);
        assert_eq!(store.runs_in_flight().unwrap().len(), 2);
        store.withdraw_in_flight("run-a").unwrap();
        assert_eq!(store.in_flight(&key).unwrap()[0].run_id, "run-b");
        store.record(&[answer(9, "a", "nine")]).unwrap();
        assert!(store.in_flight(&key).unwrap().is_empty());

        let reader = AnswerStore::open_to_read(&path).unwrap().unwrap();
        assert!(reader.lookup(&RequestKey([2; 32])).unwrap().is_some());
        assert!(
            AnswerStore::open_to_read(&directory.path().join("none.sqlite"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_file_that_is_not_a_store_is_refused_saying_what_to_do() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("answers.sqlite");
        std::fs::write(
            &path,
            b"this is a text file, not SQLite, and long enough to look like a header",
        )
        .unwrap();
        let message = AnswerStore::open(&path).err().unwrap().to_string();
        assert!(message.contains("not an answer store"), "{message}");
        assert!(message.contains("--no-store"), "{message}");
    }
}
