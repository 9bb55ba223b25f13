//! Pictures made in memory for the image modules' unit tests.

use std::io::Cursor;

/// `image` encoded as `format`.
pub(crate) fn encoded(
    image: impl Into<image::DynamicImage>,
    format: image::ImageFormat,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .into()
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("an in-memory picture encodes");
    bytes
}

/// A PNG of one colour: small whatever its size.
pub(crate) fn solid_png(width: u32, height: u32) -> Vec<u8> {
    encoded(
        image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30])),
        image::ImageFormat::Png,
    )
}

/// A PNG of noise: it does not compress, a hard case for fitting by bytes.
pub(crate) fn noisy_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 12345u32;
    let image = image::RgbImage::from_fn(width, height, |_, _| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    encoded(image, image::ImageFormat::Png)
}
