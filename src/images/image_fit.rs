//! Downscaling an image (`[request] image_fit = "downscale"`): resized and re-encoded as JPEG
//! until it is within the pixels the model reads and the bytes its request line has room for.
//! Deterministic: the same image and limits give the same bytes, so its request key is stable
//! from one run to the next.

use std::io::Cursor;

use image::imageops::FilterType;

use super::image_facts::{ImageFacts, ImageFormat, MIN_SIDE_PIXELS};

/// The JPEG quality of a downscaled image.
const JPEG_QUALITY: u8 = 85;

/// An image re-encoded to fit.
#[derive(Debug, Clone)]
pub struct FittedImage {
    pub bytes: Vec<u8>,
    pub facts: ImageFacts,
}

/// Resizes `bytes` (an image of `facts`) to at most `max_pixels` pixels and re-encodes it as JPEG
/// of at most `max_bytes` bytes, shrinking further while it is larger.
///
/// # Errors
/// HEIC (no decoder is built in), or an image that would have to shrink below the provider's
/// smallest side to fit; the text completes "the image ...".
pub fn downscale_to_fit(
    bytes: &[u8],
    facts: ImageFacts,
    max_pixels: u64,
    max_bytes: usize,
) -> Result<FittedImage, String> {
    if facts.format == ImageFormat::Heic {
        return Err(
            "is HEIC, which dashbatch cannot downscale; convert it to JPEG, or use a smaller image"
                .to_owned(),
        );
    }
    let decoded = image::load_from_memory(bytes)
        .map_err(|error| format!("could not be decoded to downscale it ({error})"))?
        .to_rgb8();
    let pixels = f64::from(facts.width) * f64::from(facts.height);
    let mut scale = (max_pixels as f64 / pixels).sqrt().min(1.0);
    loop {
        let width = (f64::from(facts.width) * scale).floor() as u32;
        let height = (f64::from(facts.height) * scale).floor() as u32;
        if width < MIN_SIDE_PIXELS || height < MIN_SIDE_PIXELS {
            return Err(format!(
                "cannot be made small enough: at {width}×{height} pixels it is still over the {max_bytes} bytes its request line has room for; use fewer or smaller images per row, or URLs"
            ));
        }
        let resized = if (width, height) == (facts.width, facts.height) {
            decoded.clone()
        } else {
            image::imageops::resize(&decoded, width, height, FilterType::Triangle)
        };
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut Cursor::new(&mut encoded),
            JPEG_QUALITY,
        )
        .encode_image(&resized)
        .map_err(|error| format!("could not be re-encoded ({error})"))?;
        if encoded.len() <= max_bytes {
            return Ok(FittedImage {
                bytes: encoded,
                facts: ImageFacts {
                    format: ImageFormat::Jpeg,
                    width,
                    height,
                },
            });
        }
        // JPEG size grows about with the pixel count: aim under the budget, shrink at least 10%.
        let ratio = (max_bytes as f64 / encoded.len() as f64).sqrt() * 0.95;
        scale *= ratio.min(0.9);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::image_facts::inspect_image;

    fn noisy_png(width: u32, height: u32) -> Vec<u8> {
        // Noise does not compress: a hard case for fitting by bytes.
        let mut state = 12345u32;
        let image = image::RgbImage::from_fn(width, height, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let [a, b, c, _] = state.to_le_bytes();
            image::Rgb([a, b, c])
        });
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn a_large_image_is_shrunk_within_the_pixels_and_the_bytes_and_the_same_way_each_time() {
        let bytes = noisy_png(600, 400);
        let facts = inspect_image(&bytes, true).unwrap();
        let fitted = downscale_to_fit(&bytes, facts, 100_000, 60_000).unwrap();
        assert!(fitted.bytes.len() <= 60_000, "{}", fitted.bytes.len());
        assert!(u64::from(fitted.facts.width) * u64::from(fitted.facts.height) <= 100_000);
        assert_eq!(fitted.facts, inspect_image(&fitted.bytes, true).unwrap());
        // The aspect ratio is kept.
        let ratio = f64::from(fitted.facts.width) / f64::from(fitted.facts.height);
        assert!((ratio - 1.5).abs() < 0.02, "{ratio}");
        let again = downscale_to_fit(&bytes, facts, 100_000, 60_000).unwrap();
        assert_eq!(fitted.bytes, again.bytes);
    }

    #[test]
    fn an_image_that_cannot_fit_says_so() {
        let bytes = noisy_png(100, 100);
        let facts = inspect_image(&bytes, true).unwrap();
        let error = downscale_to_fit(&bytes, facts, 1_000_000, 200).unwrap_err();
        assert!(error.contains("cannot be made small enough"), "{error}");
    }
}
