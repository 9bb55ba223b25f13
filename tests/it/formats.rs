//! CSV, Parquet and JSON Lines inputs and outputs, with the edge-case fixtures: quoting and
//! embedded newlines survive, column types are kept, and every row comes back.

use arrow_schema::DataType;

use super::harness::*;

fn job(input: &str, extra: &str) -> String {
    format!(
        "[input]\npath = \"{input}\"\n\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Summarise: {{{{ text }}}}\"\nmax_tokens = 30\n{extra}"
    )
}

#[test]
fn csv_text_with_quotes_newlines_and_emoji_round_trips_to_csv() {
    let workspace = Workspace::new();
    for fixture in [
        "quotes_and_newlines.csv",
        "cjk_emoji.csv",
        "empty_cells.csv",
        "bom.csv",
    ] {
        copy_fixture(&workspace, &format!("fixtures/edge/{fixture}"));
        let job_name = fixture.replace(".csv", "");
        workspace.write(
            &format!("{job_name}.toml"),
            job(
                fixture,
                &format!("[output]\npath = \"out-{job_name}.csv\"\n"),
            ),
        );
        let output = workspace.run(&[
            "run",
            &format!("{job_name}.toml"),
            "--provider",
            "sim",
            "--quiet",
        ]);
        assert_success(&output);
        let mut input = csv::Reader::from_path(workspace.path().join(fixture)).unwrap();
        let mut result =
            csv::Reader::from_path(workspace.path().join(format!("out-{job_name}.csv"))).unwrap();
        let input_headers = input.headers().unwrap().clone();
        let result_headers = result.headers().unwrap().clone();
        for (index, header) in input_headers.iter().enumerate() {
            assert_eq!(
                &result_headers[index],
                header.trim_start_matches('\u{feff}'),
                "{fixture}"
            );
        }
        let input_rows: Vec<csv::StringRecord> = input.records().map(Result::unwrap).collect();
        let result_rows: Vec<csv::StringRecord> = result.records().map(Result::unwrap).collect();
        assert_eq!(
            input_rows.len(),
            result_rows.len(),
            "{fixture}: one output row per input row"
        );
        let status_index = result_headers.iter().position(|h| h == "status").unwrap();
        for (input_row, result_row) in input_rows.iter().zip(&result_rows) {
            for column in 0..input_headers.len() {
                assert_eq!(&input_row[column], &result_row[column], "{fixture}");
            }
            assert_eq!(&result_row[status_index], "ok", "{fixture}");
        }
    }
}

#[test]
fn parquet_input_keeps_its_column_types() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/edge.parquet");
    workspace.write(
        "typed.toml",
        "[input]\npath = \"edge.parquet\"\nid_column = \"id\"\n\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ text }} (score {{ score }}, flag {{ flag }})\"\n",
    );
    let output = workspace.run(&["run", "typed.toml", "--provider", "sim", "--quiet"]);
    assert_success(&output);
    let batches = read_parquet(&workspace.single_run_directory().join("output.parquet"));
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("id").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("score").unwrap().data_type(),
        &DataType::Float64
    );
    assert_eq!(
        schema.field_with_name("flag").unwrap().data_type(),
        &DataType::Boolean
    );
    assert!(matches!(
        schema.field_with_name("created_at").unwrap().data_type(),
        DataType::Timestamp(_, _)
    ));
    let custom_ids: Vec<String> = string_column(&batches, "custom_id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(custom_ids, vec!["1", "2", "3", "4", "5"]);
}

#[test]
fn jsonl_input_with_nested_values_gives_jsonl_output() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/edge.jsonl");
    workspace.write(
        "nested.toml",
        job("edge.jsonl", "[output]\npath = \"out.jsonl\"\n"),
    );
    let output = workspace.run(&["run", "nested.toml", "--provider", "sim", "--quiet"]);
    assert_success(&output);
    let input_lines = std::fs::read_to_string(workspace.path().join("edge.jsonl")).unwrap();
    let output_lines = std::fs::read_to_string(workspace.path().join("out.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = output_lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        input_lines.lines().filter(|l| !l.trim().is_empty()).count()
    );
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row["custom_id"], (index + 1).to_string());
        assert_eq!(row["status"], "ok");
    }
}

#[test]
fn json_events_on_stdout_are_one_object_per_line() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write("events.toml", job("cjk_emoji.csv", ""));
    let output = workspace.run(&["run", "events.toml", "--provider", "sim", "--json"]);
    assert_success(&output);
    let events: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    for expected in [
        "planned",
        "file_uploaded",
        "batch_created",
        "results_downloaded",
    ] {
        assert!(kinds.contains(&expected), "{kinds:?}");
    }
    assert_eq!(events.last().unwrap()["rows"], 8);
}

#[test]
fn any_column_name_reaches_a_template_and_comes_back_intact() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/chinese_columns.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"chinese_columns.csv\"\nid_column = \"编号\"\n\n[request]\nmodel = \"qwen-flash\"\n\
         template = '评论：{{ 评论 }}（{{ row[\"user name\"] }}，{{ row[\"in\"] }}）'\nmax_tokens = 30\n\
         [output]\npath = \"out.csv\"\n",
    );
    let validated = workspace.run(&["validate", "job.toml", "--show", "1"]);
    assert_success(&validated);
    let said = text(&validated.stdout);
    for words in [
        "`评论` as {{ 评论 }}",
        "`user name` as {{ row[\"user name\"] }}",
        "`in` as {{ row[\"in\"] }}",
        "评论：质量很好，物流很快（张三，北京）",
    ] {
        assert!(said.contains(words), "no `{words}` in {said}");
    }
    assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
    let mut input = csv::Reader::from_path(workspace.path().join("chinese_columns.csv")).unwrap();
    let mut output = csv::Reader::from_path(workspace.path().join("out.csv")).unwrap();
    let output_headers = output.headers().unwrap().clone();
    for column in ["编号", "评论", "user name", "in"] {
        assert!(
            output_headers.iter().any(|name| name == column),
            "{output_headers:?}"
        );
    }
    let comment_index = output_headers
        .iter()
        .position(|name| name == "评论")
        .unwrap();
    let status_index = output_headers
        .iter()
        .position(|name| name == "status")
        .unwrap();
    let inputs: Vec<csv::StringRecord> = input.records().map(Result::unwrap).collect();
    let outputs: Vec<csv::StringRecord> = output.records().map(Result::unwrap).collect();
    assert_eq!(outputs.len(), inputs.len());
    for (input_row, output_row) in inputs.iter().zip(&outputs) {
        assert_eq!(&output_row[comment_index], &input_row[1]);
        assert_eq!(&output_row[status_index], "ok");
    }
}

/// Copies a fixture file, or a directory with everything in it (hidden files too), into the
/// workspace under its own name.
fn copy_fixture_tree(workspace: &Workspace, relative: &str) {
    let source = repository_root().join(relative);
    copy_tree(&source, &workspace.path().join(source.file_name().unwrap()));
}

/// Runs `code` in the tests' Python (pandas, openpyxl) with `arguments`; returns what it printed.
fn python_prints(code: &str, arguments: &[&str]) -> String {
    let python = std::process::Command::new("bash")
        .arg(repository_root().join("scripts/python-env.sh"))
        .output()
        .unwrap();
    assert!(python.status.success(), "{}", text(&python.stderr));
    let seen = std::process::Command::new(text(&python.stdout).trim())
        .arg("-c")
        .arg(code)
        .args(arguments)
        .output()
        .unwrap();
    assert!(seen.status.success(), "{}", text(&seen.stderr));
    text(&seen.stdout)
}

/// The run directories under the workspace's `runs/`.
fn run_directories(workspace: &Workspace) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(workspace.path().join("runs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

/// Whether the workspace has no run directory: nothing was planned to be sent.
fn nothing_was_started(workspace: &Workspace) -> bool {
    !workspace.path().join("runs").exists()
        || std::fs::read_dir(workspace.path().join("runs"))
            .unwrap()
            .all(|entry| {
                entry
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
}

#[test]
fn a_workbook_s_typed_cells_reach_the_template_and_an_xlsx_output_opens_in_pandas_with_its_types() {
    let expected = format_fixture_rows();
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/formats/reviews.xlsx");
    workspace.write(
        "job.toml",
        "[input]\npath = \"reviews.xlsx\"\nid_column = \"编号\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ 评论 }} | 评分 {{ 评分 }} | 日期 {{ 日期 }} | 推荐 {{ 推荐 }} | 备注 {{ 备注 }}\"\nmax_tokens = 20\n[output]\npath = \"out.xlsx\"\n",
    );
    let validated = workspace.run(&["validate", "job.toml", "--show", "2"]);
    assert_success(&validated);
    let said = text(&validated.stdout);
    // A date is a date, a yes/no a boolean, a column mixing a number and text is text.
    assert!(
        said.contains("| 评分 5.0 | 日期 2024-05-01 | 推荐 False | 备注 42"),
        "{said}"
    );
    assert!(
        said.contains("| 评分 4.5 | 日期 2024-05-02 | 推荐 True | 备注 第1条"),
        "{said}"
    );
    assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
    let output = workspace.path().join("out.xlsx");
    let seen = python_prints(
        "import sys, json, pandas\n\
frame = pandas.read_excel(sys.argv[1], engine='openpyxl')\n\
print(json.dumps({'rows': len(frame), 'kinds': {c: t.kind for c, t in frame.dtypes.items()}, 'ids': list(frame['编号']), 'texts': list(frame['评论']), 'status': sorted(set(frame['status'])), 'first_day': str(frame['日期'][0]), 'cost_sum': float(frame['cost'].sum())}, ensure_ascii=False))",
        &[output.to_str().unwrap()],
    );
    let seen: serde_json::Value = serde_json::from_str(seen.trim()).unwrap();
    assert_eq!(seen["rows"], 20, "{seen}");
    // NumPy's kinds: O object or text, f float, M datetime, b boolean, i integer.
    let kinds = &seen["kinds"];
    for (column, kind) in [
        ("编号", "O"),
        ("评论", "O"),
        ("评分", "f"),
        ("日期", "M"),
        ("推荐", "b"),
        ("备注", "O"),
        ("status", "O"),
        ("prompt_tokens", "i"),
        ("cost", "f"),
    ] {
        assert_eq!(kinds[column], kind, "{column}: {seen}");
    }
    assert_eq!(seen["first_day"], "2024-05-01 00:00:00");
    assert_eq!(seen["status"], serde_json::json!(["ok"]));
    assert!(seen["cost_sum"].as_f64().unwrap() > 0.0);
    for (index, (id, text)) in expected.iter().enumerate() {
        assert_eq!(seen["ids"][index], id.as_str());
        assert_eq!(
            seen["texts"][index],
            text.as_str(),
            "the text must come back byte for byte"
        );
    }
}

#[test]
fn a_missing_sheet_mixed_parts_or_a_compressed_parquet_is_refused_before_upload() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/formats/reviews.xlsx");
    copy_fixture_tree(&workspace, "fixtures/formats/reviews_parts");
    workspace.write("mixed/part-0.csv", "编号,评论\n1,好\n");
    workspace.write("mixed/part-1.csv", "编号,评论,评分\n2,差,1\n");
    workspace.write("kinds/part-0.csv", "编号,评论\n1,好\n");
    workspace.write(
        "kinds/part-1.jsonl",
        "{\"编号\": \"2\", \"评论\": \"差\"}\n",
    );
    workspace.write("reviews.parquet.gz", "not really");
    workspace.write("stray.tsv", "编号\t评论\n1\t\"好\n2\t差\n");
    // UTF-16 without a byte-order mark, its text mostly Chinese: too few NUL bytes to be told
    // UTF-16 by them, yet bytes that pass for UTF-8.
    let utf16: Vec<u8> = format!(
        "编号,评论\n{}",
        "1,这本书很好看，推荐给大家阅读。\n".repeat(40)
    )
    .encode_utf16()
    .flat_map(u16::to_le_bytes)
    .collect();
    workspace.write("wide.csv", utf16);
    for (input_keys, path, output_keys, words) in [
        ("", "wide.csv", "", vec!["wide.csv", "NUL byte", "utf-16le"]),
        (
            "sheet = \"不存在\"\n",
            "reviews.xlsx",
            "",
            vec![
                "reviews.xlsx",
                "no sheet `不存在`",
                "`评论`, `说明`",
                "`[input] sheet`",
            ],
        ),
        (
            "sheet = 3\n",
            "reviews.xlsx",
            "",
            vec!["no sheet 3", "a number from 1 to 2"],
        ),
        (
            "sheet = 0\n",
            "reviews.xlsx",
            "",
            vec!["input.sheet", "numbered from 1"],
        ),
        (
            "sheet = \"评论\"\n",
            "reviews_parts",
            "",
            vec!["input.sheet", "only a workbook input"],
        ),
        (
            "",
            "mixed",
            "",
            vec!["mixed/part-1.csv", "3 columns", "same columns"],
        ),
        ("", "kinds", "", vec!["not all one format", "part-1.jsonl"]),
        ("", "nothing/*.csv", "", vec!["matches no file"]),
        (
            "",
            "reviews.parquet.gz",
            "",
            vec!["compressed Parquet", "decompress"],
        ),
        (
            "",
            "reviews_parts",
            "[output]\npath = \"reviews_parts/out.parquet\"\n",
            vec!["inside the job's partitioned input", "reviews_parts"],
        ),
        (
            "quote = \"ab\"\n",
            "stray.tsv",
            "",
            vec!["input.quote", "cannot quote fields"],
        ),
        // A stray quote opens a quoted value that is never closed.
        ("", "stray.tsv", "", vec!["stray.tsv", "never closed"]),
    ] {
        workspace.write(
            "job.toml",
            format!(
                "[input]\npath = \"{path}\"\n{input_keys}\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{{{ 评论 }}}}\"\nmax_tokens = 20\n{output_keys}"
            ),
        );
        let output = workspace.run(&["run", "job.toml", "--provider", "sim"]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{path} {input_keys}: {}",
            text(&output.stderr)
        );
        let message = text(&output.stderr);
        for word in words {
            assert!(
                message.contains(word),
                "{path} {input_keys}: no `{word}` in {message}"
            );
        }
        assert!(nothing_was_started(&workspace), "{path} {input_keys}");
    }
    // Told that fields are never quoted, the same file reads as two rows with their quotes.
    workspace.write(
        "job.toml",
        "[input]\npath = \"stray.tsv\"\nquote = \"\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ 评论 }}\"\nmax_tokens = 20\n[output]\npath = \"out.csv\"\n",
    );
    let validated = workspace.run(&["validate", "job.toml"]);
    assert_success(&validated);
    assert!(text(&validated.stdout).contains("never quoted"));
    assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
    let mut output = csv::Reader::from_path(workspace.path().join("out.csv")).unwrap();
    let texts: Vec<String> = output
        .records()
        .map(|record| record.unwrap()[1].to_owned())
        .collect();
    assert_eq!(texts, ["\"好", "差"]);
}

/// The 20 reviews of `fixtures/formats/` as `(编号, 评论)`, read from the plain UTF-8 TSV.
fn format_fixture_rows() -> Vec<(String, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .from_path(repository_root().join("fixtures/formats/reviews.tsv"))
        .unwrap();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            (record[0].to_owned(), record[1].to_owned())
        })
        .collect()
}

#[test]
fn every_text_table_our_users_have_is_read_with_its_text_intact() {
    let expected = format_fixture_rows();
    assert_eq!(expected.len(), 20);
    for (fixture, input_keys, id_column, text_column, how) in [
        ("reviews_gb18030.csv", "", "编号", "评论", "gb18030"),
        ("reviews.csv.gz", "", "编号", "评论", "gb18030"),
        ("reviews.tsv", "", "编号", "评论", "tab"),
        ("reviews_semicolon.csv", "", "编号", "评论", "`;`"),
        (
            "reviews_utf16.tsv",
            "",
            "编号",
            "评论",
            "UTF-16LE (from its byte-order mark)",
        ),
        ("reviews.jsonl.gz", "", "编号", "评论", "UTF-8"),
        (
            "reviews_no_header.csv",
            "header = false\n",
            "column_1",
            "column_2",
            "no header row",
        ),
        ("reviews.csv.zst", "", "编号", "评论", "zstd-compressed"),
        ("reviews.tsv.xz", "", "编号", "评论", "xz-compressed"),
        ("reviews.jsonl.bz2", "", "编号", "评论", "bzip2-compressed"),
        ("reviews.xlsx", "", "编号", "评论", "sheet `评论` (1 of 2)"),
        ("reviews.xls", "", "编号", "评论", "sheet `评论` (1 of 1)"),
        ("reviews.ods", "", "编号", "评论", "sheet `评论` (1 of 1)"),
        ("reviews_parts", "", "编号", "评论", "11 parts"),
    ] {
        let workspace = Workspace::new();
        copy_fixture_tree(&workspace, &format!("fixtures/formats/{fixture}"));
        let template = if text_column == "评论" {
            "{{ 评论 }}"
        } else {
            "{{ column_2 }}"
        };
        workspace.write(
            "job.toml",
            format!(
                "[input]\npath = \"{fixture}\"\nid_column = \"{id_column}\"\n{input_keys}\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{template}\"\nmax_tokens = 20\n[output]\npath = \"out.csv\"\n"
            ),
        );
        let validated = workspace.run(&["validate", "job.toml", "--show", "0"]);
        assert_success(&validated);
        let said = text(&validated.stdout);
        assert!(said.contains("20 rows"), "{fixture}: {said}");
        let described = said
            .lines()
            .find(|line| line.contains("the input is read as"))
            .unwrap_or_else(|| panic!("{fixture}: no encoding line in {said}"));
        assert!(
            described.to_lowercase().contains(&how.to_lowercase()),
            "{fixture}: `{how}` not in {described}"
        );
        assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
        let mut output = csv::Reader::from_path(workspace.path().join("out.csv")).unwrap();
        let headers = output.headers().unwrap().clone();
        let id_index = headers.iter().position(|name| name == id_column).unwrap();
        let text_index = headers.iter().position(|name| name == text_column).unwrap();
        let status_index = headers.iter().position(|name| name == "status").unwrap();
        let rows: Vec<csv::StringRecord> = output.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), expected.len(), "{fixture}");
        for (row, (id, text)) in rows.iter().zip(&expected) {
            assert_eq!(&row[id_index], id, "{fixture}");
            assert_eq!(
                &row[text_index], text,
                "{fixture}: text must come back byte for byte"
            );
            assert_eq!(&row[status_index], "ok", "{fixture}");
        }
    }
    // Into Parquet too: the GB18030 text and the parts' text come back byte for byte.
    for fixture in ["reviews_gb18030.csv", "reviews_parts"] {
        let workspace = Workspace::new();
        copy_fixture_tree(&workspace, &format!("fixtures/formats/{fixture}"));
        workspace.write(
            "job.toml",
            format!(
                "[input]\npath = \"{fixture}\"\nid_column = \"编号\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{{{ 评论 }}}}\"\nmax_tokens = 20\n[output]\npath = \"out.parquet\"\n"
            ),
        );
        assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
        let batches = read_parquet(&workspace.path().join("out.parquet"));
        let ids = string_column(&batches, "编号");
        let texts = string_column(&batches, "评论");
        assert_eq!(texts.len(), expected.len(), "{fixture}");
        for ((id, text), (expected_id, expected_text)) in ids.iter().zip(&texts).zip(&expected) {
            assert_eq!(id.as_deref(), Some(expected_id.as_str()), "{fixture}");
            assert_eq!(text.as_deref(), Some(expected_text.as_str()), "{fixture}");
        }
    }
}

#[test]
fn a_wrong_encoding_a_bad_delimiter_or_a_false_gzip_is_refused_before_upload() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/formats/reviews_gb18030.csv");
    workspace.write("not-gzip.csv.gz", "编号,评论\n1,好\n");
    for (input_keys, path, words) in [
        (
            "encoding = \"utf-8\"\n",
            "reviews_gb18030.csv",
            vec![
                "reviews_gb18030.csv",
                "header, column 1",
                "not valid UTF-8",
                "`[input] encoding`",
            ],
        ),
        (
            "encoding = \"klingon\"\n",
            "reviews_gb18030.csv",
            vec!["input.encoding", "`klingon` is not an encoding name"],
        ),
        (
            "delimiter = \"ab\"\n",
            "reviews_gb18030.csv",
            vec!["input.delimiter", "cannot separate fields"],
        ),
        (
            "",
            "not-gzip.csv.gz",
            vec!["not-gzip.csv.gz", "must be gzip-compressed"],
        ),
    ] {
        workspace.write(
            "job.toml",
            format!(
                "[input]\npath = \"{path}\"\n{input_keys}\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{{{ 评论 }}}}\"\nmax_tokens = 20\n"
            ),
        );
        let output = workspace.run(&["run", "job.toml", "--provider", "sim"]);
        assert_eq!(output.status.code(), Some(2), "{input_keys}");
        let message = text(&output.stderr);
        for word in words {
            assert!(message.contains(word), "no `{word}` in {message}");
        }
        assert!(
            !workspace.path().join("runs").exists()
                || std::fs::read_dir(workspace.path().join("runs"))
                    .unwrap()
                    .all(|entry| entry
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.'))
        );
    }
}

#[test]
fn a_csv_output_for_excel_starts_with_a_byte_order_mark() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/formats/reviews_gb18030.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"reviews_gb18030.csv\"\nid_column = \"编号\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ 评论 }}\"\nmax_tokens = 20\n[output]\npath = \"for-excel.csv\"\nbom = true\n",
    );
    assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
    let bytes = std::fs::read(workspace.path().join("for-excel.csv")).unwrap();
    assert!(
        bytes.starts_with("\u{feff}编号,评论,".as_bytes()),
        "{:?}",
        &bytes[..20]
    );
    // pandas reads it with the mark taken off the first column's name.
    let python = std::process::Command::new("bash")
        .arg(repository_root().join("scripts/python-env.sh"))
        .output()
        .unwrap();
    assert!(python.status.success(), "{}", text(&python.stderr));
    let seen = std::process::Command::new(text(&python.stdout).trim())
        .args([
            "-c",
            "import sys, pandas; frame = pandas.read_csv(sys.argv[1]); print(frame.columns[0], len(frame))",
            workspace.path().join("for-excel.csv").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(seen.status.success(), "{}", text(&seen.stderr));
    assert_eq!(text(&seen.stdout).trim(), "编号 20");
    workspace.write(
        "parquet.toml",
        "[input]\npath = \"reviews_gb18030.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ 评论 }}\"\nmax_tokens = 20\n[output]\npath = \"out.parquet\"\nbom = true\n",
    );
    let refused = workspace.run(&["validate", "parquet.toml"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("output.bom"));
}

/// Writes `bytes` as `name` and a job reading it with `template` (and `input_keys`) into `out.csv`.
fn text_job(workspace: &Workspace, name: &str, bytes: &[u8], input_keys: &str, template: &str) {
    workspace.write(name, bytes);
    workspace.write(
        "job.toml",
        format!(
            "[input]\npath = \"{name}\"\n{input_keys}\n[request]\nmodel = \"qwen-flash\"\ntemplate = '{template}'\nmax_tokens = 20\n[output]\npath = \"out.csv\"\n"
        ),
    );
}

/// `validate job.toml` exits 2 with an error that says each of `needles`.
fn validation_refuses(workspace: &Workspace, needles: &[&str]) {
    let refused = workspace.run(&["validate", "job.toml"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_mentions(&stderr, needles);
}

/// The rendered user message of the first request, as `validate --show 1` prints it.
fn first_prompt(workspace: &Workspace) -> String {
    let output = workspace.run(&["validate", "job.toml", "--show", "1"]);
    assert_success(&output);
    text(&output.stdout)
}

#[test]
fn a_quote_left_open_near_the_start_of_a_huge_file_is_refused_where_it_opened() {
    use std::io::Write;
    let workspace = Workspace::new();
    // 80 MB of rows after a quote opened on row 2 (line 3), gzipped to a few hundred KB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all("id,text\n1,好评\n2,\"没有关上的引号\n".as_bytes())
        .unwrap();
    let row = "3,这一行以后的每一行都会变成同一个单元格\n".repeat(1000);
    for _ in 0..80_000_000 / row.len() {
        encoder.write_all(row.as_bytes()).unwrap();
    }
    text_job(
        &workspace,
        "reviews.csv.gz",
        &encoder.finish().unwrap(),
        "id_column = \"id\"\n",
        "{{ text }}",
    );
    validation_refuses(
        &workspace,
        &[
            "reviews.csv.gz",
            "row 2 (line 3)",
            "column `text`",
            "67.1 MB",
            "never closed",
        ],
    );
    let run = workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(!workspace.path().join("out.csv").exists());
}

#[test]
fn a_json_array_saved_as_json_lines_is_refused_at_the_limit_not_read_whole() {
    use std::io::Write;
    let workspace = Workspace::new();
    // 80 MB of objects in one JSON array on one line, gzipped to a few hundred KB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(b"[").unwrap();
    let objects = "{\"id\":\"zh-1\",\"text\":\"这一行没有换行\"},".repeat(1000);
    for _ in 0..80_000_000 / objects.len() {
        encoder.write_all(objects.as_bytes()).unwrap();
    }
    encoder.write_all(b"{}]").unwrap();
    text_job(
        &workspace,
        "reviews.jsonl.gz",
        &encoder.finish().unwrap(),
        "id_column = \"id\"\n",
        "{{ text }}",
    );
    validation_refuses(
        &workspace,
        &[
            "reviews.jsonl.gz",
            "line 1",
            "67.1 MB",
            "one JSON object a line",
        ],
    );
}

#[test]
fn a_table_wider_than_excel_shows_is_refused_where_the_column_past_the_limit_appears() {
    let workspace = Workspace::new();
    // Exactly as many columns as Excel shows: read.
    let columns = |count: usize| -> String {
        let mut names: Vec<String> = (2..count).map(|column| format!("c{column}")).collect();
        names.insert(0, "id".to_owned());
        names.insert(1, "text".to_owned());
        let cells = vec!["x"; count].join(",");
        format!(
            "{}\n1,{}\n2,{}\n",
            names.join(","),
            &cells[2..],
            &cells[2..]
        )
    };
    text_job(
        &workspace,
        "wide.csv",
        columns(16_384).as_bytes(),
        "",
        "{{ text }}",
    );
    assert_success(&workspace.run(&["validate", "job.toml"]));
    // One more, as a file split at the wrong character gives: refused at its header, before
    // anything is planned or spent.
    text_job(
        &workspace,
        "wide.csv",
        columns(16_385).as_bytes(),
        "",
        "{{ text }}",
    );
    validation_refuses(
        &workspace,
        &[
            "wide.csv",
            "header",
            "16,385 columns",
            "16,384",
            "[input] delimiter",
        ],
    );
    let refused = workspace.run(&["run", "job.toml", "--provider", "sim"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(nothing_was_started(&workspace));
    // JSON Lines with a value used as a key on every line: refused at the line of the key
    // past the limit, not read on to the end for minutes.
    let mut lines = String::new();
    for line in 1..=20_000 {
        lines.push_str(&format!(
            "{{\"id\": {line}, \"text\": \"好\", \"user_{line}\": 1}}\n"
        ));
    }
    text_job(&workspace, "keys.jsonl", lines.as_bytes(), "", "{{ text }}");
    validation_refuses(
        &workspace,
        &[
            "keys.jsonl",
            "line 16383, key `user_16383`",
            "16,385 columns",
            "under one key",
        ],
    );
}

#[test]
fn hard_to_read_tables_are_read_right_or_refused_with_what_to_name() {
    let workspace = Workspace::new();
    // Short GBK text that a guess may take for Korean or Japanese: read as GB18030 or refused.
    let gbk = encoding_rs::GBK
        .encode("编号,城市\n1,李四\n2,厦门\n3,济南\n")
        .0
        .to_vec();
    text_job(&workspace, "cities.csv", &gbk, "", "{{ 城市 }}");
    let output = workspace.run(&["validate", "job.toml", "--show", "1"]);
    if output.status.success() {
        assert!(
            text(&output.stdout).contains("\"content\": \"李四\""),
            "{}",
            text(&output.stdout)
        );
    } else {
        assert_eq!(output.status.code(), Some(2));
        assert!(text(&output.stderr).contains("name it with `[input] encoding`"));
    }
    // A byte-order mark wins over a named encoding (Excel's "CSV UTF-8" with `encoding = "gbk"`).
    text_job(
        &workspace,
        "excel.csv",
        "\u{feff}编号,评论\n1,质量很好\n".as_bytes(),
        "encoding = \"gbk\"",
        "{{ 评论 }}",
    );
    assert!(first_prompt(&workspace).contains("\"content\": \"质量很好\""));
    // Commas that split every line the same way win over semicolons in the text.
    text_job(
        &workspace,
        "tags.csv",
        "1,红;绿;蓝\n2,大;中;小\n3,甲;乙;丙\n".as_bytes(),
        "header = false",
        "{{ column_2 }}",
    );
    assert!(first_prompt(&workspace).contains("\"content\": \"红;绿;蓝\""));
    // A stray inch mark opens no quote when the delimiter is sniffed.
    text_job(
        &workspace,
        "inch.csv",
        b"id;product;price\n1;Monitor 27\" Dell;1999\n2;Cable;5\n",
        "",
        "{{ product }}",
    );
    assert!(first_prompt(&workspace).contains("Monitor 27\\\" Dell"));
    // UTF-16 without a byte-order mark.
    let utf16: Vec<u8> = "id,text\n1,hello\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    text_job(&workspace, "bare16.csv", &utf16, "", "{{ text }}");
    assert!(first_prompt(&workspace).contains("\"content\": \"hello\""));
    // Without a header, rows are counted from the first line.
    text_job(
        &workspace,
        "ragged.csv",
        b"1,a\n2,b\n3,c,d\n4,e\n",
        "header = false",
        "{{ column_2 }}",
    );
    validation_refuses(&workspace, &["row 3 (line 3)", "the first row has 2"]);
    // Rows ending in `\r\n`, a blank line between: the line named is the ragged row's own.
    text_job(
        &workspace,
        "crlf.csv",
        b"id,text\r\n1,a\r\n\r\n2,b,c\r\n3,d\r\n",
        "",
        "{{ text }}",
    );
    validation_refuses(
        &workspace,
        &[
            "row 2 (line 4)",
            "the row has 3 fields but the header has 2",
        ],
    );
    // An encoding label that reads no table is refused when the job loads.
    text_job(
        &workspace,
        "plain.csv",
        b"id,text\n1,a\n",
        "encoding = \"hz-gb-2312\"",
        "{{ text }}",
    );
    validation_refuses(&workspace, &["input.encoding"]);
}

#[test]
fn a_column_named_row_moves_the_map_of_every_column_to_input_row() {
    let workspace = Workspace::new();
    text_job(
        &workspace,
        "rows.csv",
        "row,user name\nr1,张三\n".as_bytes(),
        "",
        "{{ row }} {{ input_row[\"user name\"] }}",
    );
    let said = first_prompt(&workspace);
    assert!(said.contains("`row` as {{ row }}"), "{said}");
    assert!(
        said.contains("`user name` as {{ input_row[\"user name\"] }}"),
        "{said}"
    );
    assert!(said.contains("\"content\": \"r1 张三\""), "{said}");
    // A key that is no column is named with the columns there are.
    text_job(
        &workspace,
        "names.csv",
        "id,user name\n1,张三\n".as_bytes(),
        "",
        "{{ row[\"user_name\"] }}",
    );
    validation_refuses(
        &workspace,
        &["`row[...]` takes a column name, one of `id`, `user name`"],
    );
    // A byte-order mark is refused for an output that is not CSV, whichever way it is chosen.
    workspace.write(
        "job.toml",
        "[input]\npath = \"names.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ id }}\"\nmax_tokens = 5\n[output]\nbom = true\n",
    );
    let parquet = workspace.run(&[
        "run",
        "job.toml",
        "--provider",
        "sim",
        "--output",
        "o.parquet",
    ]);
    assert_eq!(parquet.status.code(), Some(2));
    assert!(text(&parquet.stderr).contains("`[output] bom`"));
    assert_success(&workspace.run(&[
        "run",
        "job.toml",
        "--provider",
        "sim",
        "--output",
        "o.csv",
        "--quiet",
    ]));
    assert!(
        std::fs::read(workspace.path().join("o.csv"))
            .unwrap()
            .starts_with(b"\xef\xbb\xbf")
    );
}

#[test]
fn an_xlsx_output_is_refused_before_upload_when_the_input_has_more_rows_than_a_sheet_holds() {
    let workspace = Workspace::new();
    // 1,048,576 rows, one more than a sheet holds under its header; one of them is skipped (its
    // prompt is empty) but still has its output row.
    let mut rows = String::with_capacity(2 * 1_048_577 + 2);
    rows.push_str("t\n\"\"\n");
    rows.push_str(&"a\n".repeat(1_048_575));
    workspace.write("big.csv", rows);
    workspace.write(
        "job.toml",
        "[input]\npath = \"big.csv\"\nskip_empty = true\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ t }}\"\nmax_tokens = 5\n[output]\npath = \"out.xlsx\"\n",
    );
    let refused = workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let message = text(&refused.stderr);
    for words in [
        "1048576 rows",
        "an Excel sheet holds 1048575",
        "out.xlsx",
        "write Parquet or CSV instead",
    ] {
        assert!(message.contains(words), "no `{words}` in {message}");
    }
    assert!(!workspace.path().join("out.xlsx").exists());
}

#[test]
fn a_glob_input_resumes_as_planned_and_its_output_may_not_land_among_its_parts() {
    let workspace = Workspace::new();
    workspace.write("parts/a.csv", "id,text\n1,好\n");
    workspace.write("parts/b.csv", "id,text\n2,差\n");
    let job = |output: &str| {
        format!(
            "[input]\npath = \"parts/*.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{{{ text }}}}\"\nmax_tokens = 20\n[output]\npath = \"{output}\"\n"
        )
    };
    // Written among the parts, the output would be read as a part by the next run.
    workspace.write("job.toml", job("parts/out.csv"));
    let refused = workspace.run(&["run", "job.toml", "--provider", "sim"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("inside the job's partitioned input"));
    assert!(!workspace.path().join("parts/out.csv").exists());

    workspace.write("job.toml", job("out.csv"));
    assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
    let runs = run_directories(&workspace);
    assert_eq!(runs.len(), 1, "{runs:?}");
    // Resumed by its run directory (the job then named by an absolute path), the unchanged
    // input is the one planned: the results are written again, nothing is sent.
    let again = workspace.run(&[
        "resume",
        runs[0].to_str().unwrap(),
        "--output",
        "again.csv",
        "--quiet",
    ]);
    assert_success(&again);
    let mut output = csv::Reader::from_path(workspace.path().join("again.csv")).unwrap();
    let rows: Vec<(String, String)> = output
        .records()
        .map(|record| {
            let record = record.unwrap();
            (record[0].to_owned(), record[1].to_owned())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("1".to_owned(), "好".to_owned()),
            ("2".to_owned(), "差".to_owned())
        ]
    );
    // A part edited since the run was planned is refused, even with as many rows.
    workspace.write("parts/b.csv", "id,text\n2,改\n");
    let changed = workspace.run(&["resume", runs[0].to_str().unwrap(), "--output", "third.csv"]);
    assert_ne!(changed.status.code(), Some(0));
    assert!(
        text(&changed.stderr).contains("changed since run"),
        "{}",
        text(&changed.stderr)
    );
}

#[test]
fn formulas_whose_values_were_never_computed_are_refused_naming_the_cell() {
    let workspace = Workspace::new();
    // As xlsxwriter (and rust_xlsxwriter) write them: the formula, a placeholder value 0, and
    // the workbook asking to be recalculated when opened.
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (column, name) in ["first", "last", "full"].iter().enumerate() {
        sheet.write_string(0, column as u16, *name).unwrap();
    }
    sheet.write_string(1, 0, "小").unwrap();
    sheet.write_string(1, 1, "明").unwrap();
    sheet
        .write_formula(1, 2, rust_xlsxwriter::Formula::new("=A2&B2"))
        .unwrap();
    workbook.save(workspace.path().join("names.xlsx")).unwrap();
    workspace.write(
        "job.toml",
        "[input]\npath = \"names.xlsx\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Greet {{ full }}\"\nmax_tokens = 20\n",
    );
    let refused = workspace.run(&["run", "job.toml", "--provider", "sim"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let message = text(&refused.stderr);
    for words in ["names.xlsx", "cell C2", "formula", "never computed"] {
        assert!(message.contains(words), "no `{words}` in {message}");
    }
    assert!(nothing_was_started(&workspace));
}

#[test]
fn a_text_longer_than_an_excel_cell_is_cut_counted_and_kept_whole_in_the_run() {
    let workspace = Workspace::new();
    // 20,000 emoji are 40,000 UTF-16 units, which is what Excel counts.
    let long = "😀".repeat(20_000);
    workspace.write("in.csv", format!("id,text\n1,{long}\n2,short\n"));
    workspace.write(
        "job.toml",
        "[input]\npath = \"in.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Count: {{ id }}\"\nmax_tokens = 20\n[output]\npath = \"out.xlsx\"\n",
    );
    let output = workspace.run(&["run", "job.toml", "--provider", "sim"]);
    assert_success(&output);
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(
        said.contains("1 text(s) were longer than an Excel cell holds"),
        "{said}"
    );
    assert!(said.contains("dashbatch resume runs/"), "{said}");
    let runs = run_directories(&workspace);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("report.json")).unwrap()).unwrap();
    assert_eq!(report["output_texts_cut"], 1, "{report}");
    let seen = python_prints(
        "import sys, openpyxl\nsheet = openpyxl.load_workbook(sys.argv[1]).active\ntext = sheet['B2'].value\nunits = len(text.encode('utf-16-le')) // 2\nprint(32766 <= units <= 32767, text.endswith('longer than an Excel cell holds]'), sheet['B3'].value)",
        &[workspace.path().join("out.xlsx").to_str().unwrap()],
    );
    // Cut at a whole emoji: 32,766 or 32,767 units, never more.
    assert_eq!(seen.trim(), "True True short");
    // The run keeps the whole text: written again as Parquet, it is all there.
    assert_success(&workspace.run(&[
        "resume",
        runs[0].to_str().unwrap(),
        "--output",
        "whole.parquet",
        "--quiet",
    ]));
    let texts = string_column(
        &read_parquet(&workspace.path().join("whole.parquet")),
        "text",
    );
    assert_eq!(texts[0].as_deref(), Some(long.as_str()));
}

#[test]
fn a_part_whose_column_holds_no_value_takes_the_other_parts_type() {
    let workspace = Workspace::new();
    workspace.write("parts/p0.jsonl", "{\"id\": \"1\", \"v\": null}\n");
    workspace.write(
        "parts/p1.jsonl",
        "{\"id\": \"2\", \"v\": 2}\n{\"id\": \"3\", \"v\": 0.5}\n",
    );
    workspace.write(
        "job.toml",
        "[input]\npath = \"parts\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Row {{ id }}\"\nmax_tokens = 20\n[output]\npath = \"out.parquet\"\n",
    );
    assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
    let batches = read_parquet(&workspace.path().join("out.parquet"));
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("v").unwrap().data_type(),
        &DataType::Float64
    );
    let values: Vec<Option<f64>> = batches
        .iter()
        .flat_map(|batch| {
            use arrow_array::cast::AsArray;
            batch
                .column_by_name("v")
                .unwrap()
                .as_primitive::<arrow_array::types::Float64Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(values, [None, Some(2.0), Some(0.5)]);
}

#[test]
fn a_workbook_without_a_header_row_names_its_columns_by_sheet_column() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/formats/reviews.ods");
    workspace.write(
        "job.toml",
        "[input]\npath = \"reviews.ods\"\nheader = false\nsheet = \"评论\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ column_2 }}\"\nmax_tokens = 20\n[output]\npath = \"out.csv\"\n",
    );
    assert_success(&workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]));
    let mut output = csv::Reader::from_path(workspace.path().join("out.csv")).unwrap();
    let texts: Vec<String> = output
        .records()
        .map(|record| record.unwrap()[1].to_owned())
        .collect();
    // The header row is data now: 21 rows, the first holding the names.
    let expected = format_fixture_rows();
    assert_eq!(texts.len(), expected.len() + 1);
    assert_eq!(texts[0], "评论");
    assert_eq!(
        texts[1..],
        expected
            .iter()
            .map(|(_, text)| text.clone())
            .collect::<Vec<_>>()[..]
    );
}

/// A workspace whose run `run` of three Chinese reviews finished on the simulator, its output
/// in `out.csv`.
fn finished_run_of_three_reviews() -> Workspace {
    finished_run_of("id,text\n1,好\n2,差\n3,一般\n", "")
}

/// A workspace whose run `run` of `reviews` (a CSV with a `text` column) finished on the
/// simulator, its job holding `batch_settings` too, its output in `out.csv`.
fn finished_run_of(reviews: &str, batch_settings: &str) -> Workspace {
    let workspace = Workspace::new();
    workspace.write("reviews.csv", reviews);
    workspace.write(
        "job.toml",
        job(
            "reviews.csv",
            &format!("{batch_settings}[output]\npath = \"out.csv\"\n"),
        ),
    );
    assert_success(&workspace.run(&[
        "run",
        "job.toml",
        "--provider",
        "sim",
        "--run-dir",
        "run",
        "--quiet",
    ]));
    workspace
}

/// A finished run (as [`finished_run_of`]) of `rows` short reviews, ten to a shard.
fn finished_run_of_reviews_in_shards_of_ten(rows: usize) -> Workspace {
    let mut input = String::from("id,text\n");
    for row in 0..rows {
        input.push_str(&format!("{row},评论 {row}\n"));
    }
    finished_run_of(&input, "[batch]\nmax_requests_per_file = 10\n")
}

/// Every row's `content` in the CSV output at `path`, by custom_id.
fn contents_by_custom_id(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|header| header == name).unwrap();
    let (custom_id, content, status) = (column("custom_id"), column("content"), column("status"));
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            assert_eq!(&record[status], "ok", "{record:?}");
            (record[custom_id].to_owned(), record[content].to_owned())
        })
        .collect()
}

#[test]
fn answers_longer_than_the_joins_text_blocks_come_back_whole_from_their_lines_and_their_digests() {
    // Six shards, so the join's result maps are filled again with later shards' answers.
    let workspace = finished_run_of_reviews_in_shards_of_ten(60);
    // Every fourth answer made longer than a text block (256 KiB), the others short, as a
    // provider might answer a long summary: each line's content replaced where it stands, so
    // the lines keep the provider's shape.
    let mut expected = std::collections::BTreeMap::new();
    let results = workspace.path().join("run/results");
    for shard in 0..6 {
        let path = results.join(format!("shard-{shard:05}.output.jsonl"));
        let mut rewritten = String::new();
        for (index, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
            let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
            let custom_id = parsed["custom_id"].as_str().unwrap().to_owned();
            let old = &parsed["response"]["body"]["choices"][0]["message"]["content"];
            let content = if index % 4 == 0 {
                format!("{}{custom_id}", "长".repeat(100_000))
            } else {
                format!("短 {custom_id}")
            };
            let old_json = format!("\"content\":{old}");
            assert_eq!(line.matches(&old_json).count(), 1, "{line}");
            let new_json = format!("\"content\":{}", serde_json::Value::from(content.as_str()));
            rewritten.push_str(&line.replacen(&old_json, &new_json, 1));
            rewritten.push('\n');
            expected.insert(custom_id, content);
        }
        std::fs::write(&path, rewritten).unwrap();
    }
    assert_eq!(expected.len(), 60);
    // Read from the lines (the digests are of the files as downloaded), then from the
    // digests that join wrote again.
    std::fs::remove_dir_all(workspace.path().join("run/digests")).unwrap();
    for name in ["from-lines.csv", "from-digests.csv"] {
        assert_success(&workspace.run(&["resume", "run", "--output", name, "--quiet"]));
        assert!(
            workspace
                .path()
                .join("run/digests/shard-00005.output.jsonl.digest")
                .is_file()
        );
        assert_eq!(
            contents_by_custom_id(&workspace.path().join(name)),
            expected,
            "{name}"
        );
    }
}

#[test]
fn result_lines_written_another_way_join_as_the_provider_wrote_them_and_a_cut_one_is_located() {
    let workspace = finished_run_of_three_reviews();
    let first_output = std::fs::read_to_string(workspace.path().join("out.csv")).unwrap();
    let results = workspace
        .path()
        .join("run/results/shard-00000.output.jsonl");
    let paid_for = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<&str> = paid_for.lines().collect();
    assert_eq!(lines.len(), 3);
    // The same JSON another writer might give: spaces, a field nobody asked for (with an
    // escape in it) ahead of the rest, and a key spelled with an escape, which only the full
    // parse reads.
    let respaced = format!(
        " {{ \"x_unknown\" : [1, {{\"a\": \"\\u00e9\"}}], {} ",
        &lines[0][1..]
    );
    let escaped_key = lines[1].replacen("\"custom_id\"", "\"cust\\u006fm_id\"", 1);
    assert_ne!(escaped_key, lines[1]);
    std::fs::write(
        &results,
        format!("{respaced}\n{escaped_key}\n{}\n", lines[2]),
    )
    .unwrap();
    assert_success(&workspace.run(&["resume", "run", "--output", "again.csv", "--quiet"]));
    assert_eq!(
        std::fs::read_to_string(workspace.path().join("again.csv")).unwrap(),
        first_output
    );

    // A line cut short is not a result line: refused, located, and nothing written.
    let cut = &lines[2][..lines[2].len() / 2];
    std::fs::write(&results, format!("{}\n{}\n{cut}\n", lines[0], lines[1])).unwrap();
    let refused = workspace.run(&["resume", "run", "--output", "cut.csv", "--quiet"]);
    let stderr = text(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0), "{stderr}");
    assert_ne!(refused.status.code(), Some(2), "money was spent: {stderr}");
    assert!(
        stderr.contains("shard-00000.output.jsonl, line 3") && stderr.contains("not a result line"),
        "{stderr}"
    );
    assert!(!workspace.path().join("cut.csv").exists());
}

#[test]
fn a_damaged_result_file_stops_the_join_naming_file_and_line_and_writes_no_output() {
    let workspace = finished_run_of_three_reviews();
    let results = workspace
        .path()
        .join("run/results/shard-00000.output.jsonl");
    let paid_for = std::fs::read(&results).unwrap();
    // A byte that is not UTF-8 inside the second line, as a disk or a copy might leave it.
    let second_line = paid_for.iter().position(|byte| *byte == b'\n').unwrap() + 1;
    let mut damaged = paid_for.clone();
    damaged.insert(second_line + 20, 0xff);
    std::fs::write(&results, &damaged).unwrap();

    let refused = workspace.run(&["resume", "run", "--output", "again.csv", "--quiet"]);
    let stderr = text(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0), "{stderr}");
    assert_ne!(refused.status.code(), Some(2), "money was spent: {stderr}");
    assert!(
        stderr.contains("shard-00000.output.jsonl, line 2") && stderr.contains("not UTF-8"),
        "{stderr}"
    );
    assert!(!workspace.path().join("again.csv").exists());

    // The paid-for file put back, the same run is joined again without sending anything.
    std::fs::write(&results, &paid_for).unwrap();
    assert_success(&workspace.run(&["resume", "run", "--output", "again.csv", "--quiet"]));
    let rows = csv::Reader::from_path(workspace.path().join("again.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(rows, 3);
}

#[test]
fn the_join_takes_answers_from_the_downloads_digests_and_passes_over_any_not_of_its_file() {
    let workspace = finished_run_of_reviews_in_shards_of_ten(40);
    let first_output = std::fs::read_to_string(workspace.path().join("out.csv")).unwrap();
    let digests = workspace.path().join("run/digests");
    let digest = |shard: u32| digests.join(format!("shard-{shard:05}.output.jsonl.digest"));
    for shard in 0..4 {
        assert!(
            digest(shard).is_file(),
            "the download wrote shard {shard}'s digest"
        );
    }
    // Within a time limit: a join that opened the FIFO below would wait for ever.
    let join_again = |name: &str| {
        let join = workspace
            .command(&["resume", "run", "--output", name, "--quiet"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert_success(&wait_with_limit(join, std::time::Duration::from_secs(120)));
        std::fs::read_to_string(workspace.path().join(name)).unwrap()
    };
    // The join takes the digests as they are: none is written again.
    let written = |shard: u32| {
        std::fs::metadata(digest(shard))
            .unwrap()
            .modified()
            .unwrap()
    };
    let written_by_the_download: Vec<_> = (0..4).map(written).collect();
    assert_eq!(join_again("whole.csv"), first_output);
    assert_eq!(
        (0..4).map(written).collect::<Vec<_>>(),
        written_by_the_download
    );

    // Digests cut short, with a byte changed, or of another shard: each is passed over and
    // its shard's result file read, so the output is the same.
    let whole = std::fs::read(digest(0)).unwrap();
    std::fs::write(digest(0), &whole[..whole.len() - 20]).unwrap();
    let mut changed = std::fs::read(digest(1)).unwrap();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
    std::fs::write(digest(1), &changed).unwrap();
    std::fs::copy(digest(3), digest(2)).unwrap();
    // A FIFO in a digest's place: opening it would wait for a writer.
    std::fs::remove_file(digest(3)).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(digest(3))
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(join_again("damaged.csv"), first_output);
    // Each was written again as its file was read.
    for shard in 0..4 {
        assert!(
            digest(shard).is_file(),
            "shard {shard}'s digest is a file again"
        );
    }
    assert_eq!(std::fs::read(digest(0)).unwrap(), whole);

    // An answer changed in a result file after its digest was written is the one joined.
    let results = workspace
        .path()
        .join("run/results/shard-00003.output.jsonl");
    let paid_for = std::fs::read_to_string(&results).unwrap();
    let first_line = paid_for.lines().next().unwrap();
    let content_at = first_line.find("\"content\":\"").unwrap() + "\"content\":\"".len();
    let first_character = first_line[content_at..].chars().next().unwrap();
    assert_ne!(first_character, '\\');
    let mut edited_line = first_line.to_owned();
    edited_line.replace_range(content_at..content_at + first_character.len_utf8(), "Z");
    std::fs::write(&results, paid_for.replacen(first_line, &edited_line, 1)).unwrap();
    let edited = join_again("edited.csv");
    let differing: Vec<(&str, &str)> = edited
        .lines()
        .zip(first_output.lines())
        .filter(|(edited, first)| edited != first)
        .collect();
    assert_eq!(differing.len(), 1, "{edited}");
    assert!(differing[0].0.contains('Z'), "{differing:?}");

    // No digests at all: the files are read, and their digests written again for the next
    // join.
    std::fs::remove_dir_all(&digests).unwrap();
    std::fs::write(&results, &paid_for).unwrap();
    // `status` only looks: it writes no digest.
    let status = workspace.run(&["status", "run"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    assert!(!digests.exists(), "status wrote in the run directory");
    assert_eq!(join_again("none.csv"), first_output);
    for shard in 0..4 {
        assert!(digest(shard).is_file(), "shard {shard}'s digest made again");
    }
    assert_eq!(join_again("again.csv"), first_output);
    let leftovers: Vec<_> = std::fs::read_dir(&digests)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".digest"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
