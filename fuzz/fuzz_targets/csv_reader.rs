//! The CSV input reader (src/table/csv_reader.rs, through `table::open_table`) over arbitrary
//! bytes: it must return a table or a `TableError`, never panic.
#![no_main]

use dashbatch::table::{TableFormat, open_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = fuzz_support::write_scratch("input.csv", data);
    match open_table(&path, TableFormat::Csv) {
        Ok(reader) => {
            let schema = reader.schema();
            assert!(!schema.fields().is_empty(), "a CSV table without columns");
            let (rows, _) = fuzz_support::drain_table(reader);
            // Every data row is at least one byte; a row count above the input size is a bug.
            assert!(rows <= data.len(), "{rows} rows from {} bytes", data.len());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
