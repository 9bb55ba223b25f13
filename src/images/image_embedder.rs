//! A row's images as they go into its request: each rendered value (or binary cell) read,
//! checked and turned into the URL of a content part, and the row's embedded images shrunk to
//! fit its line when the job allows (`[request] image_fit`). The one stage of rendering that
//! reads files: local images named by the input.

use std::path::{Path, PathBuf};

use super::data_url::{data_url, data_url_length, decode_data_url};
use super::image_facts::{ImageFacts, ImageFormat, decode_image};
use super::image_fit::downscale_to_fit;
use super::image_reference::{ImageReference, image_reference};
use super::vision_tokens::{VisionTokenRule, vision_rule_of};
use crate::job::{ImageFit, Job};
use crate::readable_number::readable_bytes;

/// The provider's limit on one image (10 MB; for a base64 image, its encoded text).
pub const MAX_IMAGE_BYTES: u64 = 10 * 1000 * 1000;
/// The largest file `image_fit = "downscale"` reads to shrink.
pub const MAX_IMAGE_BYTES_TO_DOWNSCALE: u64 = 200 * 1000 * 1000;

/// Why a HEIC image cannot be shrunk, for a message.
fn cannot_downscale_heic(label: &str) -> String {
    format!(
        "the image {label} is HEIC, which dashbatch cannot decode to shrink; convert it to JPEG, or use a smaller image"
    )
}

/// A value a row gives for one image.
#[derive(Debug, Clone, Copy)]
pub enum ImageInput<'row> {
    /// What an image template rendered to.
    Rendered(&'row str),
    /// The cell of a binary column.
    Bytes(&'row [u8]),
}

/// One image of a row, ready to be a content part.
#[derive(Debug, Clone)]
pub struct RowImage {
    /// The `image_url.url` of its content part.
    pub url: String,
    /// The image's bytes when they travel in the line (not for http URLs).
    embedded: Option<(Vec<u8>, ImageFacts)>,
    /// What the image is, for messages: a path, a URL, or "the binary cell".
    pub label: String,
}

/// Reads and checks a job's images.
#[derive(Debug, Clone)]
pub struct ImageEmbedder {
    base_directory: PathBuf,
    fit: ImageFit,
    rule: VisionTokenRule,
    high_resolution: bool,
}

impl ImageEmbedder {
    #[must_use]
    pub fn new(job: &Job) -> ImageEmbedder {
        // The input's directory: a partitioned input's own, a glob's fixed leading directories.
        let input = &job.input_path;
        let base_directory = if input.is_dir() {
            input.clone()
        } else if crate::table::is_glob(input) {
            crate::table::glob_base(input)
        } else {
            // Empty for an input named without a directory: paths are then shown as written.
            input.parent().map(Path::to_owned).unwrap_or_default()
        };
        ImageEmbedder {
            base_directory,
            fit: job.spec.request.image_fit,
            rule: vision_rule_of(&job.spec.request.model).0,
            high_resolution: job.spec.request.vl_high_resolution_images == Some(true),
        }
    }

    /// Reads, checks and (with `image_fit = "downscale"`, past the pixels the model reads)
    /// shrinks one image.
    ///
    /// # Errors
    /// A whole sentence saying what is wrong with the image and what to do.
    pub fn image(&self, input: ImageInput<'_>) -> Result<RowImage, String> {
        let (bytes, label) = match input {
            ImageInput::Bytes(bytes) => (bytes.to_vec(), "in the binary cell".to_owned()),
            ImageInput::Rendered(value) => match image_reference(value, &self.base_directory)
                .map_err(|message| format!("the image {message}"))?
            {
                ImageReference::Url(url) => {
                    return Ok(RowImage {
                        label: format!("`{url}`"),
                        url,
                        embedded: None,
                    });
                }
                ImageReference::DataUrl(url) => {
                    let decoded = decode_data_url(&url)
                        .map_err(|why| format!("the image's data URL is broken: {why}"))?;
                    if !decoded.mime_type.starts_with("image/") {
                        return Err(format!(
                            "the data URL holds `{}`, not an image; a request line carries one kind of media, images here",
                            decoded.mime_type
                        ));
                    }
                    (decoded.bytes, "in the data URL".to_owned())
                }
                ImageReference::LocalFile(path) => {
                    let bytes = self.read_file(&path)?;
                    (bytes, format!("`{}`", path.display()))
                }
            },
        };
        if self.fit == ImageFit::Refuse && bytes.len() as u64 > MAX_IMAGE_BYTES {
            return Err(format!(
                "the image {label} is {}; the provider takes at most {} per image; set `[request] image_fit = \"downscale\"` to shrink it, or use a smaller image",
                readable_bytes(bytes.len() as u64),
                readable_bytes(MAX_IMAGE_BYTES)
            ));
        }
        let (facts, decoded) =
            decode_image(&bytes).map_err(|problem| format!("the image {label} {problem}"))?;
        let max_pixels = self.rule.max_pixels(self.high_resolution);
        let too_many_pixels = u64::from(facts.width) * u64::from(facts.height) > max_pixels;
        let (bytes, facts) = if self.fit == ImageFit::Downscale
            && (too_many_pixels || bytes.len() as u64 > MAX_IMAGE_BYTES)
        {
            let decoded = decoded.ok_or_else(|| cannot_downscale_heic(&label))?;
            let fitted = downscale_to_fit(&decoded, facts, max_pixels, MAX_IMAGE_BYTES as usize)
                .map_err(|why| format!("the image {label} {why}"))?;
            (fitted.bytes, fitted.facts)
        } else {
            (bytes, facts)
        };
        Ok(RowImage {
            url: data_url(facts.format.mime_type(), &bytes),
            embedded: Some((bytes, facts)),
            label,
        })
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => format!(
                "the image file `{}` does not exist (relative paths are read from `{}`, the input's directory)",
                path.display(),
                if self.base_directory.as_os_str().is_empty() {
                    Path::new(".").display()
                } else {
                    self.base_directory.display()
                }
            ),
            _ => format!("the image file `{}` cannot be read: {error}", path.display()),
        })?;
        if !metadata.is_file() {
            return Err(format!(
                "`{}` is not an image file but a directory or a device",
                path.display()
            ));
        }
        let read_limit = match self.fit {
            ImageFit::Refuse => MAX_IMAGE_BYTES,
            ImageFit::Downscale => MAX_IMAGE_BYTES_TO_DOWNSCALE,
        };
        if metadata.len() > read_limit {
            return Err(format!(
                "the image file `{}` is {}; {}",
                path.display(),
                readable_bytes(metadata.len()),
                match self.fit {
                    ImageFit::Refuse if metadata.len() <= MAX_IMAGE_BYTES_TO_DOWNSCALE => format!(
                        "the provider takes at most {} per image; set `[request] image_fit = \"downscale\"` to shrink it",
                        readable_bytes(MAX_IMAGE_BYTES)
                    ),
                    ImageFit::Refuse | ImageFit::Downscale => format!(
                        "dashbatch shrinks files of at most {}; resize it first",
                        readable_bytes(MAX_IMAGE_BYTES_TO_DOWNSCALE)
                    ),
                }
            ));
        }
        std::fs::read(path).map_err(|error| {
            format!(
                "the image file `{}` cannot be read: {error}",
                path.display()
            )
        })
    }

    /// Makes a row's line of `line_length` bytes fit `max_line_bytes` by shrinking its embedded
    /// images (with `image_fit = "downscale"`), sharing the room left by the rest of the line
    /// equally, smaller images keeping what they do not need. Returns whether any changed; the
    /// caller renders the line again.
    ///
    /// # Errors
    /// When the line is too long and may not, or cannot, be shrunk.
    pub fn fit_row(
        &self,
        images: &mut [RowImage],
        line_length: usize,
        max_line_bytes: usize,
    ) -> Result<bool, String> {
        if line_length <= max_line_bytes {
            return Ok(false);
        }
        let embedded_length: usize = images
            .iter()
            .filter(|image| image.embedded.is_some())
            .map(|image| image.url.len())
            .sum();
        let too_long = {
            let sizes = images
                .iter()
                .filter(|image| image.embedded.is_some())
                .map(|image| format!("{} {}", image.label, readable_bytes(image.url.len() as u64)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "the request line is {} with its images ({}), over the {} a line may have",
                readable_bytes(line_length as u64),
                if sizes.is_empty() {
                    "none embedded".to_owned()
                } else {
                    format!("embedded as base64: {sizes}")
                },
                readable_bytes(max_line_bytes as u64)
            )
        };
        let too_long = || too_long.clone();
        if self.fit == ImageFit::Refuse {
            return Err(format!(
                "{}; set `[request] image_fit = \"downscale\"` to shrink them, or use smaller images or URLs",
                too_long()
            ));
        }
        let rest_of_line = line_length - embedded_length;
        if embedded_length == 0 || rest_of_line >= max_line_bytes {
            return Err(format!(
                "{}; without its embedded images the line is already {} bytes (text, schema, URLs); raise `[batch] max_line_bytes`, or shorten the prompt",
                too_long(),
                rest_of_line
            ));
        }
        let mut room = max_line_bytes - rest_of_line;
        let mut order: Vec<usize> = (0..images.len())
            .filter(|&index| images[index].embedded.is_some())
            .collect();
        order.sort_by_key(|&index| images[index].url.len());
        let count = order.len();
        for (position, index) in order.into_iter().enumerate() {
            let share = room / (count - position);
            let image = &mut images[index];
            if image.url.len() > share {
                let (bytes, facts) = image.embedded.as_ref().expect("only embedded images");
                let header = data_url_length("image/jpeg", 0);
                let max_bytes = share.saturating_sub(header) / 4 * 3;
                let max_pixels = self.rule.max_pixels(self.high_resolution);
                let decoded = match facts.format {
                    ImageFormat::Heic => {
                        return Err(format!(
                            "{}; {}",
                            too_long(),
                            cannot_downscale_heic(&image.label)
                        ));
                    }
                    _ => image::load_from_memory(bytes).map_err(|error| {
                        format!(
                            "{}; the image {} could not be decoded to shrink it ({error})",
                            too_long(),
                            image.label
                        )
                    })?,
                };
                let fitted = downscale_to_fit(&decoded, *facts, max_pixels, max_bytes)
                    .map_err(|why| format!("{}; the image {} {why}", too_long(), image.label))?;
                image.url = data_url(fitted.facts.format.mime_type(), &fitted.bytes);
                image.embedded = Some((fitted.bytes, fitted.facts));
            }
            room -= image.url.len().min(room);
        }
        Ok(true)
    }
}
