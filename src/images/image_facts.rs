//! What an image is: its format (sniffed from its bytes, never from a name), its size in pixels,
//! and whether the provider accepts it: a supported format, each side over 10 pixels, an aspect
//! ratio within 200:1 (`prices-and-vision.md` §3, Qwen-VL limits). Pure: works on bytes.

use std::io::Cursor;

/// The formats DashScope's vision models take (BMP, JPEG, PNG, TIFF, WEBP, HEIC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Bmp,
    Jpeg,
    Png,
    Tiff,
    Webp,
    Heic,
}

impl ImageFormat {
    /// The media type a `data:` URL of this format names.
    #[must_use]
    pub fn mime_type(self) -> &'static str {
        match self {
            ImageFormat::Bmp => "image/bmp",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Tiff => "image/tiff",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Heic => "image/heic",
        }
    }
}

/// The smallest side the provider accepts is 11 pixels ("width and height > 10 px").
pub const MIN_SIDE_PIXELS: u32 = 11;
/// The longest side may be at most this many times the shortest.
pub const MAX_ASPECT_RATIO: u32 = 200;

/// The most pixels dashbatch decodes in one image (about 200 MB as RGBA): three times what the
/// models read at their highest resolution (16,777,216), so no real photo is refused, while a file
/// that declares a huge size in a few bytes cannot take the machine's memory.
pub const MAX_DECODED_PIXELS: u64 = 50_000_000;

/// An image's format and size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFacts {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Why bytes are not an image the provider takes; the text completes "the image ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageProblem {
    #[error("is empty (0 bytes)")]
    Empty,
    #[error(
        "is {0}, which the vision models do not take; convert it to JPEG, PNG, WEBP, BMP, TIFF or HEIC"
    )]
    UnsupportedFormat(String),
    #[error(
        "is not an image file dashbatch recognises (its first bytes are no BMP, JPEG, PNG, TIFF, WEBP or HEIC signature)"
    )]
    NotAnImage,
    #[error(
        "is a {format} file of a kind dashbatch cannot read ({detail}); convert it to PNG or JPEG"
    )]
    UnsupportedKind {
        format: &'static str,
        detail: String,
    },
    #[error("is a damaged {format} file: {detail}")]
    Damaged {
        format: &'static str,
        detail: String,
    },
    #[error(
        "is {width}×{height} pixels; the provider needs each side over 10 pixels; use a larger image"
    )]
    TooSmall { width: u32, height: u32 },
    #[error(
        "is {width}×{height} pixels, an aspect ratio over {MAX_ASPECT_RATIO}:1, which the provider refuses; crop it"
    )]
    TooElongated { width: u32, height: u32 },
    #[error(
        "is {width}×{height} pixels, more than the {MAX_DECODED_PIXELS} pixels dashbatch decodes (the models read at most 16,777,216); resize it first"
    )]
    TooManyPixels { width: u32, height: u32 },
}

/// Sniffs `bytes`, reads the size from the header, and checks the provider's limits. With
/// `decode_fully` every pixel is decoded too (HEIC excepted: no decoder is built in), so a file
/// damaged past its header is found before it is paid for.
///
/// # Errors
/// When the bytes are no supported image, are damaged, or break a limit.
pub fn inspect_image(bytes: &[u8], decode_fully: bool) -> Result<ImageFacts, ImageProblem> {
    examine(bytes, decode_fully).map(|(facts, _)| facts)
}

/// [`inspect_image`] decoding fully, keeping the decoded picture (`None` for HEIC) for a
/// downscale, so it is decoded once.
///
/// # Errors
/// As [`inspect_image`].
pub fn decode_image(
    bytes: &[u8],
) -> Result<(ImageFacts, Option<image::DynamicImage>), ImageProblem> {
    examine(bytes, true)
}

fn examine(
    bytes: &[u8],
    decode_fully: bool,
) -> Result<(ImageFacts, Option<image::DynamicImage>), ImageProblem> {
    if bytes.is_empty() {
        return Err(ImageProblem::Empty);
    }
    if let Some((width, height)) = heic_size(bytes)? {
        check_size(width, height)?;
        let facts = ImageFacts {
            format: ImageFormat::Heic,
            width,
            height,
        };
        return Ok((facts, None));
    }
    let sniffed = image::guess_format(bytes).map_err(|_| ImageProblem::NotAnImage)?;
    let format = match sniffed {
        image::ImageFormat::Bmp => ImageFormat::Bmp,
        image::ImageFormat::Jpeg => ImageFormat::Jpeg,
        image::ImageFormat::Png => ImageFormat::Png,
        image::ImageFormat::Tiff => ImageFormat::Tiff,
        image::ImageFormat::WebP => ImageFormat::Webp,
        other => {
            return Err(ImageProblem::UnsupportedFormat(
                other
                    .extensions_str()
                    .first()
                    .map_or("an unsupported format".to_owned(), |extension| {
                        extension.to_ascii_uppercase()
                    }),
            ));
        }
    };
    let format_name = format.mime_type().trim_start_matches("image/");
    let damaged = |error: image::ImageError| match error {
        image::ImageError::Unsupported(unsupported) => ImageProblem::UnsupportedKind {
            format: format_name,
            detail: unsupported.to_string(),
        },
        other => ImageProblem::Damaged {
            format: format_name,
            detail: other.to_string(),
        },
    };
    let (width, height) = image::ImageReader::with_format(Cursor::new(bytes), sniffed)
        .into_dimensions()
        .map_err(damaged)?;
    check_size(width, height)?;
    if u64::from(width) * u64::from(height) > MAX_DECODED_PIXELS {
        return Err(ImageProblem::TooManyPixels { width, height });
    }
    let facts = ImageFacts {
        format,
        width,
        height,
    };
    if !decode_fully {
        return Ok((facts, None));
    }
    // Every pixel, so that a file damaged past its header is found before it is paid for.
    let decoded = image::ImageReader::with_format(Cursor::new(bytes), sniffed)
        .decode()
        .map_err(damaged)?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(ImageProblem::Damaged {
            format: format_name,
            detail: "the file ends before its image data does (it was cut short)".to_owned(),
        });
    }
    Ok((facts, Some(decoded)))
}

/// Checks the provider's limits on an image's sides.
///
/// # Errors
/// A side of 10 pixels or less, or an aspect ratio over 200:1.
pub fn check_size(width: u32, height: u32) -> Result<(), ImageProblem> {
    if width < MIN_SIDE_PIXELS || height < MIN_SIDE_PIXELS {
        return Err(ImageProblem::TooSmall { width, height });
    }
    if u64::from(width.max(height)) > u64::from(width.min(height)) * u64::from(MAX_ASPECT_RATIO) {
        return Err(ImageProblem::TooElongated { width, height });
    }
    Ok(())
}

/// The size of a HEIC/HEIF image (ISO base media: an `ftyp` box naming a HEIF brand, then `ispe`
/// properties); `None` when the bytes are not HEIC. Phones store a photo as a grid of tiles
/// (512×512) plus thumbnails, each with its own `ispe`; the whole picture's is the largest, so
/// that one is taken: the estimate never counts a photo at a tile's size.
fn heic_size(bytes: &[u8]) -> Result<Option<(u32, u32)>, ImageProblem> {
    const HEIF_BRANDS: [&[u8; 4]; 7] = [
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1",
    ];
    if bytes.len() < 12
        || &bytes[4..8] != b"ftyp"
        || !HEIF_BRANDS.contains(&&[bytes[8], bytes[9], bytes[10], bytes[11]])
    {
        return Ok(None);
    }
    let damaged = || ImageProblem::Damaged {
        format: "heic",
        detail: "no image size (`ispe` property) in its header".to_owned(),
    };
    // `ispe`, then version and flags (4 bytes), then width and height (4 bytes each, big endian).
    let field = |start: usize| -> Option<u32> {
        let slice = bytes.get(start..start + 4)?;
        Some(u32::from_be_bytes(slice.try_into().ok()?))
    };
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, window)| *window == b"ispe")
        .filter_map(|(position, _)| Some((field(position + 8)?, field(position + 12)?)))
        .max_by_key(|&(width, height)| u64::from(width) * u64::from(height))
        .map(Some)
        .ok_or_else(damaged)
}

/// Whether a JPEG ends its last scan with an end-of-image marker: a file cut short is not, though
/// the decoder fills in what is missing (as the provider's might not).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|window| window == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..]
        .windows(2)
        .any(|window| window == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::test_pictures::{encoded, solid_png as png};

    #[test]
    fn images_are_known_by_their_bytes_and_checked_against_the_limits() {
        let facts = inspect_image(&png(40, 30), true).unwrap();
        assert_eq!(
            facts,
            ImageFacts {
                format: ImageFormat::Png,
                width: 40,
                height: 30
            }
        );
        assert_eq!(inspect_image(&[], true), Err(ImageProblem::Empty));
        assert_eq!(
            inspect_image(b"hello, not an image", true),
            Err(ImageProblem::NotAnImage)
        );
        assert_eq!(
            inspect_image(&png(10, 30), true),
            Err(ImageProblem::TooSmall {
                width: 10,
                height: 30
            })
        );
        assert!(matches!(
            inspect_image(&png(2201, 11), false),
            Err(ImageProblem::TooElongated { .. })
        ));
        assert!(check_size(2200, 11).is_ok());
        // GIF is recognised and refused by name.
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        assert_eq!(
            inspect_image(gif, true),
            Err(ImageProblem::UnsupportedFormat("GIF".to_owned()))
        );
    }

    #[test]
    fn a_file_damaged_past_its_header_is_found_when_decoded_fully() {
        let mut bytes = png(64, 64);
        let half = bytes.len() / 2;
        bytes.truncate(half);
        assert!(inspect_image(&bytes, false).is_ok(), "the header is intact");
        assert!(matches!(
            inspect_image(&bytes, true),
            Err(ImageProblem::Damaged { format: "png", .. })
        ));
    }

    #[test]
    fn a_jpeg_cut_short_is_damaged_though_its_decoder_fills_it_in() {
        let image =
            image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 9]));
        let mut bytes = encoded(image, image::ImageFormat::Jpeg);
        assert!(inspect_image(&bytes, true).is_ok());
        bytes.truncate(bytes.len() * 2 / 3);
        assert!(matches!(
            inspect_image(&bytes, true),
            Err(ImageProblem::Damaged { format: "jpeg", .. })
        ));
    }

    #[test]
    fn a_small_file_declaring_a_huge_picture_is_refused_before_it_is_decoded() {
        // 7100×7100 grey zeros: 50.4 million pixels in a file of a few kilobytes.
        let bytes = encoded(image::GrayImage::new(7100, 7100), image::ImageFormat::Png);
        assert!(bytes.len() < 1_000_000, "{}", bytes.len());
        assert_eq!(
            inspect_image(&bytes, true),
            Err(ImageProblem::TooManyPixels {
                width: 7100,
                height: 7100
            })
        );
    }

    #[test]
    fn heic_size_comes_from_its_ispe_property() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0, 0, 0, 24]);
        bytes.extend_from_slice(b"ftypheic");
        bytes.extend_from_slice(&[0; 12]);
        // A tile's property first, then the whole picture's (as phones write a grid).
        for (width, height) in [(512u32, 512u32), (4032, 3024), (320, 240)] {
            bytes.extend_from_slice(&[0, 0, 0, 20]);
            bytes.extend_from_slice(b"ispe");
            bytes.extend_from_slice(&[0, 0, 0, 0]);
            bytes.extend_from_slice(&width.to_be_bytes());
            bytes.extend_from_slice(&height.to_be_bytes());
        }
        let facts = inspect_image(&bytes, true).unwrap();
        assert_eq!(
            (facts.format, facts.width, facts.height),
            (ImageFormat::Heic, 4032, 3024)
        );
    }
}
