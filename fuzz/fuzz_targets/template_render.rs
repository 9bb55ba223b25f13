//! Rendering (src/render.rs): an arbitrary user template (and system template) compiled by
//! `RequestRenderer::new` against a small table, then one row rendered with `render_row`. It
//! must return Ok or Err, never panic or hang, and a rendered request must be a valid request
//! line (a row may also be skipped, e.g. for an empty prompt).
//!
//! Input layout (hand-writable, so seeds are plain text):
//!   byte 0   flags: bit 0 embeddings endpoint, bit 1 a system template, bit 2 `id_column = "a"`,
//!            bits 3-4 provider (sim, dashscope, dashscope-intl, openai), bit 5 declared output
//!            fields, bit 6 a model that thinks by default, bit 7 row number u64::MAX (else 1)
//!   rest     `\0`-separated: user template, system template, then the cells of columns
//!            `a` (text), `b` (text), `n` (Int64), `x` (Float64), `f` (Boolean); a missing or
//!            unparsable cell is null.
#![no_main]

use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use dashbatch::job::{Job, load_job};
use dashbatch::provider::{ProviderKind, ProviderProfile};
use dashbatch::render::{RenderedRow, RequestRenderer};
use dashbatch::wire::RequestLine;
use libfuzzer_sys::fuzz_target;

const KINDS: [ProviderKind; 4] = [
    ProviderKind::Sim,
    ProviderKind::Dashscope,
    ProviderKind::DashscopeIntl,
    ProviderKind::Openai,
];

/// The job for each combination of flag bits 0, 1, 2, 5 and 6, loaded through `load_job` so
/// every variant is a job the loader really accepts.
fn job_for(flags: u8) -> &'static Job {
    static JOBS: OnceLock<Vec<Job>> = OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        fuzz_support::write_scratch("rows.csv", b"a,b,n,x,f\n1,t,1,1.5,true\n");
        (0u8..32)
            .map(|variant| {
                let embeddings = variant & 1 != 0;
                let system = variant & 2 != 0 && !embeddings;
                let id_column = variant & 4 != 0;
                let fields = variant & 8 != 0 && !embeddings;
                let thinking_model = variant & 16 != 0;
                let model = match (embeddings, thinking_model) {
                    (true, _) => "text-embedding-v4",
                    (false, false) => "qwen-plus",
                    (false, true) => "qwen3.6-plus",
                };
                let mut text = String::from("[input]\npath = \"rows.csv\"\n");
                if id_column {
                    text.push_str("id_column = \"a\"\n");
                }
                text.push_str(&format!("[request]\nmodel = \"{model}\"\ntemplate = \"x\"\n"));
                if embeddings {
                    text.push_str("endpoint = \"/v1/embeddings\"\ndimensions = 8\n");
                } else {
                    text.push_str("max_tokens = 50\ntemperature = 0.5\nstop = [\"END\"]\n");
                }
                if system {
                    text.push_str("system = \"s\"\n");
                }
                if fields {
                    text.push_str(
                        "[[output.fields]]\nname = \"label\"\ntype = \"label\"\nlabels = [\"p\", \"n\"]\n\
                         [[output.fields]]\nname = \"score\"\ntype = \"float\"\nrequired = false\n",
                    );
                }
                let path = fuzz_support::write_scratch(&format!("job{variant}.toml"), text.as_bytes());
                load_job(&path).unwrap_or_else(|error| panic!("base job {variant}: {error}"))
            })
            .collect()
    });
    let variant = (flags & 0b111) | ((flags >> 2) & 0b11000);
    &jobs[usize::from(variant)]
}

fn row(parts: &[&str]) -> RecordBatch {
    let cell = |index: usize| parts.get(index).copied();
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Utf8, true),
        Field::new("b", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
        Field::new("f", DataType::Boolean, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![cell(0)])),
        Arc::new(StringArray::from(vec![cell(1)])),
        Arc::new(Int64Array::from(vec![
            cell(2).and_then(|c| c.parse::<i64>().ok()),
        ])),
        Arc::new(Float64Array::from(vec![
            cell(3).and_then(|c| c.parse::<f64>().ok()),
        ])),
        Arc::new(BooleanArray::from(vec![
            cell(4).and_then(|c| c.parse::<bool>().ok()),
        ])),
    ];
    RecordBatch::try_new(schema, columns).expect("row batch")
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    // A render stops at its time limit; one second keeps a slow input well under libFuzzer's
    // ten-second timeout (the product's limit is ten seconds).
    dashbatch::template_budget::set_render_time_limit(std::time::Duration::from_secs(1));
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or_default();
    let system = parts.next();
    let cells: Vec<&str> = parts.collect();

    let mut job = job_for(flags).clone();
    job.spec.request.template = template.to_owned();
    if job.spec.request.system.is_some() {
        job.spec.request.system = Some(system.unwrap_or_default().to_owned());
    }
    let profile = ProviderProfile::for_kind(KINDS[usize::from((flags >> 3) & 0b11)]);
    let batch = row(&cells);
    let renderer = match RequestRenderer::new(&job, &profile, &batch.schema()) {
        Ok(renderer) => renderer,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let row_number = if flags & 0x80 != 0 { u64::MAX } else { 1 };
    match renderer.render_row(&batch, 0, row_number) {
        Ok(RenderedRow::Request(rendered)) => {
            let line: RequestLine = serde_json::from_slice(&rendered.line)
                .unwrap_or_else(|error| panic!("the rendered line is not a request line: {error}"));
            assert_eq!(line.custom_id, rendered.custom_id);
            assert_eq!(line.url, job.spec.request.endpoint);
            assert_eq!(rendered.row_number, row_number);
        }
        Ok(RenderedRow::Skipped(skipped)) => {
            assert_eq!(skipped.row_number, row_number);
            assert!(!skipped.reason.is_empty());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
