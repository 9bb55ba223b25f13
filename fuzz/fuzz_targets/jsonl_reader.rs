//! The JSON Lines input reader (src/table/jsonl_reader.rs, through `table::open_table`) over
//! arbitrary bytes: it must return a table or a `TableError`, never panic.
#![no_main]

use dashbatch::table::{TableFormat, open_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = fuzz_support::write_scratch("input.jsonl", data);
    match open_table(&path, TableFormat::Jsonl) {
        Ok(reader) => {
            assert!(
                !reader.schema().fields().is_empty(),
                "a JSONL table without columns"
            );
            let (rows, _) = fuzz_support::drain_table(reader);
            assert!(rows <= data.len(), "{rows} rows from {} bytes", data.len());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
