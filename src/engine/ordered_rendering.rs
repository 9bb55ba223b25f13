//! Rendering rows off the planning loop's thread, handed back in input order so the plan is the
//! same as rendering one row at a time.
//!
//! - Text jobs: a helper thread renders whole record batches, handed to it by the thread that
//!   reads the input ([`read_ahead`]), while the planning loop claims, shards and writes earlier
//!   rows. It holds at most the batch being rendered and one waiting, in chunks of rendered rows.
//!   The rows the loop is done with go back to it in chunks to be freed there: mimalloc frees a
//!   block cheaply on the thread that made it, and through an atomic list that its owner must
//!   later collect on any other (a tenth of the planning loop's time at 10 million rows).
//! - Jobs whose rows carry images (each row reads and decodes pictures): a small window of rows
//!   is rendered on every core at once. The window bounds memory: at most
//!   `WINDOW_ROWS_PER_THREAD` rows per core are held, each line at most the line limit.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::RecordBatch;

use crate::render::{RenderError, RenderedRequest, RenderedRow, RequestRenderer};
use crate::table::{BatchPlace, TableError, TableReader};

/// Rows each thread renders per window (image jobs).
const WINDOW_ROWS_PER_THREAD: usize = 4;
/// The most threads used (beyond that, reading the input and writing shards bind).
const MAX_THREADS: usize = 8;
/// Rows the helper thread hands back at a time (text jobs).
const CHUNK_ROWS: usize = 512;

/// A chunk also ends once its request lines hold this many bytes, so that the chunks rendered
/// ahead of the loop hold little memory when rows are large documents.
const CHUNK_BYTES: usize = 256 << 10;

/// Chunks rendered ahead of the loop at most.
const CHUNKS_AHEAD: usize = 16;

/// Chunks of rows the loop is done with that wait to be freed by the helper thread at most;
/// beyond that the loop frees them itself.
const SPENT_CHUNKS_WAITING: usize = 4;

/// Record batches read ahead at most.
const BATCHES_READ_AHEAD: usize = 2;

type RowOutcome = Result<RenderedRow, RenderError>;
/// A batch to render, and the number of its first row.
type BatchToRender = (RecordBatch, u64);

/// Reads `reader` on a thread of `scope`, batch after batch, each with where its rows come
/// from; every batch also goes to `render_ahead` (a text job's rendering thread) as it is read.
/// Reading stops at the first error, or when the receiver is dropped.
pub fn read_ahead<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut reader: TableReader,
    render_ahead: Option<SyncSender<BatchToRender>>,
) -> Receiver<Result<(RecordBatch, BatchPlace), TableError>> {
    let (batches, batch_inbox) = sync_channel(BATCHES_READ_AHEAD);
    scope.spawn(move || {
        let mut rows_read: u64 = 0;
        while let Some(batch) = reader.next() {
            let read = batch.map(|batch| (batch, reader.take_batch_place()));
            let failed = read.is_err();
            if let (Ok((batch, _)), Some(render_ahead)) = (&read, &render_ahead) {
                // Fails only when the rendering thread has stopped, which the loop then learns.
                let _ = render_ahead.send((batch.clone(), rows_read + 1));
            }
            if let Ok((batch, _)) = &read {
                rows_read += batch.num_rows() as u64;
            }
            if batches.send(read).is_err() || failed {
                return;
            }
        }
    });
    batch_inbox
}

/// Rendered rows, waiting for the planning loop to take them in order.
pub struct OrderedRendering<'renderer> {
    renderer: &'renderer RequestRenderer,
    threads: usize,
    /// Rendered rows not yet taken: the chunk (or window) being taken from, each row moved out
    /// where it lies. Taking a row costs the loop its move from the other core's cache (about
    /// 6% of `validate`'s CPU at 10 million rows, whether a chunk is copied into a queue first
    /// or not; fetching rows a few ahead made it 1.04× slower).
    ready: std::vec::IntoIter<RowOutcome>,
    /// Text jobs: the helper thread's channels.
    helper: Option<RenderingHelper>,
    /// Rows the loop is done with, not yet handed back.
    spent: Vec<RenderedRequest>,
    /// The bytes of their request lines.
    spent_bytes: usize,
}

/// A text job's rendering thread: batches to it, chunks of rendered rows from it, and chunks of
/// rows the loop is done with back to it.
struct RenderingHelper {
    batches: SyncSender<BatchToRender>,
    chunks: Receiver<Vec<RowOutcome>>,
    spent: SyncSender<Vec<RenderedRequest>>,
}

impl<'renderer> OrderedRendering<'renderer> {
    /// Rendering for `renderer`; a text job's helper thread runs in `scope`, and stops when this
    /// is dropped.
    pub fn new<'scope>(
        renderer: &'renderer RequestRenderer,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> OrderedRendering<'renderer>
    where
        'renderer: 'scope,
    {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let helper = (!renderer.sends_images() && cores > 1).then(|| {
            let (batches, batch_inbox) = sync_channel::<BatchToRender>(1);
            let (chunks, chunk_inbox) = sync_channel::<Vec<RowOutcome>>(CHUNKS_AHEAD);
            let (spent, spent_inbox) = sync_channel::<Vec<RenderedRequest>>(SPENT_CHUNKS_WAITING);
            scope.spawn(move || {
                for (batch, first_row_number) in batch_inbox {
                    let mut rows = (0..batch.num_rows()).peekable();
                    while rows.peek().is_some() {
                        // Frees the rows the loop is done with, here where they were made.
                        while spent_inbox.try_recv().is_ok() {}
                        let mut chunk: Vec<RowOutcome> = Vec::with_capacity(CHUNK_ROWS);
                        let mut chunk_bytes = 0;
                        while chunk.len() < CHUNK_ROWS && chunk_bytes < CHUNK_BYTES {
                            let Some(row) = rows.next() else { break };
                            let rendered =
                                renderer.render_row(&batch, row, first_row_number + row as u64);
                            if let Ok(RenderedRow::Request(request)) = &rendered {
                                chunk_bytes += request.line.len();
                            }
                            chunk.push(rendered);
                        }
                        if chunks.send(chunk).is_err() {
                            return;
                        }
                    }
                }
            });
            RenderingHelper {
                batches,
                chunks: chunk_inbox,
                spent,
            }
        });
        OrderedRendering {
            renderer,
            threads: if renderer.sends_images() {
                cores.min(MAX_THREADS)
            } else {
                1
            },
            ready: Vec::new().into_iter(),
            helper,
            spent: Vec::new(),
            spent_bytes: 0,
        }
    }

    /// Where batches go to be rendered ahead, in input order, before their rows are asked for
    /// (a text job); `None` when rows are rendered as they are asked for.
    pub fn render_ahead(&self) -> Option<SyncSender<BatchToRender>> {
        self.helper.as_ref().map(|helper| helper.batches.clone())
    }

    /// The row the next [`Self::render`] gives, when it is rendered already.
    pub fn peek_rendered(&self) -> Option<&RowOutcome> {
        self.ready.as_slice().first()
    }

    /// Takes back a rendered request the loop is done with, to be freed by the thread that made
    /// it (a text job's); freed here at once otherwise, or when that thread lags behind.
    pub fn done_with(&mut self, request: RenderedRequest) {
        let Some(helper) = &self.helper else {
            return;
        };
        self.spent_bytes += request.line.len();
        self.spent.push(request);
        if self.spent.len() >= CHUNK_ROWS || self.spent_bytes >= CHUNK_BYTES {
            self.spent_bytes = 0;
            let spent = std::mem::replace(&mut self.spent, Vec::with_capacity(CHUNK_ROWS));
            // Full (the thread is busy) or gone: the rows are freed here instead.
            let _ = helper.spent.try_send(spent);
        }
    }

    /// Row `row` of `batch` (numbered `row_number`), rendered. Rows must be asked for in order,
    /// every row of each batch (a text job's batches handed to [`Self::render_ahead`] first);
    /// an image job's window never reaches past its batch.
    pub fn render(&mut self, batch: &RecordBatch, row: usize, row_number: u64) -> RowOutcome {
        if let Some(helper) = &self.helper {
            if self.ready.as_slice().is_empty() {
                let chunk = helper
                    .chunks
                    .recv()
                    .expect("the rendering thread renders every row handed to it");
                self.ready = chunk.into_iter();
            }
            return self.ready.next().expect("a chunk holds at least one row");
        }
        if self.threads == 1 {
            return self.renderer.render_row(batch, row, row_number);
        }
        if let Some(rendered) = self.ready.next() {
            return rendered;
        }
        let window = (self.threads * WINDOW_ROWS_PER_THREAD).min(batch.num_rows() - row);
        let renderer = self.renderer;
        let mut slots: Vec<Option<RowOutcome>> = (0..window).map(|_| None).collect();
        std::thread::scope(|scope| {
            let per_thread = window.div_ceil(self.threads);
            for (chunk_index, chunk) in slots.chunks_mut(per_thread).enumerate() {
                scope.spawn(move || {
                    for (offset, slot) in chunk.iter_mut().enumerate() {
                        let index = chunk_index * per_thread + offset;
                        *slot = Some(renderer.render_row(
                            batch,
                            row + index,
                            row_number + index as u64,
                        ));
                    }
                });
            }
        });
        self.ready = slots
            .into_iter()
            .map(|slot| slot.expect("every row of the window is rendered"))
            .collect::<Vec<_>>()
            .into_iter();
        self.ready
            .next()
            .expect("a window holds at least the row asked for")
    }
}
