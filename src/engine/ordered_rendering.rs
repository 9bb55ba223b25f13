//! Rendering rows ahead of the planning loop, in order: for jobs whose rows carry images (each
//! row reads and decodes pictures), a small window of rows is rendered on every core at once and
//! handed back in input order, so the plan is the same as rendering one row at a time. Text jobs
//! render one row at a time (threads would cost more than a row takes). The window bounds memory:
//! at most `WINDOW_ROWS_PER_THREAD` rows per core are held, each line at most the line limit.

use std::collections::VecDeque;

use arrow_array::RecordBatch;

use crate::render::{RenderError, RenderedRow, RequestRenderer};

/// Rows each thread renders per window.
const WINDOW_ROWS_PER_THREAD: usize = 4;
/// The most threads used (beyond that, reading the input and writing shards bind).
const MAX_THREADS: usize = 8;

/// Rendered rows of one record batch, waiting for the planning loop to take them in order.
pub struct OrderedRendering<'renderer> {
    renderer: &'renderer RequestRenderer,
    threads: usize,
    ready: VecDeque<Result<RenderedRow, RenderError>>,
}

impl<'renderer> OrderedRendering<'renderer> {
    pub fn new(renderer: &'renderer RequestRenderer) -> OrderedRendering<'renderer> {
        let threads = if renderer.sends_images() {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_THREADS)
        } else {
            1
        };
        OrderedRendering {
            renderer,
            threads,
            ready: VecDeque::new(),
        }
    }

    /// Forgets rows rendered ahead (when the loop moves to the next record batch or stops).
    pub fn clear(&mut self) {
        self.ready.clear();
    }

    /// Row `row` of `batch` (numbered `row_number`), rendered; the rows after it in the same
    /// batch may be rendered ahead. Rows must be asked for in order, from 0, per batch.
    pub fn render(
        &mut self,
        batch: &RecordBatch,
        row: usize,
        row_number: u64,
    ) -> Result<RenderedRow, RenderError> {
        if self.threads == 1 {
            return self.renderer.render_row(batch, row, row_number);
        }
        if let Some(rendered) = self.ready.pop_front() {
            return rendered;
        }
        let window = (self.threads * WINDOW_ROWS_PER_THREAD).min(batch.num_rows() - row);
        let renderer = self.renderer;
        let mut slots: Vec<Option<Result<RenderedRow, RenderError>>> =
            (0..window).map(|_| None).collect();
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
            .collect();
        self.ready
            .pop_front()
            .expect("a window holds at least the row asked for")
    }
}
