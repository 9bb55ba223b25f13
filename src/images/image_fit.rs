//! Downscaling an image (`[request] image_fit = "downscale"`): resized and re-encoded as JPEG
//! until it is within the pixels the model reads and the bytes its request line has room for.
//! Deterministic: the same image and limits give the same bytes, so its request key is stable
//! from one run to the next.

use std::io::Cursor;

use super::image_facts::{ImageFacts, ImageFormat, MAX_ASPECT_RATIO, MIN_SIDE_PIXELS, check_size};

/// The JPEG quality of a downscaled image.
const JPEG_QUALITY: u8 = 85;

/// An image re-encoded to fit.
#[derive(Debug, Clone)]
pub struct FittedImage {
    pub bytes: Vec<u8>,
    pub facts: ImageFacts,
}

/// Resizes `decoded` (an image of `facts`) to at most `max_pixels` pixels and re-encodes it as
/// JPEG of at most `max_bytes` bytes, shrinking further while it is larger. Transparent parts are
/// laid over white (JPEG has no transparency; black text on a transparent background stays
/// readable). The result keeps within the provider's limits: sides over 10 pixels, aspect ratio
/// at most 200:1.
///
/// # Errors
/// An image that would have to shrink below the provider's smallest side to fit; the text
/// completes "the image ...".
pub fn downscale_to_fit(
    decoded: &image::DynamicImage,
    facts: ImageFacts,
    max_pixels: u64,
    max_bytes: usize,
) -> Result<FittedImage, String> {
    let flattened = over_white(decoded);
    let pixels = f64::from(facts.width) * f64::from(facts.height);
    // The scale at which the shorter side is the smallest the provider takes: the last one tried.
    let smallest_scale =
        (f64::from(MIN_SIDE_PIXELS) / f64::from(facts.width.min(facts.height))).min(1.0);
    let mut scale = (max_pixels as f64 / pixels).sqrt().min(1.0);
    let mut last_tried: Option<(u32, u32, usize)> = None;
    loop {
        scale = scale.max(smallest_scale);
        let (width, height) = scaled_size(facts.width, facts.height, scale);
        let resized = if (width, height) == (facts.width, facts.height) {
            flattened.clone()
        } else {
            // Area sampling: fast on large pictures, and as good as a filter when shrinking.
            image::imageops::thumbnail(&flattened, width, height)
        };
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut Cursor::new(&mut encoded),
            JPEG_QUALITY,
        )
        .encode_image(&resized)
        .map_err(|error| format!("could not be re-encoded ({error})"))?;
        if encoded.len() <= max_bytes {
            check_size(width, height).map_err(|problem| format!("{problem}"))?;
            return Ok(FittedImage {
                bytes: encoded,
                facts: ImageFacts {
                    format: ImageFormat::Jpeg,
                    width,
                    height,
                },
            });
        }
        let at_the_smallest = scale <= smallest_scale
            || last_tried.is_some_and(|(tried_width, tried_height, _)| {
                (tried_width, tried_height) == (width, height)
            });
        if at_the_smallest {
            return Err(format!(
                "cannot be made small enough: even at {width}×{height} pixels, the smallest the provider takes, it is {} bytes, over the {max_bytes} its request line has room for; use fewer or smaller images per row, or URLs",
                encoded.len()
            ));
        }
        last_tried = Some((width, height, encoded.len()));
        // JPEG size grows about with the pixel count: aim under the budget, shrink at least 10%.
        let ratio = (max_bytes as f64 / encoded.len() as f64).sqrt() * 0.95;
        scale *= ratio.min(0.9);
    }
}

/// The size of `width`×`height` scaled by `scale`, each side floored, the longer side lowered
/// where flooring the shorter would break the 200:1 aspect ratio.
fn scaled_size(width: u32, height: u32, scale: f64) -> (u32, u32) {
    // Never below the provider's smallest side (flooring 10.99 would give 10).
    let scaled_width = ((f64::from(width) * scale).floor() as u32).max(MIN_SIDE_PIXELS.min(width));
    let scaled_height =
        ((f64::from(height) * scale).floor() as u32).max(MIN_SIDE_PIXELS.min(height));
    let longest_allowed = scaled_width
        .min(scaled_height)
        .saturating_mul(MAX_ASPECT_RATIO);
    (
        scaled_width.min(longest_allowed),
        scaled_height.min(longest_allowed),
    )
}

/// The picture as RGB, its transparent parts laid over white.
fn over_white(decoded: &image::DynamicImage) -> image::RgbImage {
    if !decoded.color().has_alpha() {
        return decoded.to_rgb8();
    }
    let rgba = decoded.to_rgba8();
    image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [red, green, blue, alpha] = rgba.get_pixel(x, y).0;
        let blend = |channel: u8| {
            let alpha = u32::from(alpha);
            ((u32::from(channel) * alpha + 255 * (255 - alpha) + 127) / 255) as u8
        };
        image::Rgb([blend(red), blend(green), blend(blue)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::image_facts::{check_size, decode_image, inspect_image};
    use crate::images::test_pictures::noisy_png;

    #[test]
    fn a_large_image_is_shrunk_within_the_pixels_and_the_bytes_and_the_same_way_each_time() {
        let bytes = noisy_png(600, 400);
        let (facts, decoded) = decode_image(&bytes).unwrap();
        let decoded = decoded.unwrap();
        let fitted = downscale_to_fit(&decoded, facts, 100_000, 60_000).unwrap();
        assert!(fitted.bytes.len() <= 60_000, "{}", fitted.bytes.len());
        assert!(u64::from(fitted.facts.width) * u64::from(fitted.facts.height) <= 100_000);
        assert_eq!(fitted.facts, inspect_image(&fitted.bytes, true).unwrap());
        // The aspect ratio is kept.
        let ratio = f64::from(fitted.facts.width) / f64::from(fitted.facts.height);
        assert!((ratio - 1.5).abs() < 0.02, "{ratio}");
        let again = downscale_to_fit(&decoded, facts, 100_000, 60_000).unwrap();
        assert_eq!(fitted.bytes, again.bytes);
    }

    #[test]
    fn an_image_that_cannot_fit_says_so() {
        let bytes = noisy_png(100, 100);
        let (facts, decoded) = decode_image(&bytes).unwrap();
        let error = downscale_to_fit(&decoded.unwrap(), facts, 1_000_000, 200).unwrap_err();
        assert!(
            error.contains("cannot be made small enough: even at 11×11 pixels"),
            "{error}"
        );
    }

    #[test]
    fn a_long_thin_image_keeps_within_the_aspect_ratio_when_shrunk() {
        let bytes = noisy_png(120, 24_000);
        let (facts, decoded) = decode_image(&bytes).unwrap();
        let fitted = downscale_to_fit(&decoded.unwrap(), facts, 2_621_440, 10_000_000).unwrap();
        let (width, height) = (fitted.facts.width, fitted.facts.height);
        assert!(height <= width * 200, "{width}×{height}");
        assert!(check_size(width, height).is_ok());
    }

    #[test]
    fn a_picture_that_fits_only_at_the_smallest_side_is_shrunk_that_far() {
        // 4000×40 noise in a few kilobytes of room: only about 1100×11 fits.
        let bytes = noisy_png(4000, 40);
        let (facts, decoded) = decode_image(&bytes).unwrap();
        let fitted = downscale_to_fit(&decoded.unwrap(), facts, 2_621_440, 14_000).unwrap();
        assert_eq!(fitted.facts.height, 11, "{:?}", fitted.facts);
        assert!(fitted.bytes.len() <= 14_000);
    }

    #[test]
    fn transparent_parts_are_laid_over_white() {
        // Black text on a transparent background: the hidden colour under the transparency is
        // black, and must not show.
        let transparent_black = image::RgbaImage::from_pixel(40, 40, image::Rgba([0, 0, 0, 0]));
        let decoded = image::DynamicImage::ImageRgba8(transparent_black);
        let facts = ImageFacts {
            format: ImageFormat::Png,
            width: 40,
            height: 40,
        };
        let fitted = downscale_to_fit(&decoded, facts, 1_000_000, 100_000).unwrap();
        let back = image::load_from_memory(&fitted.bytes).unwrap().to_rgb8();
        assert!(
            back.pixels()
                .all(|pixel| pixel.0.iter().all(|&channel| channel > 245))
        );
    }
}
