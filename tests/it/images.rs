//! Images in requests through the real binary: the sample pictures embedded, counted and billed
//! exactly as estimated; every bad image refused before anything is uploaded, naming its row and
//! column; oversized images downscaled to fit (the same bytes each run, so the answer store
//! recognises them) or refused; images from a Parquet binary column and from URLs, several per
//! row.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::Value;

use super::harness::*;

/// Qwen3-VL's token rule written out here, independently of dashbatch's code: each side
/// rounded half to even to a multiple of 32, scaled down past 2,621,440 pixels or up to four
/// patches, one token per patch plus 2.
fn qwen3_vl_image_tokens(width: u32, height: u32) -> u64 {
    let (width, height) = (f64::from(width), f64::from(height));
    let max_pixels = 2_621_440.0;
    let min_pixels = 4.0 * 32.0 * 32.0;
    let mut h = (height / 32.0).round_ties_even() * 32.0;
    let mut w = (width / 32.0).round_ties_even() * 32.0;
    if h * w > max_pixels {
        let beta = (height * width / max_pixels).sqrt();
        h = (height / beta / 32.0).floor() * 32.0;
        w = (width / beta / 32.0).floor() * 32.0;
    } else if h * w < min_pixels {
        let beta = (min_pixels / (height * width)).sqrt();
        h = (height * beta / 32.0).ceil() * 32.0;
        w = (width * beta / 32.0).ceil() * 32.0;
    }
    (h * w) as u64 / 1024 + 2
}

/// custom_id → the image tokens the simulator billed, from the run's downloaded result lines.
fn billed_image_tokens(run_directory: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut tokens = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(run_directory.join("results")).unwrap() {
        let path = entry.unwrap().path();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            if let Some(image_tokens) =
                line.pointer("/response/body/usage/prompt_tokens_details/image_tokens")
            {
                tokens.insert(
                    line["custom_id"].as_str().unwrap().to_owned(),
                    image_tokens.as_u64().unwrap(),
                );
            }
        }
    }
    tokens
}

/// The image URLs of a request line's user message.
fn image_urls(line: &Value) -> Vec<String> {
    line["body"]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|part| part.pointer("/image_url/url").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn png_bytes(image: &image::RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

/// A picture of noise: it does not compress, so its file is about 3 bytes per pixel.
fn noise(width: u32, height: u32, seed: u32) -> image::RgbImage {
    let mut state = seed;
    image::RgbImage::from_fn(width, height, |_, _| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    })
}

fn estimate_json(workspace: &Workspace, job: &str) -> Value {
    let output = workspace.run(&["estimate", job, "--json"]);
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

const VISION_JOB: &str = "[request]\nmodel = \"qwen3-vl-flash\"\ntemplate = \"What is in the picture? Answer in JSON.\"\nresponse_format = \"json_object\"\nmax_tokens = 40\n";

#[test]
fn the_sample_pictures_are_billed_the_image_tokens_the_estimate_counted() {
    let pictures = sample_images();
    let workspace = Workspace::new();
    let job_text = std::fs::read_to_string(repository_root().join("jobs/image-labels.toml"))
        .unwrap()
        .replace(
            "\"../fixtures/",
            &format!("\"{}/", repository_root().join("fixtures").display()),
        );
    let job = workspace.write("image-labels.toml", job_text);
    let job = job.to_str().unwrap();

    // validate shows the content parts, the data URLs cut short.
    let shown = workspace.run(&["validate", job, "--show", "1"]);
    assert_success(&shown);
    let shown_text = text(&shown.stdout);
    assert!(
        shown_text.contains("\"url\": \"data:image/png;base64,iVBORw0KGgoA…(791.6 KB)\""),
        "{shown_text}"
    );
    assert!(
        shown_text.contains("\"type\": \"image_url\""),
        "{shown_text}"
    );
    assert!(shown_text.len() < 20_000, "no whole image is printed");

    let estimate = estimate_json(&workspace, job);
    assert_eq!(estimate["total"]["images"], 26);
    let output = workspace.run(&["run", job, "--provider", "sim", "--quiet"]);
    assert_success(&output);
    let run_directory = workspace.single_run_directory();
    let billed = billed_image_tokens(&run_directory);
    assert_eq!(
        billed.len(),
        26,
        "every picture answered with its image tokens"
    );

    // Each picture: the simulator's count equals the rule written out above, from the file.
    let mut reader =
        csv::Reader::from_path(repository_root().join("fixtures/images/sample-images.csv"))
            .unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        let path = pictures.parent().unwrap().join(&record[1]);
        let (width, height) = image::image_dimensions(&path).unwrap();
        assert_eq!(
            billed[&record[0]],
            qwen3_vl_image_tokens(width, height),
            "{} ({width}×{height})",
            &record[0]
        );
    }
    assert_eq!(
        estimate["total"]["image_tokens"].as_u64().unwrap(),
        billed.values().sum::<u64>(),
        "the estimate's image tokens are what was billed"
    );
    // The sent line embeds the file's own bytes.
    let lines = shard_lines(&run_directory);
    let astronaut = lines
        .iter()
        .find(|line| line["custom_id"] == "astronaut")
        .unwrap();
    let url = &image_urls(astronaut)[0];
    use base64::Engine;
    let sent = base64::engine::general_purpose::STANDARD
        .decode(url.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    assert_eq!(sent, std::fs::read(pictures.join("astronaut.png")).unwrap());
}

/// A workspace with one good picture, `good.png`, and a job reading `images.csv`.
fn workspace_with_pictures(csv: &str, extra_request: &str) -> Workspace {
    let workspace = Workspace::new();
    workspace.write("good.png", png_bytes(&noise(64, 48, 1)));
    workspace.write("images.csv", csv);
    workspace.write(
        "job.toml",
        format!(
            "[input]\npath = \"images.csv\"\nid_column = \"id\"\n{VISION_JOB}images = [\"{{{{ file }}}}\"]\n{extra_request}"
        ),
    );
    workspace
}

fn refused_before_upload(workspace: &Workspace) -> String {
    let simulator = StandaloneSimulator::start(&[]);
    let stderr = run_refused_before_upload(workspace, &simulator);
    assert!(
        !workspace.path().join("runs").exists()
            || workspace
                .path()
                .join("runs")
                .read_dir()
                .unwrap()
                .all(|entry| entry
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')),
        "no run was started: {stderr}"
    );
    stderr
}

#[test]
fn every_bad_image_is_refused_before_upload_naming_its_row_and_column() {
    let truncated = {
        let mut bytes = png_bytes(&noise(64, 64, 2));
        bytes.truncate(bytes.len() / 2);
        bytes
    };
    let tiny = png_bytes(&noise(10, 40, 3));
    let elongated = png_bytes(&noise(2300, 11, 4));
    let cut_jpeg = std::fs::read(sample_images().join("rocket.jpg")).unwrap()[..2000].to_vec();
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    // (case, the cell's value, the file's bytes when one is written, words the error must say)
    type BadImageCase = (
        &'static str,
        &'static str,
        Option<Vec<u8>>,
        &'static [&'static str],
    );
    let cases: Vec<BadImageCase> = vec![
        (
            "missing",
            "nowhere.png",
            None,
            &["`nowhere.png` does not exist", "the input's directory"],
        ),
        (
            "truncated",
            "half.png",
            Some(truncated),
            &["is a damaged png file"],
        ),
        (
            "tiny",
            "tiny.png",
            Some(tiny),
            &["is 10×40 pixels", "over 10 pixels"],
        ),
        (
            "elongated",
            "long.png",
            Some(elongated),
            &["2300×11", "200:1"],
        ),
        ("gif", "anim.gif", Some(gif), &["is GIF", "convert it"]),
        (
            "not an image",
            "notes.jpg",
            Some(b"just some text, named .jpg".to_vec()),
            &["not an image file dashbatch recognises"],
        ),
        (
            "empty file",
            "empty.png",
            Some(Vec::new()),
            &["is empty (0 bytes)"],
        ),
        (
            "loopback URL",
            "http://127.0.0.1:8000/a.png",
            None,
            &["cannot reach", "public URL"],
        ),
        (
            "local name",
            "http://localhost/a.png",
            None,
            &["a local host name"],
        ),
        (
            "private network",
            "https://192.168.1.20/cat.jpg",
            None,
            &["private"],
        ),
        (
            "other scheme",
            "ftp://example.com/a.png",
            None,
            &["`ftp://` URL"],
        ),
        (
            "broken data URL",
            "data:image/png;base64,@@@@",
            None,
            &["data URL is broken"],
        ),
        (
            "not image data",
            "data:text/plain;base64,aGVsbG8=",
            None,
            &["holds `text/plain`, not an image"],
        ),
        (
            "a JPEG cut short",
            "cut.jpg",
            Some(cut_jpeg.clone()),
            &["is a damaged jpeg file", "cut short"],
        ),
        (
            "two URLs in one cell",
            "https://example.com/a.png\nhttps://example.com/b.png",
            None,
            &["has a space or a line break"],
        ),
        (
            "a password in the URL",
            "https://user:secret@example.com/a.png",
            None,
            &["names a user and password"],
        ),
        (
            "a directory",
            "subdir",
            None,
            &["is not an image file but a directory"],
        ),
    ];
    for (case, value, contents, expected) in cases {
        let workspace = workspace_with_pictures(
            &format!("id,file\nfirst,good.png\nsecond,\"{value}\"\n"),
            "",
        );
        if let Some(bytes) = contents {
            workspace.write(value, bytes);
        }
        if value == "subdir" {
            std::fs::create_dir(workspace.path().join("subdir")).unwrap();
        }
        let stderr = refused_before_upload(&workspace);
        for words in [
            &[
                "row 2",
                "column `file`",
                "custom_id `second`",
                "request.images[0]",
            ][..],
            expected,
        ]
        .concat()
        {
            assert!(
                stderr.contains(words),
                "{case}: expected `{words}` in:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("secret"),
            "{case}: a password is never shown"
        );
        assert!(
            !stderr.contains("row 1,"),
            "{case}: the good row is not blamed:\n{stderr}"
        );
    }
}

#[test]
fn a_repeated_id_is_reported_even_when_one_of_its_rows_has_a_bad_image() {
    let workspace = workspace_with_pictures("id,file\nX,nope.png\nX,good.png\n", "");
    let stderr = refused_before_upload(&workspace);
    for words in [
        "row 1",
        "`nope.png` does not exist",
        "row 2",
        "the id is already used by row 1",
    ] {
        assert!(stderr.contains(words), "expected `{words}` in:\n{stderr}");
    }
}

#[test]
fn a_partitioned_input_keeps_its_pictures_beside_its_parts() {
    let workspace = Workspace::new();
    workspace.write("photos/k=1/part-0.csv", "id,file\na,k=1/a.png\n");
    workspace.write("photos/k=2/part-0.csv", "id,file\nb,k=2/b.png\n");
    workspace.write("photos/k=1/a.png", png_bytes(&noise(64, 48, 8)));
    workspace.write("photos/k=2/b.png", png_bytes(&noise(48, 64, 9)));
    workspace.write(
        "job.toml",
        format!("[input]\npath = \"photos\"\nid_column = \"id\"\n{VISION_JOB}images = [\"{{{{ file }}}}\"]\n"),
    );
    let output = workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]);
    assert_success(&output);
    let run_directory = workspace.single_run_directory();
    assert_eq!(read_report(&run_directory)["rows_by_status"]["ok"], 2);
    assert_eq!(
        shard_lines(&run_directory).len(),
        2,
        "the pictures are not read as parts"
    );
}

#[test]
fn an_empty_image_is_refused_or_sent_as_text_only_as_the_job_says() {
    let csv = "id,file\nfirst,good.png\nsecond,\n";
    let refused = workspace_with_pictures(csv, "");
    let stderr = refused_before_upload(&refused);
    for words in [
        "row 2",
        "column `file`",
        "renders to nothing",
        "empty_image = \"text_only\"",
    ] {
        assert!(stderr.contains(words), "expected `{words}` in:\n{stderr}");
    }
    let text_only = workspace_with_pictures(csv, "empty_image = \"text_only\"\n");
    let output = text_only.run(&["run", "job.toml", "--provider", "sim", "--quiet"]);
    assert_success(&output);
    let run_directory = text_only.single_run_directory();
    let lines = shard_lines(&run_directory);
    assert_eq!(image_urls(&lines[0]).len(), 1);
    assert_eq!(
        image_urls(&lines[1]).len(),
        0,
        "the second row is sent text only"
    );
    assert_eq!(read_report(&run_directory)["rows_by_status"]["ok"], 2);
}

#[test]
fn a_job_sending_images_to_a_text_model_or_to_embeddings_is_refused() {
    for (replace, with, expected) in [
        ("qwen3-vl-flash", "qwen-plus", "`qwen-plus` reads text only"),
        (
            "model = \"qwen3-vl-flash\"",
            "endpoint = \"/v1/embeddings\"\nmodel = \"text-embedding-v4\"",
            "images are sent only to the `/v1/chat/completions` endpoint",
        ),
    ] {
        let workspace = workspace_with_pictures("id,file\nfirst,good.png\n", "");
        let job = std::fs::read_to_string(workspace.path().join("job.toml"))
            .unwrap()
            .replace(replace, with)
            .replace("response_format = \"json_object\"\nmax_tokens = 40\n", "");
        workspace.write("job.toml", job);
        let stderr = refused_before_upload(&workspace);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("job.toml"), "{stderr}");
    }
    // A rehearsal's free test model reads no images: refused, not 26 failed rows.
    let workspace = workspace_with_pictures("id,file\nfirst,good.png\n", "");
    let output = workspace.run(&["run", "job.toml", "--provider", "sim", "--rehearse"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("`--rehearse` covers text jobs only"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn an_oversized_image_is_downscaled_to_fit_the_line_or_refused() {
    // 2600×2000 noise: about 15.6 MB as PNG, over the 10 MB the provider takes per image.
    let huge = png_bytes(&noise(2600, 2000, 5));
    assert!(huge.len() > 10_000_000);
    // 1200×900 noise: about 3.2 MB, within 10 MB but over a 1 MB line.
    let large = png_bytes(&noise(1200, 900, 6));
    // 4000×3000 smooth: a small file, but more pixels than the model reads.
    let many_pixels = png_bytes(&image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, 128])
    }));
    let csv = "id,file\nhuge,huge.png\nlarge,large.png\nmany_pixels,many.png\nsmall,good.png\n";
    let setup = |extra: &str| {
        let workspace = workspace_with_pictures(csv, extra);
        workspace.write("huge.png", &huge);
        workspace.write("large.png", &large);
        workspace.write("many.png", &many_pixels);
        workspace
    };

    let refused = setup("[batch]\nmax_line_bytes = 1000000\n");
    let stderr = refused_before_upload(&refused);
    for words in [
        "row 1",
        "`huge.png` is 15.",
        "at most 10.0 MB per image",
        "image_fit = \"downscale\"",
    ] {
        assert!(stderr.contains(words), "expected `{words}` in:\n{stderr}");
    }
    for words in ["row 2", "over the 1.0 MB a line may have", "large.png"] {
        assert!(stderr.contains(words), "expected `{words}` in:\n{stderr}");
    }

    let downscaled = setup("image_fit = \"downscale\"\n[batch]\nmax_line_bytes = 1000000\n");
    let estimate = estimate_json(&downscaled, "job.toml");
    let output = downscaled.run(&["run", "job.toml", "--provider", "sim", "--quiet"]);
    assert_success(&output);
    let run_directory = downscaled.single_run_directory();
    assert_eq!(read_report(&run_directory)["rows_by_status"]["ok"], 4);
    let lines = shard_lines(&run_directory);
    for line in &lines {
        let length = serde_json::to_vec(line).unwrap().len();
        assert!(length <= 1_000_000, "{}: {length} bytes", line["custom_id"]);
    }
    use base64::Engine;
    let decoded = |line: &Value| {
        let url = image_urls(line).remove(0);
        let (header, payload) = url.split_once(',').unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap();
        let size = image::load_from_memory(&bytes).unwrap();
        (header.to_owned(), size.width(), size.height())
    };
    for (index, name) in ["huge", "large", "many_pixels"].iter().enumerate() {
        let (header, width, height) = decoded(&lines[index]);
        assert_eq!(header, "data:image/jpeg;base64", "{name}");
        assert!(
            u64::from(width) * u64::from(height) <= 2_621_440,
            "{name}: {width}×{height}"
        );
        let ratio = f64::from(width) / f64::from(height);
        assert!(
            (ratio - 4.0 / 3.0).abs() < 0.05 || (ratio - 1.3).abs() < 0.05,
            "{name}: {width}×{height}"
        );
    }
    let (header, ..) = decoded(&lines[3]);
    assert_eq!(
        header, "data:image/png;base64",
        "a small image is sent as it is"
    );
    let billed = billed_image_tokens(&run_directory);
    assert_eq!(
        estimate["total"]["image_tokens"].as_u64().unwrap(),
        billed.values().sum::<u64>()
    );

    // The same shrunk bytes next time: every answer comes from the store, nothing is sent.
    let again = downscaled.run(&[
        "run",
        "job.toml",
        "--provider",
        "sim",
        "--quiet",
        "--run-dir",
        "again",
    ]);
    assert_success(&again);
    let report = read_report(&downscaled.path().join("again"));
    assert_eq!(report["reuse"]["rows_from_store"], 4, "{report:#}");
    assert_eq!(report["reuse"]["requests_sent"], 0, "{report:#}");
}

#[test]
fn high_resolution_raises_the_pixel_cap_in_the_estimate_and_the_bill_alike() {
    // 4000×3000: past the default cap (2,621,440 px) but within the high-resolution one.
    let photo = png_bytes(&image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, 64])
    }));
    for (extra, expected_tokens) in [
        ("", qwen3_vl_image_tokens(4000, 3000)),
        // 125 × 94 patches (3000 / 32 = 93.75 rounds to 94), plus 2.
        ("vl_high_resolution_images = true\n", 125 * 94 + 2),
    ] {
        let workspace = workspace_with_pictures("id,file\nphoto,photo.png\n", extra);
        workspace.write("photo.png", &photo);
        let estimate = estimate_json(&workspace, "job.toml");
        assert_eq!(
            estimate["total"]["image_tokens"], expected_tokens,
            "{extra}"
        );
        let output = workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]);
        assert_success(&output);
        let billed = billed_image_tokens(&workspace.single_run_directory());
        assert_eq!(billed["photo"], expected_tokens, "{extra}");
    }
}

#[test]
fn images_come_from_a_parquet_binary_column_and_urls_several_per_row() {
    let workspace = Workspace::new();
    let photo = png_bytes(&noise(300, 200, 7));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("photo", DataType::Binary, true),
        Field::new("link", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["a", "b"])),
        Arc::new(BinaryArray::from(vec![Some(photo.as_slice()), None])),
        Arc::new(StringArray::from(vec![
            "https://dashscope.oss-cn-beijing.aliyuncs.com/images/dog_and_girl.jpeg",
            "https://example.com/pictures/b.jpg",
        ])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let file = std::fs::File::create(workspace.path().join("photos.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    workspace.write(
        "job.toml",
        format!(
            "[input]\npath = \"photos.parquet\"\nid_column = \"id\"\n{VISION_JOB}images = [\"{{{{ photo }}}}\", \"{{{{ link }}}}\"]\nempty_image = \"text_only\"\n[output]\nkeep_columns = [\"id\", \"link\"]\n"
        ),
    );
    let estimate = estimate_json(&workspace, "job.toml");
    assert_eq!(estimate["total"]["images"], 3);
    // 300×200 embedded: 9×6 patches + 2 = 56; each URL at the most an image costs, 2,562.
    assert_eq!(estimate["total"]["image_tokens"], 56 + 2 * 2562);
    let output = workspace.run(&["run", "job.toml", "--provider", "sim", "--quiet"]);
    assert_success(&output);
    let run_directory = workspace.single_run_directory();
    let lines = shard_lines(&run_directory);
    let first = image_urls(&lines[0]);
    assert_eq!(first.len(), 2);
    assert!(first[0].starts_with("data:image/png;base64,iVBOR"));
    assert_eq!(
        first[1],
        "https://dashscope.oss-cn-beijing.aliyuncs.com/images/dog_and_girl.jpeg"
    );
    assert_eq!(
        image_urls(&lines[1]),
        vec!["https://example.com/pictures/b.jpg".to_owned()]
    );
    let billed = billed_image_tokens(&run_directory);
    assert_eq!(billed["a"], 56 + 2562);
    assert_eq!(billed["b"], 2562);
    assert_eq!(read_report(&run_directory)["rows_by_status"]["ok"], 2);
}
