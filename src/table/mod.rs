//! Columnar tables in and out: CSV (and TSV), Parquet and JSON Lines as streams of Arrow record batches; text inputs in any encoding, gzip'd or not.

mod batch_stream;
mod csv_quote_tracker;
mod csv_reader;
mod format;
mod jsonl_reader;
mod reader;
mod row_value;
mod text_options;
mod text_source;
mod writer;

pub use batch_stream::TableError;
pub use format::TableFormat;
pub use reader::{TableReader, open_table, open_table_with};
pub use row_value::{CellError, cell_value, check_template_type, display_cell};
pub use text_options::TextOptions;
pub use text_source::{TextEncoding, encoding_for_label, is_gzip, sniff_delimiter};
pub use writer::{AtomicTableWriter, write_error};
