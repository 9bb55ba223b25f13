//! Columnar tables in and out: CSV, Parquet and JSON Lines as streams of Arrow record batches.

mod csv_reader;
mod format;
mod jsonl_reader;
mod reader;
mod row_value;
mod writer;

pub use format::TableFormat;
pub use reader::{TableError, TableReader, open_table};
pub use row_value::{arrow_value_to_template_value, display_cell};
pub use writer::{AtomicTableWriter, write_error};
