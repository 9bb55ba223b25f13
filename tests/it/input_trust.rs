//! Inputs that used to give a silently wrong result now give the right one or a located error
//! (exit 2, nothing uploaded): unterminated CSV quotes, input columns named like result columns,
//! time-zoned timestamps, integers past 64 bits, cells a template cannot show, empty prompts,
//! duplicate or empty column names.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampSecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::harness::*;

/// Runs `job` against a standalone simulator and checks it failed with exit 2 before uploading
/// anything; returns stderr.
fn refused_before_upload(workspace: &Workspace, job: &str) -> String {
    run_job_refused_before_upload(workspace, &StandaloneSimulator::start(&[]), job)
}

fn run_sim(workspace: &Workspace, job: &str) -> Output {
    workspace.run(&["run", job, "--provider", "sim", "--quiet"])
}

fn user_prompts(run_directory: &Path) -> Vec<String> {
    shard_lines(run_directory)
        .iter()
        .map(|line| {
            let messages = line["body"]["messages"].as_array().unwrap();
            messages.last().unwrap()["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn write_parquet(path: &Path, fields: Vec<Field>, columns: Vec<ArrayRef>) {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn csv_rows(path: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows = reader.records().map(Result::unwrap).collect();
    (headers, rows)
}

fn column_values(
    headers: &csv::StringRecord,
    rows: &[csv::StringRecord],
    name: &str,
) -> Vec<String> {
    let index = headers
        .iter()
        .position(|header| header == name)
        .unwrap_or_else(|| panic!("column {name} in {headers:?}"));
    rows.iter().map(|row| row[index].to_owned()).collect()
}

const CHAT_JOB: &str =
    "[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ text }}\"\nmax_tokens = 20\n";

// 1. A CSV quote left open at the end of the file.

#[test]
fn an_unterminated_csv_quote_is_an_error_at_the_row_where_it_opened() {
    let workspace = Workspace::new();
    let mut csv = String::from("id,text\n");
    for row in 1..=1000 {
        if row == 500 {
            csv.push_str("500,\"this quote is never closed\n");
        } else {
            csv.push_str(&format!("{row},review number {row}\n"));
        }
    }
    workspace.write("rows.csv", &csv);
    workspace.write(
        "job.toml",
        format!("[input]\npath = \"rows.csv\"\nid_column = \"id\"\n{CHAT_JOB}"),
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(
        &stderr,
        &[
            "rows.csv",
            "row 500 (line 501)",
            "column `text`",
            "never closed",
        ],
    );
}

#[test]
fn text_after_a_closing_quote_is_an_error_not_a_mangled_cell() {
    let workspace = Workspace::new();
    workspace.write(
        "rows.csv",
        "id,text\n1,fine\n2,\"also, fine\"\n3,\"He said \"hi\" to me\"\n4,last\n",
    );
    workspace.write(
        "job.toml",
        format!("[input]\npath = \"rows.csv\"\n{CHAT_JOB}"),
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(
        &stderr,
        &["rows.csv", "row 3 (line 4)", "column `text`", "\"\""],
    );
}

#[test]
fn quoted_fields_that_close_still_work_even_after_a_byte_order_mark() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/quotes_and_newlines.csv");
    workspace.write(
        "quoted.csv",
        "\u{feff}\"id\",\"text\"\n\"a\",\"first\nsecond\"\n\"b\",\"say \"\"hi\"\"\"\n",
    );
    for (input, rows) in [("quotes_and_newlines.csv", 8), ("quoted.csv", 2)] {
        let job = format!("{input}.toml");
        workspace.write(
            &job,
            format!(
                "[input]\npath = \"{input}\"\nid_column = \"id\"\n{CHAT_JOB}[output]\npath = \"out-{input}\"\n"
            ),
        );
        let output = run_sim(&workspace, &job);
        assert_success(&output);
        let (headers, result) = csv_rows(&workspace.path().join(format!("out-{input}")));
        assert_eq!(result.len(), rows, "{input}");
        assert_eq!(&headers[0], "id", "{input}");
        assert!(
            column_values(&headers, &result, "status")
                .iter()
                .all(|status| status == "ok"),
            "{input}"
        );
    }
    let (headers, result) = csv_rows(&workspace.path().join("out-quoted.csv"));
    assert_eq!(
        column_values(&headers, &result, "text"),
        ["first\nsecond", "say \"hi\""]
    );
}

// 2. Input columns named like the columns dashbatch adds.

#[test]
fn input_columns_named_like_result_columns_or_declared_fields_are_refused() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text,status,cost\n1,a,new,3\n2,b,old,4\n");
    workspace.write(
        "job.toml",
        format!("[input]\npath = \"rows.csv\"\n{CHAT_JOB}"),
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(
        &stderr,
        &[
            "rows.csv",
            "input column `status` collides with the result column `status`",
            "result_prefix",
        ],
    );

    workspace.write("fields.csv", "id,text,sentiment\n1,a,pos\n");
    workspace.write(
        "fields.toml",
        format!(
            "[input]\npath = \"fields.csv\"\n{CHAT_JOB}[[output.fields]]\nname = \"sentiment\"\ntype = \"string\"\n"
        ),
    );
    let stderr = refused_before_upload(&workspace, "fields.toml");
    assert_mentions(
        &stderr,
        &[
            "fields.csv",
            "input column `sentiment` collides with the declared output field `sentiment`",
            "result_prefix",
        ],
    );
}

#[test]
fn result_prefix_keeps_the_input_columns_and_prefixes_every_added_column() {
    let workspace = Workspace::new();
    workspace.write(
        "rows.csv",
        "id,text,status,sentiment\n1,good food,new,pos\n2,cold soup,old,neg\n",
    );
    workspace.write(
        "job.toml",
        format!(
            "[input]\npath = \"rows.csv\"\nid_column = \"id\"\n{CHAT_JOB}[output]\npath = \"out.csv\"\nresult_prefix = \"dashbatch_\"\n[[output.fields]]\nname = \"sentiment\"\ntype = \"string\"\n"
        ),
    );
    let output = run_sim(&workspace, "job.toml");
    assert_success(&output);
    let (headers, rows) = csv_rows(&workspace.path().join("out.csv"));
    assert_eq!(column_values(&headers, &rows, "status"), ["new", "old"]);
    assert_eq!(column_values(&headers, &rows, "sentiment"), ["pos", "neg"]);
    assert_eq!(
        column_values(&headers, &rows, "dashbatch_status"),
        ["ok", "ok"]
    );
    assert_eq!(
        column_values(&headers, &rows, "dashbatch_custom_id"),
        ["1", "2"]
    );
    for added in ["dashbatch_cost", "dashbatch_content", "dashbatch_sentiment"] {
        assert!(headers.iter().any(|header| header == added), "{headers:?}");
    }
    assert_eq!(
        headers
            .iter()
            .filter(|header| !header.starts_with("dashbatch_"))
            .count(),
        4,
        "{headers:?}"
    );
}

// 3. Cells templates used to show wrongly: time zones, big numbers, unsupported types.

#[test]
fn timestamps_with_a_time_zone_render_as_rfc3339_with_their_offset() {
    let workspace = Workspace::new();
    // 2024-05-01T10:00:00.123456Z
    let instant_micros = 1_714_557_600_123_456_i64;
    write_parquet(
        &workspace.path().join("times.parquet"),
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "utc",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "tokyo",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+09:00".into())),
                true,
            ),
            Field::new(
                "paris",
                DataType::Timestamp(TimeUnit::Second, Some("Europe/Paris".into())),
                true,
            ),
            Field::new("naive", DataType::Timestamp(TimeUnit::Second, None), true),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(instant_micros), None])
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(instant_micros / 1000), Some(0)])
                    .with_timezone("+09:00"),
            ),
            Arc::new(
                TimestampSecondArray::from(vec![Some(instant_micros / 1_000_000), Some(0)])
                    .with_timezone("Europe/Paris"),
            ),
            Arc::new(TimestampSecondArray::from(vec![
                Some(instant_micros / 1_000_000),
                Some(0),
            ])),
        ],
    );
    workspace.write(
        "job.toml",
        "[input]\npath = \"times.parquet\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"utc={{ utc }} tokyo={{ tokyo }} paris={{ paris }} naive={{ naive }}\"\n[output]\npath = \"out.csv\"\n",
    );
    let output = run_sim(&workspace, "job.toml");
    assert_success(&output);
    assert_eq!(
        user_prompts(&workspace.single_run_directory()),
        [
            "utc=2024-05-01T10:00:00.123456+00:00 tokyo=2024-05-01T19:00:00.123+09:00 paris=2024-05-01T10:00:00+00:00 naive=2024-05-01T10:00:00",
            "utc= tokyo=1970-01-01T09:00:00+09:00 paris=1970-01-01T00:00:00+00:00 naive=1970-01-01T00:00:00",
        ]
    );
    // The CSV output carries the same text (not an error after the money is spent).
    let (headers, rows) = csv_rows(&workspace.path().join("out.csv"));
    assert_eq!(
        column_values(&headers, &rows, "paris"),
        ["2024-05-01T10:00:00+00:00", "1970-01-01T00:00:00+00:00"]
    );
}

#[test]
fn jsonl_numbers_past_64_bits_or_float_precision_keep_their_exact_digits() {
    let workspace = Workspace::new();
    workspace.write(
        "rows.jsonl",
        concat!(
            "{\"id\": 1, \"big\": 12345678901234567890123, \"unsigned\": 18446744073709551615, \"pi\": 3.14159265358979323846, \"small\": 7, \"meta\": {\"b\": 1, \"a\": 12345678901234567890123}}\n",
            "{\"id\": 2, \"big\": 5, \"unsigned\": 1, \"pi\": 0.5, \"small\": 9007199254740993, \"meta\": null}\n",
        ),
    );
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.jsonl\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ big }} {{ unsigned }} {{ pi }} {{ small }} {{ meta }}\"\n[output]\npath = \"out.csv\"\n",
    );
    let output = run_sim(&workspace, "job.toml");
    assert_success(&output);
    assert_eq!(
        user_prompts(&workspace.single_run_directory()),
        [
            "12345678901234567890123 18446744073709551615 3.14159265358979323846 7 {\"b\": 1, \"a\": 12345678901234567890123}",
            "5 1 0.5 9007199254740993 ",
        ]
    );
    let (headers, rows) = csv_rows(&workspace.path().join("out.csv"));
    assert_eq!(
        column_values(&headers, &rows, "big"),
        ["12345678901234567890123", "5"]
    );
    assert_eq!(
        column_values(&headers, &rows, "unsigned"),
        ["18446744073709551615", "1"]
    );
}

#[test]
fn a_cell_type_a_template_cannot_show_is_refused_before_upload() {
    let workspace = Workspace::new();
    write_parquet(
        &workspace.path().join("blobs.parquet"),
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("blob", DataType::Binary, true),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(BinaryArray::from(vec![
                Some(&b"abc"[..]),
                Some(&b"\xff"[..]),
            ])),
        ],
    );
    workspace.write(
        "job.toml",
        "[input]\npath = \"blobs.parquet\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"bytes: {{ blob }}\"\n",
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(&stderr, &["blobs.parquet", "column `blob`", "Binary"]);
}

// 4. Empty prompts.

#[test]
fn an_empty_prompt_is_an_error_naming_the_row_and_its_columns() {
    let workspace = Workspace::new();
    workspace.write(
        "rows.csv",
        "id,title,text\n1,a,\"first\nreview\"\n2,b,second\n3,,\"   \"\n4,d,fourth\n",
    );
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ title }} {{ text }}\"\n",
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(
        &stderr,
        &[
            "rows.csv",
            "row 3 (line 5)",
            "`title`",
            "`text`",
            "empty",
            "skip_empty = true",
        ],
    );
}

#[test]
fn skip_empty_sends_no_empty_row_and_gives_each_an_explicit_skipped_row_in_order() {
    let workspace = Workspace::new();
    workspace.write(
        "rows.csv",
        "id,text\nr1,one\nr2,\nr3,\"  \n \"\nr4,four\nr5,five\nr6,\nr7,seven\n",
    );
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.csv\"\nid_column = \"id\"\nskip_empty = true\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ text }}\"\n[output]\npath = \"out.csv\"\n[batch]\nmax_requests_per_file = 2\n",
    );
    let output = run_sim(&workspace, "job.toml");
    // Skipping was asked for: skipped rows do not make the run fail.
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run_directory = workspace.single_run_directory();
    let sent: Vec<String> = shard_lines(&run_directory)
        .iter()
        .map(|line| line["custom_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["r1", "r4", "r5", "r7"]);
    let (headers, rows) = csv_rows(&workspace.path().join("out.csv"));
    assert_eq!(
        column_values(&headers, &rows, "custom_id"),
        ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    );
    assert_eq!(
        column_values(&headers, &rows, "status"),
        ["ok", "skipped", "skipped", "ok", "ok", "skipped", "ok"]
    );
    let codes = column_values(&headers, &rows, "error_code");
    let costs = column_values(&headers, &rows, "cost");
    for row in [1, 2, 5] {
        assert_eq!(codes[row], "empty_prompt");
        assert_eq!(costs[row].parse::<f64>().unwrap(), 0.0);
    }
    let report = read_report(&run_directory);
    assert_eq!(report["rows"], 7);
    assert_eq!(report["rows_by_status"]["skipped"], 3);
    assert_eq!(report["rows_by_status"]["ok"], 4);
}

#[test]
fn an_empty_template_is_refused_when_the_job_loads() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,a\n");
    for (name, template) in [("empty.toml", ""), ("blank.toml", "  \\n ")] {
        workspace.write(
            name,
            format!(
                "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{template}\"\n"
            ),
        );
        let output = workspace.run(&["validate", name]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert_mentions(&stderr, &[name, "request.template", "empty"]);
    }
}

// 5. Column names a table cannot have twice, or without a name.

#[test]
fn parquet_with_two_columns_of_one_name_is_refused() {
    let workspace = Workspace::new();
    write_parquet(
        &workspace.path().join("twice.parquet"),
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
            Field::new("text", DataType::Utf8, true),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["b"])),
        ],
    );
    workspace.write(
        "job.toml",
        format!("[input]\npath = \"twice.parquet\"\n{CHAT_JOB}"),
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(&stderr, &["twice.parquet", "column `text`", "twice"]);

    write_parquet(
        &workspace.path().join("nameless.parquet"),
        vec![
            Field::new("text", DataType::Utf8, true),
            Field::new("", DataType::Utf8, true),
        ],
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["b"])),
        ],
    );
    workspace.write(
        "nameless.toml",
        format!("[input]\npath = \"nameless.parquet\"\n{CHAT_JOB}"),
    );
    let stderr = refused_before_upload(&workspace, "nameless.toml");
    assert_mentions(&stderr, &["nameless.parquet", "column 2", "no name"]);
}

#[test]
fn jsonl_keys_twice_in_one_object_or_without_a_name_are_refused() {
    let workspace = Workspace::new();
    workspace.write(
        "twice.jsonl",
        "{\"id\": 1, \"text\": \"a\"}\n\n{\"id\": 2, \"text\": \"b\", \"text\": \"c\"}\n",
    );
    workspace.write(
        "twice.toml",
        format!("[input]\npath = \"twice.jsonl\"\n{CHAT_JOB}"),
    );
    let stderr = refused_before_upload(&workspace, "twice.toml");
    assert_mentions(&stderr, &["twice.jsonl", "line 3", "`text`", "twice"]);

    workspace.write("nameless.jsonl", "{\"\": 1, \"text\": \"a\"}\n");
    workspace.write(
        "nameless.toml",
        format!("[input]\npath = \"nameless.jsonl\"\n{CHAT_JOB}"),
    );
    let stderr = refused_before_upload(&workspace, "nameless.toml");
    assert_mentions(&stderr, &["nameless.jsonl", "line 1", "no name"]);
}

#[test]
fn jsonl_columns_keep_the_order_of_the_file() {
    let workspace = Workspace::new();
    workspace.write(
        "rows.jsonl",
        "{\"zeta\": 1, \"text\": \"a\", \"alpha\": true}\n{\"text\": \"b\", \"middle\": 2.5}\n",
    );
    workspace.write(
        "job.toml",
        format!("[input]\npath = \"rows.jsonl\"\n{CHAT_JOB}[output]\npath = \"out.csv\"\n"),
    );
    let output = run_sim(&workspace, "job.toml");
    assert_success(&output);
    let (headers, _) = csv_rows(&workspace.path().join("out.csv"));
    let input_columns: Vec<&str> = headers.iter().take(4).collect();
    assert_eq!(input_columns, ["zeta", "text", "alpha", "middle"]);
}

/// A template that would build gigabytes (a cell doubled by `~` thirty times) stops at the
/// render memory budget with an error naming the row, before anything is uploaded, instead of
/// taking the machine's memory.
#[test]
fn a_template_that_would_build_gigabytes_is_refused_at_its_row_before_upload() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,a\n2,a much longer review text\n");
    let doubling = "{% set s = s ~ s %}".repeat(30);
    workspace.write(
        "job.toml",
        format!(
            "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{% set s = text %}}{doubling}{{{{ s | length }}}}\"\n"
        ),
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(
        &stderr,
        &[
            "rows.csv",
            "row 1",
            "`~`",
            "64 MiB",
            "simplify the template",
        ],
    );
}

/// minijinja's `format` panicked on a `%(key)` holding a character outside ASCII (found by
/// fuzzing; a Chinese key does it): now an error at the row, before anything is uploaded.
#[test]
fn a_format_key_outside_ascii_is_an_error_at_its_row_not_a_crash() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,好评\n");
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ '评论: %(名字)s' | format({'名字': text}) }}\"\n",
    );
    let stderr = refused_before_upload(&workspace, "job.toml");
    assert_mentions(
        &stderr,
        &["rows.csv", "row 1", "`%(名字)`", "must be ASCII"],
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
