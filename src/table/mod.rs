//! Columnar tables in and out: CSV, Parquet and JSON Lines as streams of Arrow record batches.

mod batch_stream;
mod csv_quote_tracker;
mod csv_reader;
mod format;
mod jsonl_reader;
mod reader;
mod row_value;
mod writer;

pub use batch_stream::TableError;
pub use format::TableFormat;
pub use reader::{TableReader, open_table};
pub use row_value::{CellError, cell_value, check_template_type, display_cell};
pub use writer::{AtomicTableWriter, write_error};
