//! The test harness: a scratch workspace, the real binary, a standalone simulator, and readers
//! for the tables and reports a run writes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use arrow_array::RecordBatch;
use serde_json::Value;

/// The dashbatch binary under test: cargo's, or `DASHBATCH_TEST_BINARY` (the soak script runs a
/// copied build so that rebuilding the tree does not change the binary under a long soak).
pub fn binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var("DASHBATCH_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_dashbatch").to_owned())
    })
}

pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory that a run uses as its working directory.
pub struct Workspace {
    pub directory: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            directory: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs the binary in the workspace with no API key in its environment.
    pub fn run(&self, arguments: &[&str]) -> Output {
        self.command(arguments).output().expect("run dashbatch")
    }

    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(arguments)
            .current_dir(self.path())
            .env_remove("DASHSCOPE_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("DASHBATCH_PRICES")
            .env_remove("DASHBATCH_TOKENIZER")
            .env_remove("DASHBATCH_STORE")
            // The workspace's own cache directory: no vocabulary is installed unless a test does it.
            .env("XDG_CACHE_HOME", self.path().join(".cache"))
            .stdin(Stdio::null());
        command
    }

    /// `dashbatch run JOB --provider PROVIDER --base-url <simulator> --run-dir DIR EXTRA...`.
    pub fn run_against(
        &self,
        simulator: &StandaloneSimulator,
        provider: &str,
        job: &str,
        run_directory: &Path,
        extra_arguments: &[&str],
    ) -> Command {
        let mut arguments = vec![
            "run",
            job,
            "--provider",
            provider,
            "--base-url",
            &simulator.base_url,
            "--run-dir",
            run_directory.to_str().unwrap(),
        ];
        arguments.extend_from_slice(extra_arguments);
        self.command(&arguments)
    }

    /// The only run directory under `runs/`.
    pub fn single_run_directory(&self) -> PathBuf {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(self.path().join("runs"))
            .expect("runs directory")
            .map(|entry| entry.unwrap().path())
            // `runs/.<job>.lock` is the per-job lock, not a run.
            .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        assert_eq!(entries.len(), 1, "expected one run directory: {entries:?}");
        entries.pop().unwrap()
    }
}

/// Records a summary line for `.ci/run` to print (test output is captured when tests pass).
pub fn record_summary(name: &str, line: &str) {
    let directory = repository_root().join("target").join("test-summaries");
    let _ = std::fs::create_dir_all(&directory);
    let _ = std::fs::write(directory.join(format!("{name}.txt")), format!("{line}\n"));
    println!("{line}");
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
}

pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub fn read_report(run_directory: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(run_directory.join("report.json")).expect("report.json"))
        .expect("report is JSON")
}

/// The values of a string column across batches.
pub fn string_column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let mut values = Vec::new();
    for batch in batches {
        let column = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name}"));
        let strings = column.as_string::<i32>();
        for row in 0..strings.len() {
            values.push((!strings.is_null(row)).then(|| strings.value(row).to_owned()));
        }
    }
    values
}

/// A `dashbatch sim serve` process on a free loopback port, killed when dropped.
pub struct StandaloneSimulator {
    child: Child,
    pub base_url: String,
    pub root_url: String,
}

impl StandaloneSimulator {
    pub fn start(extra_arguments: &[&str]) -> StandaloneSimulator {
        StandaloneSimulator::start_at("127.0.0.1:0", extra_arguments)
    }

    pub fn start_at(address: &str, extra_arguments: &[&str]) -> StandaloneSimulator {
        let mut arguments = vec!["sim", "serve", "--addr", address];
        arguments.extend_from_slice(extra_arguments);
        let mut child = Command::new(binary())
            .args(&arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the simulator");
        let stderr = child.stderr.take().unwrap();
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        let base_url = loop {
            line.clear();
            let read = reader.read_line(&mut line).expect("simulator stderr");
            assert!(
                read > 0,
                "the simulator exited before saying where it listens"
            );
            if let Some(index) = line.find("http://") {
                break line[index..].trim().to_owned();
            }
        };
        // Keep draining stderr so the simulator never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        let root_url = base_url
            .split("/compatible-mode")
            .next()
            .unwrap()
            .trim_end_matches("/v1")
            .to_owned();
        StandaloneSimulator {
            child,
            base_url,
            root_url,
        }
    }

    pub fn get_json(&self, path: &str) -> Value {
        http_json("GET", &format!("{}{path}", self.root_url), None)
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Value {
        http_json("PUT", &format!("{}{path}", self.root_url), Some(body))
    }

    /// Restarts the simulator on the same address and state directory (the client is not told).
    pub fn restart(&mut self, state_dir: &Path) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let address = self.root_url.trim_start_matches("http://").to_owned();
        let mut replacement =
            StandaloneSimulator::start_at(&address, &["--state-dir", state_dir.to_str().unwrap()]);
        std::mem::swap(&mut self.child, &mut replacement.child);
    }

    pub fn ledger(&self) -> Value {
        self.get_json("/_sim/ledger")
    }

    /// The calls the simulator received, by route (answered or not).
    pub fn calls(&self) -> Value {
        self.get_json("/_sim/requests")["calls"].clone()
    }

    /// Upload calls the simulator received (answered or not).
    pub fn upload_calls(&self) -> u64 {
        self.calls()["upload"].as_u64().unwrap_or(0)
    }
}

/// The `dashbatch run` of the workspace's `job.toml` against `simulator`, which must refuse it
/// with exit code 2 before any upload; returns its stderr.
pub fn run_refused_before_upload(workspace: &Workspace, simulator: &StandaloneSimulator) -> String {
    run_job_refused_before_upload(workspace, simulator, "job.toml")
}

/// [`run_refused_before_upload`] for the workspace's job file `job`.
pub fn run_job_refused_before_upload(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    job: &str,
) -> String {
    let output = workspace.run(&[
        "run",
        job,
        "--provider",
        "sim",
        "--base-url",
        &simulator.base_url,
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{job}: {stderr}");
    assert_eq!(
        simulator.upload_calls(),
        0,
        "{job}: nothing may be uploaded: {stderr}"
    );
    stderr
}

impl Drop for StandaloneSimulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 client for the simulator's admin routes on loopback.
pub fn http_json(method: &str, url: &str, body: Option<&Value>) -> Value {
    use std::io::{Read, Write};
    let without_scheme = url.strip_prefix("http://").expect("http URL");
    let (host, path) =
        without_scheme.split_at(without_scheme.find('/').unwrap_or(without_scheme.len()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect to simulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer test-harness\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 2"), "{method} {url}: {head}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {url}: {e}: {body}"))
    }
}

fn dechunk(body: &str) -> String {
    let mut output = String::new();
    let mut rest = body;
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        output.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    output
}

/// Copies `fixtures/...` into the workspace so jobs can name them relatively.
pub fn copy_fixture(workspace: &Workspace, relative: &str) -> PathBuf {
    let source = repository_root().join(relative);
    let target = workspace
        .path()
        .join(Path::new(relative).file_name().unwrap());
    std::fs::copy(&source, &target).unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
    target
}

/// Stops the simulator's clock: batches stay where they are until [`release_clock`].
/// Copies a file, or a directory with everything in it (hidden files too), to `target`.
pub fn copy_tree(source: &Path, target: &Path) {
    if source.is_dir() {
        std::fs::create_dir_all(target).unwrap();
        for entry in std::fs::read_dir(source).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &target.join(entry.file_name()));
        }
    } else {
        std::fs::copy(source, target).unwrap();
    }
}

pub fn freeze_clock(simulator: &StandaloneSimulator) {
    simulator.put_json("/_sim/clock", &serde_json::json!({"time_scale": 0.0}));
}

/// Runs the simulator's clock fast again, so frozen batches finish.
pub fn release_clock(simulator: &StandaloneSimulator) {
    simulator.put_json("/_sim/clock", &serde_json::json!({"time_scale": 1000.0}));
}

/// Starts `command` with stdout and stderr captured.
pub fn spawn_piped(mut command: Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dashbatch")
}

/// Waits until the simulator holds at least `count` batches (the run is live and has spent).
pub fn wait_for_simulator_batches(simulator: &StandaloneSimulator, count: usize) {
    let started = std::time::Instant::now();
    while simulator.ledger()["batches"].as_array().map_or(0, Vec::len) < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never created its batches"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test past that.
pub fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the process did not end within {limit:?}\nstderr:\n{}",
                text(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lets the file at `path` be run as a program.
pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The directory of the sample pictures (scikit-image's, from PyPI), fetched once by
/// `scripts/fixtures/sample-images.sh` for the image job and the image tests.
pub fn sample_images() -> PathBuf {
    static FETCHED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FETCHED
        .get_or_init(|| {
            let output = Command::new("bash")
                .arg(repository_root().join("scripts/fixtures/sample-images.sh"))
                .output()
                .expect("run scripts/fixtures/sample-images.sh");
            assert!(
                output.status.success(),
                "scripts/fixtures/sample-images.sh failed:\n{}",
                text(&output.stderr)
            );
            PathBuf::from(text(&output.stdout).trim())
        })
        .clone()
}

/// Every request line of a run's shard files, shard by shard, in order.
pub fn shard_lines(run_directory: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run_directory.join("shards"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "jsonl")
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// Runs `job` of `workspace` to the end on the embedded simulator; its run directory.
pub fn finished_run_on_the_embedded_simulator(workspace: &Workspace, job: &str) -> PathBuf {
    let run_directory = workspace.path().join("run");
    let run = workspace
        .command(&[
            "run",
            job,
            "--provider",
            "sim",
            "--run-dir",
            run_directory.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    run_directory
}

/// `stderr` says each of `expected`.
pub fn assert_mentions(stderr: &str, expected: &[&str]) {
    for piece in expected {
        assert!(stderr.contains(piece), "expected `{piece}` in:\n{stderr}");
    }
}
