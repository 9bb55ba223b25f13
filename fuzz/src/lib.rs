//! Helpers shared by the fuzz targets: one scratch directory per fuzzing process (in RAM when
//! `/dev/shm` exists), and a walk over every cell of a table the way the renderer reads it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow_array::RecordBatch;
use dashbatch::table::{TableError, cell_value, display_cell};

/// The process's scratch directory, created once and removed when the process exits normally.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let builder = {
            let mut builder = tempfile::Builder::new();
            builder.prefix("dashbatch-fuzz-");
            builder
        };
        if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        }
        .expect("scratch directory")
    })
    .path()
}

/// Writes `bytes` to `name` inside the scratch directory and returns the path.
pub fn write_scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, bytes).expect("write scratch file");
    path
}

/// Pulls every batch of a table and reads every cell as the renderer and the join would.
/// Returns the number of rows read before the first error (if any).
pub fn drain_table(
    reader: impl Iterator<Item = Result<RecordBatch, TableError>>,
) -> (usize, Option<TableError>) {
    let mut rows = 0;
    for batch in reader {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                // Errors must be displayable (they are shown to the user).
                let _ = error.to_string();
                return (rows, Some(error));
            }
        };
        for (index, column) in batch.columns().iter().enumerate() {
            for row in 0..batch.num_rows() {
                // The readers make text, integer, float and boolean columns only: every cell
                // of those can be shown, as a template value and as text.
                let field = batch.schema_ref().field(index).clone();
                if let Err(error) = cell_value(column.as_ref(), row) {
                    panic!("column {field:?}, row {row}: not a template value: {error}");
                }
                if let Err(error) = display_cell(column.as_ref(), row) {
                    panic!("column {field:?}, row {row}: not displayable: {error}");
                }
            }
        }
        rows += batch.num_rows();
    }
    (rows, None)
}
