//! Bad inputs fail before anything is uploaded, exit with code 2, cost nothing, and say where.

use super::harness::*;

struct Case {
    fixture: &'static str,
    id_column: Option<&'static str>,
    template: &'static str,
    expected: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        fixture: "invalid_utf8.csv",
        id_column: Some("id"),
        template: "{{ text }}",
        expected: &[
            "invalid_utf8.csv",
            "row 3 (line 4)",
            "column `text`",
            "UTF-8",
        ],
    },
    Case {
        fixture: "duplicate_ids.csv",
        id_column: Some("id"),
        template: "{{ text }}",
        expected: &["row 5", "custom_id `2`", "already used by row 2"],
    },
    Case {
        fixture: "long_id.csv",
        id_column: Some("id"),
        template: "{{ text }}",
        expected: &["row 2", "300 characters", "at most 256"],
    },
    Case {
        fixture: "missing_column.csv",
        id_column: Some("id"),
        template: "{{ text }}",
        expected: &["request.template", "`text`", "`id`, `title`"],
    },
    Case {
        fixture: "ragged.csv",
        id_column: None,
        template: "{{ text }}",
        expected: &["ragged.csv", "row 4 (line 5)", "3 fields"],
    },
    Case {
        fixture: "header_only.csv",
        id_column: None,
        template: "{{ text }}",
        expected: &["header_only.csv", "no rows"],
    },
    Case {
        fixture: "quotes_and_newlines.csv",
        id_column: Some("no_such_column"),
        template: "{{ text }}",
        expected: &["input.id_column", "`no_such_column`"],
    },
];

#[test]
fn each_bad_input_fails_early_and_uploads_nothing() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    for case in CASES {
        copy_fixture(&workspace, &format!("fixtures/edge/{}", case.fixture));
        let id_line = case
            .id_column
            .map(|column| format!("id_column = \"{column}\"\n"))
            .unwrap_or_default();
        let job_name = format!("bad-{}", case.fixture.replace(".csv", ""));
        workspace.write(
            &format!("{job_name}.toml"),
            format!(
                "[input]\npath = \"{}\"\n{id_line}\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{}\"\n",
                case.fixture, case.template
            ),
        );
        let output = workspace.run(&[
            "run",
            &format!("{job_name}.toml"),
            "--provider",
            "sim",
            "--base-url",
            &simulator.base_url,
        ]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", case.fixture);
        for expected in case.expected {
            assert!(
                stderr.contains(expected),
                "{}: expected `{expected}` in:\n{stderr}",
                case.fixture
            );
        }
        assert_eq!(
            simulator.upload_calls(),
            0,
            "{}: nothing may be uploaded",
            case.fixture
        );
    }
}

#[test]
fn repeated_ids_are_found_past_the_first_ids_filter_before_anything_is_uploaded() {
    // The tests' (debug) binary makes a new Bloom filter of ids every thousand: 2,500 rows go
    // through three, and the repeats are of ids in the first and the second.
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    let mut table = String::from("id,text\n");
    for row in 1..=2_500 {
        let id = match row {
            2_400 => 5,
            2_500 => 1_500,
            other => other,
        };
        table.push_str(&format!("{id},评论 {row}\n"));
    }
    workspace.write("many.csv", &table);
    workspace.write(
        "many.toml",
        "[input]\npath = \"many.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n",
    );
    let output = workspace.run(&[
        "run",
        "many.toml",
        "--provider",
        "sim",
        "--base-url",
        &simulator.base_url,
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for expected in [
        "row 2400",
        "custom_id `5`",
        "already used by row 5",
        "row 2500",
        "custom_id `1500`",
        "already used by row 1500",
    ] {
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in:\n{stderr}"
        );
    }
    assert_eq!(simulator.upload_calls(), 0, "nothing may be uploaded");
}

#[test]
fn job_file_mistakes_name_the_key() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    let cases = [
        (
            "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\ntemprature = 0.5\n",
            "temprature",
        ),
        (
            "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n[batch]\ncompletion_window = \"400h\"\n",
            "batch.completion_window",
        ),
        (
            "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text \"\n",
            "request.template",
        ),
        (
            "[input]\npath = \"missing.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n",
            "missing.csv",
        ),
        (
            "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n[[output.fields]]\nname = \"mood\"\ntype = \"label\"\n",
            "output.fields[0].labels",
        ),
    ];
    for (index, (contents, expected)) in cases.iter().enumerate() {
        let name = format!("broken-{index}.toml");
        workspace.write(&name, contents);
        let output = workspace.run(&["validate", &name]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{name}: expected `{expected}` in:\n{stderr}"
        );
        let output = workspace.run(&["run", &name, "--provider", "sim"]);
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(
            !workspace.path().join("runs").exists()
                || std::fs::read_dir(workspace.path().join("runs"))
                    .unwrap()
                    .all(|entry| {
                        let shards = entry.unwrap().path().join("shards");
                        !shards.exists() || std::fs::read_dir(shards).unwrap().next().is_none()
                    }),
            "{name}: nothing planned"
        );
    }
}

#[test]
fn a_real_provider_without_a_key_stops_before_anything_else() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "keyless.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n",
    );
    let output = workspace.run(&["run", "keyless.toml", "--provider", "dashscope"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DASHSCOPE_API_KEY"), "{stderr}");
}

#[test]
fn repeated_ids_far_apart_and_throughout_are_named_with_their_first_row_and_line() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n",
    );
    // Row 9,000 (past two record batches) repeats row 3's id.
    let mut rows = String::from("id,text\n");
    for row in 1..=10_000u32 {
        let id = if row == 9_000 { 3 } else { row };
        rows.push_str(&format!("{id},text {row}\n"));
    }
    workspace.write("rows.csv", &rows);
    let stderr = run_refused_before_upload(&workspace, &simulator);
    assert!(
        stderr.contains("row 9000 (line 9001)")
            && stderr.contains("custom_id `3`")
            && stderr.contains("already used by row 3")
            && stderr.contains("1 bad row"),
        "{stderr}"
    );

    // Every row with one id: more candidates than are held before an early check; the message
    // still lists 20 problems.
    let mut rows = String::from("id,text\n");
    for row in 1..=100_050u32 {
        rows.push_str(&format!("same,text {row}\n"));
    }
    workspace.write("rows.csv", &rows);
    let stderr = run_refused_before_upload(&workspace, &simulator);
    assert!(
        stderr.contains("at least 20 bad rows")
            && stderr.contains("row 2 (line 3)")
            && stderr.contains("already used by row 1")
            && stderr.contains("(stopped after 20 problems)"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("already used by row 1").count(),
        20,
        "{stderr}"
    );
}
