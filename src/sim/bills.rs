//! A finished batch's bills: one JSON line per billed request, kept as bytes in the file store
//! under [`bills_key`] (beside stored files, but no file of the Files API), and their totals in
//! the batch's record. `world.json` is rewritten on every change, so it keeps only the totals
//! and stays small however many lines a batch ran; the ledger reads the lines back when asked.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use super::ledger::BilledRequest;
use super::persist::{FileSink, FileStore};

/// Token totals of some billed lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BillTotals {
    pub(crate) lines: u64,
    pub(crate) prompt_tokens: u64,
    /// Includes `reasoning_tokens`.
    pub(crate) completion_tokens: u64,
    pub(crate) reasoning_tokens: u64,
}

impl BillTotals {
    fn add(&mut self, bill: &BilledRequest) {
        self.lines += 1;
        self.prompt_tokens += bill.prompt_tokens;
        self.completion_tokens += bill.completion_tokens;
        self.reasoning_tokens += bill.reasoning_tokens;
    }
}

/// Where a batch's bills are and what they add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchBills {
    /// The store key of the bill lines; `None` when the batch billed nothing.
    pub(crate) stored_as: Option<String>,
    /// Every billed line, free ones included: the batch's own `usage` (the ledger's totals of
    /// what cost money are added up from the lines themselves).
    #[serde(alias = "all")]
    pub(crate) totals: BillTotals,
}

/// The store key of the bills of batch `batch_id`.
pub(crate) fn bills_key(batch_id: &str) -> String {
    format!("bills-{batch_id}")
}

/// Writes a batch's bills as they are made, one line each, into a sink of the file store.
pub(crate) struct BillWriter<'store> {
    store: &'store FileStore,
    sink: Option<FileSink>,
    bills: BatchBills,
}

impl<'store> BillWriter<'store> {
    pub(crate) fn new(store: &'store FileStore) -> BillWriter<'store> {
        BillWriter {
            store,
            sink: None,
            bills: BatchBills::default(),
        }
    }

    pub(crate) fn add(&mut self, bill: &BilledRequest) -> io::Result<()> {
        let sink = match &mut self.sink {
            Some(sink) => sink,
            None => self.sink.insert(self.store.new_sink()?),
        };
        serde_json::to_writer(&mut *sink, bill)?;
        sink.write_all(b"\n")?;
        self.bills.totals.add(bill);
        Ok(())
    }

    /// Stores the lines under the key of `batch_id`; returns where they are and their totals.
    pub(crate) fn finish(mut self, batch_id: &str) -> io::Result<BatchBills> {
        if let Some(mut sink) = self.sink.take() {
            sink.flush()?;
            let key = bills_key(batch_id);
            self.store.commit_sink(sink, &key)?;
            self.bills.stored_as = Some(key);
        }
        Ok(self.bills)
    }
}

/// Visits the bill lines of `bills`, in the order they were billed.
pub(crate) fn read_bills(
    store: &FileStore,
    bills: &BatchBills,
    mut visit: impl FnMut(BilledRequest),
) -> io::Result<()> {
    let Some(key) = &bills.stored_as else {
        return Ok(());
    };
    let mut source = store.open_source(key)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if source.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let bill = serde_json::from_slice(&line).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the simulator's bills `{key}` hold a line that is not a bill: {error}"),
            )
        })?;
        visit(bill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bill(custom_id: &str, model: &str, prompt_tokens: u64) -> BilledRequest {
        BilledRequest {
            batch_id: "batch_1".into(),
            custom_id: custom_id.into(),
            model: model.into(),
            prompt_tokens,
            completion_tokens: 3,
            reasoning_tokens: 1,
            free: model == "batch-test-model",
        }
    }

    #[test]
    fn bills_are_read_back_in_order_with_totals_of_every_line() {
        let store = FileStore::in_memory();
        let mut writer = BillWriter::new(&store);
        let written = [
            bill("a", "qwen-flash", 10),
            bill("b", "batch-test-model", 20),
            bill("c", "qwen-flash", 30),
        ];
        for each in &written {
            writer.add(each).unwrap();
        }
        let bills = writer.finish("batch_1").unwrap();
        assert_eq!(bills.stored_as.as_deref(), Some("bills-batch_1"));
        assert_eq!(
            bills.totals,
            BillTotals {
                lines: 3,
                prompt_tokens: 60,
                completion_tokens: 9,
                reasoning_tokens: 3
            }
        );
        let mut read = Vec::new();
        read_bills(&store, &bills, |bill| read.push(bill)).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn a_batch_that_billed_nothing_stores_nothing() {
        let store = FileStore::in_memory();
        let bills = BillWriter::new(&store).finish("batch_2").unwrap();
        assert_eq!(bills, BatchBills::default());
        assert!(store.stored_ids().unwrap().is_empty());
        read_bills(&store, &bills, |_| panic!("no bill")).unwrap();
    }
}
