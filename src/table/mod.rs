//! Columnar tables in and out: CSV (and TSV), Parquet, JSON Lines and workbooks as streams of Arrow record batches; text inputs in any encoding, compressed or not; partitioned inputs read part by part.

mod batch_stream;
mod bounded_lines;
mod compression;
mod csv_reader;
mod csv_records;
mod excel_reader;
mod excel_writer;
mod format;
mod input_options;
mod input_parts;
mod jsonl_reader;
mod read_digest;
mod reader;
mod row_value;
mod text_source;
mod writer;

pub use batch_stream::TableError;
pub use compression::Compression;
pub use excel_writer::check_fits_a_sheet;
pub use format::TableFormat;
pub use input_options::{InputOptions, SheetChoice};
pub use input_parts::{find_input_files, format_of_parts, glob_base, is_glob, is_within_input};
pub use read_digest::{DigestAlgorithm, ReadDigest};
pub use reader::{
    BatchPlace, TableReader, digests_while_reading, open_table, open_table_digesting,
    open_table_with,
};
pub use row_value::{
    CellError, cell_value, check_template_type, display_cell, is_text_type, text_cell,
};
pub use text_source::{TextEncoding, encoding_for_label, sniff_delimiter};
pub use writer::{AtomicTableWriter, ColumnHints, write_error};
